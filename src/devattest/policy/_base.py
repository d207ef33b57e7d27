"""The Appraisal Policy interface (RFC 9334 section 8.5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from devattest.model import Claims, KeyAnchor, TrustVector


@dataclass(frozen=True, slots=True)
class PolicyInput:
    """Everything an Appraisal Policy may look at. Rego policies see it as ``input`` (the
    JSON shape is documented in ``docs/policy.md`` and built by ``policy_input_document``)."""

    scheme: str
    media_type: str
    claims: Claims
    #: The trust vector derived by the built-in rules, before this policy.
    trust_vector: TrustVector
    #: The Trust Anchor that verified the Evidence.
    key: KeyAnchor
    #: Whether Reference Values were found for the device class, at least one software
    #: component was compared with them, and everything matched.
    reference_values_matched: bool
    #: Whether at least one software component was compared with a Reference Value (step
    #: 6). When False the derived vector's ``executables`` is 33 (unrecognized runtime) and
    #: the reasons say ``software_not_appraised``, unless a policy allows signature-only
    #: appraisal (:class:`~devattest.policy.AllowUnappraisedSoftware`).
    software_appraised: bool = False


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """A policy's verdict. ``allow=False`` makes the result contraindicated (or what the
    policy's ``trust_vector`` says); ``trust_vector`` replaces the derived vector when set."""

    allow: bool
    reasons: tuple[str, ...] = ()
    trust_vector: TrustVector | None = None
    #: Reason code for a denial (default ``policy_violation``), e.g.
    #: ``hardware_backing_required``.
    code: str | None = None
    #: The policy explicitly accepts signature-only appraisal: when no software was
    #: compared with a Reference Value, ``executables`` stays "no claim" instead of 33 and
    #: the result says ``signature-only`` (docs/policy.md). Ignored when ``allow`` is False
    #: or when software was appraised.
    signature_only: bool = False


class AppraisalPolicy(Protocol):
    """A one-method policy object; compose with ``AllOf`` and ``AnyOf``."""

    @property
    def policy_id(self) -> str: ...

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        """Decide. Raises PolicyError only when the policy itself is broken."""
        ...
