"""Strict CBOR decoding: each violation its own EvidenceError, on both decoding paths."""

from __future__ import annotations

import tracemalloc

import cbor2
import pytest

from devattest.cose import PrivateKeySigner, create_sign1, decode_cose, strict_loads
from devattest.cose._cbor import _strict_walk
from devattest.errors import (
    DuplicateMapKey,
    InvalidCbor,
    NestingTooDeep,
    TokenTooLarge,
    TooManyItems,
    TrailingBytes,
    TruncatedEvidence,
    UnexpectedTag,
    UnsupportedCbor,
)
from devattest.model import DEFAULT_LIMITS, DEFAULT_OPTIONS, DecodeLimits

L = DEFAULT_LIMITS
OPTS = DEFAULT_OPTIONS


def _sign1(signer: PrivateKeySigner, payload: bytes = b"\xa1\x01\x02") -> bytes:
    return create_sign1(payload, signer, kid=b"k")


# ---------------------------------------------------------------------------------------
# The attacks, each with its own error
# ---------------------------------------------------------------------------------------
def test_rejects_oversized_token(signer: PrivateKeySigner) -> None:
    token = create_sign1(b"\x00" * (64 * 1024), signer)
    with pytest.raises(TokenTooLarge):
        decode_cose(token, limits=L, options=OPTS)
    with pytest.raises(TokenTooLarge):
        strict_loads(cbor2.dumps(b"x" * 70000), limits=L)


def test_rejects_20000_deep_nesting() -> None:
    for data in (b"\x81" * 20000 + b"\x00", b"\xa1\x01" * 20000 + b"\x00",
                 b"\xd8\x20" * 20000 + b"\x00", b"\x9f" * 20000):
        with pytest.raises(NestingTooDeep):
            strict_loads(data, limits=L)
        with pytest.raises(NestingTooDeep):
            decode_cose(b"\xd2" + data, limits=L, options=OPTS)
    # Even with a limit above cbor2's own (400), nothing recurses in Python.
    with pytest.raises(NestingTooDeep):
        strict_loads(b"\x81" * 20000 + b"\x00", limits=DecodeLimits(max_depth=100000))


def test_depth_limit_is_exact() -> None:
    limits = DecodeLimits(max_depth=3)
    assert strict_loads(b"\x81\x81\x81\x00", limits=limits) == [[[0]]]
    with pytest.raises(NestingTooDeep):
        strict_loads(b"\x81\x81\x81\x81\x00", limits=limits)
    # A tag around a container counts; a bignum (tag 2 around a bstr) does not.
    with pytest.raises(NestingTooDeep):
        strict_loads(b"\x81\x81\xd8\x20\x81\x00", limits=limits)
    wide = DecodeLimits(max_depth=3, max_bignum_bits=72)
    assert strict_loads(b"\x81\x81\x81\xc2\x49\x01" + b"\x00" * 8, limits=wide) == [[[2**64]]]
    # The same, non-preferred (slow path): identical verdicts.
    assert strict_loads(b"\x98\x01\x81\x81\x00", limits=limits) == [[[0]]]
    with pytest.raises(NestingTooDeep):
        strict_loads(b"\x98\x01\x81\x81\x81\x00", limits=limits)


def test_rejects_bstr_header_claiming_gigabytes() -> None:
    for data in (b"\x5b\x00\x00\x00\x40\x00\x00\x00\x00" + b"a" * 16,
                 b"\x5a\xff\xff\xff\xff" + b"a" * 16,
                 b"\x7b\x7f\xff\xff\xff\xff\xff\xff\xff",
                 b"\x9a\x40\x00\x00\x00\x00",
                 b"\xba\x40\x00\x00\x00\x00\x00"):
        tracemalloc.start()
        try:
            with pytest.raises(TruncatedEvidence):
                strict_loads(data, limits=DecodeLimits(max_container_items=2**40))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 1024 * 1024, f"allocated {peak} bytes for {data[:9].hex()}"


def test_rejects_gigabyte_payload_header_inside_cose(signer: PrivateKeySigner) -> None:
    token = bytearray(_sign1(signer))
    # protected bstr head 0x43 -> replace the payload head by a 4 GiB claim.
    body = b"\xd2\x84\x43\xa1\x01\x26\xa0\x5b\x00\x00\x00\x01\x00\x00\x00\x00" + b"x" * 64
    with pytest.raises(TruncatedEvidence):
        decode_cose(body, limits=L, options=OPTS)
    assert token  # the valid token itself still decodes
    decode_cose(bytes(token), limits=L, options=OPTS)


def test_rejects_duplicate_map_keys_in_header(signer: PrivateKeySigner) -> None:
    token = _sign1(signer)
    msg = cbor2.loads(token).value
    # unprotected {4: b"k", 4: b"k"} by hand
    unprot = b"\xa2\x04\x41k\x04\x41k"
    data = (b"\xd2\x84" + cbor2.dumps(msg[0]) + unprot + cbor2.dumps(msg[2])
            + cbor2.dumps(msg[3]))
    with pytest.raises(DuplicateMapKey):
        decode_cose(data, limits=L, options=OPTS)
    # protected {1: -7, 1: -7}
    prot = cbor2.dumps(b"\xa2\x01\x26\x01\x26")
    data = b"\xd2\x84" + prot + b"\xa0" + cbor2.dumps(msg[2]) + cbor2.dumps(msg[3])
    with pytest.raises(DuplicateMapKey):
        decode_cose(data, limits=L, options=OPTS)


def test_rejects_duplicate_map_keys_in_payload(signer: PrivateKeySigner) -> None:
    payload = b"\xa2\x0a\x41\x01\x0a\x41\x02"  # {10: h'01', 10: h'02'}
    msg = decode_cose(create_sign1(payload, signer), limits=L, options=OPTS)
    with pytest.raises(DuplicateMapKey):
        strict_loads(msg.payload, limits=L)


@pytest.mark.parametrize("data", [
    b"\xa2\x01\x00\xf9\x3c\x00\x00",           # 1 and 1.0
    b"\xa2\x61a\x00\x7f\x61a\xff\x00",         # "a" and an indefinite "a"
    b"\xbf\x01\x00\x01\x00\xff",               # indefinite-length map
    b"\xa1\x01\xa2\x02\x00\x02\x00",           # nested
])
def test_rejects_duplicate_map_keys_in_any_encoding(data: bytes) -> None:
    with pytest.raises(DuplicateMapKey):
        strict_loads(data, limits=L)


def test_rejects_trailing_bytes(signer: PrivateKeySigner) -> None:
    with pytest.raises(TrailingBytes):
        decode_cose(_sign1(signer) + b"\x00", limits=L, options=OPTS)
    with pytest.raises(TrailingBytes):
        strict_loads(b"\x01\x02", limits=L)


def test_rejects_truncated_token(signer: PrivateKeySigner) -> None:
    token = _sign1(signer)
    for cut in range(len(token)):
        with pytest.raises(TruncatedEvidence):
            decode_cose(token[:cut], limits=L, options=OPTS)


@pytest.mark.parametrize("data", [
    b"\x1c",            # reserved additional information
    b"\x5f\x01\xff",    # indefinite bstr with a non-string chunk
    b"\x5f\x61a\xff",   # text chunk in a byte string
    b"\x62\xff\xfe",    # invalid UTF-8
    b"\xff",            # stray break
    b"\x81\xff",        # break inside a definite array
    b"\xf8\x10",        # two-byte simple value below 32
    b"\x3f",            # indefinite negative integer
    b"\xdf\x00",        # indefinite tag
    b"\xbf\x01\xff",    # indefinite map with a key but no value
    b"\xc1\x61a",       # tag 1 (epoch time) around text: invalid tag content
])
def test_rejects_not_well_formed(data: bytes) -> None:
    with pytest.raises(InvalidCbor):
        strict_loads(data, limits=L)


@pytest.mark.parametrize("data", [
    b"\xd8\x1c\x81\x01",                      # shareable (28)
    b"\x82\xd8\x1c\x81\x01\xd8\x1d\x00",      # shared reference (29)
    b"\xd9\x01\x00\x82\x63abc\xd8\x19\x00",   # string reference namespace (256) and ref (25)
    b"\xd8\x23\x61a",                         # regular expression (35)
    b"\xd8\x24\x61a",                         # MIME (36)
])
def test_rejects_refused_tags(data: bytes) -> None:
    with pytest.raises(UnexpectedTag):
        strict_loads(data, limits=L)


def test_rejects_string_reference_bomb() -> None:
    """Value sharing could make 64 KiB expand to gigabytes when re-encoded."""
    big = b"\xd8\x1c\x5a\x00\x00\x80\x00" + b"a" * 32768
    data = b"\x99\x03\xff" + big + b"\xd8\x1d\x00" * 1022
    with pytest.raises((UnexpectedTag, TooManyItems)):
        strict_loads(data, limits=DecodeLimits(max_container_items=4096))


def test_rejects_too_many_items() -> None:
    with pytest.raises(TooManyItems):
        strict_loads(cbor2.dumps(list(range(11))), limits=DecodeLimits(max_container_items=10))
    with pytest.raises(TooManyItems):
        strict_loads(b"\x9f" + b"\x00" * 11 + b"\xff", limits=DecodeLimits(max_container_items=10))
    assert strict_loads(cbor2.dumps(list(range(10))),
                        limits=DecodeLimits(max_container_items=10)) == list(range(10))


@pytest.mark.parametrize("data", [b"\xa1\x81\x01\x00", b"\xa1\xa0\x00", b"\xa1\xc1\x01\x00"])
def test_rejects_complex_map_keys(data: bytes) -> None:
    with pytest.raises(UnsupportedCbor):
        strict_loads(data, limits=L)


# ---------------------------------------------------------------------------------------
# Valid input: both paths accept and agree with cbor2
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("data", [
    b"\x18\x01",                          # non-preferred integer
    b"\x5f\x41a\x41b\xff",                # indefinite bstr
    b"\x9f\x01\x02\xff",                  # indefinite array
    b"\xbf\x01\x02\xff",                  # indefinite map
    b"\xf9\x3c\x00",                      # half float
    b"\xc2\x48" + b"\xff" * 8,            # bignum of 64 bits (fits a plain integer)
    b"\xc3\x41\x01",                      # small negative bignum
    b"\xd9\xd9\xf7\x01",                  # self-described CBOR
    b"\xf0",                              # simple value 16
    b"\xa2\x01\x02\x03\x04",
])
def test_accepts_valid_non_preferred_encodings(data: bytes) -> None:
    assert strict_loads(data, limits=L) == cbor2.loads(data)
    _strict_walk(data, L)


def test_accepts_plain_claims_on_fast_path() -> None:
    claims = {10: b"\x01" * 32, 265: "x", -75000: [{1: "BL", 2: b"\x02" * 32}], 7: None,
              8: True, 9: 1.5, 11: -(2**63), 12: 2**64 - 1}
    data = cbor2.dumps(claims)
    assert strict_loads(data, limits=L) == claims
    _strict_walk(data, L)


def test_accepts_memoryview_and_bytearray() -> None:
    assert strict_loads(bytearray(b"\x82\x01\x02"), limits=L) == [1, 2]
    assert strict_loads(memoryview(b"\x82\x01\x02"), limits=L) == [1, 2]


# ---------------------------------------------------------------------------------------
# Oversized integers and simple-value keys (issue 13, defect 2): refused on every path
# ---------------------------------------------------------------------------------------
HUGE = 2**16000  # a 2,000-byte bignum: printing it raises (int-to-string limit)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("data", [
    cbor2.dumps(HUGE),
    cbor2.dumps(-HUGE),
    cbor2.dumps(2**64),                              # 65 bits
    cbor2.dumps(-(2**64) - 1),
    cbor2.dumps({1: [2, {3: HUGE}]}),
    cbor2.dumps(cbor2.CBORTag(18, [b"", {1: HUGE}, b"", b""])),
    b"\xc2\x5f\x41\x01\x48" + b"\x00" * 8 + b"\xff",  # indefinite-length magnitude
], ids=["huge", "minus-huge", "65-bits", "minus-65-bits", "nested", "cose-header",
        "indefinite"])
def test_bignum_of_thousands_of_bits_is_refused_before_anything_prints_it(
        data: bytes, native: bool) -> None:
    from devattest.cose import _cbor
    from devattest.errors import IntegerTooLarge

    saved = _cbor._scan
    if not native:
        _cbor._scan = None
    try:
        with pytest.raises(IntegerTooLarge, match="limit is 64"):
            strict_loads(data, limits=L)
    finally:
        _cbor._scan = saved
    with pytest.raises(IntegerTooLarge):
        _strict_walk(data, L)


def test_bignum_limit_is_a_decode_limit() -> None:
    from devattest.errors import IntegerTooLarge

    data = cbor2.dumps(2**100)
    assert strict_loads(data, limits=DecodeLimits(max_bignum_bits=101)) == 2**100
    with pytest.raises(IntegerTooLarge):
        strict_loads(data, limits=DecodeLimits(max_bignum_bits=100))
    # Leading zero bytes of the magnitude do not count; the limit is on the value.
    padded = b"\xc2\x4a\x00\x00" + b"\xff" * 8
    assert strict_loads(padded, limits=L) == 2**64 - 1


def test_bignum_whose_content_is_not_a_byte_string_is_invalid() -> None:
    with pytest.raises(InvalidCbor, match="bignum"):
        strict_loads(b"\xc2\x82\x01\x01", limits=L)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("key", [b"\xe6", b"\xe0", b"\xf3", b"\xf4", b"\xf5", b"\xf6", b"\xf7",
                                 b"\xf8\x20", b"\xf8\xff"])
def test_simple_value_map_key_is_refused(key: bytes, native: bool) -> None:
    from devattest.cose import _cbor

    saved = _cbor._scan
    if not native:
        _cbor._scan = None
    try:
        for data in (b"\xa1" + key + b"\x01", b"\xa2\x0a\x41\x01" + key + b"\x01",
                     b"\xbf" + key + b"\x01\xff", b"\x81\xa1" + key + b"\x01"):
            with pytest.raises(UnsupportedCbor, match="simple value"):
                strict_loads(data, limits=L)
    finally:
        _cbor._scan = saved
