"""Scheme registry: media types are exact and never overlap."""

from __future__ import annotations

from typing import ClassVar

import pytest

from devattest.errors import RegistryConflict, UnsupportedMediaType
from devattest.schemes import SchemeRegistry, default_registry
from devattest.schemes.eat import EatConstrainedScheme, EatScheme
from devattest.schemes.example import ExampleScheme
from devattest.schemes.psa import PsaScheme


class Impostor(ExampleScheme):
    """Claims the PSA media type under another name."""

    name: ClassVar[str] = "impostor"
    media_types: ClassVar[tuple[str, ...]] = ("application/psa-attestation-token",)


class SpacedImpostor(ExampleScheme):
    """The EAT media type, spelled with other case and spacing."""

    name: ClassVar[str] = "spaced"
    media_types: ClassVar[tuple[str, ...]] = (
        'Application/EAT+CWT;eat_profile="urn:ietf:rfc:rfc9711"',)


def test_default_registry_has_psa_and_eat_without_overlap() -> None:
    reg = default_registry()
    assert {"psa", "eat"} <= set(reg.names)
    assert len(set(reg.media_types)) == len(reg.media_types)
    assert set(PsaScheme.media_types).isdisjoint(EatScheme.media_types)


@pytest.mark.parametrize(("media_type", "scheme"), [
    ('application/eat+cwt; eat_profile="tag:psacertified.org,2023:psa#tfm"', "psa"),
    ("application/psa-attestation-token", "psa"),
    ("application/eat+cwt", "eat"),
    ('application/eat+cwt; eat_profile="urn:ietf:rfc:rfc9711"', "eat-rfc9711"),
    ('APPLICATION/EAT+CWT;eat_profile="tag:psacertified.org,2023:psa#tfm"', "psa"),
])
def test_media_types_select_their_scheme(media_type: str, scheme: str) -> None:
    assert default_registry().for_media_type(media_type).name == scheme


def test_registering_a_taken_media_type_is_refused() -> None:
    with pytest.raises(RegistryConflict, match="already handled by 'psa'"):
        SchemeRegistry([PsaScheme(), Impostor()])


def test_registering_a_taken_media_type_spelled_differently_is_refused() -> None:
    with pytest.raises(RegistryConflict, match="already handled by 'eat-rfc9711'"):
        SchemeRegistry([EatConstrainedScheme(), SpacedImpostor()])


def test_registering_a_taken_name_is_refused() -> None:
    with pytest.raises(RegistryConflict, match="scheme name 'psa' is already registered"):
        SchemeRegistry([PsaScheme(), PsaScheme()])


def test_unknown_media_type_is_unsupported() -> None:
    with pytest.raises(UnsupportedMediaType):
        default_registry().for_media_type('application/eat+cwt; eat_profile="tag:x"')
