"""Composing Appraisal Policies: :class:`AllOf` and :class:`AnyOf`.

Both fail closed: constructing one with no policies raises :class:`ConfigurationError`, and
should an empty one be evaluated anyway it denies ("empty policy set fails closed").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from devattest.errors import ConfigurationError
from devattest.model import Status, TrustVector
from devattest.policy._base import AppraisalPolicy, PolicyDecision, PolicyInput

EMPTY_SET_REASON = "empty policy set fails closed"


class _Composite:
    """What AllOf and AnyOf share: a non-empty tuple of member policies and an id."""

    _name: str = ""
    _id_prefix: str = ""

    def __init__(self, policies: Iterable[AppraisalPolicy], *, policy_id: str | None = None
                 ) -> None:
        """Compose policies.

        Raises:
            ConfigurationError: ``policies`` is empty (an empty set would allow nothing
                and is almost certainly a configuration mistake).
        """
        self._policies = tuple(policies)
        if not self._policies:
            raise ConfigurationError(f"{self._name}: {EMPTY_SET_REASON}")
        self._policy_id = policy_id or f"{self._id_prefix}(" + ", ".join(
            p.policy_id for p in self._policies) + ")"

    @property
    def policy_id(self) -> str:
        return self._policy_id

    @property
    def policies(self) -> tuple[AppraisalPolicy, ...]:
        return self._policies


class AllOf(_Composite):
    """Allows only when every policy allows.

    Every policy is evaluated, in order (no short-circuit), so the reasons are complete.
    A trust-vector override by one policy is what the next policies see, and the last
    override is the decision's. The decision is signature-only when it allows and a member
    said so (:class:`~devattest.policy.AllowUnappraisedSoftware`).
    """

    _name = "AllOf"
    _id_prefix = "all-of"

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        """Evaluate every policy; allow iff all allow (and there is at least one).

        Raises:
            PolicyError: a member policy is broken.
        """
        if not self._policies:
            return PolicyDecision(allow=False, reasons=(EMPTY_SET_REASON,))
        allow = True
        reasons: list[str] = []
        override: TrustVector | None = None
        code: str | None = None
        signature_only = False
        current = policy_input
        for policy in self._policies:
            decision = policy.evaluate(current)
            if not decision.allow and code is None and allow:
                code = decision.code  # the first denial names the reason code
            allow = allow and decision.allow
            signature_only = signature_only or decision.signature_only
            reasons.extend(decision.reasons)
            if decision.trust_vector is not None:
                override = decision.trust_vector
                current = dataclasses.replace(current, trust_vector=override)
        return PolicyDecision(allow=allow, reasons=tuple(reasons), trust_vector=override,
                              code=code, signature_only=allow and signature_only)


class AnyOf(_Composite):
    """Allows when at least one policy allows; the first that allows decides.

    Policies are evaluated in order until one allows. When none allows, the decision
    denies with every policy's reasons, and with the least trusting of their trust-vector
    overrides, claim by claim.
    """

    _name = "AnyOf"
    _id_prefix = "any-of"

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        """Allow with the first allowing policy's decision; otherwise deny.

        Raises:
            PolicyError: a member policy is broken.
        """
        reasons: list[str] = []
        override: TrustVector | None = None
        code: str | None = None
        for policy in self._policies:
            decision = policy.evaluate(policy_input)
            if decision.allow:
                return decision
            code = code or decision.code
            reasons.extend(decision.reasons)
            if decision.trust_vector is not None:
                override = (decision.trust_vector if override is None
                            else least_trusting(override, decision.trust_vector))
        if not self._policies:
            reasons.append(EMPTY_SET_REASON)
        return PolicyDecision(allow=False, reasons=tuple(reasons), trust_vector=override,
                              code=code)


def least_trusting(a: TrustVector, b: TrustVector) -> TrustVector:
    """Claim by claim, the less trustworthy value (higher tier; ties keep the larger)."""
    merged: dict[str, int | None] = {}
    for f in dataclasses.fields(TrustVector):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if va is None or vb is None:
            merged[f.name] = vb if va is None else va
            continue
        ta, tb = Status.from_claim(va).tier, Status.from_claim(vb).tier
        merged[f.name] = vb if (tb, vb) > (ta, va) else va
    return TrustVector(**merged)


def policy_ids(policy: AppraisalPolicy) -> tuple[str, ...]:
    """The ids of the leaf policies in the order they are applied, for the EAR
    ``ear_appraisal_policy_ids`` list (draft-ietf-rats-ear-03 section 3.1)."""
    members = getattr(policy, "policies", None)
    if isinstance(policy, _Composite) and members:
        out: list[str] = []
        for p in members:
            out.extend(policy_ids(p))
        return tuple(out)
    return (policy.policy_id,)
