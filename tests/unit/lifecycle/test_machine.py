"""The lifecycle state machine: events make attestation due; states gate what is accepted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devattest.errors import LifecycleTransitionRefused, MalformedLifecycleEvent
from devattest.lifecycle import (
    MAX_PENDING,
    DeviceLifecycle,
    EventKind,
    LifecycleEvent,
    LifecycleRules,
    LifecycleState,
    OperatorAction,
    ResultSummary,
    apply_action,
    apply_event,
    parse_event,
    record_result,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _dev(state: LifecycleState = LifecycleState.ONBOARDED) -> DeviceLifecycle:
    return DeviceLifecycle("d1", model="cam", owner="acme", firmware_version="1.0", state=state)


def _ev(kind: EventKind, at: datetime = T0, eid: str = "e1", **details: object
        ) -> LifecycleEvent:
    return LifecycleEvent(eid, "d1", kind, at, details)


@pytest.mark.parametrize("kind", [k for k in EventKind if k is not EventKind.DECOMMISSION])
def test_every_event_makes_attestation_due_with_its_deadline(kind: EventKind) -> None:
    rules = LifecycleRules(deadlines={kind: timedelta(seconds=42)})
    d = apply_event(_dev(), _ev(kind), rules=rules)
    assert len(d.pending) == 1
    assert d.pending[0].kind is kind
    assert d.pending[0].deadline == T0 + timedelta(seconds=42)


def test_firmware_update_and_rollback_record_the_version() -> None:
    d = apply_event(_dev(), _ev(EventKind.FIRMWARE_UPDATE, firmware_version="2.0"))
    assert d.firmware_version == "2.0"
    d = apply_event(d, _ev(EventKind.FIRMWARE_ROLLBACK, eid="e2", firmware_version="1.0"))
    assert d.firmware_version == "1.0"
    assert [p.event_id for p in d.pending] == ["e1", "e2"]


def test_ownership_transfer_changes_owner_and_onboards() -> None:
    d = apply_event(_dev(LifecycleState.PROVISIONED),
                    _ev(EventKind.OWNERSHIP_TRANSFER, owner="globex"))
    assert d.owner == "globex"
    assert d.state is LifecycleState.ONBOARDED


def test_reprovision_returns_an_onboarded_device_to_provisioned() -> None:
    d = apply_event(_dev(), _ev(EventKind.REPROVISION))
    assert d.state is LifecycleState.PROVISIONED
    assert d.pending


def test_decommission_is_terminal_and_clears_pending() -> None:
    d = apply_event(_dev(), _ev(EventKind.BOOT))
    d = apply_event(d, _ev(EventKind.DECOMMISSION, eid="e2"))
    assert d.state is LifecycleState.DECOMMISSIONED
    assert d.pending == ()
    with pytest.raises(LifecycleTransitionRefused):
        apply_event(d, _ev(EventKind.BOOT, eid="e3"))
    with pytest.raises(LifecycleTransitionRefused):
        apply_event(d, _ev(EventKind.DECOMMISSION, eid="e4"))


def test_rejects_events_from_a_device_never_provisioned() -> None:
    with pytest.raises(LifecycleTransitionRefused):
        apply_event(_dev(LifecycleState.MANUFACTURED), _ev(EventKind.BOOT))
    d = apply_action(_dev(LifecycleState.MANUFACTURED), OperatorAction.PROVISION)
    assert apply_event(d, _ev(EventKind.BOOT)).pending


def test_quarantined_device_still_owes_attestation_and_stays_quarantined() -> None:
    d = apply_action(_dev(), OperatorAction.QUARANTINE, reason="tampered firmware")
    d = apply_event(d, _ev(EventKind.FIRMWARE_UPDATE, firmware_version="1.1"))
    assert d.state is LifecycleState.QUARANTINED
    assert d.state_reason == "tampered firmware"
    assert d.pending
    released = apply_action(d, OperatorAction.RELEASE)
    assert released.state is LifecycleState.ONBOARDED


def test_refuses_actions_out_of_order() -> None:
    with pytest.raises(LifecycleTransitionRefused):
        apply_action(_dev(), OperatorAction.RELEASE)
    with pytest.raises(LifecycleTransitionRefused):
        apply_action(_dev(LifecycleState.MANUFACTURED), OperatorAction.ONBOARD)
    dead = apply_event(_dev(), _ev(EventKind.DECOMMISSION))
    with pytest.raises(LifecycleTransitionRefused):
        apply_action(dead, OperatorAction.QUARANTINE)


def test_event_for_another_device_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        apply_event(_dev(), LifecycleEvent("e", "other", EventKind.BOOT, T0))


def test_result_answers_only_events_raised_before_the_challenge() -> None:
    d = apply_event(_dev(), _ev(EventKind.FIRMWARE_UPDATE, T0, "e1", firmware_version="2"))
    d = apply_event(d, _ev(EventKind.CONFIG_CHANGE, T0 + timedelta(seconds=10), "e2"))
    r = ResultSummary("affirming", at=T0 + timedelta(seconds=20),
                      requested_at=T0 + timedelta(seconds=5))
    d = record_result(d, r)
    assert [p.event_id for p in d.pending] == ["e2"]
    assert d.latest == r


def test_an_older_result_does_not_replace_a_newer_one() -> None:
    new = ResultSummary("contraindicated", at=T0 + timedelta(seconds=30), requested_at=T0)
    old = ResultSummary("affirming", at=T0 + timedelta(seconds=10), requested_at=T0)
    d = record_result(record_result(_dev(), new), old)
    assert d.latest == new


def test_event_flood_cannot_grow_pending_without_bound() -> None:
    d = _dev()
    for i in range(MAX_PENDING * 3):
        d = apply_event(d, _ev(EventKind.BOOT, T0 + timedelta(seconds=i), f"e{i}"))
    assert len(d.pending) == MAX_PENDING
    assert d.pending[0].event_id == "e0"  # the oldest due (which decides overdue) is kept
    assert d.pending[-1].event_id == f"e{MAX_PENDING * 3 - 1}"


def test_parse_event_takes_the_receive_time_not_the_devices_clock() -> None:
    ev = parse_event({"kind": "firmware_update", "at": "1970-01-01",
                      "details": {"firmware_version": "3.1"}},
                     device_id="d1", event_id="x", received_at=T0)
    assert ev.kind is EventKind.FIRMWARE_UPDATE
    assert ev.at == T0
    assert ev.details == {"firmware_version": "3.1"}


@pytest.mark.parametrize("message", [
    {"kind": "reboot-into-dfu"},
    {},
    {"kind": "boot", "details": []},
    {"kind": "boot", "details": {"x": {"nested": 1}}},
    {"kind": "boot", "details": {"x": "y" * 1000}},
    {"kind": "boot", "details": {str(i): i for i in range(100)}},
])
def test_rejects_malformed_event_messages(message: dict[str, object]) -> None:
    with pytest.raises(MalformedLifecycleEvent):
        parse_event(message, device_id="d1", event_id="x", received_at=T0)


def test_rejects_naive_event_times() -> None:
    with pytest.raises(TypeError):
        LifecycleEvent("e", "d1", EventKind.BOOT, datetime(2026, 1, 1))
