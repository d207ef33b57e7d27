"""Fleet aggregates: posture counts by model, firmware version, owner, state or posture."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from devattest.lifecycle.model import DeviceLifecycle, Posture
from devattest.lifecycle.posture import DevicePosture


class Dimension(StrEnum):
    """What to group a fleet by."""

    MODEL = "model"
    FIRMWARE_VERSION = "firmware_version"
    OWNER = "owner"
    STATE = "state"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class FleetGroup:
    """One group of a fleet aggregate."""

    key: str
    total: int
    by_posture: Mapping[Posture, int]

    def count(self, posture: Posture) -> int:
        """How many devices in the group have ``posture``."""
        return self.by_posture.get(posture, 0)


def _key(device: DeviceLifecycle, posture: DevicePosture, by: Dimension) -> str:
    if by is Dimension.MODEL:
        return device.model
    if by is Dimension.FIRMWARE_VERSION:
        return device.firmware_version
    if by is Dimension.OWNER:
        return device.owner
    if by is Dimension.STATE:
        return device.state.value
    return posture.posture.value


def aggregate(fleet: Iterable[tuple[DeviceLifecycle, DevicePosture]], *, by: Dimension
              ) -> list[FleetGroup]:
    """Posture counts per group, groups sorted by key.

    Args:
        fleet: each device with its posture (from :func:`devattest.lifecycle.assess`).
        by: the grouping dimension.

    Raises:
        ValueError: a posture belongs to another device than the record it is paired with.
    """
    counts: dict[str, Counter[Posture]] = {}
    for device, posture in fleet:
        if device.device_id != posture.device_id:
            raise ValueError("posture paired with the wrong device")
        counts.setdefault(_key(device, posture, by), Counter())[posture.posture] += 1
    return [FleetGroup(key=k, total=sum(c.values()), by_posture=dict(c))
            for k, c in sorted(counts.items())]


def totals(postures: Iterable[DevicePosture]) -> dict[Posture, int]:
    """How many devices have each posture (every posture present, zero if none)."""
    c = Counter(p.posture for p in postures)
    return {p: c.get(p, 0) for p in Posture}
