"""Built-in Appraisal Policies: one-method objects, composable with AllOf/AnyOf."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import fields, replace

from devattest.errors import ConfigurationError, HardwareBackingRequired
from devattest.model import Status, TrustVector, ar4si
from devattest.policy._base import PolicyDecision, PolicyInput
from devattest.policy._document import claim_field, status_named

_log = logging.getLogger(__name__)

_ALLOW = PolicyDecision(allow=True)
_CLAIMS = tuple(f.name for f in fields(TrustVector))
#: Trust order of the tiers, most trusted last. "none" makes no claim: it beats only
#: contraindicated.
_TRUST_RANK = {Status.CONTRAINDICATED: 0, Status.NONE: 1, Status.WARNING: 2,
               Status.AFFIRMING: 3}


class DefaultPolicy:
    """Allows unless the derived trust vector has a contraindicated claim.

    Warnings are allowed (the result is then ``warning``); this is the policy the CLI and
    the service use when none is configured.
    """

    policy_id = "urn:devattest:policy:default"

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        """Deny, naming each contraindicated claim; otherwise allow."""
        tv = policy_input.trust_vector
        if tv.worst_status() is not Status.CONTRAINDICATED:
            return _ALLOW
        bad = [
            f"{name.replace('_', '-')} is contraindicated ({value})"
            for name in _CLAIMS
            if (value := getattr(tv, name)) is not None
            and Status.from_claim(value) is Status.CONTRAINDICATED
        ]
        return PolicyDecision(allow=False, reasons=tuple(bad))


class RequireHardwareBackedKey:
    """Allows only Evidence signed by a key known to live in a secure element
    (``KeyAnchor.hardware_backed``)."""

    policy_id = "urn:devattest:policy:require-hardware-backed-key"

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        """Deny when the verifying Trust Anchor is not hardware-backed."""
        if policy_input.key.hardware_backed:
            return _ALLOW
        # AR4SI hardware 97: the key's hardware is not recognised as a secure element.
        return PolicyDecision(
            allow=False, reasons=("the attestation key is not hardware-backed",),
            trust_vector=replace(policy_input.trust_vector,
                                 hardware=ar4si.UNRECOGNIZED_HARDWARE),
            code=HardwareBackingRequired.code)


class RequireReferenceValues:
    """Allows only when Reference Values were found for the device class and all matched."""

    policy_id = "urn:devattest:policy:require-reference-values"

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        """Deny unless ``reference_values_matched``."""
        if policy_input.reference_values_matched:
            return _ALLOW
        return PolicyDecision(allow=False,
                              reasons=("the Reference Values were not found or not matched",))


class AllowUnappraisedSoftware:
    """Explicitly accepts signature-only appraisal: Evidence whose software was not compared
    with any Reference Value may be appraised on its identity and signature alone.

    By default such Evidence is at most ``warning`` (``executables`` 33, reason
    ``software_not_appraised``). With this policy in the composition, and when every other
    policy allows, the appraisal is marked ``signature-only`` in the result
    (``ear_devattest.annotated-evidence.appraisal``) and ``executables`` stays "no claim":
    nothing about the software is affirmed. When software was compared, it has no effect.
    Spec: ``{"allow_unappraised_software": true}``.
    """

    policy_id = "urn:devattest:policy:allow-unappraised-software"

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        """Allow; mark the decision signature-only when no software was appraised."""
        if policy_input.software_appraised:
            return _ALLOW
        return _SIGNATURE_ONLY


_SIGNATURE_ONLY = PolicyDecision(allow=True, signature_only=True)


class RequireTrustVector:
    """Requires a minimum trustworthiness tier per AR4SI claim.

    ``RequireTrustVector({"executables": "affirming", "hardware": "affirming"})``. A claim
    meets a minimum when its tier is at least as trusted, in the order contraindicated <
    none < warning < affirming; an absent claim counts as "none".
    """

    def __init__(self, minimums: Mapping[str, str | Status]) -> None:
        """Set the minimums.

        Raises:
            ConfigurationError: no minimum, an unknown claim name or an unknown tier.
        """
        if not minimums:
            raise ConfigurationError("RequireTrustVector needs at least one claim minimum")
        parsed: dict[str, Status] = {}
        for name, tier in minimums.items():
            try:
                parsed[claim_field(name)] = status_named(tier)
            except KeyError:
                raise ConfigurationError(f"unknown trust-vector claim {name!r}") from None
            except ValueError:
                raise ConfigurationError(f"unknown trustworthiness tier {tier!r}") from None
        self._minimums = parsed
        spec = ",".join(f"{k.replace('_', '-')}>={v.value}" for k, v in sorted(parsed.items()))
        self._policy_id = f"urn:devattest:policy:require-trust-vector:{spec}"

    @property
    def policy_id(self) -> str:
        return self._policy_id

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        """Deny, naming each claim below its minimum."""
        short: list[str] = []
        for name, minimum in self._minimums.items():
            value = getattr(policy_input.trust_vector, name)
            tier = Status.NONE if value is None else Status.from_claim(value)
            if _TRUST_RANK[tier] < _TRUST_RANK[minimum]:
                shown = "absent" if value is None else f"{tier.value} ({value})"
                short.append(f"{name.replace('_', '-')} is {shown}, "
                             f"the minimum is {minimum.value}")
        if short:
            return PolicyDecision(allow=False, reasons=tuple(short))
        return _ALLOW


class UnsafeNoOp:
    """Allows everything. For tests only: it logs a warning every time it is used."""

    policy_id = "urn:devattest:policy:unsafe-no-op"

    def __init__(self) -> None:
        _log.warning("UnsafeNoOp policy constructed: every appraisal will be allowed")

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        """Allow, after logging a warning."""
        _log.warning("UnsafeNoOp policy used: appraisal allowed without any policy check")
        return _ALLOW
