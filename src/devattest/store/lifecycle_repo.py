"""Lifecycle persistence: per-device lifecycle records, the event history with its
attestation deadlines, and evidence receipts that make MQTT redelivery idempotent.

Tables (created by migration ``lc01``): ``device_lifecycle``, ``lifecycle_events``,
``evidence_receipts``. The rows are plain records; ``devattest.lifecycle`` (the pure state
machine) is mapped onto them by the lifecycle coordinator, because the store layer does not
import the lifecycle layer (import-linter contract).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from devattest.store.models import Attestation, Base, BigId, Device


class DeviceLifecycleRecord(Base):
    """The lifecycle side of one device (the inventory row stays in ``devices``)."""

    __tablename__ = "device_lifecycle"
    # Queries by posture use ix_device_lifecycle_posture_device_id (store.dashboard_repo).
    __table_args__ = (Index("ix_device_lifecycle_next_deadline", "next_deadline"),)

    device_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    #: ``manufactured``, ``provisioned``, ``onboarded``, ``quarantined``, ``decommissioned``.
    state: Mapped[str] = mapped_column(String(32))
    state_reason: Mapped[str] = mapped_column(Text, default="")
    firmware_version: Mapped[str] = mapped_column(String(200), default="")
    #: The latest Attestation Result, as lifecycle tracking keeps it.
    latest_status: Mapped[str | None] = mapped_column(String(20))
    latest_at: Mapped[datetime | None]
    latest_requested_at: Mapped[datetime | None]
    latest_reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    latest_challenge_id: Mapped[str | None] = mapped_column(String(32))
    #: The earliest deadline among pending events (None when nothing is pending): the
    #: overdue sweep reads only this index.
    next_deadline: Mapped[datetime | None]
    #: The posture last derived and published (for change detection and fleet queries).
    posture: Mapped[str] = mapped_column(String(16), default="unknown")
    posture_reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime]


class LifecycleEventRecord(Base):
    """One lifecycle event, with the attestation it made due and what answered it."""

    __tablename__ = "lifecycle_events"
    __table_args__ = (Index("ix_lifecycle_events_device_id_id", "device_id", "id"),
                      Index("ix_lifecycle_events_pending", "device_id", "satisfied_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    device_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("devices.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: ``device`` (reported over MQTT/HTTP), ``operator`` or ``simulator``.
    source: Mapped[str] = mapped_column(String(32), default="device")
    at: Mapped[datetime]
    #: When attestation is due by (None for events that make nothing due).
    deadline: Mapped[datetime | None]
    satisfied_at: Mapped[datetime | None]
    satisfied_by_challenge: Mapped[str | None] = mapped_column(String(32))


class EvidenceReceipt(Base):
    """One (challenge, evidence digest) pair seen by the transport: redelivered Evidence
    finds its receipt and gets the stored result back, without a second appraisal."""

    __tablename__ = "evidence_receipts"
    __table_args__ = (Index("ix_evidence_receipts_created_at", "created_at"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    challenge_id: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(128))
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    #: ``processing`` (claimed by a worker until ``lease_until``) or ``done``.
    state: Mapped[str] = mapped_column(String(16))
    lease_until: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


def _ear_left_out(result: dict[str, Any] | None) -> bool:
    """Whether a stored receipt result names its history row and lacks the EAR."""
    return result is not None and "ear" not in result and \
        isinstance(result.get("attestation_id"), int)


def receipt_document(result: dict[str, Any]) -> dict[str, Any]:
    """What a receipt stores of a result message: all of it but the signed EAR when the
    message names its history row (``attestation_id``), which holds the same EAR. The EAR
    (about 2.4 KB) was otherwise stored twice per attestation."""
    if isinstance(result.get("attestation_id"), int) and "ear" in result:
        return {k: v for k, v in result.items() if k != "ear"}
    return result


def with_ears(results: Sequence[dict[str, Any] | None],
              ears: Callable[[list[int]], dict[int, str | None]]) -> list[dict[str, Any] | None]:
    """Stored receipt results made whole again: the EAR of each one stored without it,
    read from its history row by ``ears`` (one look-up for all; ``None`` once retention
    has deleted the row). Results stored whole (before the EAR was left out) pass as
    they are."""
    wanted = sorted({r["attestation_id"] for r in results if r is not None and _ear_left_out(r)})
    if not wanted:
        return list(results)
    found = ears(wanted)
    return [{**r, "ear": found.get(r["attestation_id"])} if r is not None and _ear_left_out(r)
            else r for r in results]


def receipt_key(challenge_id: str, evidence: bytes) -> str:
    """The idempotency key of one submission: SHA-256 over the challenge id and the
    Evidence's SHA-256 (hex)."""
    digest = hashlib.sha256(evidence).digest()
    return hashlib.sha256(challenge_id.encode() + b"\x00" + digest).hexdigest()


class ReceiptState(StrEnum):
    """What :meth:`LifecycleRepository.claim_receipt` found."""

    CLAIMED = "claimed"  # first sight: the caller processes the Evidence
    DONE = "done"  # a duplicate: the stored result answers it
    BUSY = "busy"  # another worker holds the lease: drop it (QoS 1 redelivers if it dies)


@dataclass(frozen=True, slots=True)
class ReceiptClaim:
    """The outcome of a claim."""

    state: ReceiptState
    result: dict[str, Any] | None = None
    #: The claim took over an expired lease: a worker died while processing it, so the
    #: submission may already have been appraised.
    taken_over: bool = False


@dataclass(frozen=True, slots=True)
class FleetRow:
    """One device for fleet views: inventory joined with its lifecycle record."""

    device_id: str
    model: str
    owner: str
    state: str
    firmware_version: str
    posture: str
    posture_reason: str
    latest_status: str | None
    latest_at: datetime | None
    next_deadline: datetime | None


class LifecycleRepository:
    """Lifecycle records, events and evidence receipts."""

    def __init__(self, session: Session) -> None:
        self._s = session

    # -- lifecycle records ------------------------------------------------------------------
    def get(self, device_id: str) -> DeviceLifecycleRecord | None:
        """The lifecycle record of a device."""
        return self._s.get(DeviceLifecycleRecord, device_id)

    def lock(self, device_id: str) -> DeviceLifecycleRecord | None:
        """The record, locked until the transaction ends (``SELECT ... FOR UPDATE``)."""
        return self._s.scalars(select(DeviceLifecycleRecord)
                               .where(DeviceLifecycleRecord.device_id == device_id)
                               .with_for_update()).first()

    def create(self, *, device_id: str, state: str, now: datetime,
               firmware_version: str = "") -> DeviceLifecycleRecord:
        """Add the lifecycle record of an inventory device."""
        rec = DeviceLifecycleRecord(
            device_id=device_id, state=state, state_reason="", firmware_version=firmware_version,
            latest_status=None, latest_at=None, latest_requested_at=None, latest_reasons=[],
            latest_challenge_id=None, next_deadline=None, posture="unknown", posture_reason="",
            updated_at=now)
        self._s.add(rec)
        self._s.flush()
        return rec

    # -- events -----------------------------------------------------------------------------
    def add_event(self, *, event_id: str, device_id: str, kind: str, details: dict[str, Any],
                  at: datetime, deadline: datetime | None, source: str = "device"
                  ) -> LifecycleEventRecord:
        """Append one event to the device's history."""
        row = LifecycleEventRecord(event_id=event_id, device_id=device_id, kind=kind,
                                   details=details, source=source, at=at, deadline=deadline,
                                   satisfied_at=None, satisfied_by_challenge=None)
        self._s.add(row)
        self._s.flush()
        return row

    def pending_events(self, device_id: str) -> Sequence[LifecycleEventRecord]:
        """Events whose attestation is still owed, oldest first."""
        return self._s.scalars(
            select(LifecycleEventRecord)
            .where(LifecycleEventRecord.device_id == device_id,
                   LifecycleEventRecord.satisfied_at.is_(None),
                   LifecycleEventRecord.deadline.is_not(None))
            .order_by(LifecycleEventRecord.id)).all()

    def pending_events_for(self, device_ids: Sequence[str]
                           ) -> dict[str, list[LifecycleEventRecord]]:
        """Pending events of many devices at once (fleet views), oldest first."""
        out: dict[str, list[LifecycleEventRecord]] = {d: [] for d in device_ids}
        for i in range(0, len(device_ids), 500):
            chunk = list(device_ids[i:i + 500])
            for row in self._s.scalars(
                    select(LifecycleEventRecord)
                    .where(LifecycleEventRecord.device_id.in_(chunk),
                           LifecycleEventRecord.satisfied_at.is_(None),
                           LifecycleEventRecord.deadline.is_not(None))
                    .order_by(LifecycleEventRecord.id)):
                out[row.device_id].append(row)
        return out

    def find_event(self, event_id: str) -> LifecycleEventRecord | None:
        """The event with this id, if it was already recorded (redelivery)."""
        return self._s.scalars(select(LifecycleEventRecord)
                               .where(LifecycleEventRecord.event_id == event_id)).first()

    def records_for(self, device_ids: Sequence[str]) -> dict[str, DeviceLifecycleRecord]:
        """Lifecycle records of many devices at once."""
        out: dict[str, DeviceLifecycleRecord] = {}
        for i in range(0, len(device_ids), 500):
            chunk = list(device_ids[i:i + 500])
            for rec in self._s.scalars(select(DeviceLifecycleRecord)
                                       .where(DeviceLifecycleRecord.device_id.in_(chunk))):
                out[rec.device_id] = rec
        return out

    def satisfy(self, *, device_id: str, event_ids: Sequence[str], challenge_id: str | None,
                now: datetime) -> None:
        """Mark events as answered by a result."""
        if not event_ids:
            return
        self._s.execute(update(LifecycleEventRecord)
                        .where(LifecycleEventRecord.device_id == device_id,
                               LifecycleEventRecord.event_id.in_(list(event_ids)))
                        .values(satisfied_at=now, satisfied_by_challenge=challenge_id)
                        .execution_options(synchronize_session=False))

    def history(self, device_id: str, *, before_id: int | None = None, limit: int = 100
                ) -> Sequence[LifecycleEventRecord]:
        """The device's events, newest first (keyset pagination on the id)."""
        q = (select(LifecycleEventRecord).where(LifecycleEventRecord.device_id == device_id)
             .order_by(LifecycleEventRecord.id.desc()).limit(limit))
        if before_id is not None:
            q = q.where(LifecycleEventRecord.id < before_id)
        return self._s.scalars(q).all()

    # -- sweeps and fleet views -------------------------------------------------------------
    def due_before(self, now: datetime, *, limit: int = 1000) -> list[str]:
        """Devices with a pending deadline before ``now`` not yet published as overdue."""
        return list(self._s.scalars(
            select(DeviceLifecycleRecord.device_id)
            .where(DeviceLifecycleRecord.next_deadline < now,
                   DeviceLifecycleRecord.posture != "overdue")
            .order_by(DeviceLifecycleRecord.next_deadline).limit(limit)))

    def fleet(self, *, after: str | None = None, limit: int = 1000) -> list[FleetRow]:
        """Devices with their lifecycle record, ordered by id (keyset pagination)."""
        q = (select(Device.id, Device.model, Device.owner, DeviceLifecycleRecord)
             .join(DeviceLifecycleRecord, DeviceLifecycleRecord.device_id == Device.id)
             .order_by(Device.id).limit(limit))
        if after is not None:
            q = q.where(Device.id > after)
        return [FleetRow(device_id=i, model=m, owner=o, state=r.state,
                         firmware_version=r.firmware_version, posture=r.posture,
                         posture_reason=r.posture_reason, latest_status=r.latest_status,
                         latest_at=r.latest_at, next_deadline=r.next_deadline)
                for i, m, o, r in self._s.execute(q)]

    def posture_counts(self) -> dict[str, int]:
        """How many devices have each posture."""
        return {p: n for p, n in self._s.execute(
            select(DeviceLifecycleRecord.posture, func.count())
            .group_by(DeviceLifecycleRecord.posture))}

    # -- evidence receipts (idempotent delivery) --------------------------------------------
    def claim_receipt(self, *, key: str, challenge_id: str, device_id: str,
                      evidence_sha256: str, now: datetime, lease: timedelta) -> ReceiptClaim:
        """Claim one submission for processing, exactly once across workers and replicas.

        The INSERT of the primary key is the atomic step (``INSERT ... ON CONFLICT DO
        NOTHING RETURNING``): a second worker inserts nothing and reads the existing receipt
        instead (run this in its own short write transaction, before appraisal). An expired
        lease (a worker died mid-way) is taken over.
        """
        dialect = self._s.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        inserted = self._s.execute(
            insert(EvidenceReceipt)
            .values(key=key, challenge_id=challenge_id, device_id=device_id,
                    evidence_sha256=evidence_sha256, state="processing",
                    lease_until=now + lease, result=None, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(EvidenceReceipt.key)).scalar_one_or_none()
        if inserted is not None:
            return ReceiptClaim(ReceiptState.CLAIMED)
        row = self._s.scalars(select(EvidenceReceipt).where(EvidenceReceipt.key == key)
                              .with_for_update()).one()
        if row.state == "done":
            return ReceiptClaim(ReceiptState.DONE, with_ears([row.result], self.ears)[0])
        if row.lease_until is not None and row.lease_until < now:
            row.lease_until = now + lease
            row.updated_at = now
            return ReceiptClaim(ReceiptState.CLAIMED, taken_over=True)
        return ReceiptClaim(ReceiptState.BUSY)

    def complete_receipt(self, *, key: str, result: dict[str, Any], now: datetime) -> None:
        """Store the result that answers this submission and any redelivery of it."""
        self._s.execute(update(EvidenceReceipt).where(EvidenceReceipt.key == key)
                        .values(state="done", result=receipt_document(result),
                                lease_until=None, updated_at=now)
                        .execution_options(synchronize_session=False))

    def ears(self, attestation_ids: list[int]) -> dict[int, str | None]:
        """The signed EARs of these history rows (the ones still kept)."""
        return {i: e for i, e in self._s.execute(
            select(Attestation.id, Attestation.ear).where(Attestation.id.in_(attestation_ids)))}

    def release_receipt(self, key: str) -> None:
        """Forget a claim whose processing failed before anything was consumed."""
        self._s.execute(delete(EvidenceReceipt).where(EvidenceReceipt.key == key,
                                                      EvidenceReceipt.state == "processing")
                        .execution_options(synchronize_session=False))
