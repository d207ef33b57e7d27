"""Core checks that only a mutant showed unpinned (issue 14): each test fails when its one
check in ``verifier/core.py`` is broken. Driven by the tiny pure scheme of ``test_core``."""

from __future__ import annotations

from dataclasses import dataclass

from devattest.model import (
    KeyAnchor,
    ReferenceValues,
    ReferenceValueSet,
    Status,
    TrustAnchors,
    TrustVector,
    ar4si,
)
from devattest.policy._base import PolicyDecision, PolicyInput
from tests.unit.verifier._scheme import make_evidence
from tests.unit.verifier.test_core import KEY, NONCE, REFS, claims, run

IID = bytes.fromhex("01" + "22" * 32)


def test_nonce_differing_only_in_its_last_byte_is_not_fresh() -> None:
    """Freshness compares every byte: a replayed token whose nonce shares a prefix with the
    Verifier's (a counter-based or truncated nonce) is not fresh."""
    near = bytearray(NONCE)
    near[-1] ^= 1
    r = run(make_evidence(KEY, claims(nonce=bytes(near).hex())))
    assert r.status is Status.CONTRAINDICATED
    assert [c for c, _ in r.reasons] == ["nonce_mismatch"]


def test_software_key_is_never_reported_as_genuine_hardware() -> None:
    """The hardware claim comes from the Trust Anchor's hardware-backed marker only."""
    soft = TrustAnchors.of(keys=[KeyAnchor(public_key=KEY, instance_id=IID,
                                           hardware_backed=False)])
    r = run(make_evidence(KEY, claims()), anchors=soft)
    assert r.submods["unit"].trust_vector.hardware != ar4si.GENUINE_HARDWARE
    hard = run(make_evidence(KEY, claims()))
    assert hard.submods["unit"].trust_vector.hardware == ar4si.GENUINE_HARDWARE


def test_configuration_is_not_approved_when_no_lifecycle_reference_was_appraised() -> None:
    """Reference Values without allowed_lifecycles say nothing about the configuration: the
    configuration claim must not be affirmed (nothing is affirmed that was not appraised)."""
    (only,) = REFS.sets
    no_lifecycle = ReferenceValues.of([ReferenceValueSet(
        class_id=only.class_id, components=only.components, allowed_lifecycles=None)])
    r = run(make_evidence(KEY, claims()), refs=no_lifecycle)
    assert r.submods["unit"].trust_vector.configuration != ar4si.APPROVED_CONFIG
    with_lifecycle = run(make_evidence(KEY, claims()))
    assert with_lifecycle.submods["unit"].trust_vector.configuration == ar4si.APPROVED_CONFIG


@dataclass(frozen=True)
class _EmptyVector:
    """A policy that allows but replaces the vector with one that claims nothing."""

    policy_id: str = "test/empty-vector"

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        return PolicyDecision(allow=True, trust_vector=TrustVector())


def test_result_with_no_trustworthiness_claim_is_not_affirmed() -> None:
    r = run(make_evidence(KEY, claims()), policy=_EmptyVector())
    assert r.status is Status.CONTRAINDICATED
    assert [c for c, _ in r.reasons] == ["no_trust_claims"]
