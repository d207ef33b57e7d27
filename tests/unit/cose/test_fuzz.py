"""Property tests: random mutations of valid tokens never raise anything but EvidenceError or
VerificationError, and the fast decoding path always agrees with the authoritative walker."""

from __future__ import annotations

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devattest.cose import (
    PrivateKeySigner,
    create_mac0,
    create_sign1,
    decode_cose,
    strict_loads,
    verify_mac0,
    verify_sign1,
)
from devattest.cose._cbor import _strict_walk
from devattest.errors import EvidenceError, InvalidCbor, VerificationError
from devattest.model import DEFAULT_LIMITS, DecodeLimits, VerifyOptions

KEY = ec.generate_private_key(ec.SECP256R1())
PAYLOAD = cbor2.dumps({10: b"\x01" * 32, 265: "tag:psacertified.org,2023:psa#tfm",
                       2399: [{1: "BL", 2: b"\x02" * 32, 5: b"\x03" * 32}]})
SIGN1 = create_sign1(PAYLOAD, PrivateKeySigner(KEY), kid=b"kid", x5chain=(b"c1", b"c2"))
MAC0 = create_mac0(PAYLOAD, b"k" * 32, kid=b"kid")
OPTIONS = [VerifyOptions(), VerifyOptions(allow_unprotected_alg=True, require_cose_tag=True)]
SMALL = DecodeLimits(max_depth=4, max_container_items=8)

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=9)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 9)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, object]]) -> bytes:
    out = bytearray(data)
    for op, at, arg in mutations:
        i = at % (len(out) + 1)
        if op == "flip" and i < len(out):
            out[i] ^= arg  # type: ignore[operator]
        elif op == "insert":
            out[i:i] = arg  # type: ignore[assignment]
        elif op == "delete":
            del out[i:i + arg]  # type: ignore[operator]
        elif op == "truncate":
            del out[i:]
    return bytes(out)


def _outcome(f: object, *args: object, **kw: object) -> object:
    try:
        return ("ok", f(*args, **kw))  # type: ignore[operator]
    except (EvidenceError, VerificationError) as exc:
        return ("error", type(exc))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from([SIGN1, MAC0]), mutations=st.lists(mutation, min_size=1,
                                                               max_size=4),
       options=st.sampled_from(OPTIONS), expected=st.sampled_from([None, "sign1", "mac0"]))
def test_mutated_tokens_raise_only_typed_errors(base: bytes, mutations: list[tuple[str, int,
                                                                                   object]],
                                                options: VerifyOptions,
                                                expected: str | None) -> None:
    data = _mutate(base, mutations)
    try:
        msg = decode_cose(data, limits=DEFAULT_LIMITS, options=options,
                          expected=expected)  # type: ignore[arg-type]
        if msg.kind == "sign1":
            verify_sign1(msg, KEY.public_key(), options=options)
        else:
            verify_mac0(msg, b"k" * 32, options=options)
        strict_loads(msg.payload, limits=DEFAULT_LIMITS)
    except (EvidenceError, VerificationError):
        pass


def _agrees_with_walker(data: bytes, limits: DecodeLimits) -> None:
    try:
        _strict_walk(data, limits)
        verdict: object = None
    except EvidenceError as exc:
        verdict = type(exc)
    got = _outcome(strict_loads, data, limits=limits)
    if verdict is None:
        # The walker accepted: cbor2's value, or InvalidCbor for invalid tag content.
        assert got[0] == "ok" or got == ("error", InvalidCbor), (data.hex(), got)
    else:
        assert got == ("error", verdict), (data.hex(), got, verdict)


@settings(max_examples=400, deadline=None)
@given(base=st.sampled_from([SIGN1, MAC0, PAYLOAD]),
       mutations=st.lists(mutation, min_size=1, max_size=3),
       limits=st.sampled_from([DEFAULT_LIMITS, SMALL]))
def test_fast_path_agrees_with_walker_on_mutations(base: bytes,
                                                   mutations: list[tuple[str, int, object]],
                                                   limits: DecodeLimits) -> None:
    _agrees_with_walker(_mutate(base, mutations), limits)


cbor_values = st.recursive(
    st.one_of(st.integers(-(2**70), 2**70), st.binary(max_size=8), st.text(max_size=4),
              st.booleans(), st.none(), st.floats(allow_nan=False)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.integers(-30, 30), st.text(max_size=2),
                                  st.binary(max_size=2)), inner, max_size=5),
        st.builds(cbor2.CBORTag, st.sampled_from([24, 61, 1000, 55799]), inner)),
    max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(value=cbor_values, limits=st.sampled_from([DEFAULT_LIMITS, SMALL]))
def test_fast_path_agrees_with_walker_on_random_values(value: object,
                                                       limits: DecodeLimits) -> None:
    _agrees_with_walker(cbor2.dumps(value), limits)


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xa0", b"\x80"])
def test_trivial_inputs(data: bytes) -> None:
    _agrees_with_walker(data, DEFAULT_LIMITS)
