"""Fleet scenarios for the simulator: the fleet, lifecycle waves and adversaries, and the
final check (every adversary caught, every honest device trusted). Pure: parsing and
judging only; ``devattest.transport.simulator`` runs them.

A scenario file (YAML)::

    name: lifecycle demo
    devices: 24                     # fleet size
    models: [acme-cam, acme-gw]     # devices are spread over the models
    firmware: {initial: "1.0", versions: ["1.0", "1.1", "2.0"], vulnerable: "0.9"}
    owners: [acme, globex]
    hardware: {softhsm: 1, swtpm: 1}  # devices on real secure elements (if installed)
    deadline_seconds: 30
    adversaries: [tampered_firmware, rollback_vulnerable, debug_enabled, replayed_evidence,
                  cloned_key, wrong_device_id, ignores_challenges]
    waves:
      - {name: boot, event: boot}
      - {name: fleet-wide update, event: firmware_update, firmware_version: "1.1"}
      - {name: bad update, event: firmware_update, firmware_version: "2.0-bad", bad: true,
         fraction: 0.1}
      - {name: roll back the bad update, event: firmware_rollback, firmware_version: "1.1",
         target: bad_update, release: true}
      - {name: ownership transfer, event: ownership_transfer, owner: globex, fraction: 0.25}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from devattest.errors import ConfigurationError
from devattest.lifecycle.model import EventKind, Posture


class Adversary(StrEnum):
    """Adversarial devices the simulator plays, and what must catch them."""

    TAMPERED_FIRMWARE = "tampered_firmware"
    ROLLBACK_VULNERABLE = "rollback_vulnerable"
    DEBUG_ENABLED = "debug_enabled"
    REPLAYED_EVIDENCE = "replayed_evidence"
    CLONED_KEY = "cloned_key"
    WRONG_DEVICE_ID = "wrong_device_id"
    IGNORES_CHALLENGES = "ignores_challenges"


#: The posture each adversary must end with.
CAUGHT_AS: Mapping[Adversary, frozenset[Posture]] = {
    a: frozenset({Posture.UNTRUSTED}) for a in Adversary
} | {Adversary.IGNORES_CHALLENGES: frozenset({Posture.OVERDUE, Posture.UNTRUSTED})}


@dataclass(frozen=True, slots=True)
class Wave:
    """One lifecycle wave: an event reported by a set of devices."""

    name: str
    event: EventKind
    firmware_version: str | None = None
    owner: str | None = None
    #: The update installs firmware that is not among the Reference Values.
    bad: bool = False
    #: Share of the honest fleet taking part (1.0: everyone); adversaries always take part.
    fraction: float = 1.0
    #: ``all``, or ``bad_update``: the devices that took the last bad update.
    target: str = "all"
    #: Release devices from quarantine first (an operator's remediation).
    release: bool = False


@dataclass(frozen=True, slots=True)
class Scenario:
    """A fleet and its lifecycle."""

    name: str = "lifecycle"
    devices: int = 24
    models: tuple[str, ...] = ("acme-cam", "acme-gw")
    owners: tuple[str, ...] = ("acme", "globex")
    initial_firmware: str = "1.0"
    firmware_versions: tuple[str, ...] = ("1.0", "1.1", "2.0")
    vulnerable_firmware: str = "0.9"
    softhsm: int = 0
    swtpm: int = 0
    deadline_seconds: int = 30
    adversaries: tuple[Adversary, ...] = tuple(Adversary)
    waves: tuple[Wave, ...] = field(default_factory=lambda: DEFAULT_WAVES)


DEFAULT_WAVES: tuple[Wave, ...] = (
    Wave("boot", EventKind.BOOT),
    Wave("fleet-wide update to 1.1", EventKind.FIRMWARE_UPDATE, firmware_version="1.1"),
    Wave("bad update 2.0-rc", EventKind.FIRMWARE_UPDATE, firmware_version="2.0-rc",
         bad=True, fraction=0.1),
    Wave("roll back the bad update", EventKind.FIRMWARE_ROLLBACK, firmware_version="1.1",
         target="bad_update", release=True),
    Wave("ownership transfer to globex", EventKind.OWNERSHIP_TRANSFER, owner="globex",
         fraction=0.25),
)


def _str(v: Any, what: str) -> str:
    if not isinstance(v, (str, int, float)) or isinstance(v, bool):
        raise ConfigurationError(f"scenario: {what} must be a string")
    return str(v)


def _strs(v: Any, what: str) -> tuple[str, ...]:
    if not isinstance(v, Sequence) or isinstance(v, str) or not v:
        raise ConfigurationError(f"scenario: {what} must be a non-empty list")
    return tuple(_str(x, what) for x in v)


def _int(v: Any, what: str, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigurationError(f"scenario: {what} must be an integer in [{lo}, {hi}]")
    return v


def _wave(w: Any, i: int) -> Wave:
    if not isinstance(w, Mapping):
        raise ConfigurationError(f"scenario: waves[{i}] must be a mapping")
    unknown = set(w) - {"name", "event", "firmware_version", "owner", "bad", "fraction",
                        "target", "release"}
    if unknown:
        raise ConfigurationError(f"scenario: waves[{i}] has unknown keys {sorted(unknown)}")
    try:
        kind = EventKind(str(w.get("event")))
    except ValueError:
        raise ConfigurationError(f"scenario: waves[{i}].event: one of "
                                 f"{[k.value for k in EventKind]}") from None
    frac = w.get("fraction", 1.0)
    if not isinstance(frac, (int, float)) or isinstance(frac, bool) or not 0 < frac <= 1:
        raise ConfigurationError(f"scenario: waves[{i}].fraction must be in (0, 1]")
    target = w.get("target", "all")
    if target not in ("all", "bad_update"):
        raise ConfigurationError(f"scenario: waves[{i}].target: all or bad_update")
    fw = w.get("firmware_version")
    owner = w.get("owner")
    return Wave(name=_str(w.get("name", f"wave {i + 1}"), f"waves[{i}].name"), event=kind,
                firmware_version=None if fw is None else _str(fw, "firmware_version"),
                owner=None if owner is None else _str(owner, "owner"),
                bad=bool(w.get("bad", False)), fraction=float(frac), target=str(target),
                release=bool(w.get("release", False)))


def parse_scenario(doc: Any) -> Scenario:
    """A :class:`Scenario` from a parsed YAML/JSON document (absent keys take defaults).

    Raises:
        ConfigurationError: the document is malformed (the message names the field).
    """
    if not isinstance(doc, Mapping):
        raise ConfigurationError("scenario: the document must be a mapping")
    known = {"name", "devices", "models", "owners", "firmware", "hardware",
             "deadline_seconds", "adversaries", "waves"}
    if set(doc) - known:
        raise ConfigurationError(f"scenario: unknown keys {sorted(set(doc) - known)}")
    base = Scenario()
    fw = doc.get("firmware", {})
    hw = doc.get("hardware", {})
    if not isinstance(fw, Mapping) or not isinstance(hw, Mapping):
        raise ConfigurationError("scenario: firmware and hardware must be mappings")
    try:
        adversaries = tuple(Adversary(a) for a in doc.get("adversaries", base.adversaries))
    except ValueError as exc:
        raise ConfigurationError(f"scenario: adversaries: {exc}") from None
    waves_doc = doc.get("waves")
    waves = DEFAULT_WAVES if waves_doc is None else tuple(
        _wave(w, i) for i, w in enumerate(waves_doc))
    n = _int(doc.get("devices", base.devices), "devices", 1, 1_000_000)
    scenario = Scenario(
        name=_str(doc.get("name", base.name), "name"), devices=n,
        models=_strs(doc.get("models", base.models), "models"),
        owners=_strs(doc.get("owners", base.owners), "owners"),
        initial_firmware=_str(fw.get("initial", base.initial_firmware), "firmware.initial"),
        firmware_versions=_strs(fw.get("versions", base.firmware_versions),
                                "firmware.versions"),
        vulnerable_firmware=_str(fw.get("vulnerable", base.vulnerable_firmware),
                                 "firmware.vulnerable"),
        softhsm=_int(hw.get("softhsm", 0), "hardware.softhsm", 0, 64),
        swtpm=_int(hw.get("swtpm", 0), "hardware.swtpm", 0, 8),
        deadline_seconds=_int(doc.get("deadline_seconds", base.deadline_seconds),
                              "deadline_seconds", 1, 86400),
        adversaries=adversaries, waves=waves)
    if len(adversaries) + scenario.softhsm + scenario.swtpm > n:
        raise ConfigurationError("scenario: more adversaries and hardware devices than devices")
    if scenario.initial_firmware not in scenario.firmware_versions:
        raise ConfigurationError("scenario: firmware.initial must be among firmware.versions")
    for w in waves:
        if w.firmware_version and not w.bad and w.firmware_version not in \
                scenario.firmware_versions:
            raise ConfigurationError(
                f"scenario: wave {w.name!r} installs {w.firmware_version}, which is not among "
                "firmware.versions (mark it bad: true if that is the point)")
    return scenario


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one device ended."""

    device_id: str
    role: str  # "honest" or an Adversary value
    posture: Posture
    reason: str

    @property
    def adversary(self) -> bool:
        """Whether the device played an adversary."""
        return self.role != "honest"

    @property
    def correct(self) -> bool:
        """An honest device trusted; an adversary caught."""
        if not self.adversary:
            return self.posture is Posture.TRUSTED
        return self.posture in CAUGHT_AS[Adversary(self.role)]


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The simulator's own check."""

    verdicts: tuple[Verdict, ...]

    @property
    def false_accepts(self) -> tuple[Verdict, ...]:
        """Adversaries not caught."""
        return tuple(v for v in self.verdicts if v.adversary and not v.correct)

    @property
    def false_rejects(self) -> tuple[Verdict, ...]:
        """Honest devices not trusted."""
        return tuple(v for v in self.verdicts if not v.adversary and not v.correct)

    @property
    def ok(self) -> bool:
        """Zero false accepts and zero false rejects."""
        return not self.false_accepts and not self.false_rejects


def check(verdicts: Iterable[Verdict]) -> CheckReport:
    """Judge the fleet's final postures."""
    return CheckReport(tuple(verdicts))
