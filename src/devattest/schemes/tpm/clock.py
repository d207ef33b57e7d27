"""TPM clock monotonicity: the stateful part of quote appraisal, as a pure function.

The appraisal core keeps no state, so the service persists a :class:`ClockState` per TPM
(keyed by AK name) and calls :func:`check_clock_monotonic` with the previous state and the
state of the quote just appraised (TPM 2.0 Part 1 section 36, Part 2 section 10.11.1):

* ``resetCount`` counts TPM Resets (reboots, TPM2_Startup(CLEAR)); ``restartCount`` counts
  TPM Restarts and Resumes since the last Reset. Neither may go backwards for one TPM: if
  one does, the TPM state was rolled back (TPM2_Clear, a restored swtpm state file, another
  TPM holding a copy of the AK) - **contraindicated** (``tpm_clock_regression``).
* A higher ``resetCount`` is a **reboot**; it is reported, not rejected.
* Within one reset/restart cycle ``clock`` only grows. A quote whose clock does not advance
  past the last one seen is a **replay** (``quote_replayed``).
* ``safe = NO`` means a larger clock value may already have been reported (an unorderly
  shutdown); across a reboot the clock may then legitimately appear to go backwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devattest.errors import QuoteReplayed, TpmClockRegression
from devattest.model import Claims, Finding, ar4si


@dataclass(frozen=True, slots=True)
class ClockState:
    """What the Verifier remembers about one TPM's clock (from TPMS_CLOCK_INFO)."""

    clock: int
    reset_count: int
    restart_count: int
    safe: bool = True

    @classmethod
    def from_claims(cls, claims: Claims | Mapping[str | int, Any]) -> ClockState:
        """The state carried in a ``tpm`` scheme's ``Claims.raw``.

        Raises:
            KeyError: the claims are not from the ``tpm`` scheme.
        """
        raw = claims.raw if isinstance(claims, Claims) else claims
        return cls(clock=int(raw["clock"]), reset_count=int(raw["resetCount"]),
                   restart_count=int(raw["restartCount"]), safe=bool(raw["safe"]))


@dataclass(frozen=True, slots=True)
class ClockCheck:
    """The outcome of :func:`check_clock_monotonic`."""

    #: AR4SI findings (contraindicated on regression or replay); empty when fine.
    findings: tuple[Finding, ...]
    #: Human notices (reboot or resume detected, first sighting).
    annotations: tuple[str, ...]
    #: The TPM was reset (rebooted) since the previous quote.
    rebooted: bool
    #: The state to persist (the current one, unless the check failed).
    state: ClockState

    @property
    def ok(self) -> bool:
        return not self.findings

    def raise_for_findings(self) -> None:
        """Raise the typed error for the first finding (for callers that gate).

        Raises:
            TpmClockRegression: a counter went backwards.
            QuoteReplayed: the clock did not advance.
        """
        for f in self.findings:
            if f.code == TpmClockRegression.code:
                raise TpmClockRegression(f.message, step="5.6")
            if f.code == QuoteReplayed.code:
                raise QuoteReplayed(f.message, step="5.6")


def _forward(previous: int, current: int) -> int:
    """``current - previous`` for u32 counters that may be obfuscated (TPM 2.0 Part 1
    section 36.7: for keys outside the endorsement and platform hierarchies the TPM adds a
    per-key constant to resetCount and restartCount, modulo 2**32). Negative = backwards."""
    delta = (current - previous) % (1 << 32)
    return delta if delta < (1 << 31) else delta - (1 << 32)


def check_clock_monotonic(previous: ClockState | None, current: ClockState) -> ClockCheck:
    """Compare a quote's clock with the last one seen from the same TPM.

    Args:
        previous: the persisted state, or None for the first quote from this TPM.
        current: the state of the quote being appraised (``ClockState.from_claims``).

    Returns:
        Findings, annotations and the state to persist. Never raises for bad values; use
        :meth:`ClockCheck.raise_for_findings` to gate.
    """
    if previous is None:
        return ClockCheck((), ("first quote seen from this TPM",), False, current)
    p, c = previous, current
    d_reset = _forward(p.reset_count, c.reset_count)
    d_restart = _forward(p.restart_count, c.restart_count)
    if d_reset < 0 or (d_reset == 0 and d_restart < 0):
        msg = (f"TPM resetCount/restartCount went backwards "
               f"({p.reset_count}/{p.restart_count} -> {c.reset_count}/{c.restart_count}): "
               "TPM state rolled back or a different TPM")
        return ClockCheck(
            (Finding("hardware", ar4si.CONTRAINDICATED_HARDWARE, TpmClockRegression.code, msg),),
            (), False, previous)
    if d_reset > 0:
        notes = [f"reboot detected (resetCount {p.reset_count} -> {c.reset_count})"]
        if c.safe and c.clock <= p.clock:
            msg = (f"TPM clock went backwards across a reboot ({p.clock} -> {c.clock}) "
                   "although clockInfo.safe is YES")
            return ClockCheck(
                (Finding("hardware", ar4si.CONTRAINDICATED_HARDWARE,
                         TpmClockRegression.code, msg),), tuple(notes), True, previous)
        return ClockCheck((), tuple(notes), True, current)
    if d_restart > 0:
        return ClockCheck((), (f"TPM restart or resume detected (restartCount "
                               f"{p.restart_count} -> {c.restart_count})",), False, current)
    if c.clock <= p.clock:
        msg = (f"TPM clock did not advance ({p.clock} -> {c.clock}) within one boot: "
               "the quote is a replay")
        return ClockCheck(
            (Finding("instance_identity", ar4si.CRYPTO_VALIDATION_FAILED, QuoteReplayed.code,
                     msg),), (), False, previous)
    return ClockCheck((), (), False, current)


__all__ = ["ClockCheck", "ClockState", "check_clock_monotonic"]
