"""Lifecycle persistence on SQLite and PostgreSQL: events with deadlines, and evidence
receipts that make redelivery idempotent across workers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from devattest.store import DeviceRepository, LifecycleRepository, Store, receipt_key
from devattest.store.lifecycle_repo import ReceiptState

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def _device(store: Store, device_id: str = "dev-1") -> None:
    with store.write() as s:
        DeviceRepository(s).create(device_id=device_id, now=NOW, model="cam", owner="acme")
        LifecycleRepository(s).create(device_id=device_id, state="onboarded", now=NOW,
                                      firmware_version="1.0")


def test_events_keep_history_and_pending_deadlines(lc_store: Store) -> None:
    _device(lc_store)
    with lc_store.write() as s:
        repo = LifecycleRepository(s)
        repo.add_event(event_id="e1", device_id="dev-1", kind="firmware_update",
                       details={"firmware_version": "2.0"}, at=NOW,
                       deadline=NOW + timedelta(minutes=5))
        repo.add_event(event_id="e2", device_id="dev-1", kind="decommission", details={},
                       at=NOW, deadline=None)
        rec = repo.lock("dev-1")
        assert rec is not None
        rec.next_deadline = NOW + timedelta(minutes=5)
    with lc_store.read() as s:
        repo = LifecycleRepository(s)
        assert [e.event_id for e in repo.pending_events("dev-1")] == ["e1"]
        assert [e.event_id for e in repo.history("dev-1")] == ["e2", "e1"]
        assert repo.due_before(NOW + timedelta(minutes=6)) == ["dev-1"]
        assert repo.due_before(NOW + timedelta(minutes=4)) == []
        rows = repo.fleet()
        assert rows[0].model == "cam" and rows[0].firmware_version == "1.0"
    with lc_store.write() as s:
        LifecycleRepository(s).satisfy(device_id="dev-1", event_ids=["e1"], challenge_id="c",
                                       now=NOW)
    with lc_store.read() as s:
        assert LifecycleRepository(s).pending_events("dev-1") == []


def test_redelivered_evidence_is_claimed_exactly_once_under_concurrency(
        lc_store: Store) -> None:
    _device(lc_store)
    key = receipt_key("chal-1", b"evidence")

    def claim(_: int) -> ReceiptState:
        with lc_store.write() as s:
            return LifecycleRepository(s).claim_receipt(
                key=key, challenge_id="chal-1", device_id="dev-1", evidence_sha256="00",
                now=NOW, lease=LEASE).state

    with ThreadPoolExecutor(8) as pool:
        states = list(pool.map(claim, range(32)))
    assert states.count(ReceiptState.CLAIMED) == 1
    assert states.count(ReceiptState.BUSY) == 31
    with lc_store.write() as s:
        LifecycleRepository(s).complete_receipt(key=key, result={"status": "affirming"},
                                                now=NOW)
    with lc_store.write() as s:
        again = LifecycleRepository(s).claim_receipt(
            key=key, challenge_id="chal-1", device_id="dev-1", evidence_sha256="00", now=NOW,
            lease=LEASE)
    assert again.state is ReceiptState.DONE
    assert again.result == {"status": "affirming"}


def test_a_dead_workers_lease_is_taken_over(lc_store: Store) -> None:
    key = receipt_key("chal-2", b"ev")
    kw = {"key": key, "challenge_id": "chal-2", "device_id": "d", "evidence_sha256": "00",
          "lease": LEASE}
    with lc_store.write() as s:
        assert LifecycleRepository(s).claim_receipt(now=NOW, **kw).state  # type: ignore[arg-type]
    with lc_store.write() as s:
        st = LifecycleRepository(s).claim_receipt(now=NOW + LEASE / 2, **kw)  # type: ignore[arg-type]
        assert st.state is ReceiptState.BUSY
    with lc_store.write() as s:
        st = LifecycleRepository(s).claim_receipt(now=NOW + LEASE * 2, **kw)  # type: ignore[arg-type]
        assert st.state is ReceiptState.CLAIMED


def test_receipt_key_binds_challenge_and_evidence() -> None:
    assert receipt_key("c1", b"e") != receipt_key("c2", b"e")
    assert receipt_key("c1", b"e") != receipt_key("c1", b"f")
    assert receipt_key("c1", b"e") == receipt_key("c1", b"e")
