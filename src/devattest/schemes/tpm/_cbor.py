"""A small strict CBOR decoder for TPM evidence (RFC 8949, a deterministic subset).

Only what the evidence map uses is accepted: unsigned and negative integers, byte and text
strings, arrays, maps, ``null``, ``true`` and ``false``. Tags, floats, undefined,
indefinite lengths, non-shortest lengths (RFC 8949 section 4.2.1), duplicate map keys,
trailing bytes, excessive depth and oversized containers are each rejected with their own
:class:`devattest.errors.EvidenceError` subclass. The decoder is iterative over one
``bytes`` object and never allocates more than the input can describe.
"""

from __future__ import annotations

import threading
from io import BytesIO
from typing import Any

import cbor2

from devattest.errors import (
    DuplicateMapKey,
    InvalidCbor,
    NestingTooDeep,
    TokenTooLarge,
    TrailingBytes,
    TruncatedEvidence,
    UnexpectedTag,
)
from devattest.model import DecodeLimits

_MIN_FOR_AI = {24: 24, 25: 0x100, 26: 0x10000, 27: 0x100000000}

_cbor_loads = cbor2.loads


class _Encoder(threading.local):
    """One reusable cbor2 encoder per thread (creating one per call costs more than the
    encoding itself)."""

    def __init__(self) -> None:
        self.encode = cbor2.CBOREncoder(BytesIO()).encode_to_bytes


def strict_loads(data: bytes, *, limits: DecodeLimits) -> Any:
    """Decode one deterministic CBOR item that must span all of ``data``.

    Raises:
        TokenTooLarge, NestingTooDeep, DuplicateMapKey, TrailingBytes, TruncatedEvidence,
        UnexpectedTag, InvalidCbor: the bytes break the subset or the limits.
    """
    if len(data) > limits.max_token_size:
        raise TokenTooLarge(f"evidence is {len(data)} bytes, limit {limits.max_token_size}")
    value, pos = _item(bytes(data), 0, 0, limits)
    if pos != len(data):
        raise TrailingBytes(f"{len(data) - pos} bytes follow the CBOR item")
    return value


def loads(data: bytes, *, limits: DecodeLimits) -> Any:
    """:func:`strict_loads` semantics, fast: the C decoder, accepted only if re-encoding the
    result reproduces ``data`` byte for byte (so no duplicate key, indefinite length or
    non-shortest form slipped through); otherwise the strict decoder says exactly what is
    wrong. Callers must still type-check every value (tags decode to non-plain types).

    Raises:
        The same errors as :func:`strict_loads`.
    """
    if len(data) > limits.max_token_size:
        raise TokenTooLarge(f"evidence is {len(data)} bytes, limit {limits.max_token_size}")
    try:
        value = _cbor_loads(data)
        if _ENCODER.encode(value) == data:
            return value
    except Exception:  # noqa: S110 - any failure falls through to the strict decoder
        pass
    return strict_loads(data, limits=limits)


_ENCODER = _Encoder()


def _head(data: bytes, pos: int) -> tuple[int, int, int]:
    try:
        ib = data[pos]
    except IndexError:
        raise TruncatedEvidence("CBOR item truncated") from None
    major, ai = ib >> 5, ib & 0x1F
    pos += 1
    if ai < 24:
        return major, ai, pos
    if ai > 27:
        if major == 7 or ai == 31:
            raise InvalidCbor("indefinite lengths and reserved values are not allowed")
        raise InvalidCbor(f"reserved additional information {ai}")
    n = 1 << (ai - 24)
    end = pos + n
    if end > len(data):
        raise TruncatedEvidence("CBOR argument truncated")
    arg = int.from_bytes(data[pos:end], "big")
    if arg < _MIN_FOR_AI[ai]:
        raise InvalidCbor("CBOR argument not in shortest form (RFC 8949 section 4.2.1)")
    return major, arg, end


def _item(data: bytes, pos: int, depth: int, limits: DecodeLimits) -> tuple[Any, int]:
    major, arg, pos = _head(data, pos)
    if major == 0:
        return arg, pos
    if major in {2, 3}:
        end = pos + arg
        if end > len(data):
            raise TruncatedEvidence("CBOR string runs past the end of the evidence")
        if major == 2:
            return data[pos:end], end
        try:
            return data[pos:end].decode("utf-8"), end
        except UnicodeDecodeError:
            raise InvalidCbor("text string is not UTF-8") from None
    if major == 1:
        return -1 - arg, pos
    if major in {4, 5}:
        if depth >= limits.max_depth:
            raise NestingTooDeep(f"CBOR nesting exceeds {limits.max_depth}")
        if arg > limits.max_container_items:
            raise InvalidCbor(f"container of {arg} items exceeds "
                              f"{limits.max_container_items}")
        if major == 4:
            out: list[Any] = []
            for _ in range(arg):
                v, pos = _item(data, pos, depth + 1, limits)
                out.append(v)
            return out, pos
        m: dict[Any, Any] = {}
        for _ in range(arg):
            k, pos = _item(data, pos, depth + 1, limits)
            if type(k) is not int and type(k) is not str:
                raise InvalidCbor("map keys must be integers or text strings")
            if k in m:
                raise DuplicateMapKey(f"duplicate map key {k!r}")
            m[k], pos = _item(data, pos, depth + 1, limits)
        return m, pos
    if major == 6:
        raise UnexpectedTag("CBOR tags are not allowed in TPM evidence")
    # major 7: simple values. Only false (20), true (21), null (22) are accepted.
    if arg == 20:
        return False, pos
    if arg == 21:
        return True, pos
    if arg == 22:
        return None, pos
    raise InvalidCbor("floats and simple values other than false/true/null are not allowed")
