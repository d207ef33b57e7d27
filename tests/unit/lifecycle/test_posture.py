"""Posture per device and fleet aggregates, as pure functions of ``now``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from devattest.lifecycle import (
    DeviceLifecycle,
    Dimension,
    EventKind,
    LifecycleEvent,
    LifecycleRules,
    LifecycleState,
    OperatorAction,
    Posture,
    ResultSummary,
    aggregate,
    apply_action,
    apply_event,
    assess,
    find_overdue,
    is_stale,
    record_result,
    totals,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
RULES = LifecycleRules(default_deadline=60 * S, max_result_age={"cam": 3600 * S},
                       default_max_result_age=86400 * S)


def _dev(**kw: object) -> DeviceLifecycle:
    base = DeviceLifecycle("d1", model="cam", owner="acme", firmware_version="1.0",
                           state=LifecycleState.ONBOARDED)
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def _result(status: str, at: datetime = T0, reasons: tuple[tuple[str, str], ...] = ()
            ) -> ResultSummary:
    return ResultSummary(status, at=at, requested_at=at - S, reasons=reasons)


def _updated(d: DeviceLifecycle, at: datetime = T0) -> DeviceLifecycle:
    return apply_event(d, LifecycleEvent("e1", d.device_id, EventKind.FIRMWARE_UPDATE, at,
                                         {"firmware_version": "2.0"}), rules=RULES)


def test_never_attested_device_is_unknown() -> None:
    p = assess(_dev(), now=T0, rules=RULES)
    assert p.posture is Posture.UNKNOWN
    assert p.reason == "never attested"


def test_affirming_result_is_trusted() -> None:
    p = assess(record_result(_dev(), _result("affirming")), now=T0 + 10 * S, rules=RULES)
    assert p.posture is Posture.TRUSTED
    assert "affirming" in p.reason


def test_contraindicated_result_is_untrusted_with_its_reasons_in_words() -> None:
    d = record_result(_dev(), _result(
        "contraindicated", reasons=(("rollback_detected", "security version 1 < minimum 3"),)))
    p = assess(d, now=T0, rules=RULES)
    assert p.posture is Posture.UNTRUSTED
    assert "security version 1 < minimum 3" in p.reason
    assert p.codes == ("rollback_detected",)


def test_pending_event_within_deadline_is_a_warning() -> None:
    d = _updated(record_result(_dev(), _result("affirming", T0 - 100 * S)))
    p = assess(d, now=T0 + 30 * S, rules=RULES)
    assert p.posture is Posture.WARNING
    assert "firmware_update" in p.reason


def test_device_that_misses_its_deadline_becomes_overdue() -> None:
    d = _updated(record_result(_dev(), _result("affirming", T0 - 100 * S)))
    assert assess(d, now=T0 + 60 * S, rules=RULES).posture is Posture.WARNING  # at deadline
    p = assess(d, now=T0 + 61 * S, rules=RULES)
    assert p.posture is Posture.OVERDUE
    assert "deadline passed 1s ago" in p.reason
    assert find_overdue([d, _dev()], now=T0 + 61 * S) == ["d1"]


def test_a_result_after_the_event_clears_overdue() -> None:
    d = _updated(_dev())
    d = record_result(d, ResultSummary("affirming", at=T0 + 90 * S, requested_at=T0 + 80 * S))
    assert assess(d, now=T0 + 100 * S, rules=RULES).posture is Posture.TRUSTED


def test_a_pending_event_does_not_wash_away_a_failed_attestation() -> None:
    d = _updated(record_result(_dev(), _result("contraindicated")), at=T0 + S)
    assert assess(d, now=T0 + 1000 * S, rules=RULES).posture is Posture.UNTRUSTED


def test_stale_result_uses_the_models_max_age_and_the_policys_verdict() -> None:
    d = record_result(_dev(), _result("affirming"))
    assert not is_stale(d, now=T0 + 3600 * S, rules=RULES)
    assert is_stale(d, now=T0 + 3601 * S, rules=RULES)
    p = assess(d, now=T0 + 3601 * S, rules=RULES)
    assert p.posture is Posture.WARNING and p.stale
    assert "stale" in p.reason and "cam" in p.reason
    strict = dataclasses.replace(RULES, stale_posture=Posture.UNTRUSTED)
    assert assess(d, now=T0 + 3601 * S, rules=strict).posture is Posture.UNTRUSTED
    other = dataclasses.replace(d, model="gateway")  # default max age: 1 day
    assert assess(other, now=T0 + 3601 * S, rules=RULES).posture is Posture.TRUSTED


def test_quarantined_device_is_untrusted_even_with_a_good_result() -> None:
    d = record_result(_dev(), _result("affirming"))
    d = apply_action(d, OperatorAction.QUARANTINE, reason="cloned key suspected")
    p = assess(d, now=T0, rules=RULES)
    assert p.posture is Posture.UNTRUSTED
    assert "cloned key suspected" in p.reason


def test_decommissioned_device_is_never_overdue() -> None:
    d = _updated(_dev())
    d = apply_event(d, LifecycleEvent("e2", "d1", EventKind.DECOMMISSION, T0))
    assert assess(d, now=T0 + 10_000 * S, rules=RULES).posture is Posture.UNKNOWN
    assert find_overdue([d], now=T0 + 10_000 * S) == []


def test_warning_result_is_a_warning() -> None:
    d = record_result(_dev(), _result("warning", reasons=(("x", "debug port open"),)))
    p = assess(d, now=T0, rules=RULES)
    assert p.posture is Posture.WARNING and "debug port open" in p.reason


def test_rejects_naive_now() -> None:
    with pytest.raises(TypeError):
        assess(_dev(), now=datetime(2026, 1, 1), rules=RULES)


def test_fleet_aggregates_by_each_dimension() -> None:
    fleet = [
        record_result(_dev(device_id="a", model="cam", firmware_version="1.0"),
                      _result("affirming")),
        record_result(_dev(device_id="b", model="cam", firmware_version="2.0", owner="globex"),
                      _result("contraindicated")),
        _dev(device_id="c", model="gw", firmware_version="2.0"),
    ]
    pairs = [(d, assess(d, now=T0, rules=RULES)) for d in fleet]
    by_model = {g.key: g for g in aggregate(pairs, by=Dimension.MODEL)}
    assert by_model["cam"].total == 2
    assert by_model["cam"].count(Posture.TRUSTED) == 1
    assert by_model["cam"].count(Posture.UNTRUSTED) == 1
    assert by_model["gw"].count(Posture.UNKNOWN) == 1
    by_fw = {g.key: g.total for g in aggregate(pairs, by=Dimension.FIRMWARE_VERSION)}
    assert by_fw == {"1.0": 1, "2.0": 2}
    by_owner = {g.key: g.total for g in aggregate(pairs, by=Dimension.OWNER)}
    assert by_owner == {"acme": 2, "globex": 1}
    by_status = {g.key: g.total for g in aggregate(pairs, by=Dimension.STATUS)}
    assert by_status == {"trusted": 1, "untrusted": 1, "unknown": 1}
    t = totals(p for _, p in pairs)
    assert t[Posture.OVERDUE] == 0 and sum(t.values()) == 3
    with pytest.raises(ValueError):
        aggregate([(fleet[0], pairs[1][1])], by=Dimension.MODEL)
