"""Hostile Evidence never makes the Verifier malfunction (issue 13, defect 2).

A "verifier malfunction" (-1) result for hostile input is itself a defect: the Evidence was
not appraised and the reason tells nobody what was wrong with it. Validly signed PSA and EAT
tokens whose claims (or COSE headers) have one value replaced by an arbitrary CBOR value
(bignums, simple values, tags, NaN, deep or odd containers) must each give a result that is
not a malfunction, and that result must sign as an EAR a Relying Party verifies.
"""

from __future__ import annotations

import hashlib
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devattest.cose import PrivateKeySigner, create_sign1
from devattest.ear import verify_ear_jwt
from devattest.model import KeyAnchor, TrustAnchors
from devattest.policy import DefaultPolicy
from devattest.schemes.eat import eat_claims_map
from devattest.schemes.psa import encode_psa_claims, psa_instance_id
from devattest.verifier import verify_and_sign
from tests._support.claim_paths import key_paths, replace_at

PSA = "application/psa-attestation-token"
EAT = "application/eat+cwt"
NOW = 1_800_000_000
NONCE = bytes(range(32))
KEY = ec.generate_private_key(ec.SECP256R1())
SIGNER = PrivateKeySigner(KEY)
IID = psa_instance_id(KEY.public_key())
EAR_KEY = ec.generate_private_key(ec.SECP256R1())
ANCHORS = {PSA: TrustAnchors.of(keys=[KeyAnchor(public_key=KEY.public_key(), instance_id=IID)]),
           EAT: TrustAnchors.of(keys=[KeyAnchor(public_key=KEY.public_key())])}
TAG_COSWID = 1398229316
COSWID_MAP: dict[Any, Any] = {
    0: "tag-id", 12: 0, 1: "software", 2: {31: "entity", 33: 1}, 13: "1.0",
    3: {17: [{24: "firmware.bin", 7: [1, b"\x01" * 32]}],
        16: {17: {24: "f2", 7: [7, b"\x02" * 48]}}}}
COSWID = cbor2.dumps(cbor2.CBORTag(TAG_COSWID, COSWID_MAP))
HUGE = 2**16000  # a 2,000-byte bignum: printing it raises


class _Huge:
    """Stands for +-HUGE in generated values, so that Hypothesis can print an example."""

    def __init__(self, sign: int) -> None:
        self.sign = sign

    def __repr__(self) -> str:
        return "HUGE" if self.sign > 0 else "-HUGE"


def _encode_huge(encoder: Any, value: Any) -> None:
    encoder.encode(value.sign * HUGE)


def _dumps(value: Any) -> bytes:
    return cbor2.dumps(value, default=_encode_huge)

PSA_CLAIMS: dict[Any, Any] = cbor2.loads(encode_psa_claims({
    "profile_id": "tag:psacertified.org,2023:psa#tfm", "client_id": 1,
    "security_lifecycle": 0x3000, "implementation_id": b"\x11" * 32,
    "boot_seed": b"\x22" * 32, "instance_id": IID, "challenge": NONCE,
    "certification_reference": "1234567890123-12345", "verification_service": "https://v",
    "sw_components": [{"measurement_type": "BL", "version": "1.0",
                       "measurement_value": hashlib.sha256(b"bl").digest(),
                       "signer_id": b"\x33" * 32, "measurement_desc": "sha-256"}]}))
EAT_CLAIMS: dict[Any, Any] = eat_claims_map({
    "eat_nonce": NONCE, "ueid": b"\x01" + b"\xaa" * 32, "oemid": b"\x01\x02\x03",
    "hwmodel": b"\x01\x02", "hwversion": ["1.0", 1], "swversion": ["2.0"], "swname": "fw",
    "uptime": 5, "bootcount": 4, "bootseed": b"\x05" * 8, "oemboot": True, "dbgstat": 1,
    "location": {1: 1.5, 2: 2.5, 8: NOW}, "iat": NOW - 5, "exp": NOW + 300,
    "measurements": [[258, COSWID]], "measres": [["sys", [["BL", 1], [b"\x01", 2]]]],
    "dloas": [["https://r", "p", "a"]], "intuse": 2, "sueids": {"a": b"\x01" + b"\xbb" * 16},
    "submods": {"s": {10: NONCE, 263: 0}, "t": b"\xd2\x84", "d": [1, b"\x00" * 32]},
    "iss": "i", "sub": "s", "aud": ["a"], "cti": b"c"})

scalars = st.one_of(
    st.none(), st.booleans(), st.floats(), st.text(max_size=12), st.binary(max_size=40),
    st.integers(-(2**64), 2**64 - 1), st.integers(-(2**200), 2**200),
    st.sampled_from([0, 1, 2, 3, 258, 65535, 65536, -1, 2**31, 2**64 - 1, -(2**64),
                     _Huge(1), _Huge(-1), 2**64, [1, 2], [_Huge(1), b"\x00" * 32],
                     [[1], b"\x00" * 32],
                     cbor2.CBORSimpleValue(6), cbor2.undefined, b"\x01" * 33, "",
                     b"\x00" * 7, b"\x01" + b"\x00" * 15]))
keys = st.one_of(st.integers(-(2**64), 2**64 - 1), st.text(max_size=6), st.binary(max_size=3),
                 st.sampled_from([1, 2, 4, 5, 6, 7, 10, 256, 265, 266, 273, 274, -75000, _Huge(1),
                                  cbor2.CBORSimpleValue(6), None, True, 1.0, float("nan")]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4),
    st.builds(cbor2.CBORTag, st.sampled_from([1, 2, 3, 4, 30, 37, 61, 18, 100, 258, 260,
                                              1000, TAG_COSWID]), inner)),
    max_leaves=15)
FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _paths(value: Any) -> list[tuple[Any, ...]]:
    """Every path below the top-level map (the map itself is never replaced here)."""
    return key_paths(value)[1:]



def _appraise(token: bytes, media_type: str) -> None:
    signed = verify_and_sign(token, media_type=media_type, expected_nonce=NONCE,
                             trust_anchors=ANCHORS[media_type], reference_values=None,
                             policy=DefaultPolicy(), now=NOW, signing_key=EAR_KEY)
    reasons = [code for sub in signed.result.submods.values() for code, _ in sub.reasons]
    assert "verifier_malfunction" not in reasons, signed.result.submods
    ear = verify_ear_jwt(signed.ear_jwt, EAR_KEY.public_key(), now=NOW)
    assert ear.status is signed.result.status


def _sign(claims: Any) -> bytes:
    return create_sign1(_dumps(claims), SIGNER)


def test_the_base_tokens_are_appraised() -> None:
    _appraise(_sign(PSA_CLAIMS), PSA)
    _appraise(_sign(EAT_CLAIMS), EAT)


@FUZZ
@given(path=st.sampled_from(_paths(PSA_CLAIMS)), new=values)
def test_any_psa_claim_replaced_by_any_value_is_not_a_malfunction(
        path: tuple[Any, ...], new: Any) -> None:
    _appraise(_sign(replace_at(PSA_CLAIMS, path, new)), PSA)


@FUZZ
@given(path=st.sampled_from(_paths(EAT_CLAIMS)), new=values)
def test_any_eat_claim_replaced_by_any_value_is_not_a_malfunction(
        path: tuple[Any, ...], new: Any) -> None:
    _appraise(_sign(replace_at(EAT_CLAIMS, path, new)), EAT)


@FUZZ
@given(key=keys, new=values, media_type=st.sampled_from([PSA, EAT]))
def test_any_extra_claim_is_not_a_malfunction(key: Any, new: Any, media_type: str) -> None:
    base = PSA_CLAIMS if media_type == PSA else EAT_CLAIMS
    _appraise(_sign({**base, key: new}), media_type)


@FUZZ
@given(path=st.sampled_from(_paths(COSWID_MAP)), new=values)
def test_any_coswid_field_replaced_by_any_value_is_not_a_malfunction(
        path: tuple[Any, ...], new: Any) -> None:
    content = _dumps(cbor2.CBORTag(TAG_COSWID, replace_at(COSWID_MAP, path, new)))
    _appraise(_sign({**EAT_CLAIMS, 273: [[258, content]]}), EAT)


@FUZZ
@given(protected=st.dictionaries(st.sampled_from([1, 2, 3, 4, 33, 99]), values, max_size=3),
       unprotected=st.dictionaries(st.sampled_from([1, 2, 3, 4, 33, 99]), values, max_size=3),
       media_type=st.sampled_from([PSA, EAT]))
def test_any_cose_headers_are_not_a_malfunction(protected: dict[int, Any],
                                                unprotected: dict[int, Any],
                                                media_type: str) -> None:
    payload = cbor2.dumps(PSA_CLAIMS if media_type == PSA else EAT_CLAIMS)
    prot = _dumps(protected) if protected else b""
    signature = SIGNER.sign(cbor2.dumps(["Signature1", prot, b"", payload]))
    _appraise(_dumps(cbor2.CBORTag(18, [prot, unprotected, payload, signature])), media_type)
