"""The optional native scanner (src/devattest/cose/_cbor_scan.c) against the pure-Python path.

strict_loads with the scanner and strict_loads without it must give the same value or raise
the same EvidenceError subclass for any input; each error code the scanner returns must be
the error the authoritative walker raises; and the scanner must never crash on any bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devattest.cose import (
    PrivateKeySigner,
    _cbor,
    create_mac0,
    create_sign1,
    decode_cose,
    strict_loads,
)
from devattest.errors import DuplicateMapKey, EvidenceError, IntegerTooLarge, UnsupportedCbor
from devattest.model import DEFAULT_LIMITS, DecodeLimits, VerifyOptions

native = pytest.importorskip("devattest.cose._cbor_scan")
scan = native.scan

REPO = Path(__file__).resolve().parents[3]
LIMITS = [DEFAULT_LIMITS, DecodeLimits(max_depth=4, max_container_items=8),
          DecodeLimits(max_depth=1, max_container_items=2), DecodeLimits(max_depth=0),
          DecodeLimits(max_container_items=0), DecodeLimits(max_depth=600),
          DecodeLimits(max_bignum_bits=0), DecodeLimits(max_bignum_bits=72)]


@contextmanager
def _scanner(fn: Callable[..., Any] | None) -> Iterator[None]:
    saved = _cbor._scan
    _cbor._scan = fn
    try:
        yield
    finally:
        _cbor._scan = saved


def _outcome(data: bytes, limits: DecodeLimits, fn: Callable[..., Any] | None) -> object:
    with _scanner(fn):
        try:
            # repr: NaN != NaN, and both sides are cbor2's value for the same bytes.
            return ("ok", repr(strict_loads(data, limits=limits)))
        except EvidenceError as exc:
            return ("error", type(exc))


def _walker_verdict(data: bytes, limits: DecodeLimits) -> type[EvidenceError] | None:
    try:
        _cbor._strict_walk(data, limits)
    except EvidenceError as exc:
        return type(exc)
    return None


def _check(data: bytes, limits: DecodeLimits) -> None:
    """Native and pure strict_loads agree; a scanner verdict is the walker's verdict."""
    native_outcome = _outcome(data, limits, scan)
    pure_outcome = _outcome(data, limits, None)
    assert native_outcome == pure_outcome, (data.hex(), limits, native_outcome, pure_outcome)
    if len(data) > limits.max_token_size:
        return
    found = scan(data, limits.max_depth, limits.max_container_items, limits.max_bignum_bits)
    verdict = _walker_verdict(data, limits)
    if found is None:
        assert verdict is None, (data.hex(), limits, verdict)
    else:
        code, offset = found
        assert 0 <= offset <= len(data)
        if code != native.SCAN_SLOW_PATH:
            assert verdict is _cbor._SCAN_ERRORS[code], (data.hex(), limits, found, verdict)


# ---------------------------------------------------------------------------------------
# Byte-level CBOR: preferred and non-preferred heads, indefinite lengths, duplicate keys,
# refused tags, floats and simple values, huge declared lengths.
# ---------------------------------------------------------------------------------------
def _head(major: int, arg: int, width: int | None) -> bytes:
    """The head of ``major`` with ``arg``; ``width`` forces 1/2/4/8 argument bytes."""
    if width is None:
        width = 0 if arg < 24 else 1 if arg < 0x100 else 2 if arg < 0x10000 else (
            4 if arg < 2**32 else 8)
    if width == 0:
        return bytes([major << 5 | arg])
    info = {1: 24, 2: 25, 4: 26, 8: 27}[width]
    return bytes([major << 5 | info]) + arg.to_bytes(width, "big")


widths = st.one_of(st.none(), st.none(), st.none(), st.sampled_from([1, 2, 4, 8]))
KEY_POOL = [b"\x01", b"\x0a", b"\x20", b"\x18\x01", b"\x61a", b"\x41a", b"\x7f\x61a\xff",
            b"\xf4", b"\xf5", b"\xf6", b"\xf7", b"\xf0", b"\xf9\x3c\x00", b"\xfb" + b"\x7f\xf8"
            + b"\x00" * 6, b"\x80", b"\xa0", b"\xc1\x01", b"\x19\x01\x00", b"\x39\xff\xff"]


@st.composite
def _integer(draw: st.DrawFn) -> bytes:
    arg = draw(st.one_of(st.integers(0, 30), st.integers(0, 2**64 - 1)))
    arg = min(arg, 2**64 - 1)
    width = draw(widths)
    if width is not None and arg >= 1 << (8 * width):
        width = None
    return _head(draw(st.sampled_from([0, 1])), arg, width)


@st.composite
def _string(draw: st.DrawFn) -> bytes:
    major = draw(st.sampled_from([2, 3]))
    if major == 3 and draw(st.booleans()):
        raw = draw(st.text(max_size=6)).encode("utf-8", "surrogatepass")
    else:
        raw = draw(st.binary(max_size=6))
    if draw(st.integers(0, 9)) == 0:  # indefinite: chunks and a break
        cut = draw(st.integers(0, len(raw)))
        return (bytes([major << 5 | 31]) + _head(major, cut, None) + raw[:cut]
                + _head(major, len(raw) - cut, None) + raw[cut:] + b"\xff")
    declared = len(raw)
    if draw(st.integers(0, 19)) == 0:  # a length the input cannot hold
        declared = draw(st.sampled_from([len(raw) + 1, 2**31, 2**63, 2**64 - 1]))
    width = draw(widths)
    if width is not None and declared >= 1 << (8 * width):
        width = None
    return _head(major, declared, width) + raw


@st.composite
def _bignum(draw: st.DrawFn) -> bytes:
    """Tag 2 or 3 around a magnitude of 0 to 12 bytes, sometimes with leading zero bytes."""
    magnitude = b"\x00" * draw(st.sampled_from([0, 0, 0, 1, 3])) + draw(st.binary(max_size=12))
    return bytes([0xC2 + draw(st.integers(0, 1))]) + _head(2, len(magnitude), None) + magnitude


simple = st.sampled_from([b"\xf4", b"\xf5", b"\xf6", b"\xf7", b"\xe0", b"\xf3", b"\xf8\x20",
                          b"\xf8\xff", b"\xf8\x10", b"\xf8\x18", b"\xf8\x1f", b"\xf9\x3c\x00",
                          b"\xf9\x7e\x00", b"\xfa\x3f\xc0\x00\x00",
                          b"\xfb\x3f\xf8\x00\x00\x00\x00\x00\x00", b"\xff", b"\xfc", b"\x1e"])
leaves = st.one_of(_integer(), _string(), simple, _bignum())


def _containers(inner: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def array(draw: st.DrawFn) -> bytes:
        items = draw(st.lists(inner, max_size=5))
        if draw(st.integers(0, 9)) == 0:
            return b"\x9f" + b"".join(items) + b"\xff"
        count = len(items) + draw(st.sampled_from([0, 0, 0, 0, 0, 0, 1, -1, 2**32]))
        return _head(4, max(count, 0), draw(widths) if count < 256 else None) + b"".join(items)

    @st.composite
    def mapping(draw: st.DrawFn) -> bytes:
        keys = draw(st.lists(st.one_of(st.sampled_from(KEY_POOL), inner, _bignum()),
                             max_size=5))
        body = b"".join(k + draw(inner) for k in keys)
        if draw(st.integers(0, 9)) == 0:
            return b"\xbf" + body + b"\xff"
        return _head(5, len(keys), draw(widths)) + body

    tag_numbers = st.sampled_from([0, 1, 2, 3, 4, 24, 25, 28, 29, 30, 32, 35, 36, 37, 61, 256,
                                   258, 1000, 55799, 2**40])
    tagged = st.builds(lambda n, w, v: _head(6, n, w if n < 256 else None) + v,
                       tag_numbers, widths, inner)
    return st.one_of(array(), mapping(), tagged)


encoded = st.recursive(leaves, _containers, max_leaves=30)
nested = st.builds(lambda prefix, depth, leaf: prefix * depth + leaf,
                   st.sampled_from([b"\x81", b"\xa1\x01", b"\xd8\x20", b"\xc1", b"\x9f"]),
                   st.integers(0, 40), st.sampled_from([b"\x00", b"\xf9\x3c\x00", b"\xa0"]))

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 400), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 400), st.binary(min_size=1, max_size=9)),
    st.tuples(st.just("delete"), st.integers(0, 400), st.integers(1, 9)),
    st.tuples(st.just("truncate"), st.integers(0, 400), st.just(0)),
    st.tuples(st.just("append"), st.just(0), st.binary(min_size=1, max_size=3)),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, Any]]) -> bytes:
    out = bytearray(data)
    for op, at, arg in mutations:
        i = at % (len(out) + 1)
        if op == "flip" and i < len(out):
            out[i] ^= arg
        elif op == "insert":
            out[i:i] = arg
        elif op == "delete":
            del out[i:i + arg]
        elif op == "truncate":
            del out[i:]
        elif op == "append":
            out += arg
    return bytes(out)


values = st.recursive(
    st.one_of(st.integers(-(2**70), 2**70), st.binary(max_size=8), st.text(max_size=4),
              st.booleans(), st.none(), st.floats()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.integers(-30, 30), st.text(max_size=2),
                                  st.binary(max_size=2), st.booleans(), st.floats(),
                                  st.none()), inner, max_size=5),
        st.builds(cbor2.CBORTag, st.sampled_from([24, 28, 35, 61, 1000, 55799]), inner)),
    max_leaves=25)

AGREE = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@AGREE
@given(data=encoded, limits=st.sampled_from(LIMITS))
def test_native_and_pure_agree_on_generated_cbor(data: bytes, limits: DecodeLimits) -> None:
    _check(data, limits)


@AGREE
@given(data=encoded, mutations=st.lists(mutation, min_size=1, max_size=3),
       limits=st.sampled_from(LIMITS))
def test_native_and_pure_agree_on_mutated_cbor(data: bytes, mutations: list[tuple[str, int, Any]],
                                               limits: DecodeLimits) -> None:
    _check(_mutate(data, mutations), limits)


@AGREE
@given(value=values, mutations=st.lists(mutation, max_size=2), limits=st.sampled_from(LIMITS))
def test_native_and_pure_agree_on_encoded_values(value: object,
                                                 mutations: list[tuple[str, int, Any]],
                                                 limits: DecodeLimits) -> None:
    _check(_mutate(cbor2.dumps(value), mutations), limits)


@AGREE
@given(data=nested, limits=st.sampled_from(LIMITS))
def test_native_and_pure_agree_on_deep_nesting(data: bytes, limits: DecodeLimits) -> None:
    _check(data, limits)


@settings(max_examples=1500, deadline=None)
@given(data=st.binary(max_size=300), depth=st.integers(-2, 2**70),
       items=st.integers(-2, 2**70), bits=st.integers(-2, 2**70))
def test_scanner_never_crashes_on_random_bytes(data: bytes, depth: int, items: int,
                                               bits: int) -> None:
    found = scan(data, depth, items, bits)
    if found is not None:
        code, offset = found
        assert code in _cbor._SCAN_ERRORS or code == native.SCAN_SLOW_PATH
        assert 0 <= offset <= len(data)


@pytest.mark.parametrize("data", [
    b"\x81" * 300 + b"\x00",                     # more nesting than the scanner's frame table
    b"\xa1\x01" * 300 + b"\x00",
    b"\xd8\x20" * 300 + b"\x00",
    cbor2.dumps({i: i for i in range(65)}),      # a map above MAP_PAIRS_MAX
    cbor2.dumps([{i: i for i in range(60)} for _ in range(10)]),  # keys of open maps
    cbor2.dumps({i: {j: {k: k for k in range(60)} for j in range(20)} for i in range(2)}),
    b"\x5b" + b"\xff" * 8, b"\x9b" + b"\xff" * 8, b"\xbb" + b"\xff" * 8,
    b"\xdb" + b"\xff" * 8 + b"\x00",
])
@pytest.mark.parametrize("limits", [DEFAULT_LIMITS, DecodeLimits(max_depth=10_000,
                                                                 max_container_items=2**62)])
def test_native_and_pure_agree_at_the_scanner_table_limits(data: bytes,
                                                           limits: DecodeLimits) -> None:
    _check(data, limits)


KEY = ec.generate_private_key(ec.SECP256R1())
PAYLOAD = cbor2.dumps({10: b"\x01" * 32, 265: "tag:psacertified.org,2023:psa#tfm",
                       2399: [{1: "BL", 2: b"\x02" * 32, 5: b"\x03" * 32}]})
SIGN1 = create_sign1(PAYLOAD, PrivateKeySigner(KEY), kid=b"kid", x5chain=(b"c1", b"c2"))
TOKENS = [SIGN1, create_mac0(PAYLOAD, b"k" * 32, kid=b"kid"), b"\xd8\x3d" + SIGN1, SIGN1[1:]]


def _decode_outcome(data: bytes, limits: DecodeLimits, options: VerifyOptions,
                    expected: Any, fn: Callable[..., Any] | None) -> object:
    with _scanner(fn):
        try:
            m = decode_cose(data, limits=limits, options=options, expected=expected)
        except EvidenceError as exc:
            return ("error", type(exc))
    return ("ok", m.kind, m.protected_bytes, repr(dict(m.protected)),
            repr(dict(m.unprotected)), m.payload, m.signature, m.tagged, m.cwt_tagged)


@AGREE
@given(token=st.sampled_from(TOKENS), mutations=st.lists(mutation, max_size=3),
       limits=st.sampled_from(LIMITS[:3]),
       options=st.sampled_from([VerifyOptions(), VerifyOptions(require_cose_tag=True)]),
       expected=st.sampled_from([None, "sign1", "mac0"]))
def test_decode_cose_agrees_with_and_without_the_scanner(
        token: bytes, mutations: list[tuple[str, int, Any]], limits: DecodeLimits,
        options: VerifyOptions, expected: Any) -> None:
    data = _mutate(token, mutations)
    assert (_decode_outcome(data, limits, options, expected, scan)
            == _decode_outcome(data, limits, options, expected, None)), data.hex()


# ---------------------------------------------------------------------------------------
# The fast path is really taken, and named attacks are caught by the scanner itself
# ---------------------------------------------------------------------------------------
def test_plain_claims_are_accepted_by_the_scanner() -> None:
    claims = {10: b"\x01" * 32, 265: "tag:psacertified.org,2023:psa#tfm", -75000: [
        {1: "BL", 2: b"\x02" * 32, 4: "1.0", 5: b"\x03" * 32}] * 3, 7: None, 9: 1.5,
        11: -(2**63), 12: 2**64 - 1, 13: cbor2.CBORTag(1000, [1, 2]), "é": "ü"}
    data = cbor2.dumps(claims)
    assert scan(data, 16, 1024, 64) is None
    assert strict_loads(data, limits=DEFAULT_LIMITS) == claims


@pytest.mark.parametrize(("data", "error"), [
    (b"\xa2\x0a\x41\x01\x0a\x41\x02", DuplicateMapKey),
    (b"\xa1\x01\xa2\x61a\x00\x61a\x00", DuplicateMapKey),
    (b"\xa2\x41a\x00\x61a\x00", None),                   # b"a" and "a" are different keys
    (b"\xa1\x81\x01\x00", UnsupportedCbor),
    (b"\xa1\xc1\x01\x00", UnsupportedCbor),
    (b"\xa1\xe6\x00", UnsupportedCbor),                  # simple value 6 as a key
    (b"\xa1\xf6\x00", UnsupportedCbor),                  # null
    (b"\xa1\xf4\x00", UnsupportedCbor),                  # false
    (b"\xa1\xf8\x20\x00", UnsupportedCbor),              # simple value 32
    (b"\xa1\xc2\x41\x01\x00", UnsupportedCbor),          # a (small) bignum key: tagged
    (b"\xc2\x49\x01" + b"\x00" * 8, IntegerTooLarge),    # 2**64: 65 bits
    (b"\xc3\x49\x01" + b"\x00" * 8, IntegerTooLarge),    # -1 - 2**64
    (b"\xc2\x48" + b"\xff" * 8, None),                   # 2**64 - 1: 64 bits
    (b"\xc2\x4a\x00\x00" + b"\xff" * 8, None),           # leading zeros do not count
    (b"\x81\xc2\x59\x07\xd0" + b"\xff" * 2000, IntegerTooLarge),
])
def test_scanner_names_duplicate_and_complex_keys(data: bytes,
                                                  error: type[EvidenceError] | None) -> None:
    found = scan(data, 16, 1024, 64)
    if error is None:
        assert found is None
    else:
        assert found is not None and _cbor._SCAN_ERRORS[found[0]] is error
    _check(data, DEFAULT_LIMITS)


# Keys that are one key in Python's data model (the walker's set) but not byte for byte,
# keys that look alike but are different, and non-preferred encodings.
COLLIDING_KEYS = [b"\x00", b"\x01", b"\xf4", b"\xf5", b"\xf9\x00\x00", b"\xf9\x80\x00",
                  b"\xf9\x3c\x00", b"\xfa\x3f\x80\x00\x00", b"\xfb\x3f\xf0" + b"\x00" * 6,
                  b"\xf9\x7e\x00", b"\xfb\x7f\xf8" + b"\x00" * 6, b"\xf6", b"\xf7", b"\xf0",
                  b"\xf8\x20", b"\x61a", b"\x41a", b"\x18\x01", b"\x7f\x61a\xff", b"\x20"]


@pytest.mark.parametrize("first", COLLIDING_KEYS)
@pytest.mark.parametrize("second", COLLIDING_KEYS)
def test_native_and_pure_agree_on_key_collisions(first: bytes, second: bytes) -> None:
    _check(b"\xa2" + first + b"\x00" + second + b"\x00", DEFAULT_LIMITS)
    _check(b"\xa3\x18\x64\x00" + first + b"\x00" + second + b"\x00", DEFAULT_LIMITS)


# Bytes around the edges of RFC 3629's table: overlong forms, surrogates, above U+10FFFF,
# lone and missing continuation bytes.
UTF8_PIECES = [b"A", b"\x7f", b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xc2\x80",
               b"\xdf\xbf", b"\xe0\x9f\xbf", b"\xe0\xa0\x80", b"\xed\x9f\xbf",
               b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xee\x80\x80", b"\xef\xbf\xbf",
               b"\xf0\x8f\xbf\xbf", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf",
               b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80",
               b"\xc2", b"\xe1\x80", b"\xf1\x80\x80", b"\xff"]
utf8_edges = st.one_of(
    st.lists(st.sampled_from(UTF8_PIECES), max_size=4).map(b"".join),
    st.lists(st.sampled_from([0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
                              0xDF, 0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF]),
             max_size=9).map(bytes))


@settings(max_examples=1500, deadline=None)
@given(raw=utf8_edges)
def test_scanner_utf8_check_is_pythons(raw: bytes) -> None:
    try:
        raw.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    data = _head(3, len(raw), None) + raw
    assert (scan(data, 16, 1024, 64) is None) is valid, raw.hex()
    _check(data, DEFAULT_LIMITS)
    _check(b"\xa1" + data + b"\x00", DEFAULT_LIMITS)


def test_scanner_refuses_the_same_tags_as_the_walker() -> None:
    assert frozenset(native.REFUSED_TAGS) == _cbor.REFUSED_TAGS


def test_scan_codes_are_the_modules_constants() -> None:
    names = {"SCAN_NESTING_TOO_DEEP": "NestingTooDeep", "SCAN_TOO_MANY_ITEMS": "TooManyItems",
             "SCAN_DUPLICATE_MAP_KEY": "DuplicateMapKey", "SCAN_TRAILING_BYTES": "TrailingBytes",
             "SCAN_TRUNCATED": "TruncatedEvidence", "SCAN_INVALID_CBOR": "InvalidCbor",
             "SCAN_UNEXPECTED_TAG": "UnexpectedTag", "SCAN_UNSUPPORTED_CBOR": "UnsupportedCbor",
             "SCAN_INTEGER_TOO_LARGE": "IntegerTooLarge"}
    assert {getattr(native, code): error for code, error in names.items()} == {
        code: error.__name__ for code, error in _cbor._SCAN_ERRORS.items()}
    assert native.SCAN_SLOW_PATH == _cbor._SCAN_SLOW_PATH


def test_scanner_takes_only_bytes() -> None:
    with pytest.raises(TypeError):
        scan(bytearray(b"\x00"), 16, 1024, 64)
    with pytest.raises(TypeError):
        scan(b"\x00", 16.0, 1024, 64)
    with pytest.raises(TypeError):
        scan(b"\x00", 16, 1024, 64.0)
    with pytest.raises(TypeError):
        scan(b"\x00", 16, 1024)


def test_existing_cose_tests_pass_on_the_pure_path() -> None:
    """Every other test in this directory, again with DEVATTEST_NO_EXTENSIONS=1."""
    env = dict(os.environ, DEVATTEST_NO_EXTENSIONS="1")
    check = subprocess.run(
        [sys.executable, "-c", "from devattest.cose import _cbor; assert _cbor._scan is None"],
        env=env, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    here = Path(__file__).resolve()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--ignore", str(here), str(here.parent)],
        env=env, cwd=REPO, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
