"""Attacks on PSA Evidence, end to end through ``verify_and_sign``.

Each attack must give a distinct, typed rejection AND a signed, contraindicated EAR whose
reason names it: a Relying Party verifying the EAR sees why. Nothing here may raise.
"""

from __future__ import annotations

import hashlib
import hmac

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from devattest.cose import ES256, ES384, HS256, PrivateKeySigner, create_sign1
from devattest.ear import verify_ear_jwt
from devattest.errors import NonceReplayed
from devattest.model import (
    ComponentReference,
    KeyAnchor,
    ReferenceValues,
    ReferenceValueSet,
    Status,
    TrustAnchors,
    VerifyOptions,
)
from devattest.policy import DefaultPolicy
from devattest.schemes.psa import create_psa_token, encode_psa_claims, psa_instance_id
from devattest.verifier import NonceBook, contraindicated_result, verify_and_sign

PSA = "application/psa-attestation-token"
NOW = 1_800_000_000
NONCE = bytes(range(32))
KEY = ec.generate_private_key(ec.SECP256R1())
PUB = KEY.public_key()
IID = psa_instance_id(PUB)
EAR_KEY = ec.generate_private_key(ec.SECP256R1())
ANCHORS = TrustAnchors.of(keys=[KeyAnchor(public_key=PUB, instance_id=IID)])
#: Reference Values for the software of ``claims()``: a good token affirms only with them.
REFS = ReferenceValues.of([ReferenceValueSet(class_id=b"\x11" * 32, components=(
    ComponentReference("BL", frozenset({hashlib.sha256(b"bl").digest()}),
                       frozenset({b"\x33" * 32})),))])


def claims(nonce: bytes = NONCE) -> dict[str, object]:
    return {
        "profile_id": "tag:psacertified.org,2023:psa#tfm", "client_id": 1,
        "security_lifecycle": 0x3000, "implementation_id": b"\x11" * 32,
        "boot_seed": b"\x22" * 32, "instance_id": IID, "challenge": nonce,
        "sw_components": [{"measurement_type": "BL",
                           "measurement_value": hashlib.sha256(b"bl").digest(),
                           "signer_id": b"\x33" * 32}],
    }


def good_token(nonce: bytes = NONCE) -> bytes:
    return create_psa_token(claims(nonce), KEY)


def signed_verdict(token: bytes, *, nonce: bytes = NONCE,
                   anchors: TrustAnchors = ANCHORS,
                   options: VerifyOptions | None = None) -> tuple[str, str]:
    """Appraise, sign, verify the EAR as a Relying Party; return (status, first reason)."""
    signed = verify_and_sign(token, media_type=PSA, expected_nonce=nonce,
                             trust_anchors=anchors, reference_values=REFS,
                             policy=DefaultPolicy(), now=NOW, signing_key=EAR_KEY,
                             options=options or VerifyOptions())
    ear = verify_ear_jwt(signed.ear_jwt, EAR_KEY.public_key(), now=NOW)
    assert ear.status is signed.result.status
    reasons = ear.reasons
    return ear.status.value, reasons[0][0] if reasons else ""


def test_good_token_affirms_in_the_signed_ear() -> None:
    assert signed_verdict(good_token()) == ("affirming", "")


def test_rejects_wrong_nonce() -> None:
    assert signed_verdict(good_token(b"\x99" * 32)) == ("contraindicated", "nonce_mismatch")


def test_rejects_replayed_nonce() -> None:
    book = NonceBook()
    n = book.issue(now=NOW)
    token = good_token(n)
    assert signed_verdict(token, nonce=book.consume(n, now=NOW))[0] == "affirming"
    with pytest.raises(NonceReplayed) as exc:
        book.consume(n, now=NOW)
    result = contraindicated_result(exc.value, evidence=token, media_type=PSA,
                                    expected_nonce=n, now=NOW)
    assert (result.status, result.reasons[0][0]) == (Status.CONTRAINDICATED, "nonce_replayed")


def test_rejects_wrong_key() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    token = create_psa_token(claims(), other)  # claims keep the genuine Instance ID
    assert signed_verdict(token) == ("contraindicated", "signature_invalid")


def test_rejects_alg_substitution_hmac_keyed_with_ec_public_key() -> None:
    # The attacker MACs with the (public!) EC key bytes and hopes the verifier keys HS256
    # with the Trust Anchor's public key.
    # (devattest's own create_mac0 refuses such a key, so the attacker builds it by hand.)
    payload = encode_psa_claims(claims())
    prot = cbor2.dumps({1: HS256})
    for encoding, fmt in ((Encoding.X962, PublicFormat.UncompressedPoint),
                          (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)):
        mac_key = PUB.public_bytes(encoding, fmt)
        tag = hmac.new(mac_key, cbor2.dumps(["MAC0", prot, b"", payload]),
                       hashlib.sha256).digest()
        token = cbor2.dumps(cbor2.CBORTag(17, [prot, {}, payload, tag]))
        assert signed_verdict(token) == ("contraindicated", "algorithm_rejected")


def _resign(protected: dict[int, object], unprotected: dict[int, object]) -> bytes:
    """A Sign1 with hand-made headers, validly signed by KEY over its own Sig_structure."""
    payload = encode_psa_claims(claims())
    prot = cbor2.dumps(protected) if protected else b""
    tbs = cbor2.dumps(["Signature1", prot, b"", payload])
    sig = PrivateKeySigner(KEY).sign(tbs)
    return cbor2.dumps(cbor2.CBORTag(18, [prot, unprotected, payload, sig]))


def test_rejects_alg_zero() -> None:
    assert signed_verdict(_resign({1: 0}, {})) == ("contraindicated", "algorithm_rejected")


def test_rejects_alg_only_in_unprotected_header() -> None:
    assert signed_verdict(_resign({}, {1: ES256})) == ("contraindicated", "algorithm_rejected")


def test_legacy_unprotected_alg_is_accepted_only_on_request_and_reported() -> None:
    token = _resign({}, {1: ES256})
    signed = verify_and_sign(token, media_type=PSA, expected_nonce=NONCE, trust_anchors=ANCHORS,
                             reference_values=REFS, policy=DefaultPolicy(), now=NOW,
                             signing_key=EAR_KEY,
                             options=VerifyOptions(allow_unprotected_alg=True))
    assert signed.result.status is Status.AFFIRMING
    notices = signed.result.submods["psa"].annotated_evidence["notices"]
    assert any("unprotected" in n for n in notices)


def test_rejects_alg_that_does_not_match_the_key() -> None:
    assert signed_verdict(_resign({1: ES384}, {})) == ("contraindicated", "algorithm_rejected")


def test_rejects_unknown_critical_header() -> None:
    token = _resign({1: ES256, 2: [99], 99: "must-understand"}, {})
    assert signed_verdict(token) == ("contraindicated", "unknown_critical_header")


def test_rejects_truncated_token() -> None:
    assert signed_verdict(good_token()[:-10]) == ("contraindicated", "truncated")


def test_rejects_trailing_bytes() -> None:
    assert signed_verdict(good_token() + b"\x00") == ("contraindicated", "trailing_bytes")


def test_rejects_oversized_token() -> None:
    token = create_sign1(b"\x40" + b"", PrivateKeySigner(KEY),
                         unprotected_extra={-65000: b"\x00" * (70 * 1024)})
    assert signed_verdict(token) == ("contraindicated", "token_too_large")


def test_rejects_20000_deep_nesting() -> None:
    token = b"\xd2\x84\x43\xa1\x01\x26" + b"\x81" * 20000 + b"\x00"
    assert signed_verdict(token) == ("contraindicated", "nesting_too_deep")


def test_rejects_bstr_header_claiming_gigabytes() -> None:
    token = b"\xd2\x84\x43\xa1\x01\x26\xa0\x5b\x00\x00\x00\x01\x00\x00\x00\x00" + b"\x00" * 16
    assert signed_verdict(token) == ("contraindicated", "truncated")


def test_rejects_duplicate_map_keys_in_signed_claims() -> None:
    payload = encode_psa_claims(claims())
    # Append a second eat_nonce (10) to the claims map: valid signature, ambiguous claims.
    n = payload[0] & 0x1F
    dup = bytes([0xA0 | (n + 1)]) + payload[1:] + cbor2.dumps(10) + cbor2.dumps(b"\x99" * 32)
    token = create_sign1(dup, PrivateKeySigner(KEY))
    assert signed_verdict(token) == ("contraindicated", "duplicate_map_key")


def test_rejects_untagged_sign1_when_the_tag_is_required() -> None:
    # RFC 9783 section 5 (CDDL): a PSA token is a tagged COSE_Sign1 (18) or COSE_Mac0 (17).
    token = create_psa_token(claims(), KEY, tagged=False)
    assert signed_verdict(token) == ("contraindicated", "unexpected_tag")
    assert signed_verdict(token, options=VerifyOptions(require_cose_tag=True)) == \
        ("contraindicated", "unexpected_tag")



@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 2**80,
                                   {"deep": [float("nan"), -(2**70)]}])
def test_non_json_numbers_in_evidence_cannot_crash_result_signing(value: object) -> None:
    """A signed claim holding a CBOR NaN, an infinity or a bignum (kept as an unknown claim
    and annotated into the EAR) must not make signing the result fail: JSON has no NaN or
    infinity, and the fast encoder has no integers beyond 64 bits."""
    c = claims()
    c[-70999] = value  # type: ignore[index]
    signed = verify_and_sign(create_psa_token(c, KEY), media_type=PSA,
                             expected_nonce=NONCE, trust_anchors=ANCHORS,
                             reference_values=None, policy=DefaultPolicy(), now=NOW,
                             signing_key=EAR_KEY)
    ear = verify_ear_jwt(signed.ear_jwt, EAR_KEY.public_key(), now=NOW)
    assert ear.status is signed.result.status
    text = signed.ear_jwt.split(".")[1]
    assert text  # the claims-set was serialised
