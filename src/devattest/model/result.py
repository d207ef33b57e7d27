"""Attestation Results, shaped as EAR (draft-ietf-rats-ear) with an AR4SI trustworthiness
vector (draft-ietf-rats-ar4si)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from devattest.model._fast import fast_constructor


class Status(StrEnum):
    """EAR ``ear_status`` / AR4SI trust tier."""

    NONE = "none"
    AFFIRMING = "affirming"
    WARNING = "warning"
    CONTRAINDICATED = "contraindicated"

    @property
    def tier(self) -> int:
        return _TIER[self]

    @classmethod
    def from_claim(cls, value: int) -> Status:
        """The tier a trustworthiness claim value falls in (AR4SI section 2.3.1)."""
        if -1 <= value <= 1:
            return cls.NONE
        if 2 <= value <= 31 or -32 <= value <= -2:
            return cls.AFFIRMING
        if 32 <= value <= 95 or -96 <= value <= -33:
            return cls.WARNING
        return cls.CONTRAINDICATED


_TIER = {Status.NONE: 0, Status.AFFIRMING: 2, Status.WARNING: 32, Status.CONTRAINDICATED: 96}
_STATUS_OF_TIER = {tier: status for status, tier in _TIER.items()}
#: Tier of every claim value AR4SI can carry (int8), precomputed from ``Status.from_claim``.
_TIER_OF_VALUE = {v: _TIER[Status.from_claim(v)] for v in range(-128, 128)}


@dataclass(frozen=True, slots=True)
class TrustVector:
    """The eight AR4SI trustworthiness claims. ``None`` means "no claim"."""

    instance_identity: int | None = None
    configuration: int | None = None
    executables: int | None = None
    file_system: int | None = None
    hardware: int | None = None
    runtime_opaque: int | None = None
    storage_opaque: int | None = None
    sourced_data: int | None = None

    def worst_status(self) -> Status:
        """The overall status: the worst tier of any claim that is set."""
        worst_tier = 0
        tier_of = _TIER_OF_VALUE
        for v in (self.instance_identity, self.configuration, self.executables,
                  self.file_system, self.hardware, self.runtime_opaque, self.storage_opaque,
                  self.sourced_data):
            if v is None:
                continue
            tier = tier_of.get(v)
            if tier is None:  # outside the int8 range AR4SI uses: the general rule
                tier = _TIER[Status.from_claim(v)]
            if tier > worst_tier:  # noqa: PLR1730 - max() costs a call per claim
                worst_tier = tier
        return _STATUS_OF_TIER[worst_tier]

    def as_ear(self) -> dict[str, int]:
        """EAR JSON names (hyphenated), omitting unset claims."""
        return {ear: value for name, ear in _EAR_NAMES
                if (value := getattr(self, name)) is not None}


#: (field name, EAR claim name) of each trustworthiness claim, in declaration order.
_EAR_NAMES: tuple[tuple[str, str], ...] = tuple(
    (f.name, f.name.replace("_", "-")) for f in fields(TrustVector))


@dataclass(frozen=True, slots=True)
class VerifierId:
    """EAR ``ear_verifier_id``."""

    developer: str = "https://github.com/devattest/devattest"
    build: str = "devattest 0.1.0"


@dataclass(frozen=True, slots=True)
class Appraisal:
    """The appraisal of one attesting environment: one EAR ``submods`` entry."""

    status: Status
    trust_vector: TrustVector
    #: Stable reason codes (from :mod:`devattest.errors`) with their human text.
    reasons: tuple[tuple[str, str], ...] = ()
    appraisal_policy_id: str | None = None
    #: Claims the Verifier vouches for (EAR ``ear_veraison.annotated-evidence``-like).
    annotated_evidence: Mapping[str, Any] = field(default_factory=dict)
    #: The numbered verification step that failed, if any.
    failed_step: str | None = None
    #: The full EAR ``ear_appraisal_policy_ids`` list, in the order the policies were applied
    #: (draft-ietf-rats-ear-03 section 3.1). When empty, ``appraisal_policy_id`` alone is
    #: emitted; when set, its first element should equal ``appraisal_policy_id``.
    appraisal_policy_ids: tuple[str, ...] = ()
    #: EAR-appraisal ``eat_profile``: the profile of this appraisal record, if any.
    profile: str | None = None
    #: EAR-appraisal ``eat_nonce``: the nonce carried by the appraised Evidence, if echoed.
    nonce: bytes | None = None
    #: Other EAR-appraisal claims (registered or unregistered extensions such as
    #: ``ear_teep_claims``), kept verbatim keyed by their JSON name or CBOR key.
    extensions: Mapping[str | int, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AttestationResult:
    """An Attestation Result (RFC 9334 section 8.4), shaped as an EAR.

    ``status`` is the overall ``ear_status``: the worst of the submodules.
    """

    status: Status
    submods: Mapping[str, Appraisal]
    iat: int
    exp: int | None = None
    nonce: bytes | None = None
    verifier_id: VerifierId = field(default_factory=VerifierId)
    profile: str = "tag:ietf.org,2026:rats/ear#03"
    #: SHA-256 of the Evidence bytes.
    evidence_digest: bytes | None = None
    media_type: str | None = None
    #: EAR ``ear_raw_evidence``: the unabridged Evidence, only when the caller opts in
    #: (draft-ietf-rats-ear-03 section 8: it has privacy implications).
    raw_evidence: bytes | None = None
    #: Other top-level EAR claims (extensions), kept verbatim keyed by JSON name or CBOR key.
    extensions: Mapping[str | int, Any] = field(default_factory=dict)
    #: The identity (Instance ID, TPM name) the attesting key is bound to, when the
    #: appraisal got as far as finding and checking the key and the key has one (a Trust
    #: Anchor registered for it, or derived from the key as a PSA Instance ID). Not part of
    #: the EAR: the service binds an unbound device to it (device binding).
    attested_identity: bytes | None = field(default=None, compare=False)

    @property
    def reasons(self) -> tuple[tuple[str, str], ...]:
        out: list[tuple[str, str]] = []
        for sub in self.submods.values():
            out.extend(sub.reasons)
        return tuple(out)

    @property
    def affirming(self) -> bool:
        return self.status is Status.AFFIRMING


# Hot-path constructors (same objects, about half the cost; see ``model._fast``).
new_trust_vector = fast_constructor(TrustVector)
new_appraisal = fast_constructor(Appraisal)
new_attestation_result = fast_constructor(AttestationResult)
