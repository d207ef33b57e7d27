"""Lifecycle vocabulary: device states, lifecycle events, pending attestations, results.

Frozen dataclasses only. Times are timezone-aware :class:`datetime.datetime` values passed in
by the caller; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class LifecycleState(StrEnum):
    """Where a device is in its life (independent of its latest attestation)."""

    MANUFACTURED = "manufactured"
    PROVISIONED = "provisioned"
    ONBOARDED = "onboarded"
    QUARANTINED = "quarantined"
    DECOMMISSIONED = "decommissioned"


class EventKind(StrEnum):
    """Lifecycle events a device (or its operator) reports. Each one makes attestation due,
    except ``decommission``, after which the device is never attested again."""

    BOOT = "boot"
    FIRMWARE_UPDATE = "firmware_update"
    REPROVISION = "reprovision"
    FIRMWARE_ROLLBACK = "firmware_rollback"
    OWNERSHIP_TRANSFER = "ownership_transfer"
    CONFIG_CHANGE = "config_change"
    DECOMMISSION = "decommission"


class OperatorAction(StrEnum):
    """State changes an operator (or a Relying Party's quarantine hook) makes; unlike
    events, they do not by themselves make attestation due."""

    PROVISION = "provision"
    ONBOARD = "onboard"
    QUARANTINE = "quarantine"
    RELEASE = "release"


class Posture(StrEnum):
    """The current verdict on one device."""

    TRUSTED = "trusted"
    WARNING = "warning"
    UNTRUSTED = "untrusted"
    OVERDUE = "overdue"
    UNKNOWN = "unknown"


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One reported lifecycle event.

    ``details`` carries the event's facts: ``firmware_version`` for an update or rollback,
    ``owner`` for an ownership transfer, free-form keys otherwise.
    """

    event_id: str
    device_id: str
    kind: EventKind
    at: datetime
    details: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise TypeError("event times must be timezone-aware")


@dataclass(frozen=True, slots=True)
class AttestationDue:
    """Attestation owed because of one event: fresh Evidence is wanted by ``deadline``."""

    event_id: str
    kind: EventKind
    raised_at: datetime
    deadline: datetime

    def overdue(self, *, now: datetime) -> bool:
        """True when the deadline has passed without a result."""
        return now > self.deadline


@dataclass(frozen=True, slots=True)
class ResultSummary:
    """What lifecycle tracking keeps of an Attestation Result (EAR).

    ``requested_at`` is when the challenge was issued: the result answers every event
    raised at or before it. ``status`` is the EAR status string (``affirming``,
    ``warning``, ``contraindicated``, ``none``).
    """

    status: str
    at: datetime
    requested_at: datetime
    reasons: tuple[tuple[str, str], ...] = ()
    challenge_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceLifecycle:
    """The lifecycle record of one device: inventory facts, state, pending attestations and
    the latest result."""

    device_id: str
    model: str = ""
    owner: str = ""
    firmware_version: str = ""
    state: LifecycleState = LifecycleState.PROVISIONED
    pending: tuple[AttestationDue, ...] = ()
    latest: ResultSummary | None = None
    #: Why the device was quarantined, if it is.
    state_reason: str = ""


@dataclass(frozen=True, slots=True)
class LifecycleRules:
    """Deadlines and result ages. One config object, passed in.

    Attributes:
        deadlines: seconds allowed per event kind before the device is overdue.
        default_deadline: for kinds not in ``deadlines``.
        max_result_age: per model, the age after which a result is stale.
        default_max_result_age: for models not in ``max_result_age``.
        stale_posture: what a stale result means for trust. Policy decides; by default a
            stale but otherwise affirming result is a warning.
    """

    deadlines: Mapping[EventKind, timedelta] = field(default_factory=dict)
    default_deadline: timedelta = timedelta(minutes=5)
    max_result_age: Mapping[str, timedelta] = field(default_factory=dict)
    default_max_result_age: timedelta = timedelta(hours=24)
    stale_posture: Posture = Posture.WARNING

    def deadline_for(self, kind: EventKind) -> timedelta:
        """The time allowed to attest after an event of ``kind``."""
        return self.deadlines.get(kind, self.default_deadline)

    def max_age_for(self, model: str) -> timedelta:
        """The maximum result age for devices of ``model``."""
        return self.max_result_age.get(model, self.default_max_result_age)


DEFAULT_RULES = LifecycleRules()
