"""Key loading (devattest.crypto.keys): PEM, DER, JWK, certificates and typed errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from devattest.crypto.keys import (
    load_private_key,
    load_public_key,
    load_symmetric_key,
    load_verification_key,
)
from devattest.errors import ConfigurationError
from tests._vectors import VECTORS

PSA = VECTORS / "draft-psa-token"


def test_psa_iak_jwk_and_pem_are_the_same_key() -> None:
    jwk = load_public_key(PSA / "tfm-es-iak.json")
    pem = load_public_key(PSA / "tfm-es-iak.pem")
    assert isinstance(jwk, ec.EllipticCurvePublicKey)
    assert jwk.public_numbers() == pem.public_numbers()  # type: ignore[union-attr]
    assert isinstance(load_private_key(PSA / "tfm-es-iak.json"), ec.EllipticCurvePrivateKey)


def test_rfc8792_wrapped_symmetric_jwk() -> None:
    assert load_symmetric_key(PSA / "tfm-hs-iak.json") == (PSA / "tfm-hs-iak.bin").read_bytes()
    assert load_verification_key(PSA / "tfm-hs-iak.json") == (PSA / "tfm-hs-iak.bin").read_bytes()


@pytest.mark.parametrize("path", [
    "veraison-services-psa-iot/token/ec.p256.jwk",
    "veraison-ear/arc-data/pkey.json",
    "veraison-ear/arc-data/skey.json",
])
def test_vector_jwks_load(path: str) -> None:
    key = load_public_key(VECTORS / path)
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"


def test_ear_public_and_private_jwk_match() -> None:
    pub = load_public_key(VECTORS / "veraison-ear/arc-data/pkey.json")
    priv = load_private_key(VECTORS / "veraison-ear/arc-data/skey.json")
    assert priv.public_key().public_numbers() == pub.public_numbers()  # type: ignore[union-attr]


def test_raw_symmetric_key_file() -> None:
    path = VECTORS / "tf-m-tools-iat-verifier/data/hmac.key"
    assert load_symmetric_key(path) == path.read_bytes()


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_ec_keys_in_every_encoding(curve: ec.EllipticCurve, tmp_path: Path) -> None:
    private = ec.generate_private_key(curve)
    public = private.public_key()
    F, P = serialization.Encoding, serialization.PublicFormat
    for enc in (F.PEM, F.DER):
        got = load_public_key(public.public_bytes(enc, P.SubjectPublicKeyInfo))
        assert got.public_numbers() == public.public_numbers()  # type: ignore[union-attr]
        for fmt in (serialization.PrivateFormat.PKCS8,
                    serialization.PrivateFormat.TraditionalOpenSSL):
            blob = private.private_bytes(enc, fmt, serialization.NoEncryption())
            assert load_private_key(blob).private_numbers() == private.private_numbers()  # type: ignore[union-attr]
            assert load_public_key(blob).public_numbers() == public.public_numbers()  # type: ignore[union-attr]
    path = tmp_path / "k.pem"
    path.write_bytes(public.public_bytes(F.PEM, P.SubjectPublicKeyInfo))
    assert load_verification_key(path).public_numbers() == public.public_numbers()  # type: ignore[union-attr]


def test_ed25519_jwk_and_pem() -> None:
    import base64
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes_raw()
    b64 = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    d = base64.urlsafe_b64encode(private.private_bytes_raw()).rstrip(b"=").decode()
    key = load_public_key({"kty": "OKP", "crv": "Ed25519", "x": b64})
    assert isinstance(key, ed25519.Ed25519PublicKey) and key.public_bytes_raw() == raw
    priv = load_private_key(json.dumps({"kty": "OKP", "crv": "Ed25519", "x": b64, "d": d}))
    assert isinstance(priv, ed25519.Ed25519PrivateKey)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    assert isinstance(load_public_key(pem), ed25519.Ed25519PublicKey)


def test_jwk_set_with_one_key() -> None:
    jwk = json.loads((VECTORS / "veraison-ear/arc-data/pkey.json").read_text())
    assert isinstance(load_public_key(json.dumps({"keys": [jwk]})), ec.EllipticCurvePublicKey)


@pytest.mark.parametrize("source", [
    {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},             # wrong length
    {"kty": "EC", "crv": "P-256", "x": "A" * 43, "y": "A" * 43},          # not on curve
    {"kty": "EC", "crv": "secp256k1", "x": "A" * 43, "y": "A" * 43},      # unsupported curve
    {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
    {"kty": "OKP", "crv": "X25519", "x": "A" * 43},
    {"kty": "oct"},
    {"kty": "oct", "k": "!!!"},
    "{not json",
    b"\x00\x01garbage",
    b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    json.dumps({"keys": []}),
])
def test_unusable_keys_raise_configuration_error(source: object) -> None:
    with pytest.raises(ConfigurationError):
        load_public_key(source)  # type: ignore[arg-type]


def test_jwk_private_scalar_must_match_public_point() -> None:
    jwk = json.loads((PSA / "tfm-es-iak.json").read_text())
    other = json.loads((VECTORS / "veraison-services-psa-iot/token/ec.p256.jwk").read_text())
    jwk["d"] = other["d"]
    with pytest.raises(ConfigurationError, match="does not match"):
        load_private_key(jwk)


def test_type_mismatches_raise_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        load_public_key(PSA / "tfm-hs-iak.json")            # symmetric, not asymmetric
    with pytest.raises(ConfigurationError):
        load_private_key(VECTORS / "veraison-ear/arc-data/pkey.json")  # public only
    with pytest.raises(ConfigurationError):
        load_symmetric_key(PSA / "tfm-es-iak.json")         # asymmetric, not symmetric
    with pytest.raises(ConfigurationError):
        load_symmetric_key(PSA / "tfm-es-iak.pem")
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_public_key(tmp_path / "missing.pem")
    rsa_pem = rsa.generate_private_key(65537, 2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ConfigurationError, match="unsupported"):
        load_public_key(rsa_pem)


def test_certificate_gives_its_public_key() -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    t0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(t0)
            .not_valid_after(t0 + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    for enc in (serialization.Encoding.PEM, serialization.Encoding.DER):
        got = load_public_key(cert.public_bytes(enc))
        assert got.public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
