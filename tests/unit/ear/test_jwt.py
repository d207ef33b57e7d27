"""EAR JWT signing and Relying-Party verification, and the attacks it must stop."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from devattest.ear import (
    public_jwk,
    public_jwks,
    public_key_from_jwk,
    sign_ear_jwt,
    verify_ear_jwt,
)
from devattest.errors import (
    ConfigurationError,
    MalformedResult,
    ResultAlgorithmRejected,
    ResultExpired,
    ResultSignatureInvalid,
)
from devattest.model import TrustAnchors
from tests.unit.ear._results import NOW, make_result

P256 = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    h = b64(json.dumps(header).encode())
    p = b64(json.dumps(claims).encode())
    return f"{h}.{p}.{b64(signature)}"


def good_token(**kw: Any) -> str:
    return sign_ear_jwt(make_result(**kw), P256, kid="k1")


@pytest.mark.parametrize(("key", "alg", "sig_len"), [
    (ec.generate_private_key(ec.SECP256R1()), "ES256", 64),
    (ec.generate_private_key(ec.SECP384R1()), "ES384", 96),
    (ec.generate_private_key(ec.SECP521R1()), "ES512", 132),
    (ed25519.Ed25519PrivateKey.generate(), "EdDSA", 64),
])
def test_sign_and_verify_round_trip(key: Any, alg: str, sig_len: int) -> None:
    token = sign_ear_jwt(make_result(), key, kid="v1")
    header = json.loads(unb64(token.split(".")[0]))
    assert header == {"alg": alg, "typ": "JWT", "kid": "v1"}
    assert len(unb64(token.split(".")[2])) == sig_len  # raw r||s (RFC 7518 3.4)
    result = verify_ear_jwt(token, key.public_key(), now=NOW)
    assert result.submods["psa"].trust_vector == make_result().submods["psa"].trust_vector
    assert result.nonce == make_result().nonce


def test_rejects_tampered_payload() -> None:
    h, p, s = good_token().split(".")
    claims = json.loads(unb64(p))
    claims["submods"]["psa"]["ear_trustworthiness_vector"]["executables"] = 2
    claims["iat"] += 1
    with pytest.raises(ResultSignatureInvalid):
        verify_ear_jwt(f"{h}.{b64(json.dumps(claims).encode())}.{s}", P256.public_key(),
                       now=NOW)


def test_rejects_alg_none() -> None:
    claims = json.loads(unb64(good_token().split(".")[1]))
    for alg in ("none", "None", "NONE"):
        with pytest.raises(ResultAlgorithmRejected):
            verify_ear_jwt(forge({"alg": alg, "typ": "JWT"}, claims), P256.public_key(),
                           now=NOW)


def test_rejects_alg_substitution_hmac_with_ec_public_key() -> None:
    claims = json.loads(unb64(good_token().split(".")[1]))
    pub = P256.public_key()
    for secret in (pub.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
                   pub.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)):
        h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        p = b64(json.dumps(claims).encode())
        mac = hmac.new(secret, f"{h}.{p}".encode(), hashlib.sha256).digest()
        with pytest.raises(ResultAlgorithmRejected, match="HS256"):
            verify_ear_jwt(f"{h}.{p}.{b64(mac)}", pub, now=NOW)


def test_rejects_embedded_jwk_key_substitution() -> None:
    # The attacker signs with its own key and names it in the header: never trusted.
    attacker = ec.generate_private_key(ec.SECP256R1())
    _, p, _ = sign_ear_jwt(make_result(), attacker).split(".")
    header = {"alg": "ES256", "typ": "JWT", "jwk": public_jwk(attacker)}
    h2 = b64(json.dumps(header).encode())
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    r, s_ = decode_dss_signature(attacker.sign(f"{h2}.{p}".encode(), ec.ECDSA(hashes.SHA256())))
    forged = f"{h2}.{p}.{b64(r.to_bytes(32, 'big') + s_.to_bytes(32, 'big'))}"
    verify_ear_jwt(forged, attacker.public_key(), now=NOW)  # well-formed for its own key
    with pytest.raises(ResultSignatureInvalid):
        verify_ear_jwt(forged, P256.public_key(), now=NOW)


def test_rejects_alg_that_does_not_match_the_key() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ResultAlgorithmRejected, match="ES384"):
        verify_ear_jwt(sign_ear_jwt(make_result(), p384), P256.public_key(), now=NOW)
    with pytest.raises(ResultAlgorithmRejected, match="EdDSA"):
        verify_ear_jwt(sign_ear_jwt(make_result(), ed25519.Ed25519PrivateKey.generate()),
                       P256.public_key(), now=NOW)


def test_rejects_wrong_key() -> None:
    with pytest.raises(ResultSignatureInvalid):
        verify_ear_jwt(good_token(), OTHER.public_key(), now=NOW)


def test_rejects_der_encoded_signature() -> None:
    from cryptography.hazmat.primitives import hashes
    h, p, _ = good_token().split(".")
    der = P256.sign(f"{h}.{p}".encode(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(ResultSignatureInvalid, match="bytes, expected 64"):
        verify_ear_jwt(f"{h}.{p}.{b64(der)}", P256.public_key(), now=NOW)


def test_rejects_non_canonical_base64_signature_malleability() -> None:
    h, p, s = good_token().split(".")
    # 64 bytes -> 86 chars; the last char carries 4 unused bits. Flip one of them.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(s[-1]) ^ 1]
    assert unb64(s[:-1] + last) == unb64(s)
    with pytest.raises(MalformedResult, match="canonical"):
        verify_ear_jwt(f"{h}.{p}.{s[:-1]}{last}", P256.public_key(), now=NOW)


@pytest.mark.parametrize("token", ["a.b", "a.b.c.d", "", "e30.e30.", "!!.e30.AA"])
def test_rejects_malformed_compact_serialization(token: str) -> None:
    # "e30" is "{}": a header without "alg" is rejected as an algorithm failure.
    with pytest.raises((MalformedResult, ResultAlgorithmRejected)):
        verify_ear_jwt(token, P256.public_key(), now=NOW)


def test_rejects_missing_alg() -> None:
    _, p, s = good_token().split(".")
    with pytest.raises(ResultAlgorithmRejected, match="None"):
        verify_ear_jwt(f"{b64(b'{}')}.{p}.{s}", P256.public_key(), now=NOW)


def test_rejects_duplicate_header_member() -> None:
    h = b64(b'{"alg":"none","alg":"ES256"}')
    _, p, s = good_token().split(".")
    with pytest.raises(MalformedResult, match=r"duplicate key .alg."):
        verify_ear_jwt(f"{h}.{p}.{s}", P256.public_key(), now=NOW)


def test_rejects_unknown_critical_header() -> None:
    h = b64(json.dumps({"alg": "ES256", "crit": ["exp"], "exp": 1}).encode())
    _, p, s = good_token().split(".")
    with pytest.raises(MalformedResult, match="crit"):
        verify_ear_jwt(f"{h}.{p}.{s}", P256.public_key(), now=NOW)


def test_rejects_oversized_token() -> None:
    with pytest.raises(MalformedResult, match="limit"):
        verify_ear_jwt("a" * 300_000, P256.public_key(), now=NOW)


def test_rejects_expired_result() -> None:
    token = good_token()
    verify_ear_jwt(token, P256.public_key(), now=NOW + 300 + 59)
    with pytest.raises(ResultExpired, match="expired"):
        verify_ear_jwt(token, P256.public_key(), now=NOW + 300 + 60)
    with pytest.raises(ResultExpired, match="expired"):
        verify_ear_jwt(token, P256.public_key(), now=NOW + 301, leeway=0)


def test_rejects_result_issued_in_the_future() -> None:
    with pytest.raises(ResultExpired, match="future"):
        verify_ear_jwt(good_token(), P256.public_key(), now=NOW - 61)


def test_rejects_nan_and_float_exp() -> None:
    claims = json.loads(unb64(good_token().split(".")[1]))
    claims["exp"] = float(NOW + 300)
    token = sign_ear_jwt(make_result(), P256)
    h, _, _ = token.split(".")
    body = b64(json.dumps(claims).encode())
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    r, s = decode_dss_signature(P256.sign(f"{h}.{body}".encode(), ec.ECDSA(hashes.SHA256())))
    forged = f"{h}.{body}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
    with pytest.raises(MalformedResult, match="exp is not an integer"):
        verify_ear_jwt(forged, P256.public_key(), now=NOW)


def test_verify_needs_a_public_key() -> None:
    with pytest.raises(ConfigurationError):
        verify_ear_jwt(good_token(), b"secret", now=NOW)
    with pytest.raises(ConfigurationError):
        sign_ear_jwt(make_result(), P256.public_key())


def test_jwks_publishes_public_keys_only() -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    jwks = public_jwks({"a": P256, "b": ed.public_key()})
    assert [k["kid"] for k in jwks["keys"]] == ["a", "b"]
    for jwk in jwks["keys"]:
        assert "d" not in jwk and jwk["use"] == "sig"
    assert jwks["keys"][0]["alg"] == "ES256" and jwks["keys"][1]["alg"] == "EdDSA"
    for jwk, key in zip(jwks["keys"], (P256.public_key(), ed.public_key()), strict=True):
        assert public_key_from_jwk(jwk).public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == key.public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def test_jwks_kid_defaults_to_the_rfc7638_thumbprint() -> None:
    jwk = public_jwks([P256])["keys"][0]
    required = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(required, sort_keys=True,
                                       separators=(",", ":")).encode()).digest()
    assert jwk["kid"] == b64(digest)


@pytest.mark.parametrize("key", [P256, ed25519.Ed25519PrivateKey.generate()])
def test_ear_jwt_signed_without_a_kid_carries_the_jwks_thumbprint(key: Any) -> None:
    """Issue 13 item 14: every EAR names its key, by default as the JWK Set does."""
    from devattest.policy import DefaultPolicy
    from devattest.verifier import verify_and_sign

    header = json.loads(unb64(sign_ear_jwt(make_result(), key).split(".")[0]))
    assert header["kid"] == public_jwks([key])["keys"][0]["kid"]
    signed = verify_and_sign(b"\x00", media_type="application/psa-attestation-token",
                             expected_nonce=b"\x01" * 32, trust_anchors=TrustAnchors.of(),
                             reference_values=None, policy=DefaultPolicy(), now=NOW,
                             signing_key=key)
    assert json.loads(unb64(signed.ear_jwt.split(".")[0]))["kid"] == header["kid"]
    named = json.loads(unb64(sign_ear_jwt(make_result(), key, kid="v7").split(".")[0]))
    assert named["kid"] == "v7"


@pytest.mark.parametrize("jwk", [
    {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
    {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
    {"kty": "oct", "k": "c2VjcmV0"},
    {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
    {"crv": "P-256"},
])
def test_rejects_unusable_jwk(jwk: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        public_key_from_jwk(jwk)
