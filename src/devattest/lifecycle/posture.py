"""Posture: the current verdict on a device, with the reason in words.

Derived from the latest Attestation Result (EAR status), pending attestations and the
lifecycle state, as a pure function of ``now``. Precedence, first match wins:

1. decommissioned -> unknown (no longer attested);
2. quarantined -> untrusted;
3. latest result contraindicated -> untrusted (a pending event does not wash it away);
4. a pending attestation past its deadline -> overdue;
5. no result yet, or a result with no trust claim -> unknown;
6. a pending attestation within its deadline -> warning (the last result predates a change);
7. the latest result is older than the model's maximum age -> ``rules.stale_posture``;
8. latest result warning -> warning; affirming -> trusted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from devattest.lifecycle.model import (
    DEFAULT_RULES,
    AttestationDue,
    DeviceLifecycle,
    LifecycleRules,
    LifecycleState,
    Posture,
)


@dataclass(frozen=True, slots=True)
class DevicePosture:
    """The verdict on one device at ``at``."""

    device_id: str
    posture: Posture
    reason: str
    at: datetime
    stale: bool = False
    #: Reason codes of the latest result (stable, from :mod:`devattest.errors`).
    codes: tuple[str, ...] = ()


def _ago(delta: timedelta) -> str:
    s = int(delta.total_seconds())
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}min"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def overdue_dues(device: DeviceLifecycle, *, now: datetime) -> tuple[AttestationDue, ...]:
    """The device's pending attestations whose deadline has passed at ``now``."""
    if device.state is LifecycleState.DECOMMISSIONED:
        return ()
    return tuple(d for d in device.pending if d.overdue(now=now))


def is_overdue(device: DeviceLifecycle, *, now: datetime) -> bool:
    """True when some attestation the device owes is past its deadline."""
    return bool(overdue_dues(device, now=now))


def is_stale(device: DeviceLifecycle, *, now: datetime,
             rules: LifecycleRules = DEFAULT_RULES) -> bool:
    """True when the latest result is older than the maximum age for the device's model."""
    if device.latest is None:
        return False
    return now - device.latest.at > rules.max_age_for(device.model)


def find_overdue(devices: Iterable[DeviceLifecycle], *, now: datetime) -> list[str]:
    """The ids of devices that are overdue at ``now``."""
    return [d.device_id for d in devices if is_overdue(d, now=now)]


def _reasons_text(device: DeviceLifecycle) -> str:
    if device.latest is None or not device.latest.reasons:
        return ""
    return "; ".join(msg or code for code, msg in device.latest.reasons[:3])


def assess(device: DeviceLifecycle, *, now: datetime,
           rules: LifecycleRules = DEFAULT_RULES) -> DevicePosture:
    """The posture of ``device`` at ``now``, with the reason in words.

    Raises:
        TypeError: ``now`` is naive.
    """
    if now.tzinfo is None:
        raise TypeError("now must be timezone-aware")
    latest = device.latest
    codes = tuple(c for c, _ in latest.reasons) if latest else ()
    stale = is_stale(device, now=now, rules=rules)

    def verdict(p: Posture, reason: str) -> DevicePosture:
        return DevicePosture(device.device_id, p, reason, now, stale, codes)

    if device.state is LifecycleState.DECOMMISSIONED:
        return verdict(Posture.UNKNOWN, "decommissioned: no longer attested")
    if device.state is LifecycleState.QUARANTINED:
        why = device.state_reason or _reasons_text(device) or "by an operator"
        return verdict(Posture.UNTRUSTED, f"quarantined: {why}")
    if latest is not None and latest.status == "contraindicated":
        why = _reasons_text(device) or "the Verifier contraindicated the evidence"
        return verdict(Posture.UNTRUSTED, f"last attestation failed: {why}")
    late = overdue_dues(device, now=now)
    if late:
        first = min(late, key=lambda d: d.deadline)
        more = f" (and {len(late) - 1} more)" if len(late) > 1 else ""
        return verdict(Posture.OVERDUE,
                       f"no evidence after {first.kind.value}{more}: deadline passed "
                       f"{_ago(now - first.deadline)} ago")
    if latest is None:
        if device.pending:
            nxt = min(device.pending, key=lambda d: d.deadline)
            return verdict(Posture.UNKNOWN, f"never attested; attestation due after "
                           f"{nxt.kind.value} within {_ago(nxt.deadline - now)}")
        return verdict(Posture.UNKNOWN, "never attested")
    if latest.status not in ("affirming", "warning"):
        return verdict(Posture.UNKNOWN, "the Verifier made no trust claim")
    if device.pending:
        nxt = min(device.pending, key=lambda d: d.deadline)
        return verdict(Posture.WARNING, f"attestation due after {nxt.kind.value} within "
                       f"{_ago(nxt.deadline - now)}; last result {latest.status}")
    if stale:
        age = now - latest.at
        return verdict(rules.stale_posture,
                       f"stale: last result ({latest.status}) is {_ago(age)} old, the "
                       f"maximum for model {device.model or '(none)'} is "
                       f"{_ago(rules.max_age_for(device.model))}")
    if latest.status == "warning":
        return verdict(Posture.WARNING,
                       f"attested with warnings: {_reasons_text(device) or 'see result'}")
    return verdict(Posture.TRUSTED, f"affirming result {_ago(now - latest.at)} ago")
