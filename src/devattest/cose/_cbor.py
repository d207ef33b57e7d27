"""Strict CBOR decoding (RFC 8949) under :class:`DecodeLimits`.

Three paths give one answer:

* With the optional native scanner (``devattest.cose._cbor_scan``, built from
  ``_cbor_scan.c`` when a C compiler is available), one pass over the bytes checks
  everything :func:`_strict_walk` checks, and an accepted input goes straight to cbor2's C
  decoder. A violation it finds is named by the walker; input it does not judge on its own
  (indefinite lengths, non-preferred heads, float map keys, maps of more than 64 pairs)
  takes the next path. ``DEVATTEST_NO_EXTENSIONS`` set to anything non-empty at
  import time turns the scanner off.
* Without it, the fast path decodes with cbor2's C decoder, walks the result once
  (iteratively) for depth, container sizes and plain types, and re-encodes it: when the
  re-encoding equals the input byte for byte, the input is preferred-serialization CBOR with
  no duplicate map keys, no trailing bytes and no indefinite lengths, and is accepted.
* Anything else goes to :func:`_strict_walk`, an iterative pure-Python walker over the bytes
  that is authoritative: it raises the exact violation, or accepts a valid non-preferred
  encoding (the value cbor2 decoded is then returned).

Beyond well-formedness, all three refuse: duplicate map keys, map keys that are not
integers, text or byte strings or floats (containers, tags and simple values), the tags in
:data:`REFUSED_TAGS`, and bignums above ``DecodeLimits.max_bignum_bits``. The value returned
is cbor2 5's data model (lists and dicts) on cbor2 5 and cbor2 6 alike (see :func:`_thaw`).

The fast path accepts only what the walker accepts. The nesting depth counts arrays, maps,
and tags whose content is an array, a map or a tag (so a bignum, tag 2 around a byte string,
is at the depth of its tag either way).
"""

from __future__ import annotations

import builtins
import os
import struct
import threading
from collections.abc import Callable
from io import BytesIO
from typing import Any, Final, NoReturn

import cbor2

from devattest.errors import (
    DuplicateMapKey,
    IntegerTooLarge,
    InvalidCbor,
    NestingTooDeep,
    TokenTooLarge,
    TooManyItems,
    TrailingBytes,
    TruncatedEvidence,
    UnexpectedTag,
    UnsupportedCbor,
    shown,
)
from devattest.model import DecodeLimits

#: RFC 8949 section 3.4.3: unsigned and negative bignums.
_BIGNUM_TAGS: Final = frozenset((2, 3))
#: Integers in [-2**64, 2**64) fit a CBOR head (major types 0 and 1); others are bignums.
_PLAIN_INT_END: Final = 1 << 64

#: Tags whose cbor2 semantic decoding changes the data model (value sharing, string
#: references) or runs a complex parser on attacker input (regular expression, MIME).
REFUSED_TAGS: Final = frozenset({25, 28, 29, 35, 36, 256})

_CBORTag = cbor2.CBORTag


# ---------------------------------------------------------------------------------------
# One data model on cbor2 5 and cbor2 6.
# ---------------------------------------------------------------------------------------
# cbor2 6 (the Rust rewrite) decodes the content of every tag into immutable containers
# (tuples and frozendicts, so that a tag can be hashed); arrays and maps outside any tag
# stay lists and dicts. Its tag hook is called as hook(tag, immutable), innermost tag first.
# devattest reads lists and dicts everywhere, so on such a cbor2 a tag hook thaws the content
# of each outermost tag (and of every tag nested in it) back into lists and dicts, and
# strict_loads returns cbor2 5's data model. cbor2 5 is left alone: no hook, its C decoder's
# fast path unchanged.
_FROZEN_MAP: Final[type | None] = (getattr(cbor2, "frozendict", None)
                                   or getattr(builtins, "frozendict", None))


def _thaw(value: Any) -> Any:
    """``value`` with tuples as lists, frozen maps as dicts and tags rebuilt around thawed
    content (map keys are left as they are: strict decoding refuses container keys). The
    depth is bounded by the decoder's own limit (cbor2 stops at 400)."""
    t = type(value)
    if t is tuple or t is list:
        return [_thaw(v) for v in value]
    if t is _FROZEN_MAP or t is dict:
        return {k: _thaw(v) for k, v in value.items()}
    if t is _CBORTag:
        return _CBORTag(value.tag, _thaw(value.value))
    return value


def _thaw_tag(tag: Any, immutable: bool) -> Any:
    """cbor2 6's tag hook: a tag decoded where a hashable value is needed (a map key, or the
    content of an enclosing tag) stays frozen; the enclosing tag's hook thaws it, and a
    frozen map key is refused by the strict checks."""
    if immutable:
        return tag
    return _CBORTag(tag.tag, _thaw(tag.value))


def _thaw_self_described(value: Any, immutable: bool) -> Any:
    """cbor2 6's decoder for tag 55799 (self-described CBOR, RFC 8949 section 3.4.6), which
    returns the content as it is: thawed, as cbor2 5 returns it."""
    return value if immutable else _thaw(value)


#: Whether this cbor2 freezes tag content (cbor2 6): decode tag 4000 around an empty array.
TAG_CONTENT_FROZEN: Final = type(cbor2.loads(b"\xd9\x0f\xa0\x80").value) is tuple

_Loads = Callable[[bytes], Any]
_loads: _Loads
if TAG_CONTENT_FROZEN:
    _raw_loads: Any = cbor2.loads
    _SEMANTIC: Final = {55799: _thaw_self_described}

    def _loads(data: bytes) -> Any:
        return _raw_loads(data, tag_hook=_thaw_tag, semantic_decoders=_SEMANTIC)
else:
    _loads = cbor2.loads

_Scan = Callable[[bytes, int, int, int], "tuple[int, int] | None"]
_scan: _Scan | None
#: The native scanner's interface version this module speaks (SCAN_ABI in _cbor_scan.c).
_SCAN_ABI: Final = 2
try:
    from devattest.cose import _cbor_scan
except ImportError:  # built without a C compiler: the pure-Python fast path below
    _scan = None
else:
    # A scanner built from an older _cbor_scan.c (an install not rebuilt since) checks less:
    # it is not used.
    _scan = _cbor_scan.scan if getattr(_cbor_scan, "SCAN_ABI", None) == _SCAN_ABI else None
if os.environ.get("DEVATTEST_NO_EXTENSIONS"):
    _scan = None

#: The native scanner's result codes (see _cbor_scan.c), as the errors they stand for.
_SCAN_SLOW_PATH: Final = 9
_SCAN_ERRORS: Final[dict[int, type[Exception]]] = {
    1: NestingTooDeep,
    2: TooManyItems,
    3: DuplicateMapKey,
    4: TrailingBytes,
    5: TruncatedEvidence,
    6: InvalidCbor,
    7: UnexpectedTag,
    8: UnsupportedCbor,
    10: IntegerTooLarge,
}


class _Encoder(threading.local):
    """One reusable cbor2 encoder per thread (creating one costs more than encoding)."""

    def __init__(self) -> None:
        self.encoder = cbor2.CBOREncoder(BytesIO())


_ENCODER = _Encoder()


def _reencode(obj: Any) -> bytes:
    return bytes(_ENCODER.encoder.encode_to_bytes(obj))


def strict_loads(data: bytes, *, limits: DecodeLimits) -> Any:
    """Decode one CBOR data item under ``limits``.

    Args:
        data: The encoded item. Nothing may follow it.
        limits: Size, depth and container bounds.

    Returns:
        The decoded value (cbor2's data model; unknown tags are ``cbor2.CBORTag``).

    Raises:
        TokenTooLarge: ``data`` is longer than ``limits.max_token_size``.
        NestingTooDeep: Arrays, maps and tags nest deeper than ``limits.max_depth``.
        TooManyItems: An array or map has more than ``limits.max_container_items`` entries.
        DuplicateMapKey: A map holds the same key twice.
        TrailingBytes: Bytes follow the item.
        TruncatedEvidence: The item ends early, or a length exceeds the bytes left.
        InvalidCbor: The bytes are not well-formed CBOR, or a tag's content is invalid.
        UnexpectedTag: A refused tag (value sharing, string references, regex, MIME).
        UnsupportedCbor: A map key is an array, map, tagged item or simple value (false,
            true, null, undefined, simple(n)).
        IntegerTooLarge: A bignum (tag 2 or 3) exceeds ``limits.max_bignum_bits``.
    """
    if type(data) is not bytes:
        data = bytes(data)
    n = len(data)
    if n > limits.max_token_size:
        raise TokenTooLarge(f"token is {n} bytes, the limit is {limits.max_token_size}")
    scan = _scan
    if scan is not None:
        found = scan(data, limits.max_depth, limits.max_container_items,
                     limits.max_bignum_bits)
        if found is None:
            # One well-formed item within the limits: cbor2's value is the strict value.
            try:
                return _loads(data)
            except Exception as exc:
                _undecodable(data, limits, exc)
        code, offset = found
        if code != _SCAN_SLOW_PATH:
            # The walker names the violation with its own message. One the scanner found and
            # the walker did not is still a rejection: fail closed.
            _strict_walk(data, limits)
            raise _SCAN_ERRORS.get(code, InvalidCbor)(f"strict CBOR violation at byte {offset}")
        # Input the scanner leaves to Python (a large map, a non-preferred head): below.
    try:
        obj = _loads(data)
    except Exception as exc:  # any decoder failure: the walker names it
        _undecodable(data, limits, exc)
    if _plain_within_limits(obj, limits, n):
        try:
            if _reencode(obj) == data:
                return obj
        except Exception:  # noqa: S110 - fall back to the authoritative walker
            pass
    _strict_walk(data, limits)
    return obj


def _undecodable(data: bytes, limits: DecodeLimits, exc: Exception) -> NoReturn:
    """cbor2 could not decode ``data``: raise the walker's violation, or say why cbor2
    stopped on an item the walker accepts."""
    _strict_walk(data, limits)
    if isinstance(exc, RecursionError) or "depth" in str(exc):
        # cbor2's C decoder stops at depth 400 whatever limits.max_depth says.
        raise NestingTooDeep("nesting deeper than the CBOR decoder supports") from None
    raise InvalidCbor("CBOR item could not be decoded (invalid tag content)") from None


def _plain_within_limits(obj: Any, limits: DecodeLimits, n: int, depth: int = 0) -> bool:
    """Fast-path precondition: ``obj`` holds only plain types (int, float, bool, None, str,
    bytes, list, dict with int/str/bytes keys, CBORTag), within the depth and container
    limits, and expands to no more elements and string bytes than the input has bytes (so
    shared references cannot make the re-encoding explode). ``depth`` is the nesting depth
    enclosing ``obj``. False sends the input to the authoritative walker; it never decides a
    rejection by itself."""
    t = type(obj)
    if t is not list and t is not dict and t is not _CBORTag:
        if t is str or t is bytes:
            return len(obj) <= n
        if t is int:
            return bool(-_PLAIN_INT_END <= obj < _PLAIN_INT_END)
        return t is float or t is bool or obj is None
    max_depth = limits.max_depth
    max_items = limits.max_container_items
    # An int beyond what a CBOR head holds came from a bignum (tag 2/3): the walker judges
    # it (max_bignum_bits), as it judges a bignum map key (refused: a tagged key).
    hi = _PLAIN_INT_END
    lo = -hi
    budget = n
    # Entries are (item, enclosing depth); opening a container (or a tag around one) at
    # enclosing depth d needs d < max_depth, as in _strict_walk.
    stack: list[tuple[Any, int]] = [(obj, depth)]
    pop = stack.pop
    push = stack.append
    while stack:
        item, d = pop()
        if type(item) is _CBORTag:
            if item.tag in REFUSED_TAGS:
                return False
            inner = item.value
            ti = type(inner)
            budget -= 1
            if ti is list or ti is dict or ti is _CBORTag:
                if d >= max_depth:
                    return False
                push((inner, d + 1))
            elif ti is int:
                # A bignum (tag 2/3) decodes to an int; do not mistake it for a plain int.
                if not lo <= inner < hi:
                    return False
            elif ti is str or ti is bytes:
                budget -= len(inner)
            elif not (ti is float or ti is bool or inner is None):
                return False
            continue
        if d >= max_depth or len(item) > max_items:
            return False
        d += 1
        if type(item) is dict:
            budget -= 2 * len(item)
            for k, v in item.items():
                tk = type(k)
                if tk is int:
                    if not lo <= k < hi:
                        return False
                elif tk is str or tk is bytes:
                    budget -= len(k)
                else:
                    return False
                tv = type(v)
                if tv is int:
                    if not lo <= v < hi:
                        return False
                elif tv is str or tv is bytes:
                    budget -= len(v)
                elif tv is list or tv is dict or tv is _CBORTag:
                    push((v, d))
                elif not (tv is float or tv is bool or v is None):
                    return False
        else:
            budget -= len(item)
            for v in item:
                tv = type(v)
                if tv is int:
                    if not lo <= v < hi:
                        return False
                elif tv is str or tv is bytes:
                    budget -= len(v)
                elif tv is list or tv is dict or tv is _CBORTag:
                    push((v, d))
                elif not (tv is float or tv is bool or v is None):
                    return False
        if budget < 0:
            return False
    return budget >= 0


# ---------------------------------------------------------------------------------------
# The authoritative walker (RFC 8949 section 3 and Appendix C, iteratively).
# ---------------------------------------------------------------------------------------
_ARRAY: Final = 0
_MAP: Final = 1
_TAG: Final = 2
_CHUNKS: Final = 3
_COMPLEX: Final = object()  # a container or tagged item: never a valid map key here
_INDEFINITE: Final = -1


class _Frame:
    __slots__ = ("chunk_type", "chunks", "counted", "done", "expect_key", "keys", "kind",
                 "tag", "total")

    def __init__(self, kind: int, total: int, counted: bool) -> None:
        self.kind = kind
        self.tag = -1  # tags: the tag number
        self.total = total  # entries (pairs for maps), or _INDEFINITE
        self.done = 0
        self.counted = counted  # whether this frame adds a nesting level
        self.expect_key = True
        self.keys: set[Any] = set()
        self.chunk_type = 0
        self.chunks: list[bytes] = []


def _strict_walk(data: bytes, limits: DecodeLimits) -> None:
    """Check that ``data`` is exactly one well-formed CBOR item within ``limits``.

    Raises the specific EvidenceError for the first violation (see :func:`strict_loads`).
    Never recurses and never allocates more than the input's size.
    """
    n = len(data)
    pos = 0
    depth = 0
    max_depth = limits.max_depth
    max_items = limits.max_container_items
    max_bignum_bits = limits.max_bignum_bits
    stack: list[_Frame] = []
    while True:
        # RFC 8949 section 3: the initial byte and its argument.
        if pos >= n:
            raise TruncatedEvidence(f"CBOR ends early at byte {pos}")
        ib = data[pos]
        pos += 1
        major = ib >> 5
        info = ib & 0x1F
        arg = info
        if 24 <= info <= 27:
            size = 1 << (info - 24)
            if pos + size > n:
                raise TruncatedEvidence(f"CBOR argument truncated at byte {pos}")
            arg = int.from_bytes(data[pos:pos + size], "big")
            pos += size
        elif 28 <= info <= 30:
            raise InvalidCbor(f"reserved additional information {info} at byte {pos - 1}")
        indefinite = info == 31
        top = stack[-1] if stack else None

        value: Any
        if top is not None and top.kind == _CHUNKS:
            # RFC 8949 section 3.2.3: chunks of an indefinite-length string are definite-length
            # strings of the same major type, ended by a break.
            if ib == 0xFF:
                stack.pop()
                joined = b"".join(top.chunks)
                value = joined if top.chunk_type == 2 else joined.decode("utf-8")
            elif major != top.chunk_type or indefinite:
                raise InvalidCbor(f"invalid chunk in an indefinite-length string at {pos - 1}")
            else:
                if arg > n - pos:
                    raise TruncatedEvidence(f"string chunk claims {arg} bytes, {n - pos} left")
                chunk = data[pos:pos + arg]
                pos += arg
                if major == 3:
                    _check_utf8(chunk, pos)
                top.chunks.append(chunk)
                continue
        elif major <= 1:
            if indefinite:
                raise InvalidCbor(f"indefinite length on an integer at byte {pos - 1}")
            value = arg if major == 0 else -1 - arg
        elif major <= 3:
            if indefinite:
                frame = _Frame(_CHUNKS, _INDEFINITE, False)
                frame.chunk_type = major
                stack.append(frame)
                continue
            if arg > n - pos:
                raise TruncatedEvidence(f"string claims {arg} bytes, {n - pos} left")
            raw = data[pos:pos + arg]
            pos += arg
            value = _check_utf8(raw, pos) if major == 3 else raw
        elif major <= 5:
            if not indefinite:
                if arg > max_items:
                    raise TooManyItems(f"container of {arg} entries, the limit is {max_items}")
                if (arg if major == 4 else 2 * arg) > n - pos:
                    raise TruncatedEvidence(f"container claims {arg} entries, {n - pos} bytes left")
            if depth >= max_depth:
                raise NestingTooDeep(f"nesting deeper than {max_depth}")
            if indefinite or arg:
                stack.append(_Frame(_ARRAY if major == 4 else _MAP,
                                    _INDEFINITE if indefinite else arg, True))
                depth += 1
                continue
            value = _COMPLEX
        elif major == 6:
            if indefinite:
                raise InvalidCbor(f"indefinite length on a tag at byte {pos - 1}")
            if arg in REFUSED_TAGS:
                raise UnexpectedTag(f"CBOR tag {arg} is not accepted in Evidence")
            if pos >= n:
                raise TruncatedEvidence("tag without content")
            counted = 4 <= (data[pos] >> 5) <= 6  # content is an array, map or tag
            if counted:
                if depth >= max_depth:
                    raise NestingTooDeep(f"nesting deeper than {max_depth}")
                depth += 1
            frame = _Frame(_TAG, 1, counted)
            frame.tag = arg
            stack.append(frame)
            continue
        # RFC 8949 section 3.3: simple values and floats.
        elif indefinite:
            if top is None or top.total != _INDEFINITE:
                raise InvalidCbor(f"unexpected break at byte {pos - 1}")
            if top.kind == _MAP and not top.expect_key:
                raise InvalidCbor("indefinite-length map with a key but no value")
            stack.pop()
            depth -= 1
            value = _COMPLEX
        elif info < 20:
            value = ("simple", info)
        elif info == 20:
            value = False
        elif info == 21:
            value = True
        elif info == 22:
            value = None
        elif info == 23:
            value = ("simple", 23)
        elif info == 24:
            if arg < 32:
                raise InvalidCbor(f"two-byte simple value {arg} < 32 at byte {pos - 2}")
            value = ("simple", arg)
        elif info == 25:
            value = struct.unpack(">e", data[pos - 2:pos])[0]
        elif info == 26:
            value = struct.unpack(">f", data[pos - 4:pos])[0]
        else:
            value = struct.unpack(">d", data[pos - 8:pos])[0]

        # The item is complete: account for it in its enclosing containers.
        while True:
            if not stack:
                if pos != n:
                    raise TrailingBytes(f"{n - pos} bytes follow the CBOR item")
                return
            frame = stack[-1]
            if frame.kind == _MAP:
                if frame.expect_key:
                    if value is _COMPLEX:
                        raise UnsupportedCbor("a map key is an array, map or tagged item")
                    if value is None or value is True or value is False or type(
                            value) is tuple:
                        raise UnsupportedCbor(f"a map key is a simple value at byte {pos - 1}")
                    if value in frame.keys:
                        raise DuplicateMapKey(f"duplicate map key {shown(value)}")
                    frame.keys.add(value)
                    frame.expect_key = False
                    break
                frame.expect_key = True
            elif frame.kind == _TAG and frame.tag in _BIGNUM_TAGS:
                # RFC 8949 section 3.4.3: a bignum is a byte string holding the magnitude.
                if type(value) is not bytes:
                    raise InvalidCbor(f"bignum (tag {frame.tag}) content is not a byte string")
                bits = int.from_bytes(value, "big").bit_length()
                if bits > max_bignum_bits:
                    raise IntegerTooLarge(f"bignum of {bits} bits before byte {pos}, the "
                                          f"limit is {max_bignum_bits}")
            frame.done += 1
            if frame.total == _INDEFINITE:
                if frame.done > max_items:
                    raise TooManyItems(f"container of more than {max_items} entries")
                break
            if frame.done < frame.total:
                break
            stack.pop()
            if frame.counted:
                depth -= 1
            value = _COMPLEX


def _check_utf8(raw: bytes, pos: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidCbor(f"text string is not valid UTF-8 (ending at byte {pos})") from None
