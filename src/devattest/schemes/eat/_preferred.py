"""CBOR preferred serialization check (RFC 8949 section 4.1), for the RFC 9711 constrained
device profile (RFC 9711 section 6, "The Constrained Device Standard Profile": only
definite lengths, only preferred serialization).

The input has already been strictly decoded (well-formed, within limits); this walk only asks
whether each head uses the shortest argument, no indefinite length appears, and each float is
in its shortest exact form.
"""

from __future__ import annotations

import math
import struct

_MT_ARRAY = 4
_MT_MAP = 5
_MT_TAG = 6
_MT_SIMPLE = 7


def _float_is_shortest(ai: int, raw: bytes) -> bool:
    if ai == 25:
        return True
    value = struct.unpack(">d" if ai == 27 else ">f", raw)[0]
    if math.isnan(value):
        return False  # preferred NaN is the half-precision 0xf97e00
    try:
        if struct.unpack(">e", struct.pack(">e", value))[0] == value:
            return False
    except OverflowError:
        pass
    if ai == 27:
        try:
            if struct.unpack(">f", struct.pack(">f", value))[0] == value:
                return False
        except OverflowError:
            pass
    return True


def first_non_preferred(data: bytes) -> str | None:
    """A description of the first place ``data`` breaks preferred serialization (definite
    lengths, shortest heads, shortest exact floats), or None if it keeps to it."""
    pos = 0
    end = len(data)
    needed = 1
    while needed and pos < end:
        needed -= 1
        ib = data[pos]
        mt, ai = ib >> 5, ib & 0x1F
        at = pos
        pos += 1
        if ai == 31:
            return f"indefinite length at byte {at}"
        if ai < 24:
            arg = ai
        else:
            size = 1 << (ai - 24)  # 24 -> 1, 25 -> 2, 26 -> 4, 27 -> 8
            raw = data[pos:pos + size]
            pos += size
            if mt == _MT_SIMPLE and ai >= 25:
                if not _float_is_shortest(ai, raw):
                    return f"float at byte {at} is not in its shortest exact form"
                continue
            arg = int.from_bytes(raw, "big")
            if (ai == 24 and arg < 24) or (ai > 24 and arg < (1 << (8 << (ai - 25)))):
                return f"argument at byte {at} is not in its shortest form"
        if mt in (2, 3):
            pos += arg
        elif mt == _MT_ARRAY:
            needed += arg
        elif mt == _MT_MAP:
            needed += 2 * arg
        elif mt == _MT_TAG:
            needed += 1
    return None
