"""Batched lifecycle writes in SQLAlchemy Core: many Evidence submissions, or many lifecycle
events, in one write transaction with a handful of set-based statements (no ORM unit of
work, no per-row round trip).

The statements and the guarantees they carry (the lifecycle coordinator composes them):

* **Receipts first.** ``INSERT INTO evidence_receipts ... VALUES (...), (...) ON CONFLICT
  (key) DO NOTHING RETURNING key`` (one statement for the batch), keys sorted: exactly one
  transaction across replicas inserts a key. A concurrent transaction inserting the same
  key waits for the first to commit (the unique index entry is locked), then finds the row
  and answers from it; if the first rolls back, the second inserts it. Because the receipt
  commits together with the history rows and the nonce consumption, a redelivery can never
  reach appraisal twice.
* **Devices locked in id order** (``SELECT ... FOR UPDATE OF devices ... ORDER BY
  devices.id``): Evidence and events for one device are serialised across replicas, and two
  batches lock their devices in the same order (no deadlock between batches).
* **Nonces consumed set-based:** ``UPDATE challenges SET consumed_at = :now WHERE id IN
  (...) AND consumed_at IS NULL AND expires_at > :now RETURNING id, nonce``: a nonce is
  consumed by exactly one statement across replicas (a concurrent UPDATE waits for the row
  lock and re-checks its WHERE clause against the committed row).
* History rows: one multi-row ``INSERT ... RETURNING id`` (in parameter order); device
  results, lifecycle records, satisfied events and receipts: one ``executemany`` each
  (psycopg 3 pipelines it).

On PostgreSQL every statement is one fixed SQL text whose parameters are arrays
(``WHERE id = ANY(%s)``, ``INSERT ... SELECT ... FROM unnest(%s, %s, ...)``, ``UPDATE ...
FROM unnest(...)``, the arrays sent in binary) or, for the wide rows (history, events,
lifecycle records), one JSON document (``FROM json_to_recordset(%s::json)``: one orjson call
instead of psycopg dumping every element of a dozen arrays in Python), run on the
transaction's psycopg connection:
one statement per step whatever the batch size (not one execution per row), no SQL
compiled per batch, and psycopg prepares each statement on the server after a few uses. The
writes at the end of a batch are pipelined (:meth:`BatchRepository.pipelined`: one round
trip). The guarantees above are the same statements' (the same ``ON CONFLICT``, ``FOR
UPDATE`` in id order and ``UPDATE ... WHERE consumed_at IS NULL``).

On SQLite the SQLAlchemy Core statements run inside ``BEGIN IMMEDIATE`` (one writer at a
time); ``FOR UPDATE`` is omitted by the dialect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    BindParameter,
    Connection,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from devattest.errors import StoreError
from devattest.model._json import compact_json
from devattest.store.hotpath import _A, _C, _D, _G, _W, _WD
from devattest.store.lifecycle_repo import (
    DeviceLifecycleRecord,
    EvidenceReceipt,
    LifecycleEventRecord,
    receipt_document,
    with_ears,
)

_L: Table = DeviceLifecycleRecord.__table__  # type: ignore[assignment]
_E: Table = LifecycleEventRecord.__table__  # type: ignore[assignment]
_R: Table = EvidenceReceipt.__table__  # type: ignore[assignment]

#: Rows per IN list / multi-row statement (well under SQLite's bound-parameter limit).
CHUNK = 500

_IDS: BindParameter[Any] = bindparam("p_ids", expanding=True)
_NOW = bindparam("p_now", type_=_C.c.created_at.type)
_GENERATION = select(_G.c.generation).where(_G.c.id == 1).scalar_subquery()

_TARGETS = (select(_C.c.id.label("challenge_id"), _C.c.created_at.label("issued_at"),
                   _D.c.id.label("device_id"), _D.c.instance_id, _D.c.model, _D.c.owner,
                   _D.c.status, _D.c.lifecycle_state, _GENERATION.label("generation"))
            .select_from(_C.join(_D, _D.c.id == _C.c.device_id))
            .where(_C.c.id.in_(_IDS))
            .order_by(_D.c.id)
            .with_for_update(of=_D))

_LOCK_DEVICES = (select(_D.c.id, _D.c.model, _D.c.owner, _D.c.lifecycle_state, _D.c.status)
                 .where(_D.c.id.in_(_IDS)).order_by(_D.c.id).with_for_update())

_CONSUME = (update(_C)
            .where(_C.c.id.in_(_IDS), _C.c.consumed_at.is_(None), _C.c.expires_at > _NOW)
            .values(consumed_at=_NOW)
            .returning(_C.c.id, _C.c.nonce))

_WHY_NOT = select(_C.c.id, _C.c.consumed_at, _C.c.nonce).where(_C.c.id.in_(_IDS))

_CLAIM_SQLITE = (sqlite_insert(_R).on_conflict_do_nothing(index_elements=["key"])
                 .returning(_R.c.key))

_RECEIPTS = (select(_R.c.key, _R.c.state, _R.c.lease_until, _R.c.result)
             .where(_R.c.key.in_(_IDS)).order_by(_R.c.key).with_for_update())

_COMPLETE = (update(_R).where(_R.c.key == bindparam("b_key"))
             .values(state="done", result=bindparam("b_result", type_=_R.c.result.type),
                     lease_until=None, updated_at=bindparam("b_now", type_=_R.c.updated_at.type)))

_HISTORY = insert(_A).returning(_A.c.id, sort_by_parameter_order=True)

_DEVICE_RESULT = (update(_D).where(_D.c.id == bindparam("b_id"))
                  .values(status=bindparam("b_status", type_=_D.c.status.type),
                          latest_attestation_id=bindparam("b_attestation",
                                                          type_=_D.c.latest_attestation_id.type),
                          updated_at=bindparam("b_now", type_=_D.c.updated_at.type),
                          instance_id=func.coalesce(
                              _D.c.instance_id,
                              bindparam("b_bind", type_=_D.c.instance_id.type))))

_DEVICE_FACTS = (update(_D).where(_D.c.id == bindparam("b_id"))
                 .values(owner=bindparam("b_owner", type_=_D.c.owner.type),
                         lifecycle_state=bindparam("b_state", type_=_D.c.lifecycle_state.type),
                         updated_at=bindparam("b_now", type_=_D.c.updated_at.type)))

_ACTIVE_WEBHOOKS = select(_W.c.id).where(_W.c.active.is_(True)).order_by(_W.c.id)

_RECORDS = select(_L).where(_L.c.device_id.in_(_IDS))

_PENDING = (select(_E.c.device_id, _E.c.event_id, _E.c.kind, _E.c.at, _E.c.deadline)
            .where(_E.c.device_id.in_(_IDS), _E.c.satisfied_at.is_(None),
                   _E.c.deadline.is_not(None))
            .order_by(_E.c.device_id, _E.c.id))

_FIND_EVENTS = (select(_E.c.event_id, _E.c.deadline, _E.c.satisfied_at)
                .where(_E.c.event_id.in_(_IDS)))

_SATISFY = (update(_E).where(_E.c.event_id == bindparam("b_event"))
            .values(satisfied_at=bindparam("b_now", type_=_E.c.satisfied_at.type),
                    satisfied_by_challenge=bindparam("b_challenge",
                                                     type_=_E.c.satisfied_by_challenge.type)))

#: The lifecycle columns a save writes (every column but the key).
LIFECYCLE_COLUMNS = ("state", "state_reason", "firmware_version", "latest_status", "latest_at",
                     "latest_requested_at", "latest_reasons", "latest_challenge_id",
                     "next_deadline", "posture", "posture_reason", "updated_at")
_LIFECYCLE_TIMES = ("latest_at", "latest_requested_at", "next_deadline", "updated_at")
_SAVE_LIFECYCLE = (update(_L).where(_L.c.device_id == bindparam("b_id"))
                   .values({c: bindparam(f"b_{c}", type_=_L.c[c].type)
                            for c in LIFECYCLE_COLUMNS}))


# -- PostgreSQL: fixed statements over arrays (see the module docstring) -------------------
_PG_CLAIM = """
INSERT INTO evidence_receipts (key, challenge_id, device_id, evidence_sha256, state,
                               lease_until, result, created_at, updated_at)
SELECT t.k, t.c, t.d, t.e, 'processing', %(lease)s, NULL, %(now)s, %(now)s
FROM unnest(%(keys)b::text[], %(cids)b::text[], %(dids)b::text[], %(shas)b::text[])
     AS t(k, c, d, e)
ORDER BY t.k
ON CONFLICT (key) DO NOTHING
RETURNING key"""

_PG_RECEIPTS = """
SELECT key, state, lease_until, result FROM evidence_receipts
WHERE key = ANY(%(keys)b::text[]) ORDER BY key FOR UPDATE"""

_PG_COMPLETE = """
UPDATE evidence_receipts AS r SET state = 'done', result = t.res::json, lease_until = NULL,
       updated_at = %(now)s
FROM unnest(%(keys)b::text[], %(results)b::text[]) AS t(k, res)
WHERE r.key = t.k"""

_PG_EARS = "SELECT id, ear FROM attestations WHERE id = ANY(%(ids)b::bigint[])"

_PG_TARGETS = """
SELECT c.id, c.created_at, d.id, d.instance_id, d.model, d.owner, d.status,
       d.lifecycle_state, (SELECT generation FROM config_generation WHERE id = 1)
FROM challenges AS c JOIN devices AS d ON d.id = c.device_id
WHERE c.id = ANY(%(ids)b::text[])
ORDER BY d.id
FOR UPDATE OF d"""

_PG_CONSUME = """
UPDATE challenges SET consumed_at = %(now)s
WHERE id = ANY(%(ids)b::text[]) AND consumed_at IS NULL AND expires_at > %(now)s
RETURNING id, nonce"""

_PG_WHY_NOT = "SELECT id, consumed_at, nonce FROM challenges WHERE id = ANY(%(ids)b::text[])"

_PG_ISSUE = """
INSERT INTO challenges (id, device_id, nonce, created_at, expires_at, consumed_at)
SELECT t.id, t.d, t.n, t.c, t.x, NULL
FROM unnest(%(ids)b::text[], %(dids)b::text[], %(nonces)b::bytea[],
            %(created)b::timestamptz[], %(expires)b::timestamptz[]) AS t(id, d, n, c, x)"""

#: The devices' challenges still open (unconsumed, unexpired), newest first.
_PG_OUTSTANDING = """
SELECT device_id, id, nonce, created_at, expires_at FROM challenges
WHERE device_id = ANY(%(dids)b::text[]) AND consumed_at IS NULL AND expires_at > %(now)s
ORDER BY device_id, created_at DESC, id"""

# History rows come back with (challenge_id, evidence_sha256), unique within a batch (one
# receipt per pair), so each id is matched to its row whatever order RETURNING uses.
_PG_HISTORY = """
INSERT INTO attestations (device_id, challenge_id, outcome, status, media_type,
                          evidence_sha256, reasons, ear, ear_expires_at, created_at,
                          bound_identity)
SELECT t.device_id, t.challenge_id, t.outcome, t.status, t.media_type, t.evidence_sha256,
       t.reasons::json, t.ear, t.ear_expires_at, t.created_at, t.bound_identity
FROM json_to_recordset(%(rows)s::json)
     AS t(device_id text, challenge_id text, outcome text, status text, media_type text,
          evidence_sha256 text, reasons text, ear text, ear_expires_at timestamptz,
          created_at timestamptz, bound_identity text)
RETURNING id, challenge_id, evidence_sha256"""

# Device binding: a still unbound device takes the identity bound by the batch (t.b), a
# bound one keeps its own.
_PG_DEVICE_RESULT = """
UPDATE devices AS d SET status = t.s, latest_attestation_id = t.a, updated_at = %(now)s,
                        instance_id = COALESCE(d.instance_id, t.b)
FROM unnest(%(ids)b::text[], %(statuses)b::text[], %(atts)b::bigint[], %(binds)b::text[])
     AS t(id, s, a, b)
WHERE d.id = t.id"""

_PG_DEVICE_FACTS = """
UPDATE devices AS d SET owner = t.o, lifecycle_state = t.s, updated_at = %(now)s
FROM unnest(%(ids)b::text[], %(owners)b::text[], %(states)b::text[]) AS t(id, o, s)
WHERE d.id = t.id"""

_PG_LOCK_DEVICES = """
SELECT id, model, owner, lifecycle_state, status FROM devices
WHERE id = ANY(%(ids)b::text[]) ORDER BY id FOR UPDATE"""

#: For the rest of the caller's transaction only (see :meth:`BatchRepository._driver`).
_PG_KEYED_PLANS = "SET LOCAL enable_seqscan = off"

_PG_ACTIVE_WEBHOOKS = "SELECT id FROM webhooks WHERE active ORDER BY id"

_PG_WEBHOOKS = """
INSERT INTO webhook_deliveries (webhook_id, event, payload, state, attempts,
                                next_attempt_at, lease_until, last_error, created_at,
                                delivered_at)
SELECT h.id, t.e, t.p, 'pending', 0, %(now)s, NULL, NULL, %(now)s, NULL
FROM unnest(%(events)b::text[], %(payloads)b::text[]) WITH ORDINALITY AS t(e, p, n)
CROSS JOIN unnest(%(hooks)b::text[]) WITH ORDINALITY AS h(id, m)
ORDER BY t.n, h.m"""

_PG_RECORDS = """
SELECT device_id, state, state_reason, firmware_version, latest_status, latest_at,
       latest_requested_at, latest_reasons, latest_challenge_id, next_deadline, posture,
       posture_reason, updated_at
FROM device_lifecycle WHERE device_id = ANY(%(ids)b::text[])"""

_PG_CREATE_RECORDS = """
INSERT INTO device_lifecycle (device_id, state, state_reason, firmware_version,
                              latest_status, latest_at, latest_requested_at, latest_reasons,
                              latest_challenge_id, next_deadline, posture, posture_reason,
                              updated_at)
SELECT t.device_id, t.state, t.state_reason, t.firmware_version, t.latest_status,
       t.latest_at, t.latest_requested_at, t.latest_reasons::json, t.latest_challenge_id,
       t.next_deadline, t.posture, t.posture_reason, t.updated_at
FROM json_to_recordset(%(rows)s::json)
     AS t(device_id text, state text, state_reason text, firmware_version text,
          latest_status text, latest_at timestamptz, latest_requested_at timestamptz,
          latest_reasons text, latest_challenge_id text, next_deadline timestamptz,
          posture text, posture_reason text, updated_at timestamptz)"""

_PG_SAVE_LIFECYCLE = """
UPDATE device_lifecycle AS l
SET state = t.state, state_reason = t.state_reason, firmware_version = t.firmware_version,
    latest_status = t.latest_status, latest_at = t.latest_at,
    latest_requested_at = t.latest_requested_at, latest_reasons = t.latest_reasons::json,
    latest_challenge_id = t.latest_challenge_id, next_deadline = t.next_deadline,
    posture = t.posture, posture_reason = t.posture_reason, updated_at = t.updated_at
FROM json_to_recordset(%(rows)s::json)
     AS t(device_id text, state text, state_reason text, firmware_version text,
          latest_status text, latest_at timestamptz, latest_requested_at timestamptz,
          latest_reasons text, latest_challenge_id text, next_deadline timestamptz,
          posture text, posture_reason text, updated_at timestamptz)
WHERE l.device_id = t.device_id"""

_PG_PENDING = """
SELECT device_id, event_id, kind, at, deadline FROM lifecycle_events
WHERE device_id = ANY(%(ids)b::text[]) AND satisfied_at IS NULL AND deadline IS NOT NULL
ORDER BY device_id, id"""

_PG_FIND_EVENTS = """
SELECT event_id, deadline, satisfied_at FROM lifecycle_events
WHERE event_id = ANY(%(ids)b::text[])"""

_PG_ADD_EVENTS = """
INSERT INTO lifecycle_events (event_id, device_id, kind, details, source, at, deadline,
                              satisfied_at, satisfied_by_challenge)
SELECT t.event_id, t.device_id, t.kind, t.details::json, t.source, t.at, t.deadline, NULL,
       NULL
FROM ROWS FROM (json_to_recordset(%(rows)s::json)
                AS (event_id text, device_id text, kind text, details text, source text,
                    at timestamptz, deadline timestamptz))
     WITH ORDINALITY AS t(event_id, device_id, kind, details, source, at, deadline, n)
ORDER BY t.n"""

_PG_SATISFY = """
UPDATE lifecycle_events AS e SET satisfied_at = %(now)s, satisfied_by_challenge = t.c
FROM unnest(%(eids)b::text[], %(cids)b::text[]) AS t(eid, c)
WHERE e.event_id = t.eid"""


class PendingEvent(NamedTuple):
    """An unanswered event with a deadline."""

    device_id: str
    event_id: str
    kind: str
    at: datetime
    deadline: datetime | None


class DeviceRow(NamedTuple):
    """A locked device's facts."""

    id: str
    model: str
    owner: str
    lifecycle_state: str
    status: str


class OpenChallenge(NamedTuple):
    """A challenge that can still be answered."""

    challenge_id: str
    nonce: bytes
    expires_at: datetime


class EventRow(NamedTuple):
    """A recorded event's deadline and answer time."""

    event_id: str
    deadline: datetime | None
    satisfied_at: datetime | None


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """psycopg errors from the raw statements as :class:`StoreError` (SQLAlchemy wraps its
    own; these bypass it). The caller's transaction is then rolled back."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        raise StoreError(f"database error: {type(exc).__name__}") from exc


def _utc(value: datetime | None) -> datetime | None:
    """A timestamp read with psycopg, in UTC (as :class:`~devattest.store._types.UTCDateTime`
    returns it)."""
    return None if value is None else value.astimezone(UTC)


def _json(value: Any) -> str | None:
    return None if value is None else compact_json(value).decode()


def _records(rows: Sequence[Mapping[str, Any]], json_field: str, *,
             empty_as: Any = None) -> str:
    """Rows as one JSON document for ``json_to_recordset``, their ``json_field`` (a JSON
    column) as JSON text (``empty_as`` in place of an empty or missing value, if given).

    One orjson call replaces an array parameter per column, which psycopg dumped element by
    element in Python (4 µs per 13-column row, against 0.5 here). Naive datetimes are UTC,
    as everywhere in the store."""
    return orjson.dumps([{**r, json_field: _json(
        r[json_field] if empty_as is None else r[json_field] or empty_as)} for r in rows],
        option=orjson.OPT_NAIVE_UTC).decode()


@dataclass(frozen=True, slots=True)
class EvidenceTarget:
    """A challenge with its device (locked), read at the start of a batch."""

    challenge_id: str
    issued_at: datetime
    device_id: str
    instance_id: str | None
    model: str
    owner: str
    status: str
    lifecycle_state: str
    generation: int


@dataclass(frozen=True, slots=True)
class ExistingReceipt:
    """A receipt another transaction already holds."""

    state: str
    lease_until: datetime | None
    result: dict[str, Any] | None


def _chunks(values: Sequence[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(values), CHUNK):
        yield list(values[i:i + CHUNK])


class BatchRepository:
    """Set-based statements over one connection inside the caller's write transaction."""

    def __init__(self, conn: Connection) -> None:
        self._c = conn
        self._pg = conn.dialect.name == "postgresql"
        self._raw: Any = None

    def _driver(self) -> Any:
        """The transaction's psycopg connection, with plans that look rows up by key
        (PostgreSQL only).

        psycopg prepares a statement on its fifth execution, and PostgreSQL then keeps one
        generic plan for it. Planned while a table is nearly empty (a new deployment's first
        wave: events, receipts and challenges start empty), that plan scans the table, and
        it stays while the table grows, until an ANALYZE happens to invalidate it: a
        100,000-device wave spent 1.15-1.67 ms of PostgreSQL CPU per device reading 123
        million ``lifecycle_events`` rows in sequential scans. Every statement here finds
        its rows by a key with an index, so for this transaction the planner is told not to
        scan (``enable_seqscan = off``): the plan it keeps is right at any table size.
        (``plan_cache_mode = force_custom_plan`` also fixed it, but planning each statement
        with its 64-element arrays cost 0.14 ms of PostgreSQL CPU per device.)"""
        if self._raw is None:
            self._raw = self._c.connection.driver_connection
            with _store_errors():
                self._raw.execute(_PG_KEYED_PLANS)
        return self._raw

    def _cur(self) -> Any:
        """A psycopg cursor on the transaction's connection (PostgreSQL only)."""
        return self._driver().cursor()

    def _pg_rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        with _store_errors(), self._cur() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def _pg_run(self, sql: str, params: Mapping[str, Any]) -> None:
        with _store_errors(), self._cur() as cur:
            cur.execute(sql, params)

    @contextlib.contextmanager
    def pipelined(self) -> Iterator[None]:
        """Statements inside are sent together (PostgreSQL pipeline mode: one round trip,
        results checked at the end of the block); a no-op on SQLite."""
        if not self._pg:
            yield
            return
        with _store_errors(), self._driver().pipeline():
            yield

    # -- receipts -----------------------------------------------------------------------------
    def claim_receipts(self, rows: Sequence[Mapping[str, Any]], *, now: datetime,
                       lease_until: datetime) -> set[str]:
        """Insert a ``processing`` receipt per row (``key``, ``challenge_id``, ``device_id``,
        ``evidence_sha256``); returns the keys this transaction inserted (the others exist)."""
        won: set[str] = set()
        ordered = sorted(rows, key=lambda r: str(r["key"]))
        if self._pg:
            if ordered:
                won.update(r[0] for r in self._pg_rows(_PG_CLAIM, {
                    "lease": lease_until, "now": now,
                    "keys": [r["key"] for r in ordered],
                    "cids": [r["challenge_id"] for r in ordered],
                    "dids": [r["device_id"] for r in ordered],
                    "shas": [r["evidence_sha256"] for r in ordered]}))
            return won
        for chunk in _chunks(ordered):
            # One statement per chunk (SQLAlchemy's "insertmanyvalues": a multi-row VALUES
            # in parameter order, compiled once), not one round trip per row.
            won.update(self._c.execute(_CLAIM_SQLITE, [
                {"key": r["key"], "challenge_id": r["challenge_id"],
                 "device_id": r["device_id"], "evidence_sha256": r["evidence_sha256"],
                 "state": "processing", "lease_until": lease_until, "result": None,
                 "created_at": now, "updated_at": now} for r in chunk]).scalars())
        return won

    def existing_receipts(self, keys: Sequence[str]) -> dict[str, ExistingReceipt]:
        """Receipts held by other transactions (locked until this one ends)."""
        out: dict[str, ExistingReceipt] = {}
        if self._pg:
            for key, state, lease, result in self._pg_rows(_PG_RECEIPTS,
                                                           {"keys": sorted(keys)}):
                out[key] = ExistingReceipt(state, _utc(lease), result)
        else:
            for chunk in _chunks(sorted(keys)):
                for row in self._c.execute(_RECEIPTS, {"p_ids": chunk}):
                    out[row.key] = ExistingReceipt(row.state, row.lease_until, row.result)
        whole = with_ears([r.result for r in out.values()], self._ears)
        return {k: ExistingReceipt(r.state, r.lease_until, res)
                for (k, r), res in zip(out.items(), whole, strict=True)}

    def _ears(self, attestation_ids: list[int]) -> dict[int, str | None]:
        if self._pg:
            return dict(self._pg_rows(_PG_EARS, {"ids": attestation_ids}))
        return {i: e for chunk in _chunks(attestation_ids)
                for i, e in self._c.execute(select(_A.c.id, _A.c.ear)
                                            .where(_A.c.id.in_(chunk)))}

    def complete_receipts(self, results: Sequence[tuple[str, dict[str, Any]]], *,
                          now: datetime) -> None:
        """Store the result that answers each submission (and every redelivery of it)."""
        if not results:
            return
        if self._pg:
            self._pg_run(_PG_COMPLETE, {"now": now, "keys": [k for k, _ in results],
                                        "results": [_json(receipt_document(r))
                                                    for _, r in results]})
            return
        self._c.execute(_COMPLETE, [{"b_key": k, "b_result": receipt_document(r), "b_now": now}
                                    for k, r in results])

    # -- challenges ---------------------------------------------------------------------------
    def evidence_targets(self, challenge_ids: Sequence[str]) -> dict[str, EvidenceTarget]:
        """The challenges with their devices, the device rows locked in id order."""
        out: dict[str, EvidenceTarget] = {}
        ids = sorted(set(challenge_ids))
        if self._pg:
            for (cid, issued, did, iid, model, owner, status, state,
                 gen) in self._pg_rows(_PG_TARGETS, {"ids": ids}):
                out[cid] = EvidenceTarget(
                    challenge_id=cid, issued_at=issued.astimezone(UTC), device_id=did,
                    instance_id=iid, model=model, owner=owner, status=status,
                    lifecycle_state=state, generation=int(gen or 0))
            return out
        for chunk in _chunks(ids):
            for r in self._c.execute(_TARGETS, {"p_ids": chunk}):
                out[r.challenge_id] = EvidenceTarget(
                    challenge_id=r.challenge_id, issued_at=r.issued_at, device_id=r.device_id,
                    instance_id=r.instance_id, model=r.model, owner=r.owner, status=r.status,
                    lifecycle_state=r.lifecycle_state, generation=int(r.generation or 0))
        return out

    def consume_nonces(self, challenge_ids: Sequence[str], *, now: datetime
                       ) -> tuple[dict[str, bytes], dict[str, tuple[bool, bytes]]]:
        """Consume every unconsumed, unexpired nonce among ``challenge_ids``.

        Returns the consumed nonces by challenge id, and for the others ``(replayed,
        expected nonce)`` (replayed: already consumed; otherwise expired).
        """
        consumed: dict[str, bytes] = {}
        ids = sorted(set(challenge_ids))
        refused: dict[str, tuple[bool, bytes]] = {}
        if self._pg:
            if ids:
                for cid, nonce in self._pg_rows(_PG_CONSUME, {"ids": ids, "now": now}):
                    consumed[cid] = bytes(nonce)
            rest = [c for c in ids if c not in consumed]
            if rest:
                for cid, consumed_at, nonce in self._pg_rows(_PG_WHY_NOT, {"ids": rest}):
                    refused[cid] = (consumed_at is not None, bytes(nonce))
            return consumed, refused
        for chunk in _chunks(ids):
            for cid, nonce in self._c.execute(_CONSUME, {"p_ids": chunk, "p_now": now}):
                consumed[cid] = nonce
        rest = [c for c in ids if c not in consumed]
        for chunk in _chunks(rest):
            for cid, consumed_at, nonce in self._c.execute(_WHY_NOT, {"p_ids": chunk}):
                refused[cid] = (consumed_at is not None, nonce)
        return consumed, refused

    def issue_challenges(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert challenges (``id``, ``device_id``, ``nonce``, ``created_at``,
        ``expires_at``); the caller checked, under the device lock, that each device may be
        challenged."""
        if not rows:
            return
        if self._pg:
            self._pg_run(_PG_ISSUE, {"ids": [r["id"] for r in rows],
                                     "dids": [r["device_id"] for r in rows],
                                     "nonces": [r["nonce"] for r in rows],
                                     "created": [r["created_at"] for r in rows],
                                     "expires": [r["expires_at"] for r in rows]})
            return
        self._c.execute(insert(_C), [{**r, "consumed_at": None} for r in rows])

    def outstanding_challenges(self, device_ids: Sequence[str], *, now: datetime
                               ) -> dict[str, OpenChallenge]:
        """Each device's newest challenge that is unconsumed and has at least half of its
        lifetime left at ``now`` (a repeated event is answered with it rather than with yet
        another nonce; one about to expire is not worth sending again)."""
        ids = sorted(set(device_ids))
        if not ids:
            return {}
        if self._pg:
            rows: list[tuple[Any, ...]] = [
                (d, cid, n, _utc(c), _utc(x)) for d, cid, n, c, x in
                self._pg_rows(_PG_OUTSTANDING, {"dids": ids, "now": now})]
        else:
            rows = []
            for chunk in _chunks(ids):
                rows += [tuple(r) for r in self._c.execute(
                    select(_C.c.device_id, _C.c.id, _C.c.nonce, _C.c.created_at,
                           _C.c.expires_at)
                    .where(_C.c.device_id.in_(chunk), _C.c.consumed_at.is_(None),
                           _C.c.expires_at > now)
                    .order_by(_C.c.device_id, _C.c.created_at.desc(), _C.c.id))]
        out: dict[str, OpenChallenge] = {}
        for d, cid, nonce, created, expires in rows:
            if d not in out and 2 * (expires - now) >= expires - created:
                out[d] = OpenChallenge(cid, bytes(nonce), expires)
        return out

    # -- history and devices ------------------------------------------------------------------
    def insert_history(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Append history rows (``attestations`` columns); returns their ids in order."""
        if not rows:
            return []
        if self._pg:
            got = {(c, e): int(i) for i, c, e in self._pg_rows(
                _PG_HISTORY, {"rows": _records(rows, "reasons")})}
            if len(got) != len(rows):
                raise RuntimeError("history rows must be unique per (challenge, Evidence)")
            return [got[(r["challenge_id"], r["evidence_sha256"])] for r in rows]
        return [int(i) for i in self._c.execute(_HISTORY, list(rows)).scalars()]

    def set_device_results(self, rows: Sequence[tuple[str, str, int, str | None]], *,
                           now: datetime) -> None:
        """Set each device's status and latest result, and bind a still unbound device:
        ``(device_id, status, attestation_id, bound identity or None)``."""
        if not rows:
            return
        if self._pg:
            self._pg_run(_PG_DEVICE_RESULT, {"now": now, "ids": [r[0] for r in rows],
                                             "statuses": [r[1] for r in rows],
                                             "atts": [r[2] for r in rows],
                                             "binds": [r[3] for r in rows]})
            return
        self._c.execute(_DEVICE_RESULT, [{"b_id": d, "b_status": s, "b_attestation": a,
                                          "b_now": now, "b_bind": b} for d, s, a, b in rows])

    def set_device_facts(self, rows: Sequence[tuple[str, str, str]], *, now: datetime) -> None:
        """Set each device's owner and inventory lifecycle state: ``(device_id, owner,
        lifecycle_state)``."""
        if not rows:
            return
        if self._pg:
            self._pg_run(_PG_DEVICE_FACTS, {"now": now, "ids": [d for d, _, _ in rows],
                                            "owners": [o for _, o, _ in rows],
                                            "states": [s for _, _, s in rows]})
            return
        self._c.execute(_DEVICE_FACTS, [{"b_id": d, "b_owner": o, "b_state": s,
                                         "b_now": now} for d, o, s in rows])

    def lock_devices(self, device_ids: Sequence[str]) -> dict[str, DeviceRow]:
        """The devices (``id``, ``model``, ``owner``, ``lifecycle_state``, ``status``),
        locked in id order."""
        out: dict[str, DeviceRow] = {}
        ids = sorted(set(device_ids))
        if self._pg:
            if ids:
                for r in self._pg_rows(_PG_LOCK_DEVICES, {"ids": ids}):
                    out[r[0]] = DeviceRow(*r)
            return out
        for chunk in _chunks(ids):
            for r in self._c.execute(_LOCK_DEVICES, {"p_ids": chunk}):
                out[r.id] = DeviceRow(r.id, r.model, r.owner, r.lifecycle_state, r.status)
        return out

    # -- webhooks -----------------------------------------------------------------------------
    def enqueue_webhooks(self, payloads: Sequence[tuple[str, str]], *, now: datetime) -> None:
        """Queue each ``(event, payload)`` for every active subscription."""
        if not payloads:
            return
        if self._pg:
            hooks = [r[0] for r in self._pg_rows(_PG_ACTIVE_WEBHOOKS, {})]
            if hooks:
                self._pg_run(_PG_WEBHOOKS, {"now": now, "hooks": hooks,
                                            "events": [e for e, _ in payloads],
                                            "payloads": [p for _, p in payloads]})
            return
        hooks = list(self._c.execute(_ACTIVE_WEBHOOKS).scalars())
        if not hooks:
            return
        self._c.execute(insert(_WD), [
            {"webhook_id": h, "event": e, "payload": p, "state": "pending", "attempts": 0,
             "next_attempt_at": now, "lease_until": None, "last_error": None,
             "created_at": now, "delivered_at": None}
            for e, p in payloads for h in hooks])

    # -- lifecycle ----------------------------------------------------------------------------
    def lifecycle_records(self, device_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The lifecycle rows of these devices (their devices are locked by the caller):
        ``device_id -> {column: value}`` for every :data:`LIFECYCLE_COLUMNS`."""
        out: dict[str, dict[str, Any]] = {}
        ids = sorted(set(device_ids))
        if self._pg:
            if ids:
                for r in self._pg_rows(_PG_RECORDS, {"ids": ids}):
                    rec = dict(zip(LIFECYCLE_COLUMNS, r[1:], strict=True))
                    for c in _LIFECYCLE_TIMES:
                        rec[c] = _utc(rec[c])
                    out[r[0]] = rec
            return out
        for chunk in _chunks(ids):
            for r in self._c.execute(_RECORDS, {"p_ids": chunk}):
                out[r.device_id] = {c: r._mapping[c] for c in LIFECYCLE_COLUMNS}
        return out

    def create_lifecycle_records(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert lifecycle rows (``device_id`` and every :data:`LIFECYCLE_COLUMNS`)."""
        if not rows:
            return
        if self._pg:
            self._pg_run(_PG_CREATE_RECORDS,
                         {"rows": _records(rows, "latest_reasons", empty_as=[])})
            return
        self._c.execute(insert(_L), list(rows))

    def pending_events(self, device_ids: Sequence[str]) -> dict[str, list[PendingEvent]]:
        """Unanswered events with a deadline, per device, oldest first."""
        out: dict[str, list[PendingEvent]] = {d: [] for d in device_ids}
        ids = sorted(set(device_ids))
        if self._pg:
            if ids:
                for d, e, k, at, dl in self._pg_rows(_PG_PENDING, {"ids": ids}):
                    out.setdefault(d, []).append(PendingEvent(d, e, k, at.astimezone(UTC),
                                                              _utc(dl)))
            return out
        for chunk in _chunks(ids):
            for r in self._c.execute(_PENDING, {"p_ids": chunk}):
                out.setdefault(r.device_id, []).append(
                    PendingEvent(r.device_id, r.event_id, r.kind, r.at, r.deadline))
        return out

    def find_events(self, event_ids: Sequence[str]) -> dict[str, EventRow]:
        """Events already recorded among ``event_ids`` (``deadline``, ``satisfied_at``)."""
        out: dict[str, EventRow] = {}
        ids = sorted(set(event_ids))
        if self._pg:
            if ids:
                for e, dl, sat in self._pg_rows(_PG_FIND_EVENTS, {"ids": ids}):
                    out[e] = EventRow(e, _utc(dl), _utc(sat))
            return out
        for chunk in _chunks(ids):
            for r in self._c.execute(_FIND_EVENTS, {"p_ids": chunk}):
                out[r.event_id] = EventRow(r.event_id, r.deadline, r.satisfied_at)
        return out

    def add_events(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append events (``event_id``, ``device_id``, ``kind``, ``details``, ``source``,
        ``at``, ``deadline``)."""
        if not rows:
            return
        if self._pg:
            self._pg_run(_PG_ADD_EVENTS, {"rows": _records(rows, "details")})
            return
        self._c.execute(insert(_E), [{**r, "satisfied_at": None,
                                      "satisfied_by_challenge": None} for r in rows])

    def satisfy_events(self, rows: Sequence[tuple[str, str | None]], *, now: datetime) -> None:
        """Mark events answered: ``(event_id, challenge_id)``."""
        if not rows:
            return
        if self._pg:
            self._pg_run(_PG_SATISFY, {"now": now, "eids": [e for e, _ in rows],
                                       "cids": [c for _, c in rows]})
            return
        self._c.execute(_SATISFY, [{"b_event": e, "b_challenge": c, "b_now": now}
                                   for e, c in rows])

    def save_lifecycle(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write lifecycle rows (``device_id`` and every :data:`LIFECYCLE_COLUMNS`)."""
        if not rows:
            return
        if self._pg:
            self._pg_run(_PG_SAVE_LIFECYCLE,
                         {"rows": _records(rows, "latest_reasons", empty_as=[])})
            return
        self._c.execute(_SAVE_LIFECYCLE, [
            {"b_id": r["device_id"], **{f"b_{c}": r[c] for c in LIFECYCLE_COLUMNS}}
            for r in rows])


__all__ = ["CHUNK", "LIFECYCLE_COLUMNS", "BatchRepository", "DeviceRow", "EventRow",
           "EvidenceTarget", "ExistingReceipt", "PendingEvent"]
