"""The store on SQLite and PostgreSQL: migrations, single-use nonces, idempotent
provisioning, retention and the webhook queue."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from devattest.store import (
    AttestationRepository,
    ChallengeRepository,
    ConsumeOutcome,
    DeviceRepository,
    HistoryFilter,
    ProvisionedRepository,
    RetentionPolicy,
    Store,
    TokenRepository,
    WebhookRepository,
    current_generation,
    current_revision,
    head_revision,
    migrate,
    prune,
)
from devattest.store.models import Base, PolicyRecord, TrustAnchorRecord

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _device(store: Store, device_id: str = "dev-1") -> None:
    with store.write() as s:
        DeviceRepository(s).create(device_id=device_id, now=NOW, model="m", owner="o")


def test_migrations_reach_head_and_match_the_orm_models(store: Store) -> None:
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    migrate(store.engine)  # idempotent: a second start-up finds the schema at head
    assert current_revision(store.engine) == head_revision()


def test_timestamps_round_trip_as_aware_utc(store: Store) -> None:
    _device(store)
    with store.read() as s:
        d = DeviceRepository(s).get("dev-1")
        assert d is not None
        assert d.created_at == NOW
        assert d.created_at.tzinfo is not None


def test_rejects_nonce_reuse_under_concurrent_consumption(store: Store) -> None:
    _device(store)
    with store.write() as s:
        ch = ChallengeRepository(s).issue(device_id="dev-1", now=NOW, ttl=timedelta(minutes=2),
                                          size=48)
        cid, nonce = ch.id, ch.nonce
    assert len(nonce) == 48

    def consume(_: int) -> ConsumeOutcome:
        with store.write() as s:
            DeviceRepository(s).lock("dev-1")
            return ChallengeRepository(s).consume(cid, now=NOW + timedelta(seconds=1)).outcome

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(consume, range(64)))
    assert outcomes.count(ConsumeOutcome.CONSUMED) == 1
    assert outcomes.count(ConsumeOutcome.REPLAYED) == 63


def test_rejects_expired_nonce(store: Store) -> None:
    _device(store)
    with store.write() as s:
        cid = ChallengeRepository(s).issue(device_id="dev-1", now=NOW,
                                           ttl=timedelta(seconds=120)).id
    with store.write() as s:
        late = ChallengeRepository(s).consume(cid, now=NOW + timedelta(seconds=120))
        assert late.outcome is ConsumeOutcome.EXPIRED and late.nonce is None
        assert ChallengeRepository(s).consume("0" * 32, now=NOW).outcome is ConsumeOutcome.UNKNOWN


def test_nonce_sizes_are_restricted(store: Store) -> None:
    _device(store)
    with store.write() as s, pytest.raises(ValueError, match="nonce size"):
        ChallengeRepository(s).issue(device_id="dev-1", now=NOW, ttl=timedelta(1), size=16)


def test_tokens_are_hashed_at_rest_and_revocable(store: Store) -> None:
    with store.write() as s:
        rec, plaintext = TokenRepository(s).create(role="admin", now=NOW)
        tid = rec.id
        assert plaintext not in rec.token_hash
    with store.read() as s:
        found = TokenRepository(s).authenticate(plaintext)
        assert found is not None and found.id == tid
        assert TokenRepository(s).authenticate(plaintext + "x") is None
    with store.write() as s:
        assert TokenRepository(s).revoke(tid, now=NOW)
    with store.read() as s:
        assert TokenRepository(s).authenticate(plaintext) is None


def test_device_token_requires_a_device(store: Store) -> None:
    with store.write() as s, pytest.raises(ValueError):
        TokenRepository(s).create(role="device", now=NOW)


def test_provisioning_is_versioned_and_idempotent(store: Store) -> None:
    with store.write() as s:
        g0 = current_generation(s)
        repo = ProvisionedRepository(s, TrustAnchorRecord)
        r1, created1 = repo.submit(name="ta", media_type="application/pem", content=b"A",
                                   summary={}, now=NOW)
        r1b, created1b = repo.submit(name="ta", media_type="application/pem", content=b"A",
                                     summary={}, now=NOW)
        r2, created2 = repo.submit(name="ta", media_type="application/pem", content=b"B",
                                   summary={}, now=NOW)
        assert (created1, created1b, created2) == (True, False, True)
        assert r1b.id == r1.id and (r1.version, r2.version) == (1, 2)
        assert current_generation(s) == g0 + 2
    with store.write() as s:
        repo = ProvisionedRepository(s, TrustAnchorRecord)
        latest = repo.get("ta")
        assert latest is not None and latest.content == b"B"
        assert [r.version for r in repo.versions("ta")] == [2, 1]
        assert repo.delete("ta", now=NOW, version=2) == 1
        latest = repo.get("ta")
        assert latest is not None and latest.version == 1
        assert [r.name for r in repo.latest_all()] == ["ta"]
        assert repo.delete("ta", now=NOW) == 1
        assert repo.get("ta") is None
        # kinds are separate tables
        assert ProvisionedRepository(s, PolicyRecord).get("ta") is None


def _history(store: Store, device_id: str, n: int, *, start: datetime = NOW) -> list[int]:
    ids = []
    with store.write() as s:
        repo = AttestationRepository(s)
        for i in range(n):
            row = repo.add(device_id=device_id, challenge_id=None, outcome="appraised",
                           status="affirming" if i % 2 else "contraindicated",
                           media_type="application/x", evidence_sha256=f"{i:064x}",
                           reasons=[], ear="e", ear_expires_at=start + timedelta(hours=1),
                           now=start + timedelta(seconds=i))
            ids.append(row.id)
    return ids


def test_history_keyset_pagination_and_filters(store: Store) -> None:
    ids = _history(store, "dev-1", 25)
    _history(store, "dev-2", 3)
    with store.read() as s:
        repo = AttestationRepository(s)
        seen: list[int] = []
        cursor = None
        while True:
            page = repo.search(HistoryFilter(device_id="dev-1"), before_id=cursor, limit=10)
            if not page:
                break
            seen.extend(r.id for r in page)
            cursor = page[-1].id
        assert seen == sorted(ids, reverse=True)
        aff = repo.search(HistoryFilter(device_id="dev-1", status="affirming"), limit=100)
        assert len(aff) == 12
        one = repo.search(HistoryFilter(evidence_sha256=f"{3:064x}", device_id="dev-1"))
        assert len(one) == 1
        since = repo.search(HistoryFilter(device_id="dev-1", since=NOW + timedelta(seconds=20)))
        assert len(since) == 5
        latest = repo.latest_valid("dev-1", now=NOW)
        assert latest is not None and latest.id == ids[-1]
        assert repo.latest_valid("dev-1", now=NOW + timedelta(hours=2)) is None


def test_retention_prunes_by_age_and_count_but_keeps_the_latest(store: Store) -> None:
    _device(store, "dev-1")
    old = _history(store, "dev-1", 5, start=NOW - timedelta(days=200))
    recent = _history(store, "dev-1", 20)
    with store.write() as s:
        d = DeviceRepository(s).get("dev-1")
        assert d is not None
        d.latest_attestation_id = old[0]  # pretend the oldest is the device's latest
    with store.write() as s:
        report = prune(s, RetentionPolicy(max_age=timedelta(days=90), max_rows_per_device=10),
                       now=NOW)
    with store.read() as s:
        left = {r.id for r in AttestationRepository(s).search(HistoryFilter(), limit=1000)}
    assert left == set(recent[-10:]) | {old[0]}
    assert report.attestations == 14


def test_webhook_queue_leases_retries_with_backoff_and_dead_letters(store: Store) -> None:
    with store.write() as s:
        repo = WebhookRepository(s)
        repo.create(url="http://127.0.0.1:9/hook", secret="s", now=NOW)
        assert repo.enqueue(event="device.status", payload="{}", now=NOW) == 1
    with store.write() as s:
        claimed = WebhookRepository(s).claim_due(now=NOW, lease=timedelta(seconds=30))
        assert len(claimed) == 1
        did = claimed[0][0].id
    with store.write() as s:  # leased: a second worker (replica) gets nothing
        assert WebhookRepository(s).claim_due(now=NOW, lease=timedelta(seconds=30)) == []
    t = NOW
    for attempt in range(1, 4):
        with store.write() as s:
            dead = WebhookRepository(s).mark_failed(did, error="boom", now=t, max_attempts=3,
                                                    backoff=timedelta(seconds=1))
        assert dead is (attempt == 3)
        if not dead:
            with store.write() as s:
                d = WebhookRepository(s).deliveries()[0]
                assert d.next_attempt_at == t + timedelta(seconds=2 ** (attempt - 1))
                t = d.next_attempt_at
                assert WebhookRepository(s).claim_due(now=t, lease=timedelta(seconds=30))
    with store.read() as s:
        letters = WebhookRepository(s).dead_letters()
        assert len(letters) == 1 and letters[0].attempts == 3 and letters[0].last_error == "boom"


def test_replaces_a_pooled_connection_killed_while_idle(store: Store,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """No pre-ping on every checkout (a round trip per transaction); a connection idle for
    longer than IDLE_PING_SECONDS is pinged, and a dead one replaced before use."""
    if store.dialect != "postgresql":
        pytest.skip("a PostgreSQL server-side disconnect")
    from sqlalchemy import text

    import devattest.store._engine as engine_module

    _device(store)
    store.dispose()
    victim = store.engine.connect()
    other = store.engine.connect()
    pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
    victim.close()  # back in the pool, first in line
    other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    other.commit()
    other.close()
    monkeypatch.setattr(engine_module, "IDLE_PING_SECONDS", 0.0)
    for _ in range(2):  # both pooled connections, the dead one pinged and replaced
        with store.read() as s:
            assert DeviceRepository(s).get("dev-1") is not None


def test_a_signed_ear_stays_in_the_row_on_postgresql_not_in_toast(store: Store) -> None:
    # An EAR is about 2.4 KB of base64url: past PostgreSQL's 2 KB threshold each history
    # row had its EAR put through pglz (which cannot shrink it) and moved to the TOAST
    # table. Rows of that size stay in the table page (migration pf01); the value is intact.
    import os

    from sqlalchemy import text

    from devattest.ear._claims import b64url_encode

    _device(store, "dev-1")
    ear = ".".join(b64url_encode(os.urandom(n)) for n in (30, 1600, 64))
    assert 2100 < len(ear) < 7000
    with store.write() as s:
        row = AttestationRepository(s).add(
            device_id="dev-1", challenge_id=None, outcome="appraised", status="affirming",
            media_type="application/eat+cwt", evidence_sha256="0" * 64,
            reasons=[{"code": "c", "message": "m"}], ear=ear, ear_expires_at=NOW, now=NOW)
        attestation_id = row.id
    with store.read() as s:
        stored = AttestationRepository(s).get(attestation_id)
        assert stored is not None and stored.ear == ear
        if store.engine.dialect.name != "postgresql":
            return
        for table in ("attestations", "evidence_receipts"):
            options = s.execute(text("SELECT reloptions FROM pg_class WHERE relname = :t"),
                                {"t": table}).scalar_one()
            assert "toast_tuple_target=8160" in (options or []), table
        toasted = s.execute(text(
            "SELECT pg_relation_size(reltoastrelid) FROM pg_class "
            "WHERE relname = 'attestations'")).scalar_one()
        assert toasted == 0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_batch_statements_planned_on_an_empty_table_do_not_scan_it_once_it_has_grown(
        store: Store) -> None:
    # A new deployment's first wave: psycopg prepares each batch statement on its fifth
    # execution while lifecycle_events is still empty, and PostgreSQL keeps the generic plan
    # made then (a sequential scan) as the table grows, until an ANALYZE. A 100,000-device
    # wave read 123 million rows that way. Batch transactions now plan by key (no
    # sequential scans), whatever the table's size when the plan is made.
    from sqlalchemy import text

    from devattest.store.batch_repo import BatchRepository

    ids = [f"dev-{i:05d}" for i in range(64)]
    with store.write() as s:
        s.execute(text("INSERT INTO devices (id, model, owner, status, lifecycle_state, "
                       "created_at, updated_at) SELECT 'dev-' || lpad(g::text, 5, '0'), "
                       "'m', 'o', 'unknown', 'provisioned', now(), now() "
                       "FROM generate_series(0, 19999) g"))
    for _ in range(16):  # prepared, and the generic plan made, while the table is empty
        with store.write() as s:
            repo = BatchRepository(s.connection())
            assert repo.find_events(["e-1", "e-2"]) == {}
            assert repo.pending_events(ids[:3]) == {d: [] for d in ids[:3]}
            repo.satisfy_events([("e-1", None)], now=NOW)
    with store.write() as s:
        s.execute(text("INSERT INTO lifecycle_events (event_id, device_id, kind, details, "
                       "source, at, deadline) SELECT 'e-' || g, "
                       "'dev-' || lpad((g % 20000)::text, 5, '0'), 'boot', '{}', 'device', "
                       "now(), now() + interval '1 hour' FROM generate_series(0, 99999) g"))
    # Counted as a difference inside the transaction: PostgreSQL 15's pg_stat_xact_* also
    # report a backend's scans not yet flushed from its earlier transactions (stats flush
    # at most once a second), such as the table scans of the fixture's CREATE INDEX; when
    # the test ran within that second they made it fail on an idle machine.
    seq_scans = text("SELECT COALESCE((SELECT seq_scan FROM pg_stat_xact_user_tables "
                     "WHERE relname = 'lifecycle_events'), 0)")
    with store.write() as s:
        before = s.execute(seq_scans).scalar_one()
        repo = BatchRepository(s.connection())
        assert len(repo.find_events([f"e-{i}" for i in range(64)])) == 64
        assert sum(map(len, repo.pending_events(ids).values())) == 64 * 5
        repo.satisfy_events([(f"e-{i}", None) for i in range(64)], now=NOW)
        assert s.execute(seq_scans).scalar_one() - before == 0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_hostile_event_details_and_empty_reasons_survive_the_json_record_set(
        store: Store) -> None:
    # Wide batch rows reach PostgreSQL as one JSON document: a device's details with quotes,
    # NUL-free unicode, nesting and an integer beyond 64 bits (orjson refuses it; the
    # compact encoder falls back) are stored as sent, and an empty reasons list stays a list.
    import json

    from sqlalchemy import text

    from devattest.store.batch_repo import BatchRepository

    _device(store, "dev-1")
    details = {"note": 'a "quoted" \\ value ✓', "nested": {"list": [1, 2.5, None]},
               "huge": 2**70, "client_event_id": "e"}
    with store.write() as s:
        repo = BatchRepository(s.connection())
        repo.add_events([{"event_id": "ev-1", "device_id": "dev-1", "kind": "boot",
                          "details": details, "source": "device", "at": NOW,
                          "deadline": None}])
        ids = repo.insert_history([{
            "device_id": "dev-1", "challenge_id": "c-1", "outcome": "appraised",
            "status": "affirming", "media_type": "application/psa-attestation-token",
            "evidence_sha256": "0" * 64, "reasons": [], "ear": "e.a.r",
            "ear_expires_at": None, "created_at": NOW}])
    with store.read() as s:
        stored = s.execute(text("SELECT details::text, at FROM lifecycle_events "
                                "WHERE event_id = 'ev-1'")).one()
        assert json.loads(stored[0]) == details and stored[1] == NOW
        reasons = s.execute(text("SELECT reasons::text FROM attestations WHERE id = :i"),
                            {"i": ids[0]}).scalar_one()
        assert json.loads(reasons) == []


def test_retention_deletes_an_evidence_receipt_only_once_its_challenge_is_gone(
        store: Store) -> None:
    # Receipts were never pruned (a row per attestation, for ever). They may go only with
    # their challenge: a receipt deleted while its consumed challenge exists would let a
    # late redelivery of honest Evidence be recorded as a replay; once the challenge is gone
    # a redelivery is refused as an unknown challenge anyway.
    from devattest.store import ChallengeRepository, LifecycleRepository

    _device(store, "dev-1")
    issued = NOW - timedelta(hours=3)
    with store.write() as s:
        gone = ChallengeRepository(s).issue(device_id="dev-1", now=issued,
                                            ttl=timedelta(minutes=5)).id
        live = ChallengeRepository(s).issue(device_id="dev-1", now=issued,
                                            ttl=timedelta(hours=6)).id
    for cid in (gone, live):
        with store.write() as s:
            repo = LifecycleRepository(s)
            repo.claim_receipt(key=f"k-{cid}", challenge_id=cid, device_id="dev-1",
                               evidence_sha256="0" * 64, now=issued + timedelta(minutes=1),
                               lease=timedelta(seconds=30))
            repo.complete_receipt(key=f"k-{cid}", result={"status": "affirming"},
                                  now=issued + timedelta(minutes=1))
    with store.write() as s:
        report = prune(s, RetentionPolicy(max_age=None, max_rows_per_device=None), now=NOW)
    assert (report.challenges, report.receipts) == (1, 1)
    with store.write() as s:  # the live challenge's receipt still answers its redelivery
        claim = LifecycleRepository(s).claim_receipt(
            key=f"k-{live}", challenge_id=live, device_id="dev-1", evidence_sha256="0" * 64,
            now=NOW, lease=timedelta(seconds=30))
        assert claim.result == {"status": "affirming"}
    with store.write() as s:  # a receipt younger than the grace period stays either way
        LifecycleRepository(s).claim_receipt(
            key="k-new", challenge_id=gone, device_id="dev-1", evidence_sha256="1" * 64,
            now=NOW, lease=timedelta(seconds=30))
        assert prune(s, RetentionPolicy(max_age=None, max_rows_per_device=None),
                     now=NOW).receipts == 0
