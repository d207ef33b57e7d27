"""Read models for the operator dashboard: fleet aggregates, posture-filtered keyset pages,
attestations per minute, posture samples over time, and dashboard login sessions.

Tables (created by migration ``da01``): ``dashboard_sessions`` and ``fleet_posture_samples``,
plus indexes on existing tables that make the dashboard's queries index scans at 100,000
devices (``docs/dashboard.md`` lists which query uses which index).

A device that has no lifecycle record (registered and attested over HTTP only) has the
posture its latest status implies (:data:`STATUS_POSTURE`); devices with a record have the
posture the lifecycle coordinator last derived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Index,
    Integer,
    String,
    case,
    delete,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from devattest.store.lifecycle_repo import DeviceLifecycleRecord
from devattest.store.models import ApiToken, Attestation, Base, Device

#: Posture of a device without a lifecycle record, from ``devices.status``.
STATUS_POSTURE = {"affirming": "trusted", "warning": "warning",
                  "contraindicated": "untrusted"}
POSTURES = ("trusted", "warning", "untrusted", "overdue", "unknown")


class DashboardSession(Base):
    """A dashboard login: the cookie holds a random id, the table only its SHA-256."""

    __tablename__ = "dashboard_sessions"
    __table_args__ = (Index("ix_dashboard_sessions_expires_at", "expires_at"),)

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(32))
    #: The per-session CSRF secret every POST must echo.
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class FleetPostureSample(Base):
    """Fleet posture counts at one instant (one row per sampling interval)."""

    __tablename__ = "fleet_posture_samples"

    at: Mapped[datetime] = mapped_column(primary_key=True)
    trusted: Mapped[int] = mapped_column(Integer)
    warning: Mapped[int] = mapped_column(Integer)
    untrusted: Mapped[int] = mapped_column(Integer)
    overdue: Mapped[int] = mapped_column(Integer)
    unknown: Mapped[int] = mapped_column(Integer)


# Indexes on other tables (created by migration da01; declared here so the ORM metadata and
# the migrations stay equal).
Index("ix_device_lifecycle_posture_device_id", DeviceLifecycleRecord.posture,
      DeviceLifecycleRecord.device_id)
Index("ix_device_lifecycle_firmware_posture", DeviceLifecycleRecord.firmware_version,
      DeviceLifecycleRecord.posture)
Index("ix_device_lifecycle_updated_at", DeviceLifecycleRecord.updated_at)
Index("ix_devices_status_id", Device.status, Device.id)


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One device for dashboard tables: inventory, lifecycle record (if any) and posture."""

    device_id: str
    model: str
    owner: str
    status: str
    lifecycle_state: str | None
    firmware_version: str
    posture: str
    posture_reason: str
    latest_at: datetime | None
    next_deadline: datetime | None
    updated_at: datetime


def _posture_expr() -> ColumnElement[Any]:
    """``COALESCE(device_lifecycle.posture, <posture implied by devices.status>)``."""
    implied = case(*((Device.status == s, literal(p)) for s, p in STATUS_POSTURE.items()),
                   else_=literal("unknown"))
    return func.coalesce(DeviceLifecycleRecord.posture, implied)


_ROW_COLUMNS = (Device.id, Device.model, Device.owner, Device.status,
                DeviceLifecycleRecord.state, DeviceLifecycleRecord.firmware_version,
                DeviceLifecycleRecord.posture, DeviceLifecycleRecord.posture_reason,
                DeviceLifecycleRecord.latest_at, DeviceLifecycleRecord.next_deadline,
                Device.updated_at)


def _row(r: Any) -> DeviceRow:
    (did, model, owner, status, state, fw, posture, reason, latest_at, deadline,
     updated) = r
    return DeviceRow(device_id=did, model=model, owner=owner, status=status,
                     lifecycle_state=state, firmware_version=fw or "",
                     posture=posture or STATUS_POSTURE.get(status, "unknown"),
                     posture_reason=reason or "", latest_at=latest_at,
                     next_deadline=deadline, updated_at=updated)


class DashboardRepository:
    """The dashboard's queries. Every list is keyset-paginated on the device id."""

    def __init__(self, session: Session) -> None:
        self._s = session

    # -- aggregates ---------------------------------------------------------------------------
    def posture_counts(self) -> dict[str, int]:
        """Devices per posture (every posture present, zero if none): one pass over the two
        primary keys (a merge or hash join), devices without a record by their status."""
        posture = _posture_expr()
        q = (select(posture, func.count()).select_from(Device)
             .outerjoin(DeviceLifecycleRecord, DeviceLifecycleRecord.device_id == Device.id)
             .group_by(posture))
        out = dict.fromkeys(POSTURES, 0)
        for p, n in self._s.execute(q):
            out[p] = out.get(p, 0) + int(n)
        return out

    def attention_counts(self) -> dict[str, int]:
        """Devices per attention posture (untrusted, overdue, warning), from index scans
        only: lifecycle records by posture, and devices without a record among those whose
        status is warning or contraindicated."""
        out = dict.fromkeys(("untrusted", "overdue", "warning"), 0)
        for p, n in self._s.execute(
                select(DeviceLifecycleRecord.posture, func.count())
                .where(DeviceLifecycleRecord.posture.in_(list(out)))
                .group_by(DeviceLifecycleRecord.posture)):
            out[p] += int(n)
        for status, n in self._s.execute(
                select(Device.status, func.count())
                .where(Device.status.in_(["warning", "contraindicated"]),
                       ~select(DeviceLifecycleRecord.device_id)
                       .where(DeviceLifecycleRecord.device_id == Device.id).exists())
                .group_by(Device.status)):
            out[STATUS_POSTURE[status]] += int(n)
        return out

    def breakdown(self) -> tuple[dict[str, int], dict[str, dict[str, dict[str, int]]]]:
        """Posture totals and posture counts per model and per owner, from one pass over
        devices joined with their lifecycle records (grouped by model, owner and posture).

        Returns:
            ``(totals, {"model": {key: {posture: n}}, "owner": {...}})``.
        """
        posture = _posture_expr()
        q = (select(Device.model, Device.owner, posture, func.count()).select_from(Device)
             .outerjoin(DeviceLifecycleRecord, DeviceLifecycleRecord.device_id == Device.id)
             .group_by(Device.model, Device.owner, posture))
        totals = dict.fromkeys(POSTURES, 0)
        by: dict[str, dict[str, dict[str, int]]] = {"model": {}, "owner": {}}
        for model, owner, p, count in self._s.execute(q):
            n = int(count)
            totals[p] = totals.get(p, 0) + n
            for dim, key in (("model", model or ""), ("owner", owner or "")):
                g = by[dim].setdefault(key, {})
                g[p] = g.get(p, 0) + n
        return totals, by

    def counts_by_firmware(self) -> dict[str, dict[str, int]]:
        """Posture counts per firmware version of devices with a lifecycle record (an
        index-only scan of ``(firmware_version, posture)``)."""
        out: dict[str, dict[str, int]] = {}
        for fw, p, n in self._s.execute(
                select(DeviceLifecycleRecord.firmware_version, DeviceLifecycleRecord.posture,
                       func.count())
                .group_by(DeviceLifecycleRecord.firmware_version,
                          DeviceLifecycleRecord.posture)):
            g = out.setdefault(fw or "", {})
            g[p] = g.get(p, 0) + int(n)
        return out

    def attestations_per_minute(self, *, since: datetime, until: datetime
                                ) -> list[tuple[datetime, str, int]]:
        """Appraisals per minute and status in ``[since, until)`` (index on created_at):
        ``(minute, status, count)`` rows, oldest first."""
        if self._s.get_bind().dialect.name == "postgresql":
            bucket: ColumnElement[Any] = func.date_trunc("minute", Attestation.created_at)
        else:
            bucket = func.strftime("%Y-%m-%d %H:%M:00", Attestation.created_at)
        q = (select(bucket.label("m"), Attestation.status, func.count())
             .where(Attestation.created_at >= since, Attestation.created_at < until)
             .group_by(bucket, Attestation.status).order_by(bucket))
        out: list[tuple[datetime, str, int]] = []
        for raw, status, n in self._s.execute(q):
            m = datetime.fromisoformat(raw) if isinstance(raw, str) else raw
            if m.tzinfo is None:
                m = m.replace(tzinfo=UTC)
            out.append((m.astimezone(UTC), status, int(n)))
        return out

    # -- device pages -------------------------------------------------------------------------
    def devices_with_posture(self, postures: Sequence[str], *, after: str | None,
                             limit: int) -> list[DeviceRow]:
        """Devices whose posture is one of ``postures``, by id (keyset on ``after``).

        Two index range scans merged: lifecycle records by ``(posture, device_id)`` and
        devices without a record by ``(status, id)``.
        """
        rows: list[DeviceRow] = []
        with_record = (select(*_ROW_COLUMNS).select_from(DeviceLifecycleRecord)
                       .join(Device, Device.id == DeviceLifecycleRecord.device_id)
                       .where(DeviceLifecycleRecord.posture.in_(list(postures)))
                       .order_by(DeviceLifecycleRecord.device_id).limit(limit))
        if after is not None:
            with_record = with_record.where(DeviceLifecycleRecord.device_id > after)
        rows.extend(_row(r) for r in self._s.execute(with_record))
        statuses = [s for s, p in STATUS_POSTURE.items() if p in postures]
        if "unknown" in postures:
            statuses += ["none"]
        if statuses:
            no_record = (select(*_ROW_COLUMNS).select_from(Device)
                         .outerjoin(DeviceLifecycleRecord,
                                    DeviceLifecycleRecord.device_id == Device.id)
                         .where(Device.status.in_(statuses),
                                DeviceLifecycleRecord.device_id.is_(None))
                         .order_by(Device.id).limit(limit))
            if after is not None:
                no_record = no_record.where(Device.id > after)
            rows.extend(_row(r) for r in self._s.execute(no_record))
        rows.sort(key=lambda r: r.device_id)
        return rows[:limit]

    def past_deadline(self, now: datetime, *, after: str | None, limit: int
                      ) -> list[DeviceRow]:
        """Devices with a pending deadline before ``now`` whose stored posture does not say
        so yet (the overdue sweep has not reached them), by id."""
        q = (select(*_ROW_COLUMNS).select_from(DeviceLifecycleRecord)
             .join(Device, Device.id == DeviceLifecycleRecord.device_id)
             .where(DeviceLifecycleRecord.next_deadline < now,
                    DeviceLifecycleRecord.posture.in_(["trusted", "warning", "unknown"]))
             .order_by(DeviceLifecycleRecord.device_id).limit(limit))
        if after is not None:
            q = q.where(DeviceLifecycleRecord.device_id > after)
        return [_row(r) for r in self._s.execute(q)]

    def devices(self, *, model: str | None = None, owner: str | None = None,
                firmware_version: str | None = None, after: str | None, limit: int
                ) -> list[DeviceRow]:
        """Devices by id with optional filters (keyset on ``after``)."""
        q = (select(*_ROW_COLUMNS).select_from(Device)
             .outerjoin(DeviceLifecycleRecord, DeviceLifecycleRecord.device_id == Device.id)
             .order_by(Device.id).limit(limit))
        if after is not None:
            q = q.where(Device.id > after)
        if model is not None:
            q = q.where(Device.model == model)
        if owner is not None:
            q = q.where(Device.owner == owner)
        if firmware_version is not None:
            q = q.where(DeviceLifecycleRecord.firmware_version == firmware_version)
        return [_row(r) for r in self._s.execute(q)]

    def device(self, device_id: str) -> DeviceRow | None:
        """One device row."""
        q = (select(*_ROW_COLUMNS).select_from(Device)
             .outerjoin(DeviceLifecycleRecord, DeviceLifecycleRecord.device_id == Device.id)
             .where(Device.id == device_id))
        r = self._s.execute(q).first()
        return None if r is None else _row(r)

    def recently_changed(self, *, limit: int = 15) -> list[DeviceRow]:
        """The devices whose lifecycle record changed last (index on updated_at)."""
        q = (select(*_ROW_COLUMNS).select_from(DeviceLifecycleRecord)
             .join(Device, Device.id == DeviceLifecycleRecord.device_id)
             .order_by(DeviceLifecycleRecord.updated_at.desc()).limit(limit))
        return [_row(r) for r in self._s.execute(q)]

    # -- posture samples ----------------------------------------------------------------------
    def add_sample(self, at: datetime, counts: dict[str, int]) -> None:
        """Record the fleet posture at ``at`` (a second sample for the same instant, from
        another replica, replaces it)."""
        values = {"at": at, **{p: int(counts.get(p, 0)) for p in POSTURES}}
        dialect = self._s.get_bind().dialect.name
        ins = pg_insert(FleetPostureSample) if dialect == "postgresql" else \
            sqlite_insert(FleetPostureSample)
        self._s.execute(ins.values(**values).on_conflict_do_update(
            index_elements=["at"], set_={p: values[p] for p in POSTURES}))

    def samples(self, *, since: datetime) -> list[tuple[datetime, dict[str, int]]]:
        """Posture samples from ``since`` on, oldest first."""
        t = FleetPostureSample
        q = (select(t.at, t.trusted, t.warning, t.untrusted, t.overdue, t.unknown)
             .where(t.at >= since).order_by(t.at))
        return [(r[0], dict(zip(POSTURES, (int(v) for v in r[1:]), strict=True)))
                for r in self._s.execute(q)]

    def prune_samples(self, *, before: datetime) -> None:
        """Forget samples older than ``before``."""
        self._s.execute(delete(FleetPostureSample).where(FleetPostureSample.at < before)
                        .execution_options(synchronize_session=False))

    # -- sessions -----------------------------------------------------------------------------
    def add_session(self, *, id_hash: str, token_id: str, role: str, csrf: str,
                    now: datetime, expires_at: datetime) -> None:
        """Store a new login session."""
        self._s.add(DashboardSession(id_hash=id_hash, token_id=token_id, role=role, csrf=csrf,
                                     created_at=now, expires_at=expires_at))

    def live_session(self, id_hash: str, *, now: datetime) -> DashboardSession | None:
        """The unexpired session whose API token is still live (revoking the token ends its
        dashboard sessions at once)."""
        q = (select(DashboardSession).join(ApiToken, ApiToken.id == DashboardSession.token_id)
             .where(DashboardSession.id_hash == id_hash, DashboardSession.expires_at > now,
                    ApiToken.revoked_at.is_(None)))
        return self._s.scalars(q).first()

    def end_session(self, id_hash: str) -> None:
        """Log out."""
        self._s.execute(delete(DashboardSession).where(DashboardSession.id_hash == id_hash)
                        .execution_options(synchronize_session=False))

    def prune_sessions(self, *, now: datetime) -> None:
        """Delete expired sessions."""
        self._s.execute(delete(DashboardSession).where(DashboardSession.expires_at <= now)
                        .execution_options(synchronize_session=False))

    def touch_session(self, id_hash: str, *, expires_at: datetime) -> None:
        """Extend a session (sliding expiry)."""
        self._s.execute(update(DashboardSession).where(DashboardSession.id_hash == id_hash)
                        .values(expires_at=expires_at)
                        .execution_options(synchronize_session=False))


__all__ = ["POSTURES", "STATUS_POSTURE", "DashboardRepository", "DashboardSession",
           "DeviceRow", "FleetPostureSample"]
