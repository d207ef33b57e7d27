"""The appraisal pipeline, driven by a tiny pure scheme (the real schemes are tested on real
tokens in tests/conformance)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from devattest import errors
from devattest.model import (
    ComponentReference,
    KeyAnchor,
    ReferenceValues,
    ReferenceValueSet,
    Status,
    TrustAnchors,
    TrustVector,
    ar4si,
)
from devattest.policy._base import PolicyDecision, PolicyInput
from devattest.schemes import SchemeRegistry
from devattest.verifier import NonceBook, contraindicated_result, verify, verify_strict
from tests.unit.verifier._scheme import MEDIA_TYPE, UnitScheme, make_evidence

KEY = b"k" * 32
NONCE = bytes(range(32))
NOW = 1_800_000_000
GOOD_DIGEST = "aa" * 32
REFS = ReferenceValues.of([ReferenceValueSet(
    class_id="model-a",
    components=(ComponentReference("BL", frozenset({bytes.fromhex(GOOD_DIGEST)}),
                                   min_version="1.2"),),
    allowed_lifecycles=frozenset({0x3000}),
)])


@dataclass(frozen=True)
class AllowAll:
    policy_id: str = "test/allow-all"

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        return PolicyDecision(allow=True)


@dataclass(frozen=True)
class DenyUnlessHardware:
    policy_id: str = "test/hardware"

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        if policy_input.key.hardware_backed:
            return PolicyDecision(allow=True)
        return PolicyDecision(allow=False, reasons=("hardware-backed key required",))


def claims(**over: object) -> dict[str, object]:
    c: dict[str, object] = {
        "iid": "01" + "22" * 32, "nonce": NONCE.hex(), "class": "model-a", "lifecycle": 0x3000,
        "components": [{"type": "BL", "digest": GOOD_DIGEST, "version": "1.3.0"}],
    }
    c.update(over)
    return c


def run(evidence: bytes, *, anchors: TrustAnchors | None = None,
        refs: ReferenceValues | None = REFS, policy: object = None,
        nonce: bytes = NONCE) -> object:
    anchors = anchors or TrustAnchors.of(keys=[
        KeyAnchor(public_key=KEY, instance_id=bytes.fromhex("01" + "22" * 32),
                  hardware_backed=True)])
    return verify(evidence, media_type=MEDIA_TYPE, expected_nonce=nonce, trust_anchors=anchors,
                  reference_values=refs, policy=policy or AllowAll(), now=NOW,
                  registry=SchemeRegistry([UnitScheme()]))


def test_good_evidence_affirms_with_full_vector() -> None:
    r = run(make_evidence(KEY, claims()))
    assert r.status is Status.AFFIRMING, r.reasons
    tv = r.submods["unit"].trust_vector
    assert tv.instance_identity == ar4si.TRUSTWORTHY_INSTANCE
    assert tv.hardware == ar4si.GENUINE_HARDWARE
    assert tv.executables == ar4si.APPROVED_RUNTIME
    assert tv.configuration == ar4si.APPROVED_CONFIG
    assert r.nonce == NONCE and r.exp == NOW + 3600 and r.iat == NOW


def test_wrong_key_is_signature_failure_99() -> None:
    r = run(make_evidence(b"x" * 32, claims()))
    assert r.status is Status.CONTRAINDICATED
    assert r.reasons[0][0] == "signature_invalid"
    assert r.submods["evidence"].trust_vector.instance_identity == 99
    assert r.submods["evidence"].failed_step == "3"


def test_wrong_nonce_is_rejected() -> None:
    r = run(make_evidence(KEY, claims(nonce="ff" * 32)))
    assert r.status is Status.CONTRAINDICATED
    assert r.reasons[0][0] == "nonce_mismatch"


def test_missing_nonce_is_rejected() -> None:
    r = run(make_evidence(KEY, claims(nonce=None)))
    assert r.reasons[0][0] == "nonce_mismatch"


def test_replayed_nonce_is_rejected_by_the_nonce_book() -> None:
    book = NonceBook(ttl=120)
    n = book.issue(now=NOW)
    ev = make_evidence(KEY, claims(nonce=n.hex()))
    assert run(ev, nonce=book.consume(n, now=NOW)).status is Status.AFFIRMING
    with pytest.raises(errors.NonceReplayed) as exc:
        book.consume(n, now=NOW + 1)
    r = contraindicated_result(exc.value, evidence=ev, media_type=MEDIA_TYPE,
                               expected_nonce=n, now=NOW + 1)
    assert r.status is Status.CONTRAINDICATED and r.reasons[0][0] == "nonce_replayed"


def test_expired_nonce_is_rejected() -> None:
    book = NonceBook(ttl=120)
    n = book.issue(now=NOW)
    with pytest.raises(errors.NonceExpired):
        book.consume(n, now=NOW + 121)


def test_unknown_instance_is_97() -> None:
    anchors = TrustAnchors.of(keys=[KeyAnchor(public_key=KEY, instance_id=b"\x01" + b"\x33" * 32)])
    r = run(make_evidence(KEY, claims()), anchors=anchors)
    assert r.reasons[0][0] == "key_not_found"
    assert r.submods["evidence"].trust_vector.instance_identity == ar4si.UNRECOGNIZED_INSTANCE


def test_empty_trust_anchor_set_fails_closed() -> None:
    r = run(make_evidence(KEY, claims()), anchors=TrustAnchors())
    assert r.status is Status.CONTRAINDICATED and r.reasons[0][0] == "key_not_found"


def test_single_unbound_anchor_is_the_trust_anchor_for_the_token() -> None:
    anchors = TrustAnchors.of(keys=[KeyAnchor(public_key=KEY)])
    assert run(make_evidence(KEY, claims()), anchors=anchors).status is Status.AFFIRMING


def test_two_unbound_anchors_are_ambiguous_and_refused() -> None:
    anchors = TrustAnchors.of(keys=[KeyAnchor(public_key=KEY), KeyAnchor(public_key=b"y" * 32)])
    assert run(make_evidence(KEY, claims()), anchors=anchors).reasons[0][0] == "key_not_found"


def test_unknown_measurement_is_executables_33_warning() -> None:
    r = run(make_evidence(KEY, claims(components=[{"type": "BL", "digest": "bb" * 32,
                                                   "version": "1.3"}])))
    assert r.status is Status.WARNING
    assert r.submods["unit"].trust_vector.executables == ar4si.UNRECOGNIZED_RUNTIME
    assert r.reasons[0][0] == "unknown_measurement"


def test_rollback_below_minimum_version_is_contraindicated() -> None:
    r = run(make_evidence(KEY, claims(components=[{"type": "BL", "digest": GOOD_DIGEST,
                                                   "version": "1.1.9"}])))
    assert r.status is Status.CONTRAINDICATED
    assert r.reasons[0][0] == "rollback_detected"


def test_missing_required_component_and_unknown_component_both_reported() -> None:
    r = run(make_evidence(KEY, claims(components=[{"type": "APP", "digest": "cc" * 32}])))
    codes = {c for c, _ in r.reasons}
    assert codes == {"unknown_measurement", "missing_component"}


def test_lifecycle_not_allowed() -> None:
    r = run(make_evidence(KEY, claims(lifecycle=0x5000)))
    assert r.status is Status.CONTRAINDICATED
    assert r.reasons[0][0] == "lifecycle_not_allowed"


def test_no_reference_values_for_class() -> None:
    r = run(make_evidence(KEY, claims(**{"class": "model-z"})))
    assert r.status is Status.WARNING and r.reasons[0][0] == "no_reference_values"


def test_token_whose_software_was_never_compared_is_not_affirmed() -> None:
    # Issue 13 item 8: a valid signature without Reference Values used to affirm with only
    # instance-identity set. Nothing is affirmed that was not appraised.
    r = run(make_evidence(KEY, claims()), refs=None)
    assert r.status is Status.WARNING
    assert r.submods["unit"].trust_vector.executables == ar4si.UNRECOGNIZED_RUNTIME
    assert [c for c, _ in r.reasons] == ["software_not_appraised"]
    assert "appraisal" not in r.submods["unit"].annotated_evidence


def test_reference_values_that_compare_none_of_the_components_do_not_affirm() -> None:
    # Reference Values for the class that name none of the measured components (unknown
    # components tolerated) compare nothing: not a match, not affirming.
    refs = ReferenceValues.of([ReferenceValueSet(
        class_id="model-a", components=(ComponentReference("OTHER", required=False),),
        reject_unknown_components=False)])
    r = run(make_evidence(KEY, claims()), refs=refs)
    assert r.status is Status.WARNING
    assert r.submods["unit"].trust_vector.executables == ar4si.UNRECOGNIZED_RUNTIME
    assert [c for c, _ in r.reasons] == ["software_not_appraised"]


def test_reference_values_with_only_lifecycles_do_not_affirm_the_software() -> None:
    refs = ReferenceValues.of([ReferenceValueSet(
        class_id="model-a", allowed_lifecycles=frozenset({0x3000}),
        reject_unknown_components=False)])
    r = run(make_evidence(KEY, claims()), refs=refs)
    assert r.status is Status.WARNING
    tv = r.submods["unit"].trust_vector
    assert tv.executables == ar4si.UNRECOGNIZED_RUNTIME
    assert tv.configuration == ar4si.APPROVED_CONFIG


def test_token_without_software_components_is_not_affirmed() -> None:
    r = run(make_evidence(KEY, claims(components=[])), refs=ReferenceValues.of([
        ReferenceValueSet(class_id="model-a")]))
    assert r.status is Status.WARNING
    assert [c for c, _ in r.reasons] == ["software_not_appraised"]


def test_signature_only_policy_keeps_executables_no_claim_and_says_so() -> None:
    from devattest.policy import AllOf, AllowUnappraisedSoftware, DefaultPolicy
    from devattest.verifier import SIGNATURE_ONLY

    r = run(make_evidence(KEY, claims()), refs=None,
            policy=AllOf([DefaultPolicy(), AllowUnappraisedSoftware()]))
    assert r.status is Status.AFFIRMING, r.reasons
    sub = r.submods["unit"]
    assert sub.trust_vector.executables is None
    assert sub.annotated_evidence["appraisal"] == SIGNATURE_ONLY
    assert any("signature-only" in n for n in sub.annotated_evidence["notices"])
    assert r.reasons == ()
    assert sub.appraisal_policy_ids == ("urn:devattest:policy:default",
                                        "urn:devattest:policy:allow-unappraised-software")


def test_signature_only_policy_does_not_lift_a_reference_value_mismatch() -> None:
    from devattest.policy import AllowUnappraisedSoftware

    r = run(make_evidence(KEY, claims(**{"class": "model-z"})),
            policy=AllowUnappraisedSoftware())
    assert r.status is Status.WARNING
    assert [c for c, _ in r.reasons] == ["no_reference_values"]
    assert "appraisal" not in r.submods["unit"].annotated_evidence


def test_signature_only_policy_has_no_effect_when_software_was_appraised() -> None:
    from devattest.policy import AllowUnappraisedSoftware

    r = run(make_evidence(KEY, claims()), policy=AllowUnappraisedSoftware())
    assert r.status is Status.AFFIRMING
    sub = r.submods["unit"]
    assert sub.trust_vector.executables == ar4si.APPROVED_RUNTIME
    assert "appraisal" not in sub.annotated_evidence


def test_signature_only_is_not_granted_when_another_policy_denies() -> None:
    from devattest.policy import AllOf, AllowUnappraisedSoftware

    anchors = TrustAnchors.of(keys=[KeyAnchor(public_key=KEY)])
    r = run(make_evidence(KEY, claims()), anchors=anchors, refs=None,
            policy=AllOf([DenyUnlessHardware(), AllowUnappraisedSoftware()]))
    assert r.status is Status.CONTRAINDICATED
    codes = [c for c, _ in r.reasons]
    assert "software_not_appraised" in codes and "policy_violation" in codes
    assert "appraisal" not in r.submods["unit"].annotated_evidence


def test_policy_veto_is_contraindicated_with_reason() -> None:
    anchors = TrustAnchors.of(keys=[KeyAnchor(public_key=KEY)])
    r = run(make_evidence(KEY, claims()), anchors=anchors, policy=DenyUnlessHardware())
    assert r.status is Status.CONTRAINDICATED
    assert ("policy_violation", "hardware-backed key required") in r.reasons
    assert r.submods["unit"].appraisal_policy_id == "test/hardware"


def test_malformed_evidence_is_a_result_not_an_exception() -> None:
    r = run(b"\x00" * 40)
    assert r.status is Status.CONTRAINDICATED and r.reasons[0][0] == "invalid_cbor"


def test_verify_strict_raises_the_typed_error() -> None:
    with pytest.raises(errors.SignatureInvalid):
        verify_strict(make_evidence(b"x" * 32, claims()), media_type=MEDIA_TYPE,
                      expected_nonce=NONCE, trust_anchors=TrustAnchors.of(
                          keys=[KeyAnchor(public_key=KEY)]),
                      reference_values=None, policy=AllowAll(), now=NOW,
                      registry=SchemeRegistry([UnitScheme()]))


def test_unknown_media_type_is_a_contraindicated_result() -> None:
    r = verify(b"x", media_type="application/unknown", expected_nonce=NONCE,
               trust_anchors=TrustAnchors.of(keys=[KeyAnchor(public_key=KEY)]),
               reference_values=None, policy=AllowAll(), now=NOW,
               registry=SchemeRegistry([UnitScheme()]))
    assert r.status is Status.CONTRAINDICATED and r.reasons[0][0] == "unsupported_media_type"


def test_empty_expected_nonce_is_a_programming_error() -> None:
    with pytest.raises(errors.UsageError, match="freshness is not optional"):
        run(make_evidence(KEY, claims()), nonce=b"")


def test_internal_bug_in_a_scheme_is_a_verifier_malfunction_result() -> None:
    class Broken(UnitScheme):
        def extract_claims(self, decoded, *, now, options):  # type: ignore[no-untyped-def]
            raise KeyError("bug")

    r = verify(make_evidence(KEY, claims()), media_type=MEDIA_TYPE, expected_nonce=NONCE,
               trust_anchors=TrustAnchors.of(keys=[KeyAnchor(public_key=KEY)]),
               reference_values=None, policy=AllowAll(), now=NOW,
               registry=SchemeRegistry([Broken()]))
    assert r.status is Status.CONTRAINDICATED
    assert r.reasons[0][0] == "verifier_malfunction"
    assert r.submods["evidence"].trust_vector.instance_identity == ar4si.VERIFIER_MALFUNCTION


def test_trust_vector_status_tiers() -> None:
    assert TrustVector(instance_identity=2).worst_status() is Status.AFFIRMING
    assert TrustVector(instance_identity=2, executables=33).worst_status() is Status.WARNING
    assert TrustVector(executables=33, configuration=96).worst_status() is Status.CONTRAINDICATED
    assert TrustVector().worst_status() is Status.NONE
