"""Step 6 (Reference Values, RFC 9334 section 8.3) pinned one check at a time (issue 14).

Each test drives ``appraise_reference_values`` with normalised claims and asserts the exact
problem the broken check must report (its type and step), so that no other check stands in
for it, and shows the passing neighbour case so the test can fail only on the check itself.
"""

from __future__ import annotations

from devattest.errors import (
    LifecycleNotAllowed,
    ReferenceValueError,
    RollbackDetected,
    SignerMismatch,
    UnknownMeasurement,
)
from devattest.model import Claims, ComponentReference, ReferenceValueSet, SoftwareComponent
from devattest.verifier._refvals import appraise_reference_values

GOOD = b"\x11" * 32
OTHER = b"\x22" * 32
FORGED = b"\x66" * 32
SIGNER = b"\x5a" * 32
SECURED = 0x3000


def _claims(*comps: SoftwareComponent, lifecycle: int | None = SECURED) -> Claims:
    return Claims(profile="unit", nonce=b"n" * 32, class_id="class",
                  security_lifecycle=lifecycle, software_components=comps)


def _refs(*components: ComponentReference, lifecycles: frozenset[int] | None = None
          ) -> ReferenceValueSet:
    return ReferenceValueSet(class_id="class", components=components,
                             allowed_lifecycles=lifecycles)


def _problems(claims: Claims, refs: ReferenceValueSet) -> list[tuple[type, str | None]]:
    found: list[ReferenceValueError] = appraise_reference_values(claims, refs)
    return [(type(p), p.step) for p in found]


def _fw(**kw: object) -> SoftwareComponent:
    fields: dict[str, object] = {"measurement_value": GOOD, "measurement_type": "BL"}
    fields.update(kw)
    return SoftwareComponent(**fields)  # type: ignore[arg-type]


# ------------------------------------------------------------------ 6.4 min_security_version
def test_security_version_one_below_the_minimum_is_a_rollback() -> None:
    refs = _refs(ComponentReference("BL", frozenset({GOOD}), min_security_version=5))
    assert _problems(_claims(_fw(security_version=4)), refs) == [(RollbackDetected, "6.4")]


def test_security_version_equal_to_the_minimum_is_accepted() -> None:
    refs = _refs(ComponentReference("BL", frozenset({GOOD}), min_security_version=5))
    assert _problems(_claims(_fw(security_version=5)), refs) == []
    assert _problems(_claims(_fw(security_version=6)), refs) == []


def test_missing_security_version_against_a_minimum_is_a_rollback() -> None:
    """A component that reports no security version cannot prove it is not rolled back."""
    refs = _refs(ComponentReference("BL", frozenset({GOOD}), min_security_version=5))
    assert _problems(_claims(_fw()), refs) == [(RollbackDetected, "6.4")]


def test_security_version_zero_against_minimum_one_is_a_rollback() -> None:
    refs = _refs(ComponentReference("BL", frozenset({GOOD}), min_security_version=1))
    assert _problems(_claims(_fw(security_version=0)), refs) == [(RollbackDetected, "6.4")]


# ------------------------------------------------------------------ 6.4 min_version
def test_missing_version_against_a_minimum_version_is_a_rollback() -> None:
    refs = _refs(ComponentReference("BL", frozenset({GOOD}), min_version="1.2.0"))
    assert _problems(_claims(_fw()), refs) == [(RollbackDetected, "6.4")]
    assert _problems(_claims(_fw(version="1.2.0")), refs) == []


def test_version_below_the_minimum_is_a_rollback() -> None:
    refs = _refs(ComponentReference("BL", frozenset({GOOD}), min_version="1.10.0"))
    assert _problems(_claims(_fw(version="1.9.9")), refs) == [(RollbackDetected, "6.4")]
    assert _problems(_claims(_fw(version="1.10.0")), refs) == []


# ------------------------------------------------------------------ 6.1 several references
def test_measurement_matching_none_of_several_references_for_its_type_is_unknown() -> None:
    """Two golden digests for "BL" as two references (e.g. two releases): a forged image
    matches neither, and the appraisal must say so rather than take the last reference."""
    refs = _refs(ComponentReference("BL", frozenset({GOOD})),
                 ComponentReference("BL", frozenset({OTHER})))
    assert _problems(_claims(_fw(measurement_value=FORGED)), refs) == [
        (UnknownMeasurement, "6.2")]
    assert _problems(_claims(_fw(measurement_value=GOOD)), refs) == []
    assert _problems(_claims(_fw(measurement_value=OTHER)), refs) == []


def test_several_references_report_the_rollback_over_an_unknown_measurement() -> None:
    refs = _refs(ComponentReference("BL", frozenset({GOOD}), min_version="2.0"),
                 ComponentReference("BL", frozenset({OTHER})))
    assert _problems(_claims(_fw(version="1.0")), refs) == [(RollbackDetected, "6.4")]


def test_signer_matching_none_of_several_references_is_refused() -> None:
    refs = _refs(ComponentReference("BL", frozenset({GOOD}), frozenset({SIGNER})),
                 ComponentReference("BL", frozenset({OTHER}), frozenset({SIGNER})))
    assert _problems(_claims(_fw(signer_id=b"\x00" * 32)), refs) == [(SignerMismatch, "6.3")]
    assert _problems(_claims(_fw(signer_id=SIGNER)), refs) == []


# ------------------------------------------------------------------ 6.6 lifecycle
def test_missing_lifecycle_against_allowed_lifecycles_is_not_allowed() -> None:
    """A token that reports no security lifecycle must not pass a lifecycle restriction."""
    refs = _refs(ComponentReference("BL", frozenset({GOOD})), lifecycles=frozenset({SECURED}))
    assert _problems(_claims(_fw(), lifecycle=None), refs) == [(LifecycleNotAllowed, "6.6")]
    assert _problems(_claims(_fw(), lifecycle=SECURED), refs) == []
