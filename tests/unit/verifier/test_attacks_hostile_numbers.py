"""Forged tokens with oversized integers and odd map keys (issue 13, defect 2).

Each once reached "verifier malfunction" (-1) before any signature check: Python refuses to
print an integer of more than 4,300 digits, and error messages printed attacker values; an
array used as a dict key raised TypeError. Each must give a signed, contraindicated EAR whose
reason names the defect, on the native-scanner path and the pure-Python path alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from devattest.cose import PrivateKeySigner, _cbor, create_sign1
from devattest.ear import verify_ear_jwt
from devattest.model import KeyAnchor, TrustAnchors
from devattest.policy import DefaultPolicy
from devattest.schemes.eat import create_eat
from devattest.schemes.psa import create_psa_token, psa_instance_id
from devattest.verifier import verify_and_sign

PSA = "application/psa-attestation-token"
EAT = "application/eat+cwt"
NOW = 1_800_000_000
NONCE = bytes(range(32))
KEY = ec.generate_private_key(ec.SECP256R1())
IID = psa_instance_id(KEY.public_key())
EAR_KEY = ec.generate_private_key(ec.SECP256R1())
PSA_ANCHORS = TrustAnchors.of(keys=[KeyAnchor(public_key=KEY.public_key(), instance_id=IID)])
EAT_ANCHORS = TrustAnchors.of(keys=[KeyAnchor(public_key=KEY.public_key())])
HUGE = 2**16000  # a 2,000-byte bignum
TAG_COSWID = 1398229316


@pytest.fixture(params=["native", "pure"], autouse=True)
def _decode_path(request: pytest.FixtureRequest) -> Iterator[None]:
    saved = _cbor._scan
    if request.param == "pure":
        _cbor._scan = None
    elif saved is None:
        pytest.skip("the native scanner is not built")
    try:
        yield
    finally:
        _cbor._scan = saved


def signed_verdict(token: bytes, media_type: str) -> tuple[str, str, str]:
    """Appraise and sign; verify the EAR as a Relying Party: (status, reason code, message)."""
    anchors = PSA_ANCHORS if media_type == PSA else EAT_ANCHORS
    signed = verify_and_sign(token, media_type=media_type, expected_nonce=NONCE,
                             trust_anchors=anchors, reference_values=None,
                             policy=DefaultPolicy(), now=NOW, signing_key=EAR_KEY)
    ear = verify_ear_jwt(signed.ear_jwt, EAR_KEY.public_key(), now=NOW)
    code, message = ear.reasons[0] if ear.reasons else ("", "")
    return ear.status.value, code, message


def psa_claims(**extra: Any) -> dict[str, Any]:
    return {"profile_id": "tag:psacertified.org,2023:psa#tfm", "client_id": 1,
            "security_lifecycle": 0x3000, "implementation_id": b"\x11" * 32,
            "boot_seed": b"\x22" * 32, "instance_id": IID, "challenge": NONCE,
            "sw_components": [{"measurement_type": "BL",
                               "measurement_value": hashlib.sha256(b"bl").digest(),
                               "signer_id": b"\x33" * 32}], **extra}


def coswid(hash_entry: Any) -> bytes:
    """A CoSWID (RFC 9393) whose one file has ``hash_entry`` as its hash."""
    return cbor2.dumps(cbor2.CBORTag(TAG_COSWID, {
        0: "tag-id", 12: 0, 1: "software", 2: {31: "entity", 33: 1},
        3: {17: {24: "firmware.bin", 7: hash_entry}}}))


def test_psa_client_id_of_2000_bytes_is_refused_not_a_malfunction() -> None:
    token = create_psa_token(psa_claims(client_id=HUGE), KEY)
    assert signed_verdict(token, PSA)[:2] == ("contraindicated", "integer_too_large")


def test_eat_coswid_hash_algorithm_given_as_an_array_is_an_invalid_claim() -> None:
    token = create_eat({"eat_nonce": NONCE,
                        "measurements": [[258, coswid([[1, 2], b"\x00" * 32])]]}, KEY)
    status, code, message = signed_verdict(token, EAT)
    assert (status, code) == ("contraindicated", "invalid_claim")
    assert "hash-alg-id" in message


def test_eat_coswid_hash_algorithm_given_as_a_bignum_is_an_invalid_claim() -> None:
    token = create_eat({"eat_nonce": NONCE,
                        "measurements": [[258, coswid([HUGE, b"\x00" * 32])]]}, KEY)
    status, code, message = signed_verdict(token, EAT)
    assert (status, code) == ("contraindicated", "invalid_claim")
    assert "integer_too_large" in message


def test_eat_measurement_content_type_given_as_a_bignum_is_refused() -> None:
    token = create_eat({"eat_nonce": NONCE, "measurements": [[HUGE, b"x"]]}, KEY)
    assert signed_verdict(token, EAT)[:2] == ("contraindicated", "integer_too_large")


@pytest.mark.parametrize("media_type", [PSA, EAT])
def test_cose_alg_given_as_a_bignum_is_refused(media_type: str) -> None:
    payload = cbor2.dumps({10: NONCE})
    protected = cbor2.dumps({1: HUGE})
    signature = PrivateKeySigner(KEY).sign(cbor2.dumps(["Signature1", protected, b"",
                                                        payload]))
    token = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))
    assert signed_verdict(token, media_type)[:2] == ("contraindicated", "integer_too_large")


@pytest.mark.parametrize("media_type", [PSA, EAT])
def test_eat_claim_key_that_is_the_simple_value_6_is_refused(media_type: str) -> None:
    # {10: h'07...', simple(6): 1}: simple(6) compared equal to the iat key (6) and was
    # then looked up as a claim name (KeyError).
    payload = b"\xa2\x0a\x50" + b"\x07" * 16 + b"\xe6\x01"
    token = create_sign1(payload, PrivateKeySigner(KEY))
    assert signed_verdict(token, media_type)[:2] == ("contraindicated", "unsupported_cbor")


@pytest.mark.parametrize("value", [HUGE, -HUGE, 2**64, [HUGE], {1: HUGE}],
                         ids=["huge", "minus-huge", "65-bits", "in-array", "in-map"])
def test_bignum_in_an_unknown_psa_claim_is_refused_before_the_signature(value: Any) -> None:
    token = create_psa_token({**psa_claims(), -70999: value}, KEY)
    assert signed_verdict(token, PSA)[:2] == ("contraindicated", "integer_too_large")


@pytest.mark.parametrize("value", [HUGE, -HUGE, 2**64, {"deep": [-(2**70)]}],
                         ids=["huge", "minus-huge", "65-bits", "nested"])
def test_eat_unknown_claim_holding_a_bignum_cannot_make_result_signing_fail(
        value: Any) -> None:
    """Defect 3: a validly signed EAT whose unknown claim held a bignum was affirmed, then
    signing the EAR raised ValueError (HTTP 500, nonce not consumed). By default the bignum
    is refused at decoding; where an operator allows bignums, the result is still signable
    as a JWT and a CWT, the number written as text, and a Relying Party reads both."""
    token = create_eat({"eat_nonce": NONCE, -70999: value}, KEY)
    assert signed_verdict(token, EAT)[:2] == ("contraindicated", "integer_too_large")

    from devattest.cose import PrivateKeySigner as Signer
    from devattest.ear import sign_ear_cwt, verify_ear_cwt
    from devattest.model import DecodeLimits

    signed = verify_and_sign(token, media_type=EAT, expected_nonce=NONCE,
                             trust_anchors=EAT_ANCHORS, reference_values=None,
                             policy=DefaultPolicy(), now=NOW, signing_key=EAR_KEY,
                             limits=DecodeLimits(max_bignum_bits=20_000))
    assert signed.result.status.value != "contraindicated", signed.result.reasons
    jwt_ear = verify_ear_jwt(signed.ear_jwt, EAR_KEY.public_key(), now=NOW)
    cwt_ear = verify_ear_cwt(sign_ear_cwt(signed.result, Signer(EAR_KEY)),
                             EAR_KEY.public_key(), now=NOW)
    for ear in (jwt_ear, cwt_ear):
        assert ear.status is signed.result.status
        shown_claims = repr(next(iter(ear.submods.values())).annotated_evidence)
        assert "0x" in shown_claims or "1180591620717411303424" in shown_claims or \
            "18446744073709551616" in shown_claims
