"""The device lifecycle state machine: events and operator actions in, a new record out.

Pure functions over :class:`~devattest.lifecycle.model.DeviceLifecycle`; they never mutate,
read no clock and do no I/O.

Transitions (events make attestation due, actions do not)::

    manufactured --provision--> provisioned --onboard / ownership_transfer--> onboarded
    provisioned|onboarded --quarantine--> quarantined --release--> onboarded|provisioned
    onboarded --reprovision--> provisioned
    any but decommissioned --decommission--> decommissioned (terminal)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from devattest.errors import LifecycleTransitionRefused, MalformedLifecycleEvent
from devattest.lifecycle.model import (
    DEFAULT_RULES,
    AttestationDue,
    DeviceLifecycle,
    EventKind,
    LifecycleEvent,
    LifecycleRules,
    LifecycleState,
    OperatorAction,
    ResultSummary,
)
from devattest.model.text import has_control_characters

#: At most this many pending attestations are kept per device; a device that floods events
#: cannot grow its record without bound (the oldest due, which decides "overdue", is kept).
MAX_PENDING = 16
#: Longest accepted free-form string in an event (firmware version, owner, detail values).
MAX_FIELD_LEN = 200
MAX_DETAILS = 16

_S = LifecycleState
_ACCEPTS_EVENTS = frozenset({_S.PROVISIONED, _S.ONBOARDED, _S.QUARANTINED})


def apply_event(device: DeviceLifecycle, event: LifecycleEvent, *,
                rules: LifecycleRules = DEFAULT_RULES) -> DeviceLifecycle:
    """The record after ``event``: new facts, new state, and attestation due.

    Args:
        device: the record before the event.
        event: the event (for ``device.device_id``).
        rules: deadlines per event kind.

    Returns:
        The new record. Every event except ``decommission`` appends an
        :class:`AttestationDue` whose deadline is ``event.at + rules.deadline_for(kind)``.

    Raises:
        LifecycleTransitionRefused: the device is decommissioned or not yet provisioned
            (only ``decommission`` is accepted from ``manufactured``).
        ValueError: the event is for another device (a programming error).
    """
    if event.device_id != device.device_id:
        raise ValueError("event for another device")
    if event.kind is EventKind.DECOMMISSION:
        if device.state is _S.DECOMMISSIONED:
            raise LifecycleTransitionRefused(f"{device.device_id} is already decommissioned")
        return dataclasses.replace(device, state=_S.DECOMMISSIONED, pending=(),
                                   state_reason=str(event.details.get("reason", "")))
    if device.state not in _ACCEPTS_EVENTS:
        raise LifecycleTransitionRefused(
            f"{device.device_id} is {device.state.value}: {event.kind.value} not accepted")

    changes: dict[str, Any] = {}
    fw = event.details.get("firmware_version")
    if event.kind in (EventKind.FIRMWARE_UPDATE, EventKind.FIRMWARE_ROLLBACK) and fw:
        changes["firmware_version"] = str(fw)
    if event.kind is EventKind.OWNERSHIP_TRANSFER:
        owner = event.details.get("owner")
        if owner:
            changes["owner"] = str(owner)
        if device.state is _S.PROVISIONED:
            changes["state"] = _S.ONBOARDED
    if event.kind is EventKind.REPROVISION and device.state is _S.ONBOARDED:
        changes["state"] = _S.PROVISIONED

    due = AttestationDue(event_id=event.event_id, kind=event.kind, raised_at=event.at,
                         deadline=event.at + rules.deadline_for(event.kind))
    pending = (*device.pending, due)
    if len(pending) > MAX_PENDING:
        pending = (*pending[:MAX_PENDING - 1], due)
    return dataclasses.replace(device, pending=pending, **changes)


def apply_action(device: DeviceLifecycle, action: OperatorAction, *, reason: str = "",
                 owner: str | None = None) -> DeviceLifecycle:
    """The record after an operator action (no attestation becomes due).

    Raises:
        LifecycleTransitionRefused: the action is not allowed in the current state.
    """
    state = device.state
    if action is OperatorAction.PROVISION and state in (_S.MANUFACTURED, _S.PROVISIONED):
        return dataclasses.replace(device, state=_S.PROVISIONED)
    if action is OperatorAction.ONBOARD and state in (_S.PROVISIONED, _S.ONBOARDED):
        return dataclasses.replace(device, state=_S.ONBOARDED,
                                   owner=owner if owner is not None else device.owner)
    if action is OperatorAction.QUARANTINE and state in _ACCEPTS_EVENTS:
        return dataclasses.replace(device, state=_S.QUARANTINED,
                                   state_reason=reason or device.state_reason)
    if action is OperatorAction.RELEASE and state is _S.QUARANTINED:
        return dataclasses.replace(device, state=_S.ONBOARDED if device.owner
                                   else _S.PROVISIONED, state_reason="")
    raise LifecycleTransitionRefused(
        f"{device.device_id} is {state.value}: cannot {action.value}")


def record_result(device: DeviceLifecycle, result: ResultSummary) -> DeviceLifecycle:
    """The record after an Attestation Result.

    The result answers every pending attestation raised at or before the challenge was
    issued (``result.requested_at``); events raised later stay pending. A result older than
    the one already held does not replace it.
    """
    pending = tuple(d for d in device.pending if d.raised_at > result.requested_at)
    latest = device.latest
    if latest is None or result.at >= latest.at:
        latest = result
    return dataclasses.replace(device, pending=pending, latest=latest)


def parse_event(message: Mapping[str, Any], *, device_id: str, event_id: str,
                received_at: datetime) -> LifecycleEvent:
    """A :class:`LifecycleEvent` from an untrusted message (MQTT or HTTP JSON).

    The message is ``{"kind": "...", "details": {...}}``; the device's own clock is not
    trusted, so the event time is ``received_at``.

    Raises:
        MalformedLifecycleEvent: unknown kind, or details that are not a small map of
            short scalar values.
    """
    if not isinstance(message, Mapping):
        raise MalformedLifecycleEvent("an event must be a JSON object")
    kind_raw = message.get("kind")
    try:
        kind = EventKind(str(kind_raw))
    except ValueError:
        raise MalformedLifecycleEvent(f"unknown event kind {kind_raw!r}") from None
    details = message.get("details", {})
    if not isinstance(details, Mapping) or len(details) > MAX_DETAILS:
        raise MalformedLifecycleEvent(f"details must be an object of at most {MAX_DETAILS} keys")
    clean: dict[str, Any] = {}
    for k, v in details.items():
        if not isinstance(k, str) or len(k) > 64 or has_control_characters(k):
            raise MalformedLifecycleEvent("detail keys must be short strings without "
                                          "control characters")
        if isinstance(v, str):
            if len(v) > MAX_FIELD_LEN:
                raise MalformedLifecycleEvent(f"detail {k!r} is too long")
            if has_control_characters(v):
                raise MalformedLifecycleEvent(f"detail {k!r} holds a control character")
        elif not isinstance(v, (int, float, bool)) and v is not None:
            raise MalformedLifecycleEvent(f"detail {k!r} must be a scalar")
        clean[k] = v
    return LifecycleEvent(event_id=event_id, device_id=device_id, kind=kind, at=received_at,
                          details=clean)
