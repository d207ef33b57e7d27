"""Small pieces of the dashboard's request handling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from devattest.dashboard.auth import session_hash
from devattest.dashboard.routes import _safe_next
from devattest.dashboard.views import _merge_timeline

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/dashboard",
                                    "/dashboard//evil.example", "/dashboard\\..\\x", "/v1/tokens",
                                    "", None])
def test_rejects_open_redirect_after_login(target: str | None) -> None:
    assert _safe_next(target) == "/dashboard/"


def test_keeps_a_dashboard_path_after_login() -> None:
    assert _safe_next("/dashboard/devices/dev-1?x=1") == "/dashboard/devices/dev-1?x=1"


def test_session_ids_are_stored_hashed() -> None:
    sid = "abc"
    assert session_hash(sid) != sid and len(session_hash(sid)) == 64


def _event(i: int, minutes: int) -> SimpleNamespace:
    return SimpleNamespace(id=i, at=T0 + timedelta(minutes=minutes), kind="firmware_update",
                           details={"firmware_version": "1.1", "client_event_id": "x"},
                           deadline=None, satisfied_at=None, source="device")


def _result(i: int, minutes: int) -> SimpleNamespace:
    return SimpleNamespace(id=i, created_at=T0 + timedelta(minutes=minutes), outcome="appraised",
                           status="affirming", reasons=[])


def test_timeline_pages_walk_both_streams_without_gaps_or_repeats() -> None:
    events = [_event(i, 2 * i) for i in range(1, 8)]
    results = [_result(i, 2 * i + 1) for i in range(1, 8)]
    seen: list[str] = []
    ev_before: int | None = None
    att_before: int | None = None
    for _ in range(10):
        ev = [e for e in reversed(events) if ev_before is None or e.id < ev_before][:4] \
            if ev_before != 0 else []
        at = [r for r in reversed(results) if att_before is None or r.id < att_before][:4] \
            if att_before != 0 else []
        page, cursor = _merge_timeline(ev, at, limit=4, ev_before=ev_before,
                                       att_before=att_before)
        seen += [f"{t.kind}@{t.at.minute}" for t in page]
        if cursor is None:
            break
        ev_before, att_before = cursor
    assert len(seen) == 14 and len(set(seen)) == 14
    minutes = [int(s.split("@")[1]) for s in seen]
    assert minutes == sorted(minutes, reverse=True)
    assert "firmware_version 1.1" in _merge_timeline([_event(1, 0)], [], limit=4,
                                                     ev_before=None, att_before=None)[0][0].detail
