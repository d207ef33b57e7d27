"""A Relying Party's EAR verification raises only typed errors, whatever it is handed
(issue 13, defect 3): random bytes, mutated tokens, and, since the signature gates the
claims parser, validly signed tokens whose claims-set is random or mutated.

Before, a bignum ``alg`` made ``verify_ear_cwt`` raise a bare ValueError, and claims of odd
types reached lookups and formatting that raised TypeError or ValueError.
"""

from __future__ import annotations

import contextlib
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devattest.cose import PrivateKeySigner, create_sign1
from devattest.ear import (
    result_to_cbor_claims,
    result_to_claims,
    sign_ear_cwt,
    sign_ear_jwt,
    verify_ear_cwt,
    verify_ear_jwt,
)
from devattest.errors import ResultError
from tests._support.claim_paths import key_paths, replace_at
from tests.unit.ear._results import NOW, make_result, sign_raw_jwt

KEY = ec.generate_private_key(ec.SECP256R1())
PUB = KEY.public_key()
SIGNER = PrivateKeySigner(KEY)
GOOD_JWT = sign_ear_jwt(make_result(), KEY, kid="k1")
GOOD_CWT = sign_ear_cwt(make_result(), SIGNER, kid=b"k1")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _verify_jwt(token: str | bytes) -> None:
    with contextlib.suppress(ResultError):
        verify_ear_jwt(token, PUB, now=NOW)


def _verify_cwt(token: bytes) -> None:
    with contextlib.suppress(ResultError):
        verify_ear_cwt(token, PUB, now=NOW)


def _signed_jwt(header: Any, claims: Any) -> str:
    """A JWS over arbitrary JSON, validly signed with KEY (ES256)."""
    return sign_raw_jwt(KEY, header, claims)


# JSON values: every type, big and odd numbers, deep and wide containers.
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**200), 2**200),
                         st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=20), st.sampled_from(["", "affirming", "warning",
                                                                "contraindicated", "none"]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20)
# CBOR values within what a strict decoder returns (no bignum beyond 64 bits).
cbor_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64 - 1),
                         st.floats(), st.text(max_size=20), st.binary(max_size=20),
                         st.sampled_from([2, 32, 96, 0, -1, 1000, 265]))
cbor_keys = st.one_of(st.integers(-(2**64), 2**64 - 1), st.text(max_size=8),
                      st.binary(max_size=4), st.sampled_from([0, 1, 4, 6, 10, 265, 266, 1000,
                                                              1001, 1002, 1003, 1004, -77000]))
cbor_values = st.recursive(cbor_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(cbor_keys, inner, max_size=4),
    st.builds(cbor2.CBORTag, st.sampled_from([1, 18, 61, 1000, 1398229316]), inner)),
    max_leaves=20)




JSON_CLAIMS = result_to_claims(make_result())
JSON_PATHS = key_paths(JSON_CLAIMS)
CBOR_CLAIMS = result_to_cbor_claims(make_result())
CBOR_PATHS = key_paths(CBOR_CLAIMS)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_random_input_to_verify_ear_jwt_raises_only_result_errors(data: str | bytes) -> None:
    _verify_jwt(data)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_input_to_verify_ear_cwt_raises_only_result_errors(data: bytes) -> None:
    _verify_cwt(data)


@FUZZ
@given(at=st.integers(0, len(GOOD_CWT) - 1), byte=st.integers(0, 255),
       cut=st.integers(0, len(GOOD_CWT)))
def test_mutated_ear_cwt_raises_only_result_errors(at: int, byte: int, cut: int) -> None:
    token = bytearray(GOOD_CWT)
    token[at] = byte
    _verify_cwt(bytes(token))
    _verify_cwt(GOOD_CWT[:cut])


@FUZZ
@given(header=st.one_of(json_values, st.dictionaries(
    st.sampled_from(["alg", "typ", "kid", "crit", "jwk"]), json_values, max_size=3).map(
    lambda h: {"alg": "ES256", **h})))
def test_signed_jwt_with_any_header_raises_only_result_errors(header: Any) -> None:
    _verify_jwt(_signed_jwt(header, JSON_CLAIMS))


@FUZZ
@given(path=st.sampled_from(JSON_PATHS), new=json_values)
def test_signed_jwt_with_any_claim_replaced_raises_only_result_errors(
        path: tuple[Any, ...], new: Any) -> None:
    _verify_jwt(_signed_jwt({"alg": "ES256"}, replace_at(JSON_CLAIMS, path, new)))


@FUZZ
@given(protected=st.dictionaries(st.sampled_from([1, 2, 3, 4, 33]), cbor_values, max_size=3))
def test_signed_cwt_with_any_protected_header_raises_only_result_errors(
        protected: dict[int, Any]) -> None:
    payload = cbor2.dumps(CBOR_CLAIMS)
    prot = cbor2.dumps(protected)
    signature = SIGNER.sign(cbor2.dumps(["Signature1", prot, b"", payload]))
    _verify_cwt(cbor2.dumps(cbor2.CBORTag(18, [prot, {}, payload, signature])))


@FUZZ
@given(path=st.sampled_from(CBOR_PATHS), new=cbor_values)
def test_signed_cwt_with_any_claim_replaced_raises_only_result_errors(
        path: tuple[Any, ...], new: Any) -> None:
    _verify_cwt(create_sign1(cbor2.dumps(replace_at(CBOR_CLAIMS, path, new)), SIGNER))


def test_bignum_alg_in_an_ear_cwt_is_a_result_error_not_a_value_error() -> None:
    payload = cbor2.dumps(CBOR_CLAIMS)
    for alg in (2**16000, -(2**70), 2**64):
        prot = cbor2.dumps({1: alg})
        signature = SIGNER.sign(cbor2.dumps(["Signature1", prot, b"", payload]))
        token = cbor2.dumps(cbor2.CBORTag(18, [prot, {}, payload, signature]))
        try:
            verify_ear_cwt(token, PUB, now=NOW)
        except ResultError:
            continue
        raise AssertionError("an EAR with a bignum alg was accepted")
