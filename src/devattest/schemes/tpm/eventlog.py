"""Measured-boot event logs: parse, replay into PCR values, and name the components.

Three forms are accepted:

* **TCG PC Client crypto-agile log** (TCG PC Client Platform Firmware Profile, section 10):
  a ``TCG_PCR_EVENT`` header carrying ``TCG_EfiSpecIdEvent`` ("Spec ID Event03"), then
  ``TCG_PCR_EVENT2`` records with a digest per bank. This is what UEFI firmware writes and
  ``tpm2_eventlog`` reads.
* **TCG 1.2 SHA-1 log** (PFP section 10.2.1 ``TCG_PCClientPCREvent``, the only record of
  the TCG PC Client Specific Implementation Specification for Conventional BIOS section
  11.1.1): ``TCG_PCR_EVENT`` records only (pcrIndex u32, eventType u32, digest[20],
  eventSize u32, event, little-endian), and no Spec ID Event03. BIOS firmware, older UEFI
  firmware and many cloud images (Debian 10, say) write it, on TPM 1.2 and TPM 2.0 alike. It
  replays only into the SHA-1 bank, and the scheme marks such an appraisal as weak.
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

#: ``EventLog.format`` of each form.
FORMAT_TCG = "tcg"
FORMAT_TCG_SHA1 = "tcg-sha1"
FORMAT_COMPACT = "compact"
#: Names of the formats, for messages.
FORMAT_NAMES = {
    FORMAT_TCG: "TCG crypto-agile (Spec ID Event03, TCG_PCR_EVENT2) event log",
    FORMAT_TCG_SHA1: "TCG 1.2 SHA-1 (TCG_PCR_EVENT, no Spec ID Event03) event log",
    FORMAT_COMPACT: "devattest compact event log",
}
#: Largest TCG binary event log accepted by default, in bytes. Bare-metal logs (option ROMs,
#: many EFI drivers and variables, Secure Boot databases) exceed 64 KiB; 1 MiB holds the
#: largest seen with room to spare. The scheme's ``max_eventlog_bytes`` changes it.
DEFAULT_MAX_EVENTLOG_BYTES = 1024 * 1024

_SPEC_ID = b"Spec ID Event03\0"
_STARTUP_LOCALITY = b"StartupLocality\0"
_U16 = Struct(">H")
_LE_U16 = Struct("<H")
_LE_U32 = Struct("<I")
_LE_2U32 = Struct("<II")
_SHA1_SIZE = 20
_ALG_SHA1 = 0x0004
_ALG_SHA256 = 0x000B
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

    format: str  # FORMAT_TCG, FORMAT_TCG_SHA1 or FORMAT_COMPACT
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
    return EventLog(FORMAT_COMPACT, tuple(events), None, 0, class_id)


def _compact_digest(ev: LogEvent, alg: int) -> bytes:
    data = ev.data
    if not data:  # a LogEvent built by hand rather than by parse_compact
        name = ev.component if ev.component is not None else CLASS_ID_EVENT
        data = compact_event_data(name, ev.version, ev.measurement)
    digest: bytes = HASH_CTORS[alg](data).digest()
    return digest


def _starts_crypto_agile(data: bytes) -> bool:
    """Whether the log opens with the crypto-agile header: a TCG_PCR_EVENT for PCR 0 of type
    EV_NO_ACTION whose event is a TCG_EfiSpecIdEvent with signature "Spec ID Event03"
    (PFP section 10.4.5.1)."""
    if len(data) < 32 + len(_SPEC_ID):
        return False
    pcr0, etype0 = _LE_2U32.unpack_from(data, 0)
    return pcr0 == 0 and etype0 == EV_NO_ACTION and data[32:32 + len(_SPEC_ID)] == _SPEC_ID


def parse_tcg(data: bytes, *, max_events: int,
              max_bytes: int = DEFAULT_MAX_EVENTLOG_BYTES) -> EventLog:
    """Parse a TCG PC Client binary event log: crypto-agile, or the TCG 1.2 SHA-1 format.

    A log that opens with a Spec ID Event03 is crypto-agile (PFP section 10.2.2); any other
    is read as TCG 1.2 SHA-1 ``TCG_PCR_EVENT`` records (PFP section 10.2.1). Every error
    message names the format the log was read as.

    Raises:
        MalformedEventLog: empty, larger than ``max_bytes``, truncated, oversized or
            inconsistent.
    """
    if len(data) > max_bytes:
        raise MalformedEventLog(f"TCG event log of {len(data)} bytes exceeds the limit of "
                                f"{max_bytes} (max_eventlog_bytes)")
    if not data:
        raise MalformedEventLog("the TCG event log is empty")
    if _starts_crypto_agile(data):
        return _parse_crypto_agile(data, max_events=max_events)
    return _parse_sha1(data, max_events=max_events)


def _parse_sha1(data: bytes, *, max_events: int) -> EventLog:
    # PFP section 10.2.1 (TCG_PCClientPCREvent): pcrIndex u32, eventType u32, digest[20]
    # (SHA-1), eventDataSize u32, event[eventDataSize]; little-endian, no header.
    what = FORMAT_NAMES[FORMAT_TCG_SHA1]
    n = len(data)
    pos = 0
    events: list[LogEvent] = []
    locality = 0
    index = 0
    while pos < n:
        if index >= max_events:
            raise MalformedEventLog(f"{what}: more than {max_events} events")
        if pos + 32 > n:
            raise MalformedEventLog(f"{what}: event {index} header truncated at byte {pos}")
        pcr, etype = _LE_2U32.unpack_from(data, pos)
        digest = data[pos + 8:pos + 8 + _SHA1_SIZE]
        esize = _LE_U32.unpack_from(data, pos + 28)[0]
        if pcr > 23:
            raise MalformedEventLog(f"{what}: event {index}: PCR {pcr} out of range")
        if esize > MAX_EVENT_DATA:
            raise MalformedEventLog(f"{what}: event {index}: event data of {esize} bytes "
                                    f"exceeds {MAX_EVENT_DATA}")
        body_at = pos + 32
        if body_at + esize > n:
            raise MalformedEventLog(f"{what}: event {index} data truncated at byte {body_at}")
        body = data[body_at:body_at + esize]
        pos = body_at + esize
        index += 1
        if etype == EV_NO_ACTION:
            # PFP 10.4.5: EV_NO_ACTION (a TCG 1.2 "Spec ID Event00/02" header, or
            # StartupLocality) is informative and never extended.
            if pcr == 0 and body[:16] == _STARTUP_LOCALITY and len(body) == 17:
                locality = body[16]
            continue
        comp = COMPONENT_EVENT_TYPES.get(etype)
        events.append(LogEvent(pcr, {_ALG_SHA1: digest}, comp, None, digest, etype))
    return EventLog(FORMAT_TCG_SHA1, tuple(events), frozenset({_ALG_SHA1}), locality, None)


def _parse_crypto_agile(data: bytes, *, max_events: int) -> EventLog:
    what = FORMAT_NAMES[FORMAT_TCG]
    n = len(data)
    pos = 0

    def need(k: int) -> int:
        nonlocal pos
        p = pos
        if k < 0 or p + k > n:
            raise MalformedEventLog(f"{what}: truncated at byte {p}")
        pos = p + k
        return p

    # 10.2.1: the first event is a TCG_PCR_EVENT (SHA-1 format) holding TCG_EfiSpecIdEvent.
    p = need(8)
    pcr0, etype0 = _LE_2U32.unpack_from(data, p)
    need(20)
    size0 = _LE_U32.unpack_from(data, need(4))[0]
    if etype0 != EV_NO_ACTION or pcr0 != 0 or size0 > 4096:
        raise MalformedEventLog(f"{what}: does not start with a Spec ID event")
    spec = data[need(size0):pos]
    if len(spec) < 24 + 4 or spec[:16] != _SPEC_ID:
        raise MalformedEventLog(f"{what}: the Spec ID event is not Spec ID Event03")
    n_algs = _LE_U32.unpack_from(spec, 24)[0]
    if n_algs == 0 or n_algs > 8 or len(spec) < 28 + 4 * n_algs + 1:
        raise MalformedEventLog(f"{what}: TCG_EfiSpecIdEvent: bad digest algorithm list")
    sizes: dict[int, int] = {}
    for k in range(n_algs):
        alg, dsize = _LE_U16.unpack_from(spec, 28 + 4 * k)[0], _LE_U16.unpack_from(
            spec, 30 + 4 * k)[0]
        if alg in HASH_ALGS and HASH_ALGS[alg][1] != dsize:
            raise MalformedEventLog(f"{what}: TCG_EfiSpecIdEvent: wrong size for {alg:#06x}")
        if dsize == 0 or dsize > 64:
            raise MalformedEventLog(f"{what}: TCG_EfiSpecIdEvent: bad digest size")
        sizes[alg] = dsize
    events: list[LogEvent] = []
    locality = 0
    while pos < n:
        if len(events) >= max_events:
            raise MalformedEventLog(f"{what}: more than {max_events} events")
        pcr, etype = _LE_2U32.unpack_from(data, need(8))
        if pcr > 23:
            raise MalformedEventLog(f"{what}: event {len(events)}: PCR {pcr} out of range")
        count = _LE_U32.unpack_from(data, need(4))[0]
        if count != len(sizes):
            raise MalformedEventLog(f"{what}: event {len(events)}: {count} digests, the log "
                                    f"declares {len(sizes)} banks")
        digests: dict[int, bytes] = {}
        for _ in range(count):
            alg = _LE_U16.unpack_from(data, need(2))[0]
            if alg not in sizes or alg in digests:
                raise MalformedEventLog(f"{what}: event {len(events)}: unexpected bank "
                                        f"{alg:#06x}")
            digests[alg] = data[need(sizes[alg]):pos]
        esize = _LE_U32.unpack_from(data, need(4))[0]
        if esize > MAX_EVENT_DATA:
            raise MalformedEventLog(f"{what}: event {len(events)}: event data too large")
        body = data[need(esize):pos]
        if etype == EV_NO_ACTION:
            # PFP 10.4.5.3: StartupLocality sets PCR0's initial value; not extended.
            if pcr == 0 and body[:16] == _STARTUP_LOCALITY and len(body) == 17:
                locality = body[16]
            continue
        comp = COMPONENT_EVENT_TYPES.get(etype)
        events.append(LogEvent(pcr, digests, comp, None,
                               digests.get(_ALG_SHA256, next(iter(digests.values()))), etype))
    return EventLog(FORMAT_TCG, tuple(events), frozenset(sizes), locality, None)


def parse_event_log(value: Any, *, max_events: int,
                    max_bytes: int = DEFAULT_MAX_EVENTLOG_BYTES) -> EventLog:
    """A compact log (decoded CBOR array) or a TCG binary log (byte string).

    Raises:
        MalformedEventLog: neither form, or malformed.
    """
    if isinstance(value, bytes):
        return parse_tcg(value, max_events=max_events, max_bytes=max_bytes)
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
            held = ", ".join(HASH_NAMES.get(b, hex(b)) for b in sorted(log.banks))
            raise MalformedEventLog(
                f"the {FORMAT_NAMES.get(log.format, log.format)} has no "
                f"{HASH_NAMES.get(alg, hex(alg))} digests (it holds {held})")
        size = HASH_ALGS[alg][1]
        vals = dict.fromkeys(idx, b"\0" * size)
        wanted_any.update(idx)
        if 0 in vals and log.startup_locality:
            vals[0] = b"\0" * (size - 1) + bytes([log.startup_locality])
        out[alg] = vals
    compact = log.format == FORMAT_COMPACT
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
    "DEFAULT_MAX_EVENTLOG_BYTES",
    "FORMAT_COMPACT",
    "FORMAT_NAMES",
    "FORMAT_TCG",
    "FORMAT_TCG_SHA1",
    "EventLog",
    "LogEvent",
    "compact_event_data",
    "parse_compact",
    "parse_event_log",
    "parse_tcg",
    "replay",
]
