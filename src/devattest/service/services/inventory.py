"""Device inventory and attestation history."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from devattest.service.problems import BadRequest, Conflict, NotFound
from devattest.store import (
    AttestationRepository,
    DeviceFilter,
    DeviceRepository,
    HistoryFilter,
    Store,
)
from devattest.store.models import Attestation, Device

_log = logging.getLogger(__name__)


def _check_instance_id(value: str | None) -> str | None:
    if value is None or value == "":
        return value
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise BadRequest("instance_id is hex", code="bad_instance_id") from None
    if not 1 <= len(raw) <= 64:
        raise BadRequest("instance_id is 1-64 bytes", code="bad_instance_id")
    return raw.hex()


class InventoryService:
    """Devices and their history."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create_device(self, *, device_id: str, model: str, owner: str, lifecycle_state: str,
                      instance_id: str | None, now: datetime) -> Device:
        """Raises: Conflict (exists), BadRequest (bad field)."""
        iid = _check_instance_id(instance_id)
        with self._store.write() as s:
            repo = DeviceRepository(s)
            if repo.get(device_id) is not None:
                raise Conflict(f"device {device_id!r} exists", code="device_exists")
            try:
                return repo.create(device_id=device_id, model=model, owner=owner,
                                   lifecycle_state=lifecycle_state, instance_id=iid, now=now)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None

    def update_device(self, device_id: str, *, now: datetime, model: str | None,
                      owner: str | None, lifecycle_state: str | None,
                      instance_id: str | None) -> Device:
        """Raises: NotFound, BadRequest."""
        iid = _check_instance_id(instance_id)
        with self._store.write() as s:
            repo = DeviceRepository(s)
            device = repo.lock(device_id)
            if device is None:
                raise NotFound(f"no device {device_id!r}")
            try:
                return repo.update(device, now=now, model=model, owner=owner,
                                   lifecycle_state=lifecycle_state, instance_id=iid)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None

    def rebind_device(self, device_id: str, *, instance_id: str | None,
                      now: datetime) -> Device:
        """Rebind a device (a provisioner's explicit action; device binding): bind it to
        ``instance_id`` (hex), or unbind it (None) so that its next affirming attestation
        binds it again. Evidence from any other identity is refused from then on.

        Raises:
            NotFound: no such device.
            BadRequest: the Instance ID is not 1-64 bytes of hex.
        """
        iid = _check_instance_id(instance_id) or None
        with self._store.write() as s:
            repo = DeviceRepository(s)
            device = repo.lock(device_id)
            if device is None:
                raise NotFound(f"no device {device_id!r}")
            previous = device.instance_id
            device.instance_id = iid
            device.updated_at = now
            s.flush()
            _log.warning("device %s rebound: instance_id %s -> %s", device_id,
                         previous or "(unbound)", iid or "(unbound)")
            return device

    def get_device(self, device_id: str) -> Device:
        """Raises: NotFound."""
        with self._store.read() as s:
            d = DeviceRepository(s).get(device_id)
        if d is None:
            raise NotFound(f"no device {device_id!r}")
        return d

    def delete_device(self, device_id: str) -> None:
        """Raises: NotFound."""
        with self._store.write() as s:
            if not DeviceRepository(s).delete(device_id):
                raise NotFound(f"no device {device_id!r}")

    def list_devices(self, flt: DeviceFilter, *, after: str | None, limit: int
                     ) -> Sequence[Device]:
        """Devices by id, keyset-paginated."""
        with self._store.read() as s:
            return DeviceRepository(s).search(flt, after=after, limit=limit)

    def distinct(self, column: str) -> list[str]:
        """Models or owners in the inventory."""
        with self._store.read() as s:
            return DeviceRepository(s).distinct_values(column)

    def latest_result(self, device_id: str, *, now: datetime) -> Attestation:
        """The passport: the newest unexpired EAR of the device.

        Raises:
            NotFound: no device, or no valid result.
        """
        with self._store.read() as s:
            if DeviceRepository(s).get(device_id) is None:
                raise NotFound(f"no device {device_id!r}")
            row = AttestationRepository(s).latest_valid(device_id, now=now)
        if row is None:
            raise NotFound(f"device {device_id!r} has no valid result", code="no_result")
        return row

    def history(self, flt: HistoryFilter, *, before_id: int | None, limit: int
                ) -> Sequence[Attestation]:
        """History newest first, keyset-paginated."""
        with self._store.read() as s:
            return AttestationRepository(s).search(flt, before_id=before_id, limit=limit)

    def history_entry(self, attestation_id: int) -> Attestation:
        """Raises: NotFound."""
        with self._store.read() as s:
            row = AttestationRepository(s).get(attestation_id)
        if row is None:
            raise NotFound(f"no attestation {attestation_id}")
        return row
