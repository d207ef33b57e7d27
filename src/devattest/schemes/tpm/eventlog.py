"""Measured-boot event logs: parse, replay into PCR values, and name the components.

Two forms are accepted:

* **TCG PC Client crypto-agile log** (TCG PC Client Platform Firmware Profile, section 10):
  a ``TCG_PCR_EVENT`` header carrying ``TCG_EfiSpecIdEvent`` ("Spec ID Event03"), then
  ``TCG_PCR_EVENT2`` records with a digest per bank. This is what UEFI firmware writes and
  ``tpm2_eventlog`` reads.
* **devattest compact log**, for non-UEFI devices: a CBOR array of events
  ``[pcr, name, version / null, measurement]``. The digest extended into each bank is
  ``H_bank(event_data)`` with ``event_data = u16(len(name)) || name || u16(len(version)) ||
  version || measurement`` (UTF-8 strings, big-endian lengths), so the name and the version
  are covered by the quote, not just the measurement. ``measurement`` is the component's
  SHA-256 image digest (what Reference Values list). The reserved name
  ``devattest.class-id`` carries the device class (UTF-8 in ``measurement``) and is not a
  software component.

Parsing is strict and bounded; failures raise :class:`devattest.errors.MalformedEventLog`.
"""

from __future__ import annotations

from dataclasses import dataclass
from struct import Struct
from typing import Any

from devattest.errors import MalformedEventLog
from devattest.schemes.tpm.structures import HASH_ALGS, HASH_CTORS, HASH_NAMES

#: Compact-log event name that carries the device class instead of a component.
CLASS_ID_EVENT = "devattest.class-id"
#: PCRs a compact log may extend (the static, non-resettable PC Client PCRs).
COMPACT_PCRS = range(16)
MAX_NAME = 128
MAX_VERSION = 64
MAX_EVENT_DATA = 64 * 1024

# TCG PC Client event types (PFP section 10.4.1).
EV_POST_CODE = 0x00000001
EV_NO_ACTION = 0x00000003
EV_SEPARATOR = 0x00000004
EV_S_CRTM_CONTENTS = 0x00000007
EV_S_CRTM_VERSION = 0x00000008
EV_IPL = 0x0000000D
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
EV_EFI_BOOT_SERVICES_DRIVER = 0x80000004
EV_EFI_RUNTIME_SERVICES_DRIVER = 0x80000005
EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008
EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000A

#: Event types that measure code, reported as software components (named by type).
COMPONENT_EVENT_TYPES: dict[int, str] = {
    EV_POST_CODE: "EV_POST_CODE",
    EV_S_CRTM_CONTENTS: "EV_S_CRTM_CONTENTS",
    EV_S_CRTM_VERSION: "EV_S_CRTM_VERSION",
    EV_IPL: "EV_IPL",
    EV_EFI_BOOT_SERVICES_APPLICATION: "EV_EFI_BOOT_SERVICES_APPLICATION",
    EV_EFI_BOOT_SERVICES_DRIVER: "EV_EFI_BOOT_SERVICES_DRIVER",
    EV_EFI_RUNTIME_SERVICES_DRIVER: "EV_EFI_RUNTIME_SERVICES_DRIVER",
    EV_EFI_PLATFORM_FIRMWARE_BLOB: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    EV_EFI_PLATFORM_FIRMWARE_BLOB2: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
}

_SPEC_ID = b"Spec ID Event03\0"
_STARTUP_LOCALITY = b"StartupLocality\0"
_U16 = Struct(">H")
_LE_U16 = Struct("<H")
_LE_U32 = Struct("<I")
_LE_2U32 = Struct("<II")
_N_COMPACT_PCRS = len(COMPACT_PCRS)


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One event: the PCR, digests per bank, and what it says it measured."""

    pcr: int
    #: {TPM_ALG_ID: digest extended into that bank}.
    digests: dict[int, bytes]
    #: Component name (compact) or event-type name (TCG); None for non-component events.
    component: str | None
    version: str | None = None
    #: Reference-Value measurement: compact ``measurement``, TCG SHA-256 digest.
    measurement: bytes = b""
    event_type: int = 0
    #: Compact logs: the event data every bank's digest is computed over
    #: (:func:`compact_event_data`); empty for TCG events.
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class EventLog:
    """A parsed log: its format, events, and PCR initial values (locality)."""

    format: str  # "tcg" or "compact"
    events: tuple[LogEvent, ...]
    #: Banks the log records digests for (compact: any bank; computed on demand).
    banks: frozenset[int] | None
    startup_locality: int = 0
    class_id: str | None = None


def compact_event_data(name: str, version: str | None, measurement: bytes) -> bytes:
    """The bytes a compact-log event's digests are computed over (see module doc)."""
    n = name.encode()
    v = (version or "").encode()
    return _U16.pack(len(n)) + n + _U16.pack(len(v)) + v + measurement


def parse_compact(items: Any, *, max_events: int) -> EventLog:
    """Parse a decoded compact log (CBOR array).

    Raises:
        MalformedEventLog: wrong shape, types or sizes.
    """
    if not isinstance(items, list):
        raise MalformedEventLog("compact event log must be an array")
    if len(items) > max_events:
        raise MalformedEventLog(f"{len(items)} events exceed the limit of {max_events}")
    events = []
    class_id = None
    pack = _U16.pack
    for i, ev in enumerate(items):
        if not isinstance(ev, list) or len(ev) != 4:
            raise MalformedEventLog(f"event {i}: must be [pcr, name, version, measurement]")
        pcr, name, version, meas = ev
        if type(pcr) is not int or not 0 <= pcr < _N_COMPACT_PCRS:
            raise MalformedEventLog(f"event {i}: PCR must be an integer 0-15")
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            raise MalformedEventLog(f"event {i}: name must be 1-{MAX_NAME} characters")
        if version is not None and (not isinstance(version, str) or len(version) > MAX_VERSION):
            raise MalformedEventLog(f"event {i}: version must be text of <= {MAX_VERSION}")
        if not isinstance(meas, bytes) or not 0 < len(meas) <= MAX_EVENT_DATA:
            raise MalformedEventLog(f"event {i}: measurement must be a non-empty byte string")
        # compact_event_data, inline: u16(len(name)) || name || u16(len(version)) || ...
        n = name.encode()
        v = version.encode() if version else b""
        data = pack(len(n)) + n + pack(len(v)) + v + meas
        if name == CLASS_ID_EVENT:
            if class_id is not None:
                raise MalformedEventLog("the device class is measured twice")
            try:
                class_id = meas.decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedEventLog("the device class is not UTF-8") from None
            events.append(LogEvent(pcr, {}, None, version, meas, 0, data))
        else:
            events.append(LogEvent(pcr, {}, name, version, meas, 0, data))
    return EventLog("compact", tuple(events), None, 0, class_id)


def _compact_digest(ev: LogEvent, alg: int) -> bytes:
    data = ev.data
    if not data:  # a LogEvent built by hand rather than by parse_compact
        name = ev.component if ev.component is not None else CLASS_ID_EVENT
        data = compact_event_data(name, ev.version, ev.measurement)
    digest: bytes = HASH_CTORS[alg](data).digest()
    return digest


def parse_tcg(data: bytes, *, max_events: int) -> EventLog:
    """Parse a TCG PC Client crypto-agile binary event log (PFP sections 10.2.1, 10.2.2).

    Raises:
        MalformedEventLog: not a crypto-agile log, truncated, oversized or inconsistent.
    """
    n = len(data)
    pos = 0

    def need(k: int) -> int:
        nonlocal pos
        p = pos
        if k < 0 or p + k > n:
            raise MalformedEventLog(f"TCG event log truncated at byte {p}")
        pos = p + k
        return p

    # 10.2.1: the first event is a TCG_PCR_EVENT (SHA-1 format) holding TCG_EfiSpecIdEvent.
    p = need(8)
    pcr0, etype0 = _LE_2U32.unpack_from(data, p)
    need(20)
    size0 = _LE_U32.unpack_from(data, need(4))[0]
    if etype0 != EV_NO_ACTION or pcr0 != 0 or size0 > 4096:
        raise MalformedEventLog("TCG event log does not start with a Spec ID event")
    spec = data[need(size0):pos]
    if len(spec) < 24 + 4 or spec[:16] != _SPEC_ID:
        raise MalformedEventLog("not a crypto-agile (Spec ID Event03) event log")
    n_algs = _LE_U32.unpack_from(spec, 24)[0]
    if n_algs == 0 or n_algs > 8 or len(spec) < 28 + 4 * n_algs + 1:
        raise MalformedEventLog("TCG_EfiSpecIdEvent: bad digest algorithm list")
    sizes: dict[int, int] = {}
    for k in range(n_algs):
        alg, dsize = _LE_U16.unpack_from(spec, 28 + 4 * k)[0], _LE_U16.unpack_from(
            spec, 30 + 4 * k)[0]
        if alg in HASH_ALGS and HASH_ALGS[alg][1] != dsize:
            raise MalformedEventLog(f"TCG_EfiSpecIdEvent: wrong size for {alg:#06x}")
        if dsize == 0 or dsize > 64:
            raise MalformedEventLog("TCG_EfiSpecIdEvent: bad digest size")
        sizes[alg] = dsize
    events: list[LogEvent] = []
    locality = 0
    while pos < n:
        if len(events) >= max_events:
            raise MalformedEventLog(f"more than {max_events} events")
        pcr, etype = _LE_2U32.unpack_from(data, need(8))
        if pcr > 23:
            raise MalformedEventLog(f"event {len(events)}: PCR {pcr} out of range")
        count = _LE_U32.unpack_from(data, need(4))[0]
        if count != len(sizes):
            raise MalformedEventLog(f"event {len(events)}: {count} digests, the log "
                                    f"declares {len(sizes)} banks")
        digests: dict[int, bytes] = {}
        for _ in range(count):
            alg = _LE_U16.unpack_from(data, need(2))[0]
            if alg not in sizes or alg in digests:
                raise MalformedEventLog(f"event {len(events)}: unexpected bank {alg:#06x}")
            digests[alg] = data[need(sizes[alg]):pos]
        esize = _LE_U32.unpack_from(data, need(4))[0]
        if esize > MAX_EVENT_DATA:
            raise MalformedEventLog(f"event {len(events)}: event data too large")
        body = data[need(esize):pos]
        if etype == EV_NO_ACTION:
            # PFP 10.4.5.3: StartupLocality sets PCR0's initial value; not extended.
            if pcr == 0 and body[:16] == _STARTUP_LOCALITY and len(body) == 17:
                locality = body[16]
            continue
        comp = COMPONENT_EVENT_TYPES.get(etype)
        events.append(LogEvent(pcr, digests, comp, None,
                               digests.get(0x000B, next(iter(digests.values()))), etype))
    return EventLog("tcg", tuple(events), frozenset(sizes), locality, None)


def parse_event_log(value: Any, *, max_events: int) -> EventLog:
    """A compact log (decoded CBOR array) or a TCG binary log (byte string).

    Raises:
        MalformedEventLog: neither form, or malformed.
    """
    if isinstance(value, bytes):
        return parse_tcg(value, max_events=max_events)
    if isinstance(value, list):
        return parse_compact(value, max_events=max_events)
    raise MalformedEventLog("the event log must be a byte string (TCG) or an array (compact)")


def replay(log: EventLog, pcrs: dict[int, frozenset[int]] | dict[int, tuple[int, ...]]
           ) -> tuple[dict[int, dict[int, bytes]], int]:
    """Replay the log into the given banks and PCRs (PC Client initial values).

    Returns:
        ({alg: {pcr: value}}, number of events for PCRs outside ``pcrs``, which are ignored).

    Raises:
        MalformedEventLog: a TCG log lacks digests for a requested bank.
    """
    out: dict[int, dict[int, bytes]] = {}
    ignored = 0
    wanted_any: set[int] = set()
    for alg, idx in pcrs.items():
        if log.banks is not None and alg not in log.banks:
            raise MalformedEventLog(
                f"the event log has no {HASH_NAMES.get(alg, hex(alg))} digests")
        size = HASH_ALGS[alg][1]
        vals = dict.fromkeys(idx, b"\0" * size)
        wanted_any.update(idx)
        if 0 in vals and log.startup_locality:
            vals[0] = b"\0" * (size - 1) + bytes([log.startup_locality])
        out[alg] = vals
    compact = log.format != "tcg"
    banks = [(alg, vals, HASH_CTORS[alg]) for alg, vals in out.items()]
    for ev in log.events:
        pcr = ev.pcr
        if pcr not in wanted_any:
            ignored += 1
            continue
        for alg, vals, h in banks:
            cur = vals.get(pcr)
            if cur is None:
                continue
            d = _compact_digest(ev, alg) if compact else ev.digests.get(alg)
            if d is None:  # pragma: no cover - banks checked above
                raise MalformedEventLog("event lacks a digest")
            vals[pcr] = h(cur + d).digest()
    return out, ignored


__all__ = [
    "CLASS_ID_EVENT",
    "EventLog",
    "LogEvent",
    "compact_event_data",
    "parse_compact",
    "parse_event_log",
    "parse_tcg",
    "replay",
]
