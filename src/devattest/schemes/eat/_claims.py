"""EAT claims (RFC 9711 section 4) and CWT claims (RFC 8392 section 3.1) as typed values.

``parse_eat_claims`` turns a CBOR claims set into an :class:`EatClaimsSet`. A known claim of
the wrong type or size raises :class:`InvalidClaim` naming the claim; an unknown claim is kept
in ``unknown`` and is never fatal (RFC 9711 section 4: a receiver must not error out on claims
it does not understand).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from devattest.errors import InvalidClaim, shown

STEP = "5"

# RFC 8392 section 3.1 (CWT) and RFC 9711 section 10.2 (EAT) claim keys.
ISS, SUB, AUD, EXP, NBF, IAT, CTI = 1, 2, 3, 4, 5, 6, 7
NONCE = 10
UEID, SUEIDS, OEMID, HWMODEL, HWVERSION, UPTIME, OEMBOOT, DBGSTAT, LOCATION = (
    256, 257, 258, 259, 260, 261, 262, 263, 264)
PROFILE, SUBMODS, BOOTCOUNT, BOOTSEED, DLOAS, SWNAME, SWVERSION = (
    265, 266, 267, 268, 269, 270, 271)
MANIFESTS, MEASUREMENTS, MEASRES, INTUSE = 272, 273, 274, 275

#: Claim key -> JWT/EAT claim name (RFC 9711 section 10.2, RFC 8392 section 9.1).
CLAIM_NAMES: dict[int, str] = {
    ISS: "iss", SUB: "sub", AUD: "aud", EXP: "exp", NBF: "nbf", IAT: "iat", CTI: "cti",
    NONCE: "eat_nonce", UEID: "ueid", SUEIDS: "sueids", OEMID: "oemid", HWMODEL: "hwmodel",
    HWVERSION: "hwversion", UPTIME: "uptime", OEMBOOT: "oemboot", DBGSTAT: "dbgstat",
    LOCATION: "location", PROFILE: "eat_profile", SUBMODS: "submods",
    BOOTCOUNT: "bootcount", BOOTSEED: "bootseed", DLOAS: "dloas", SWNAME: "swname",
    SWVERSION: "swversion", MANIFESTS: "manifests", MEASUREMENTS: "measurements",
    MEASRES: "measres", INTUSE: "intuse",
}
CLAIM_KEYS: dict[str, int] = {v: k for k, v in CLAIM_NAMES.items()}

# Location map keys (RFC 9711 section 4.2.10).
_LOCATION_KEYS: dict[int, str] = {
    1: "latitude", 2: "longitude", 3: "altitude", 4: "accuracy", 5: "altitude_accuracy",
    6: "heading", 7: "speed", 8: "timestamp", 9: "age",
}

# UEID type bytes (RFC 9711 section 4.2.1, Table 1).
UEID_TYPES = {0x01: "RAND", 0x02: "IEEE EUI", 0x03: "IMEI"}
#: Lengths of the identifier after the type byte (RFC 9711 section 4.2.1, Table 1): RAND is a
#: 128-, 192- or 256-bit random number; IEEE EUI an EUI-48, EUI-60 or EUI-64 (6 or 8 bytes);
#: IMEI 14 bytes, one per decimal digit (the digit's value, not its ASCII code).
UEID_LENGTHS: dict[int, tuple[int, ...]] = {0x01: (16, 24, 32), 0x02: (6, 8), 0x03: (14,)}


class DebugStatus(IntEnum):
    """RFC 9711 section 4.2.9 debug status."""

    ENABLED = 0
    DISABLED = 1
    DISABLED_SINCE_BOOT = 2
    DISABLED_PERMANENTLY = 3
    DISABLED_FULLY_AND_PERMANENTLY = 4


class MeasurementResult(IntEnum):
    """RFC 9711 section 4.2.17 individual measurement result."""

    SUCCESS = 1
    FAIL = 2
    NOT_RUN = 3
    ABSENT = 4


class IntendedUse(IntEnum):
    """RFC 9711 section 4.3.3 intended use."""

    GENERIC = 1
    REGISTRATION = 2
    PROVISIONING = 3
    CSR = 4
    POP = 5


@dataclass(frozen=True, slots=True)
class Version:
    """hwversion / swversion: a version string and an optional CoSWID version scheme."""

    version: str
    scheme: int | str | None = None


@dataclass(frozen=True, slots=True)
class Location:
    """RFC 9711 section 4.2.10."""

    latitude: float
    longitude: float
    altitude: float | None = None
    accuracy: float | None = None
    altitude_accuracy: float | None = None
    heading: float | None = None
    speed: float | None = None
    timestamp: int | None = None
    age: int | None = None


@dataclass(frozen=True, slots=True)
class Dloa:
    """RFC 9711 section 4.2.14: a Digital Letter of Approval."""

    registrar: str
    platform_label: str
    application_label: str | None = None


@dataclass(frozen=True, slots=True)
class FormatBody:
    """A manifest or a measurement: a CoAP content format and its content."""

    content_type: int
    content: Any


@dataclass(frozen=True, slots=True)
class MeasurementResults:
    """RFC 9711 section 4.2.17: results from one measurement system."""

    system: str
    results: tuple[tuple[str | bytes, MeasurementResult | None], ...]


@dataclass(frozen=True, slots=True)
class Submodule:
    """RFC 9711 section 4.2.18: a claims set, a nested token, or a detached digest."""

    name: str
    claims: EatClaimsSet | None = None
    #: A nested token (CBOR bytes or a JSON token string), kept but not verified here.
    nested_token: bytes | str | None = None
    #: A detached submodule digest: (hash algorithm, digest).
    detached_digest: tuple[int | str, bytes] | None = None


@dataclass(frozen=True, slots=True)
class EatClaimsSet:
    """A parsed EAT/CWT claims set. Absent claims are None (or empty)."""

    nonce: tuple[bytes, ...] = ()
    ueid: bytes | None = None
    sueids: Mapping[str, bytes] = field(default_factory=dict)
    oemid: bytes | int | None = None
    hwmodel: bytes | None = None
    hwversion: Version | None = None
    uptime: int | None = None
    oemboot: bool | None = None
    dbgstat: DebugStatus | None = None
    location: Location | None = None
    profile: str | bytes | None = None
    submods: Mapping[str, Submodule] = field(default_factory=dict)
    bootcount: int | None = None
    bootseed: bytes | None = None
    dloas: tuple[Dloa, ...] = ()
    swname: str | None = None
    swversion: Version | None = None
    manifests: tuple[FormatBody, ...] = ()
    measurements: tuple[FormatBody, ...] = ()
    measres: tuple[MeasurementResults, ...] = ()
    intuse: IntendedUse | int | str | None = None
    iss: str | None = None
    sub: str | None = None
    aud: tuple[str, ...] = ()
    exp: int | None = None
    nbf: int | None = None
    iat: int | None = None
    cti: bytes | None = None
    #: Claims this verifier does not know, by key. Never fatal.
    unknown: Mapping[Any, Any] = field(default_factory=dict)


def _name(key: int) -> str:
    return f"{CLAIM_NAMES[key]} ({key})"


def _bad(key: int, what: str) -> InvalidClaim:
    return InvalidClaim(f"{_name(key)} {what}", step=STEP)


def _tname(v: Any) -> str:
    return type(v).__name__


def _bstr(key: int, v: Any, lo: int = 0, hi: int | None = None) -> bytes:
    if type(v) is not bytes:
        raise _bad(key, f"must be a byte string, found {_tname(v)}")
    if len(v) < lo or (hi is not None and len(v) > hi):
        size = f"{lo} to {hi}" if hi is not None else f"at least {lo}"
        raise _bad(key, f"must be {size} bytes, found {len(v)}")
    return v


def _tstr(key: int, v: Any) -> str:
    if type(v) is not str:
        raise _bad(key, f"must be a text string, found {_tname(v)}")
    return v


def _uint(key: int, v: Any) -> int:
    if type(v) is not int or v < 0:
        raise _bad(key, f"must be an unsigned integer, found {shown(v)}")
    return v


def _time(key: int, v: Any) -> int:
    # RFC 8392 section 2 NumericDate (int or float); a tag-1 time (RFC 9711 time-int) decodes
    # to a datetime.
    if isinstance(v, datetime):
        return int(v.timestamp())
    if type(v) is int:
        return v
    if type(v) is float and not math.isnan(v) and abs(v) < 2**62:
        return int(v)
    raise _bad(key, f"must be a NumericDate (integer seconds), found {_tname(v)}")


def _ueid(key: int, v: Any) -> bytes:
    # RFC 9711 section 4.2.1: bstr .size (7..33), the first byte the UEID type (Table 1),
    # the rest of the length that type defines.
    ueid = _bstr(key, v, 7, 33)
    kind = ueid[0]
    lengths = UEID_LENGTHS.get(kind)
    if lengths is None:
        raise _bad(key, f"has unknown UEID type 0x{kind:02x} (0x01 RAND, 0x02 IEEE EUI, "
                        f"0x03 IMEI)")
    if len(ueid) - 1 not in lengths:
        sizes = " or ".join(str(n) for n in lengths)
        raise _bad(key, f"is a {UEID_TYPES[kind]} UEID of {len(ueid) - 1} bytes after the type "
                        f"byte; RFC 9711 section 4.2.1 requires {sizes}")
    if kind == 0x03 and max(ueid[1:]) > 9:
        raise _bad(key, "is an IMEI UEID whose bytes are not all decimal digit values (0-9)")
    return ueid


def _nonce(v: Any) -> tuple[bytes, ...]:
    # RFC 9711 section 4.1: bstr .size (8..64), or an array of two or more of them.
    if isinstance(v, list):
        if len(v) < 2:
            raise _bad(NONCE, "array must hold two or more nonces")
        return tuple(_bstr(NONCE, n, 8, 64) for n in v)
    return (_bstr(NONCE, v, 8, 64),)


def _version(key: int, v: Any) -> Version:
    # RFC 9711 sections 4.2.5 and 4.2.20: [version: tstr, ? scheme: $version-scheme].
    if not isinstance(v, list) or not 1 <= len(v) <= 2 or type(v[0]) is not str:
        raise _bad(key, "must be [version text, ? version scheme]")
    scheme = v[1] if len(v) == 2 else None
    if scheme is not None and type(scheme) not in (int, str):
        raise _bad(key, f"version scheme must be an integer or text, found {_tname(scheme)}")
    return Version(v[0], scheme)


def _number(key: int, name: str, v: Any) -> float:
    if type(v) not in (int, float):
        raise _bad(key, f"{name} must be a number, found {_tname(v)}")
    return float(v)


def _location(v: Any) -> Location:
    if not isinstance(v, dict):
        raise _bad(LOCATION, f"must be a map, found {_tname(v)}")
    for k in (1, 2):
        if k not in v:
            raise _bad(LOCATION, f"must have {_LOCATION_KEYS[k]} ({k})")
    vals: dict[str, Any] = {}
    for k, name in _LOCATION_KEYS.items():
        if k not in v:
            continue
        if k == 8:
            vals[name] = _time(LOCATION, v[k])
        elif k == 9:
            vals[name] = _uint(LOCATION, v[k])
        else:
            vals[name] = _number(LOCATION, name, v[k])
    return Location(**vals)


def _format_bodies(key: int, v: Any) -> tuple[FormatBody, ...]:
    # RFC 9711 sections 4.2.15 and 4.2.16: [+ [content-type: uint .le 65535, content]].
    if not isinstance(v, list) or not v:
        raise _bad(key, "must be a non-empty array of [content-type, content]")
    out = []
    for entry in v:
        if not isinstance(entry, list) or len(entry) != 2:
            raise _bad(key, "entries must be [content-type, content]")
        ct = entry[0]
        if type(ct) is not int or not 0 <= ct <= 65535:
            raise _bad(key, f"content type must be a CoAP content format, found {shown(ct)}")
        if type(entry[1]) not in (bytes, str):
            raise _bad(key, f"content must be a byte or text string, found "
                            f"{_tname(entry[1])}")
        out.append(FormatBody(ct, entry[1]))
    return tuple(out)


def _measres(v: Any) -> tuple[MeasurementResults, ...]:
    if not isinstance(v, list) or not v:
        raise _bad(MEASRES, "must be a non-empty array of [system, results]")
    out = []
    for group in v:
        if not isinstance(group, list) or len(group) != 2 or type(group[0]) is not str \
                or not isinstance(group[1], list) or not group[1]:
            raise _bad(MEASRES, "entries must be [system text, [+ [id, result]]]")
        results: list[tuple[str | bytes, MeasurementResult | None]] = []
        for item in group[1]:
            if not isinstance(item, list) or len(item) != 2 or type(item[0]) not in (str, bytes):
                raise _bad(MEASRES, "individual results must be [id, result]")
            result = item[1]
            if result is None:
                results.append((item[0], None))
                continue
            if type(result) is not int or result not in MeasurementResult._value2member_map_:
                raise _bad(MEASRES, f"unknown result {shown(result)}")
            results.append((item[0], MeasurementResult(result)))
        out.append(MeasurementResults(group[0], tuple(results)))
    return tuple(out)


def _dloas(v: Any) -> tuple[Dloa, ...]:
    if not isinstance(v, list) or not v:
        raise _bad(DLOAS, "must be a non-empty array")
    out = []
    for d in v:
        if not isinstance(d, list) or not 2 <= len(d) <= 3 or any(type(x) is not str for x in d):
            raise _bad(DLOAS, "entries must be [registrar, platform label, ? application label]")
        out.append(Dloa(d[0], d[1], d[2] if len(d) == 3 else None))
    return tuple(out)


def _submods(v: Any, depth: int) -> dict[str, Submodule]:
    if not isinstance(v, dict):
        raise _bad(SUBMODS, f"must be a map, found {_tname(v)}")
    out = {}
    for name, sub in v.items():
        if type(name) is not str:
            raise _bad(SUBMODS, f"submodule names must be text, found {_tname(name)}")
        if isinstance(sub, dict):
            out[name] = Submodule(name, claims=parse_eat_claims(sub, _depth=depth + 1))
        elif type(sub) in (bytes, str):
            out[name] = Submodule(name, nested_token=sub)
        elif isinstance(sub, list) and len(sub) == 2 and type(sub[0]) in (int, str) \
                and type(sub[1]) is bytes:
            out[name] = Submodule(name, detached_digest=(sub[0], sub[1]))
        else:
            raise _bad(SUBMODS, f"submodule {shown(name)} is not a claims set, nested token or "
                                f"detached digest")
    return out


_MAX_SUBMOD_DEPTH = 8


def parse_eat_claims(claims: Mapping[Any, Any], *, _depth: int = 0) -> EatClaimsSet:
    """Parse a CBOR EAT claims set (RFC 9711 section 4) into typed claims.

    Raises:
        InvalidClaim: a known claim has the wrong type, size or value (the message names it).
    """
    if _depth > _MAX_SUBMOD_DEPTH:
        raise _bad(SUBMODS, f"nest more than {_MAX_SUBMOD_DEPTH} levels deep")
    vals: dict[str, Any] = {}
    unknown: dict[Any, Any] = {}
    for key, v in claims.items():
        if key == NONCE:
            vals["nonce"] = _nonce(v)
        elif key == UEID:
            vals["ueid"] = _ueid(key, v)
        elif key == SUEIDS:
            if not isinstance(v, dict) or not v:
                raise _bad(key, "must be a non-empty map of text to UEID")
            vals["sueids"] = {_tstr(key, n): _ueid(key, u) for n, u in v.items()}
        elif key == OEMID:
            # RFC 9711 section 4.2.3: IANA PEN (int), IEEE OUI (3 bytes) or random (16 bytes).
            if type(v) is int or (type(v) is bytes and len(v) in (3, 16)):
                vals["oemid"] = v
            else:
                raise _bad(key, "must be a PEN (integer), a 3-byte IEEE OUI or 16 random bytes")
        elif key == HWMODEL:
            vals["hwmodel"] = _bstr(key, v, 1, 32)
        elif key in (HWVERSION, SWVERSION):
            vals[CLAIM_NAMES[key]] = _version(key, v)
        elif key in (UPTIME, BOOTCOUNT):
            vals[CLAIM_NAMES[key]] = _uint(key, v)
        elif key == OEMBOOT:
            if type(v) is not bool:
                raise _bad(key, f"must be true or false, found {_tname(v)}")
            vals["oemboot"] = v
        elif key == DBGSTAT:
            if type(v) is not int or v not in DebugStatus._value2member_map_:
                raise _bad(key, f"must be a debug status 0 to 4, found {shown(v)}")
            vals["dbgstat"] = DebugStatus(v)
        elif key == LOCATION:
            vals["location"] = _location(v)
        elif key == PROFILE:
            # RFC 9711 section 4.3.2: a URI (text) or an OID (bstr, untagged).
            if type(v) not in (str, bytes) or not v:
                raise _bad(key, f"must be a URI or an OID, found {shown(v)}")
            vals["profile"] = v
        elif key == SUBMODS:
            vals["submods"] = _submods(v, _depth)
        elif key == BOOTSEED:
            vals["bootseed"] = _bstr(key, v, 1)
        elif key == DLOAS:
            vals["dloas"] = _dloas(v)
        elif key in (SWNAME, ISS, SUB):
            vals[CLAIM_NAMES[key]] = _tstr(key, v)
        elif key in (MANIFESTS, MEASUREMENTS):
            vals[CLAIM_NAMES[key]] = _format_bodies(key, v)
        elif key == MEASRES:
            vals["measres"] = _measres(v)
        elif key == INTUSE:
            # RFC 9711 section 4.3.3: JC<text, int>; known values become IntendedUse.
            if type(v) is int:
                vals["intuse"] = IntendedUse(v) if v in IntendedUse._value2member_map_ else v
            elif type(v) is str:
                vals["intuse"] = v
            else:
                raise _bad(key, f"must be an integer or text, found {_tname(v)}")
        elif key == AUD:
            if type(v) is str:
                vals["aud"] = (v,)
            elif isinstance(v, list) and v and all(type(a) is str for a in v):
                vals["aud"] = tuple(v)
            else:
                raise _bad(key, "must be a text string or an array of them")
        elif key in (EXP, NBF, IAT):
            vals[CLAIM_NAMES[key]] = _time(key, v)
        elif key == CTI:
            vals["cti"] = _bstr(key, v)
        else:
            unknown[key] = v
    return EatClaimsSet(unknown=unknown, **vals)


def readable(claims: Mapping[Any, Any]) -> dict[str | int, Any]:
    """The claims set keyed by claim name where known (else the integer key), submodules
    included, for ``Claims.raw``."""
    out: dict[str | int, Any] = {}
    for key, v in claims.items():
        name = CLAIM_NAMES.get(key) if type(key) is int else None
        if name is None:
            out[key] = v
        elif key == SUBMODS and isinstance(v, dict):
            out[name] = {n: readable(s) if isinstance(s, dict) else s for n, s in v.items()}
        else:
            out[name] = v
    return out
