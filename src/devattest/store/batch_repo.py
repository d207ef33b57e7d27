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

On SQLite the same statements run inside ``BEGIN IMMEDIATE`` (one writer at a time);
``FOR UPDATE`` is omitted by the dialect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Connection, Table, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from devattest.store.hotpath import _A, _C, _D, _G, _W, _WD
from devattest.store.lifecycle_repo import (
    DeviceLifecycleRecord,
    EvidenceReceipt,
    LifecycleEventRecord,
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

_CLAIM_PG = pg_insert(_R).on_conflict_do_nothing(index_elements=["key"]).returning(_R.c.key)
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
                          updated_at=bindparam("b_now", type_=_D.c.updated_at.type)))

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
_SAVE_LIFECYCLE = (update(_L).where(_L.c.device_id == bindparam("b_id"))
                   .values({c: bindparam(f"b_{c}", type_=_L.c[c].type)
                            for c in LIFECYCLE_COLUMNS}))


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

    # -- receipts -----------------------------------------------------------------------------
    def claim_receipts(self, rows: Sequence[Mapping[str, Any]], *, now: datetime,
                       lease_until: datetime) -> set[str]:
        """Insert a ``processing`` receipt per row (``key``, ``challenge_id``, ``device_id``,
        ``evidence_sha256``); returns the keys this transaction inserted (the others exist)."""
        stmt = _CLAIM_PG if self._pg else _CLAIM_SQLITE
        won: set[str] = set()
        ordered = sorted(rows, key=lambda r: str(r["key"]))
        for chunk in _chunks(ordered):
            # One statement per chunk (SQLAlchemy's "insertmanyvalues": a multi-row VALUES
            # in parameter order, compiled once), not one round trip per row.
            won.update(self._c.execute(stmt, [
                {"key": r["key"], "challenge_id": r["challenge_id"],
                 "device_id": r["device_id"], "evidence_sha256": r["evidence_sha256"],
                 "state": "processing", "lease_until": lease_until, "result": None,
                 "created_at": now, "updated_at": now} for r in chunk]).scalars())
        return won

    def existing_receipts(self, keys: Sequence[str]) -> dict[str, ExistingReceipt]:
        """Receipts held by other transactions (locked until this one ends)."""
        out: dict[str, ExistingReceipt] = {}
        for chunk in _chunks(sorted(keys)):
            for row in self._c.execute(_RECEIPTS, {"p_ids": chunk}):
                out[row.key] = ExistingReceipt(row.state, row.lease_until, row.result)
        return out

    def complete_receipts(self, results: Sequence[tuple[str, dict[str, Any]]], *,
                          now: datetime) -> None:
        """Store the result that answers each submission (and every redelivery of it)."""
        if results:
            self._c.execute(_COMPLETE, [{"b_key": k, "b_result": r, "b_now": now}
                                        for k, r in results])

    # -- challenges ---------------------------------------------------------------------------
    def evidence_targets(self, challenge_ids: Sequence[str]) -> dict[str, EvidenceTarget]:
        """The challenges with their devices, the device rows locked in id order."""
        out: dict[str, EvidenceTarget] = {}
        for chunk in _chunks(sorted(set(challenge_ids))):
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
        for chunk in _chunks(ids):
            for cid, nonce in self._c.execute(_CONSUME, {"p_ids": chunk, "p_now": now}):
                consumed[cid] = nonce
        refused: dict[str, tuple[bool, bytes]] = {}
        rest = [c for c in ids if c not in consumed]
        for chunk in _chunks(rest):
            for cid, consumed_at, nonce in self._c.execute(_WHY_NOT, {"p_ids": chunk}):
                refused[cid] = (consumed_at is not None, nonce)
        return consumed, refused

    def issue_challenges(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert challenges (``id``, ``device_id``, ``nonce``, ``created_at``,
        ``expires_at``); the caller checked, under the device lock, that each device may be
        challenged."""
        if rows:
            self._c.execute(insert(_C), [{**r, "consumed_at": None} for r in rows])

    # -- history and devices ------------------------------------------------------------------
    def insert_history(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Append history rows (``attestations`` columns); returns their ids in order."""
        if not rows:
            return []
        return [int(i) for i in self._c.execute(_HISTORY, list(rows)).scalars()]

    def set_device_results(self, rows: Sequence[tuple[str, str, int]], *,
                           now: datetime) -> None:
        """Set each device's status and latest result: ``(device_id, status,
        attestation_id)``."""
        if rows:
            self._c.execute(_DEVICE_RESULT, [{"b_id": d, "b_status": s, "b_attestation": a,
                                              "b_now": now} for d, s, a in rows])

    def set_device_facts(self, rows: Sequence[tuple[str, str, str]], *, now: datetime) -> None:
        """Set each device's owner and inventory lifecycle state: ``(device_id, owner,
        lifecycle_state)``."""
        if rows:
            self._c.execute(_DEVICE_FACTS, [{"b_id": d, "b_owner": o, "b_state": s,
                                             "b_now": now} for d, o, s in rows])

    def lock_devices(self, device_ids: Sequence[str]) -> dict[str, Any]:
        """The devices (``id``, ``model``, ``owner``, ``lifecycle_state``, ``status``),
        locked in id order."""
        out: dict[str, Any] = {}
        for chunk in _chunks(sorted(set(device_ids))):
            for r in self._c.execute(_LOCK_DEVICES, {"p_ids": chunk}):
                out[r.id] = r
        return out

    # -- webhooks -----------------------------------------------------------------------------
    def enqueue_webhooks(self, payloads: Sequence[tuple[str, str]], *, now: datetime) -> None:
        """Queue each ``(event, payload)`` for every active subscription."""
        if not payloads:
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
    def lifecycle_records(self, device_ids: Sequence[str]) -> dict[str, Any]:
        """The lifecycle rows of these devices (their devices are locked by the caller)."""
        out: dict[str, Any] = {}
        for chunk in _chunks(sorted(set(device_ids))):
            for r in self._c.execute(_RECORDS, {"p_ids": chunk}):
                out[r.device_id] = r
        return out

    def create_lifecycle_records(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert lifecycle rows (``device_id`` and every :data:`LIFECYCLE_COLUMNS`)."""
        if rows:
            self._c.execute(insert(_L), list(rows))

    def pending_events(self, device_ids: Sequence[str]) -> dict[str, list[Any]]:
        """Unanswered events with a deadline, per device, oldest first."""
        out: dict[str, list[Any]] = {d: [] for d in device_ids}
        for chunk in _chunks(sorted(set(device_ids))):
            for r in self._c.execute(_PENDING, {"p_ids": chunk}):
                out.setdefault(r.device_id, []).append(r)
        return out

    def find_events(self, event_ids: Sequence[str]) -> dict[str, Any]:
        """Events already recorded among ``event_ids`` (``deadline``, ``satisfied_at``)."""
        out: dict[str, Any] = {}
        for chunk in _chunks(sorted(set(event_ids))):
            for r in self._c.execute(_FIND_EVENTS, {"p_ids": chunk}):
                out[r.event_id] = r
        return out

    def add_events(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append events (``event_id``, ``device_id``, ``kind``, ``details``, ``source``,
        ``at``, ``deadline``)."""
        if rows:
            self._c.execute(insert(_E), [{**r, "satisfied_at": None,
                                          "satisfied_by_challenge": None} for r in rows])

    def satisfy_events(self, rows: Sequence[tuple[str, str | None]], *, now: datetime) -> None:
        """Mark events answered: ``(event_id, challenge_id)``."""
        if rows:
            self._c.execute(_SATISFY, [{"b_event": e, "b_challenge": c, "b_now": now}
                                       for e, c in rows])

    def save_lifecycle(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write lifecycle rows (``device_id`` and every :data:`LIFECYCLE_COLUMNS`)."""
        if rows:
            self._c.execute(_SAVE_LIFECYCLE, [
                {"b_id": r["device_id"], **{f"b_{c}": r[c] for c in LIFECYCLE_COLUMNS}}
                for r in rows])


__all__ = ["CHUNK", "LIFECYCLE_COLUMNS", "BatchRepository", "EvidenceTarget",
           "ExistingReceipt"]
