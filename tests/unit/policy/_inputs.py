"""PolicyInputs for the policy tests."""

from __future__ import annotations

import dataclasses

from devattest.model import Claims, Finding, KeyAnchor, SoftwareComponent, TrustVector
from devattest.policy import PolicyDecision, PolicyInput

GOOD_TV = TrustVector(instance_identity=2, executables=2, hardware=2)


def make_input(*, tv: TrustVector = GOOD_TV, hardware_backed: bool = True,
               matched: bool = True, authority: str = "",
               software_appraised: bool | None = None) -> PolicyInput:
    claims = Claims(
        profile="tag:psacertified.org,2023:psa#tfm", nonce=b"\x01" * 32,
        instance_id=b"\x01" + b"\x22" * 32, class_id=b"\x7f" * 32, security_lifecycle=0x3000,
        software_components=(SoftwareComponent(b"\xaa" * 32, "BL", b"\x05" * 32, "1.3.0"),
                             SoftwareComponent(b"\xbb" * 32, "PRoT")),
        raw={265: "tag:psacertified.org,2023:psa#tfm", -75008: b"\x7f" * 32,
             "nested": {b"\x01": [1, b"\x02"]}},
        annotations=("legacy profile",),
        findings=(Finding("configuration", 32, "lifecycle", "not secured"),),
    )
    return PolicyInput(
        scheme="psa", media_type="application/psa-attestation-token", claims=claims,
        trust_vector=tv, key=KeyAnchor(public_key=None, label="dev-1", kid=b"k",
                                       hardware_backed=hardware_backed, authority=authority),
        reference_values_matched=matched,
        software_appraised=matched if software_appraised is None else software_appraised)


@dataclasses.dataclass
class Fixed:
    """A policy with a fixed decision that counts its calls."""

    decision: PolicyDecision
    policy_id: str = "test/fixed"
    calls: int = 0
    seen: list[TrustVector] = dataclasses.field(default_factory=list)

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        self.calls += 1
        self.seen.append(policy_input.trust_vector)
        return self.decision


def allow(*reasons: str, tv: TrustVector | None = None, pid: str = "allow") -> Fixed:
    return Fixed(PolicyDecision(True, reasons, tv), policy_id=pid)


def deny(*reasons: str, tv: TrustVector | None = None, pid: str = "deny") -> Fixed:
    return Fixed(PolicyDecision(False, reasons, tv), policy_id=pid)
