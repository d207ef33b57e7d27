"""The hot-path constructors build exactly the objects the dataclass constructors build."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, field, fields

import pytest

from devattest.model import Appraisal, AttestationResult, Claims, Status, TrustVector
from devattest.model._fast import fast_constructor
from devattest.model.evidence import new_claims, new_key_hints, new_software_component
from devattest.model.result import new_appraisal, new_attestation_result, new_trust_vector


def _same(a: object, b: object) -> None:
    assert type(a) is type(b)
    assert a == b
    for f in fields(a):  # type: ignore[arg-type]
        assert getattr(a, f.name) == getattr(b, f.name)


def test_fast_constructors_equal_dataclass_constructors() -> None:
    tv = TrustVector(instance_identity=2, executables=33)
    _same(new_trust_vector(instance_identity=2, executables=33), tv)
    _same(new_appraisal(status=Status.WARNING, trust_vector=tv, reasons=(("a", "b"),)),
          Appraisal(status=Status.WARNING, trust_vector=tv, reasons=(("a", "b"),)))
    _same(new_attestation_result(status=Status.NONE, submods={}, iat=5),
          AttestationResult(status=Status.NONE, submods={}, iat=5))
    _same(new_claims(profile="p", nonce=b"n", raw={"a": 1}),
          Claims(profile="p", nonce=b"n", raw={"a": 1}))
    from devattest.model import KeyHints, SoftwareComponent
    _same(new_key_hints(kid=b"k"), KeyHints(kid=b"k"))
    _same(new_software_component(measurement_value=b"v", version="1"),
          SoftwareComponent(measurement_value=b"v", version="1"))


def test_fast_constructor_keeps_default_factories_fresh_and_objects_frozen() -> None:
    a = new_appraisal(status=Status.NONE, trust_vector=TrustVector())
    b = new_appraisal(status=Status.NONE, trust_vector=TrustVector())
    assert a.annotated_evidence == {} and a.annotated_evidence is not b.annotated_evidence
    with pytest.raises(FrozenInstanceError):
        a.status = Status.AFFIRMING  # type: ignore[misc]


def test_fast_constructor_rejects_missing_and_unknown_arguments() -> None:
    with pytest.raises(TypeError):
        new_trust_vector(not_a_claim=2)
    with pytest.raises(TypeError):
        new_appraisal(trust_vector=TrustVector())  # status is required


def test_fast_constructor_refuses_classes_with_post_init_or_derived_fields() -> None:
    @dataclass(frozen=True, slots=True)
    class Derived:
        a: int
        b: int = field(init=False, default=0)

    @dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True)
    class Unslotted:
        a: int

    for cls in (Derived, Checked, Unslotted):
        with pytest.raises(TypeError):
            fast_constructor(cls)
