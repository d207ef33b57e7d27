"""The device inventory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from devattest.store.models import Device

LIFECYCLE_STATES = ("provisioned", "active", "suspended", "decommissioned")


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    """Inventory filters; ``None`` means any."""

    model: str | None = None
    owner: str | None = None
    lifecycle_state: str | None = None
    status: str | None = None


class DeviceRepository:
    """Devices, and the per-device lock that serialises their Evidence."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def get(self, device_id: str) -> Device | None:
        """A device by id."""
        return self._s.get(Device, device_id)

    def lock(self, device_id: str) -> Device | None:
        """The device row, locked until the transaction ends (``SELECT ... FOR UPDATE``).

        Concurrent Evidence for one device is serialised by this lock on PostgreSQL, across
        replicas; on SQLite the write transaction (``BEGIN IMMEDIATE``) already serialises.
        """
        return self._s.scalars(
            select(Device).where(Device.id == device_id).with_for_update()).first()

    def create(self, *, device_id: str, now: datetime, model: str = "", owner: str = "",
               lifecycle_state: str = "active", instance_id: str | None = None) -> Device:
        """Add a device (the caller checks it does not exist).

        Raises:
            ValueError: unknown lifecycle state.
        """
        _check_state(lifecycle_state)
        device = Device(id=device_id, model=model, owner=owner, lifecycle_state=lifecycle_state,
                        instance_id=instance_id, status="none", latest_attestation_id=None,
                        created_at=now, updated_at=now)
        self._s.add(device)
        self._s.flush()
        return device

    def update(self, device: Device, *, now: datetime, model: str | None = None,
               owner: str | None = None, lifecycle_state: str | None = None,
               instance_id: str | None = None) -> Device:
        """Change inventory fields; ``None`` leaves a field alone.

        Raises:
            ValueError: unknown lifecycle state.
        """
        if model is not None:
            device.model = model
        if owner is not None:
            device.owner = owner
        if lifecycle_state is not None:
            _check_state(lifecycle_state)
            device.lifecycle_state = lifecycle_state
        if instance_id is not None:
            device.instance_id = instance_id or None
        device.updated_at = now
        return device

    def delete(self, device_id: str) -> bool:
        """Remove a device (its tokens and challenges go with it; history stays)."""
        device = self._s.get(Device, device_id)
        if device is None:
            return False
        self._s.delete(device)
        return True

    def search(self, flt: DeviceFilter, *, after: str | None = None, limit: int = 100
             ) -> Sequence[Device]:
        """Devices ordered by id, keyset-paginated (``after`` is the last id seen)."""
        q = select(Device).order_by(Device.id).limit(limit)
        if after is not None:
            q = q.where(Device.id > after)
        if flt.model is not None:
            q = q.where(Device.model == flt.model)
        if flt.owner is not None:
            q = q.where(Device.owner == flt.owner)
        if flt.lifecycle_state is not None:
            q = q.where(Device.lifecycle_state == flt.lifecycle_state)
        if flt.status is not None:
            q = q.where(Device.status == flt.status)
        return self._s.scalars(q).all()

    def distinct_values(self, column: str) -> list[str]:
        """The distinct models or owners in the inventory."""
        col = {"model": Device.model, "owner": Device.owner}[column]
        return [v for v in self._s.scalars(select(col).distinct().order_by(col)) if v]


def _check_state(state: str) -> None:
    if state not in LIFECYCLE_STATES:
        raise ValueError(f"unknown lifecycle state {state!r}; one of {LIFECYCLE_STATES}")
