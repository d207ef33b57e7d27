from __future__ import annotations

import pytest

from devattest.errors import RegistryConflict, UnsupportedMediaType
from devattest.schemes import SchemeRegistry, normalise_media_type
from devattest.verifier._refvals import version_tuple
from tests.unit.verifier._scheme import MEDIA_TYPE, UnitScheme


def test_overlapping_media_type_registration_is_refused() -> None:
    class Other(UnitScheme):
        name = "other"

    reg = SchemeRegistry([UnitScheme()])
    with pytest.raises(RegistryConflict):
        reg.register(Other())


def test_duplicate_scheme_name_is_refused() -> None:
    class Same(UnitScheme):
        media_types = ("application/x-other",)

    reg = SchemeRegistry([UnitScheme()])
    with pytest.raises(RegistryConflict):
        reg.register(Same())


def test_media_type_lookup_is_normalised() -> None:
    reg = SchemeRegistry([UnitScheme()])
    assert reg.for_media_type(MEDIA_TYPE.upper()).name == "unit"
    with pytest.raises(UnsupportedMediaType):
        reg.for_media_type("application/cbor")
    assert normalise_media_type('Application/EAT+CWT ;  eat_profile="x"') == \
        'application/eat+cwt; eat_profile="x"'


@pytest.mark.parametrize(("a", "b"), [("1.2", "1.10"), ("1.2.9", "1.3"), ("2.0.0-rc1", "2.0.1"),
                                      ("1", "1.0.1")])
def test_versions_compare_numerically(a: str, b: str) -> None:
    assert version_tuple(a) < version_tuple(b)
