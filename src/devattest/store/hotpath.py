"""The challenge-and-evidence hot path in SQLAlchemy Core: the fewest statements, each
compiled once, in one transaction, with no ORM unit of work.

Issuing a challenge is one statement: ``INSERT INTO challenges ... SELECT ... FROM devices
WHERE id = :device AND lifecycle_state NOT IN ('suspended', 'decommissioned')`` (on
PostgreSQL in autocommit: one round trip). Only when it inserts nothing does a second query
say why (no such device, or an inactive one).

Appraising Evidence is one write transaction (:meth:`HotPath.submission`):

1. ``SELECT`` the challenge's device (``FOR UPDATE OF devices`` on PostgreSQL: Evidence for
   one device is serialised across replicas; on SQLite ``BEGIN IMMEDIATE`` serialises every
   writer) with the provisioning generation, so cached material is checked in the same
   round trip;
2. ``UPDATE challenges SET consumed_at = :now WHERE id = :id AND consumed_at IS NULL AND
   expires_at > :now RETURNING nonce``: exactly one submission gets the nonce (a concurrent
   second UPDATE waits for the first's row lock, then re-checks its WHERE clause against the
   committed row and matches nothing);
3. the history row and the device's status and latest result: one statement on PostgreSQL
   (a data-modifying CTE), two on SQLite; the webhook deliveries (one ``INSERT ... SELECT``)
   only when the status changed.

The nonce consumption and the history row commit together: a crash keeps both or neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from devattest.errors import StoreError
from devattest.model._json import compact_json
from devattest.store._engine import Store
from devattest.store.challenges import ConsumeOutcome, Consumption
from devattest.store.models import (
    Attestation,
    Challenge,
    ConfigGeneration,
    Device,
    Webhook,
    WebhookDelivery,
)

_C: Table = Challenge.__table__  # type: ignore[assignment]
_D: Table = Device.__table__  # type: ignore[assignment]
_A: Table = Attestation.__table__  # type: ignore[assignment]
_G: Table = ConfigGeneration.__table__  # type: ignore[assignment]
_W: Table = Webhook.__table__  # type: ignore[assignment]
_WD: Table = WebhookDelivery.__table__  # type: ignore[assignment]

#: Devices in these lifecycle states get no challenges.
INACTIVE_STATES = ("suspended", "decommissioned")


class IssueOutcome(StrEnum):
    """What :meth:`HotPath.issue` did."""

    ISSUED = "issued"
    NO_DEVICE = "no_device"
    INACTIVE = "inactive"


@dataclass(frozen=True, slots=True)
class Issue:
    """The result of :meth:`HotPath.issue` (``lifecycle_state`` when inactive)."""

    outcome: IssueOutcome
    lifecycle_state: str | None = None


@dataclass(frozen=True, slots=True)
class SubmissionTarget:
    """The challenge's device, read (and locked) at the start of a submission."""

    device_id: str
    instance_id: str | None
    model: str
    status: str
    #: The provisioning generation in this transaction (for cached material).
    generation: int
    #: The inventory lifecycle state (``active``, ``suspended`` ...).
    lifecycle_state: str = "active"


# -- statements, built once (the compiled forms are cached by SQLAlchemy) --------------------
_NOW = bindparam("p_now", type_=_C.c.created_at.type)
_DEVICE = bindparam("p_device", type_=_D.c.id.type)
_STATUS = bindparam("p_status", type_=_D.c.status.type)
_GENERATION = select(_G.c.generation).where(_G.c.id == 1).scalar_subquery()

_ISSUE = insert(_C).from_select(
    ["id", "device_id", "nonce", "created_at", "expires_at"],
    select(bindparam("p_id", type_=_C.c.id.type), _D.c.id,
           bindparam("p_nonce", type_=_C.c.nonce.type),
           _NOW,
           bindparam("p_exp", type_=_C.c.expires_at.type))
    .where(_D.c.id == bindparam("p_device"),
           *(_D.c.lifecycle_state != literal_column(f"'{state}'") for state in INACTIVE_STATES))
).returning(_C.c.id)

_DEVICE_STATE = select(_D.c.lifecycle_state).where(_D.c.id == bindparam("p_device"))

_CHALLENGE_DEVICE = select(_C.c.device_id).where(_C.c.id == bindparam("p_id"))

_TARGET = (select(_D.c.id, _D.c.instance_id, _D.c.model, _D.c.status,
                  _GENERATION.label("generation"), _D.c.lifecycle_state)
           .select_from(_C.join(_D, _D.c.id == _C.c.device_id))
           .where(_C.c.id == bindparam("p_id"))
           .with_for_update(of=_D))

_CONSUME = (update(_C)
            .where(_C.c.id == bindparam("p_id"), _C.c.consumed_at.is_(None),
                   _C.c.expires_at > _NOW)
            .values(consumed_at=_NOW)
            .returning(_C.c.nonce))

_WHY_NOT = select(_C.c.consumed_at, _C.c.nonce).where(_C.c.id == bindparam("p_id"))

_HISTORY_COLUMNS = {
    "device_id": _DEVICE,
    "challenge_id": bindparam("p_challenge", type_=_A.c.challenge_id.type),
    "outcome": bindparam("p_outcome", type_=_A.c.outcome.type),
    "status": _STATUS,
    "media_type": bindparam("p_media_type", type_=_A.c.media_type.type),
    "evidence_sha256": bindparam("p_digest", type_=_A.c.evidence_sha256.type),
    "reasons": bindparam("p_reasons", type_=_A.c.reasons.type),
    "ear": bindparam("p_ear", type_=_A.c.ear.type),
    "ear_expires_at": bindparam("p_ear_exp", type_=_A.c.ear_expires_at.type),
    "created_at": _NOW,
    "bound_identity": bindparam("p_bind", type_=_A.c.bound_identity.type),
}
# Device binding: a device still unbound (under the lock) takes the identity its first
# affirming attestation bound it to; a bound one keeps its own (COALESCE).
_BIND = bindparam("p_bind", type_=_D.c.instance_id.type)
_BOUND_INSTANCE = func.coalesce(_D.c.instance_id, _BIND)
_HISTORY = insert(_A).values(_HISTORY_COLUMNS).returning(_A.c.id)

_DEVICE_RESULT = (update(_D).where(_D.c.id == _DEVICE)
                  .values(status=_STATUS,
                          latest_attestation_id=bindparam("p_attestation"),
                          updated_at=_NOW, instance_id=_BOUND_INSTANCE))

# PostgreSQL: the history row and the device update in one statement.
_HISTORY_CTE = insert(_A).values(_HISTORY_COLUMNS).returning(_A.c.id).cte("new_attestation")
_HISTORY_AND_DEVICE = (
    update(_D).add_cte(_HISTORY_CTE)
    .where(_D.c.id == _DEVICE)
    .values(status=_STATUS,
            latest_attestation_id=select(_HISTORY_CTE.c.id).scalar_subquery(),
            updated_at=_NOW, instance_id=_BOUND_INSTANCE)
    .returning(_D.c.latest_attestation_id))

_ENQUEUE = insert(_WD).from_select(
    ["webhook_id", "event", "payload", "state", "attempts", "next_attempt_at", "created_at"],
    select(_W.c.id, bindparam("p_event", type_=_WD.c.event.type),
           bindparam("p_payload", type_=_WD.c.payload.type), literal("pending"), literal(0),
           _NOW, _NOW)
    .where(_W.c.active.is_(True)))


class SubmissionTx:
    """One Evidence submission's write transaction (see the module docstring)."""

    def __init__(self, conn: Connection, challenge_id: str, *, now: datetime,
                 postgres: bool) -> None:
        self._conn = conn
        self._id = challenge_id
        self._now = now
        self._pg = postgres

    def target(self) -> SubmissionTarget | None:
        """Step 1: the challenge's device, locked; None if the challenge (or its device) is
        unknown."""
        row = self._conn.execute(_TARGET, {"p_id": self._id}).first()
        if row is None:
            return None
        return SubmissionTarget(device_id=row[0], instance_id=row[1], model=row[2],
                                status=row[3], generation=int(row[4] or 0),
                                lifecycle_state=row[5])

    def consume(self) -> Consumption:
        """Step 2: consume the nonce exactly once (see the module docstring)."""
        nonce = self._conn.execute(_CONSUME, {"p_id": self._id, "p_now": self._now}
                                   ).scalar_one_or_none()
        if nonce is not None:
            return Consumption(ConsumeOutcome.CONSUMED, nonce)
        row = self._conn.execute(_WHY_NOT, {"p_id": self._id}).first()
        if row is None:
            return Consumption(ConsumeOutcome.UNKNOWN)
        # The expected nonce is returned for the contraindicated result's record.
        return Consumption(ConsumeOutcome.REPLAYED if row[0] is not None
                           else ConsumeOutcome.EXPIRED, row[1])

    def record(self, *, device_id: str, outcome: str, status: str, media_type: str,
               evidence_sha256: str, reasons: list[Any], ear: str,
               ear_expires_at: datetime | None, update_device: bool,
               bound_identity: str | None = None) -> int:
        """Step 3: append the history row (and, for an appraisal, set the device's status
        and latest result, and bind a still unbound device to ``bound_identity``); returns
        the history id."""
        params = {"p_device": device_id, "p_challenge": self._id, "p_outcome": outcome,
                  "p_status": status, "p_media_type": media_type[:200],
                  "p_digest": evidence_sha256, "p_reasons": reasons, "p_ear": ear,
                  "p_ear_exp": ear_expires_at, "p_now": self._now, "p_bind": bound_identity}
        if update_device and self._pg:
            attestation_id = self._conn.execute(_HISTORY_AND_DEVICE, params).scalar_one()
            return int(attestation_id)
        attestation_id = int(self._conn.execute(_HISTORY, params).scalar_one())
        if update_device:
            self._conn.execute(_DEVICE_RESULT, {"p_device": device_id, "p_status": status,
                                                "p_attestation": attestation_id,
                                                "p_now": self._now, "p_bind": bound_identity})
        return attestation_id

    def enqueue_webhooks(self, *, event: str, payload: str) -> None:
        """Queue ``payload`` for every active subscription (one ``INSERT ... SELECT``)."""
        self._conn.execute(_ENQUEUE, {"p_event": event, "p_payload": payload,
                                      "p_now": self._now})


class HotPath:
    """Challenge issue and Evidence submission over one :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pg = store.dialect == "postgresql"
        engine = store.engine
        # One statement needs no BEGIN/COMMIT round trips on PostgreSQL.
        self._single = (engine.execution_options(isolation_level="AUTOCOMMIT") if self._pg
                        else engine.execution_options(devattest_write=True))
        self._writer = engine.execution_options(devattest_write=True)
        self._reader = engine

    def issue(self, *, challenge_id: str, device_id: str, nonce: bytes, now: datetime,
              expires_at: datetime) -> Issue:
        """Insert a challenge for an active device.

        Raises:
            StoreError: the database failed.
        """
        try:
            with self._store.write_gate(), self._single.begin() as conn:
                row = conn.execute(_ISSUE, {"p_id": challenge_id, "p_device": device_id,
                                            "p_nonce": nonce, "p_now": now,
                                            "p_exp": expires_at}).first()
                if row is not None:
                    return Issue(IssueOutcome.ISSUED)
                state = conn.execute(_DEVICE_STATE, {"p_device": device_id}).scalar()
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {type(exc).__name__}") from exc
        if state is None:
            return Issue(IssueOutcome.NO_DEVICE)
        return Issue(IssueOutcome.INACTIVE, state)

    def challenge_device(self, challenge_id: str) -> str | None:
        """The device a challenge was issued to (None if unknown).

        Raises:
            StoreError: the database failed.
        """
        try:
            with self._reader.connect() as conn:
                device_id = conn.execute(_CHALLENGE_DEVICE, {"p_id": challenge_id}).scalar()
                conn.rollback()
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {type(exc).__name__}") from exc
        return None if device_id is None else str(device_id)

    @contextmanager
    def submission(self, challenge_id: str, *, now: datetime) -> Iterator[SubmissionTx]:
        """A write transaction for one submission: committed when the block ends, rolled
        back if it raises.

        Raises:
            StoreError: the database failed (the original error is chained).
        """
        try:
            with self._store.write_gate(), self._writer.begin() as conn:
                yield SubmissionTx(conn, challenge_id, now=now, postgres=self._pg)
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {type(exc).__name__}") from exc


def webhook_event(device_id: str, previous: str, status: str, attestation_id: int,
                  now: datetime) -> str:
    """The ``device.status_changed`` payload (canonical JSON)."""
    return compact_json({"event": "device.status_changed", "device_id": device_id,
                         "previous_status": previous, "status": status,
                         "attestation_id": attestation_id, "at": now.isoformat()},
                        sort_keys=True).decode()
