"""Appraisal Policies about TPM quote Evidence."""

from __future__ import annotations

from dataclasses import replace

from devattest.model import ar4si
from devattest.policy._base import PolicyDecision, PolicyInput

#: The finding the ``tpm`` scheme adds for a TCG 1.2 SHA-1 event log
#: (``devattest.schemes.tpm.scheme.SHA1_EVENT_LOG_FINDING``; a test keeps them equal).
SHA1_EVENT_LOG_FINDING = "tpm_sha1_event_log"

_ALLOW = PolicyDecision(allow=True)


class AcceptSha1EventLogs:
    """Accepts TCG 1.2 SHA-1 event logs explicitly.

    The ``tpm`` scheme sets ``executables`` to a warning (AR4SI 32) for Evidence whose event
    log is in the SHA-1 format, because SHA-1 is broken for collisions. This policy undoes
    exactly that warning, and nothing else: when the SHA-1 finding is the only finding on
    ``executables`` and the vector still holds its value, ``executables`` becomes what the
    Reference Values gave (approved when they matched, no claim otherwise). The finding stays
    among the result's reasons, and this policy's id among its policy ids, so the EAR says
    that SHA-1 was accepted. Put it first in an ``AllOf`` so that later policies see the
    adjusted vector.
    """

    policy_id = "urn:devattest:policy:accept-sha1-event-logs"

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        """Allow; restore ``executables`` when the SHA-1 warning is all that lowered it."""
        findings = policy_input.claims.findings
        if not any(f.code == SHA1_EVENT_LOG_FINDING for f in findings):
            return _ALLOW
        tv = policy_input.trust_vector
        others = [f for f in findings
                  if f.claim == "executables" and f.code != SHA1_EVENT_LOG_FINDING]
        if others or tv.executables != ar4si.UNSAFE_RUNTIME:
            return _ALLOW  # something else lowered executables: nothing to undo
        restored = ar4si.APPROVED_RUNTIME if policy_input.reference_values_matched else None
        return PolicyDecision(allow=True, reasons=(
            "the Appraisal Policy accepts TCG 1.2 SHA-1 event logs",),
            trust_vector=replace(tv, executables=restored))
