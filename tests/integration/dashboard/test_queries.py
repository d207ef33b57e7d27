"""The dashboard's queries on SQLite and PostgreSQL: aggregates, keyset pages, buckets,
posture samples and sessions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devattest.store import (
    AttestationRepository,
    DashboardRepository,
    DeviceRepository,
    LifecycleRepository,
    Store,
    TokenRepository,
    open_store,
)

pytestmark = pytest.mark.integration
NOW = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
POSTURE = ["trusted", "warning", "untrusted", "overdue", "unknown"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'd.db'}"
    else:
        make: Callable[[], str] = request.getfixturevalue("make_postgres_database")
        url = make()
    s = open_store(url)
    try:
        yield s
    finally:
        s.dispose()


def _fleet(store: Store, n: int = 60) -> dict[str, str]:
    """n devices: every 6th has no lifecycle record (its posture follows its status)."""
    expected: dict[str, str] = {}
    with store.write() as s:
        devices, lc = DeviceRepository(s), LifecycleRepository(s)
        for i in range(n):
            did = f"d{i:03d}"
            d = devices.create(device_id=did, now=NOW, model=f"m{i % 3}", owner=f"o{i % 2}")
            posture = POSTURE[i % 5]
            if i % 6 == 0:
                d.status = {"trusted": "affirming", "warning": "warning",
                            "untrusted": "contraindicated"}.get(posture, "none")
                expected[did] = posture if posture != "overdue" else "unknown"
                continue
            rec = lc.create(device_id=did, state="onboarded", now=NOW,
                            firmware_version=f"1.{i % 4}")
            rec.posture = posture
            rec.posture_reason = f"because {posture}"
            expected[did] = posture
    return expected


def test_posture_totals_and_breakdowns_count_devices_with_and_without_a_record(
        store: Store) -> None:
    expected = _fleet(store)
    with store.read() as s:
        repo = DashboardRepository(s)
        totals = repo.posture_counts()
        b_totals, by = repo.breakdown()
        fw = repo.counts_by_firmware()
        attention = repo.attention_counts()
    want = {p: sum(1 for v in expected.values() if v == p) for p in POSTURE}
    assert totals == want == b_totals
    assert sum(sum(g.values()) for g in by["model"].values()) == 60
    assert by["model"]["m0"] == {p: sum(1 for d, v in expected.items()
                                        if v == p and int(d[1:]) % 3 == 0)
                                 for p in POSTURE if any(v == p and int(d[1:]) % 3 == 0
                                                         for d, v in expected.items())}
    assert sum(sum(g.values()) for g in fw.values()) == 50
    assert attention == {p: want[p] for p in ("untrusted", "overdue", "warning")}


@pytest.mark.parametrize("posture", ["untrusted", "warning", "unknown"])
def test_keyset_pages_of_a_posture_list_every_device_once_in_order(
        store: Store, posture: str) -> None:
    expected = _fleet(store)
    want = sorted(d for d, p in expected.items() if p == posture)
    got: list[str] = []
    after = None
    while True:
        with store.read() as s:
            page = DashboardRepository(s).devices_with_posture([posture], after=after, limit=3)
        got += [r.device_id for r in page]
        if len(page) < 3:
            break
        after = page[-1].device_id
    assert got == want
    assert all(r.posture == posture for r in page)


def test_past_deadline_finds_devices_the_overdue_sweep_has_not_reached(store: Store) -> None:
    _fleet(store, 12)
    with store.write() as s:
        rec = LifecycleRepository(s).get("d001")
        assert rec is not None and rec.posture == "warning"
        rec.next_deadline = NOW - timedelta(minutes=1)
    with store.read() as s:
        rows = DashboardRepository(s).past_deadline(NOW, after=None, limit=10)
    assert [r.device_id for r in rows] == ["d001"]


def test_attestations_per_minute_buckets_by_minute_and_status(store: Store) -> None:
    _fleet(store, 2)
    with store.write() as s:
        h = AttestationRepository(s)
        for sec, status in ((0, "affirming"), (20, "affirming"), (59, "contraindicated"),
                            (61, "affirming"), (600, "affirming")):
            h.add(device_id="d001", challenge_id=None, outcome="appraised", status=status,
                  media_type="x", evidence_sha256="0" * 64, reasons=[], ear=None,
                  ear_expires_at=None, now=NOW.replace(second=0) + timedelta(seconds=sec))
    with store.read() as s:
        rows = DashboardRepository(s).attestations_per_minute(
            since=NOW.replace(second=0), until=NOW.replace(second=0) + timedelta(minutes=5))
    m0 = NOW.replace(second=0)
    assert rows == [(m0, "affirming", 2), (m0, "contraindicated", 1),
                    (m0 + timedelta(minutes=1), "affirming", 1)]


def test_posture_samples_upsert_per_instant_and_prune(store: Store) -> None:
    with store.write() as s:
        repo = DashboardRepository(s)
        repo.add_sample(NOW, {"trusted": 1})
        repo.add_sample(NOW, {"trusted": 2, "untrusted": 1})  # a second replica, same instant
        repo.add_sample(NOW - timedelta(days=9), {"trusted": 5})
        repo.prune_samples(before=NOW - timedelta(days=7))
    with store.read() as s:
        samples = DashboardRepository(s).samples(since=NOW - timedelta(days=30))
    assert samples == [(NOW, {"trusted": 2, "warning": 0, "untrusted": 1, "overdue": 0,
                              "unknown": 0})]


def test_revoking_the_api_token_ends_its_dashboard_sessions(store: Store) -> None:
    with store.write() as s:
        tok, _ = TokenRepository(s).create(role="relying-party", now=NOW)
        repo = DashboardRepository(s)
        repo.add_session(id_hash="a" * 64, token_id=tok.id, role=tok.role, csrf="c", now=NOW,
                         expires_at=NOW + timedelta(hours=1))
        repo.add_session(id_hash="b" * 64, token_id=tok.id, role=tok.role, csrf="c", now=NOW,
                         expires_at=NOW - timedelta(seconds=1))
        token_id = tok.id
    with store.read() as s:
        assert DashboardRepository(s).live_session("a" * 64, now=NOW) is not None
        assert DashboardRepository(s).live_session("b" * 64, now=NOW) is None  # expired
    with store.write() as s:
        TokenRepository(s).revoke(token_id, now=NOW)
    with store.read() as s:
        assert DashboardRepository(s).live_session("a" * 64, now=NOW) is None
