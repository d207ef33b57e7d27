"""Cross-check against the independent ``cwt`` library (RFC 8392): tokens we create verify
with ``cwt``, and tokens ``cwt`` creates verify with ours."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from devattest.cose import (
    EDDSA,
    ES256,
    HS256,
    PrivateKeySigner,
    create_mac0,
    create_sign1,
    decode_cose,
    strict_loads,
    verify_mac0,
    verify_sign1,
)
from devattest.errors import SignatureInvalid
from devattest.model import DEFAULT_LIMITS, DEFAULT_OPTIONS

# cwt (a dev-only cross-check) pins cbor2<6: on a cbor2 6 install this module is skipped.
cwt = pytest.importorskip("cwt")
COSEKey = cwt.COSEKey

NOW = 1_700_000_000
# exp far ahead: the cwt library checks it against its own clock.
CLAIMS = {1: "devattest-test", 2: "device-1", 4: 4_000_000_000, 5: NOW, 6: NOW,
          7: b"cti-1", -75000: b"\x01" * 32}
HMAC_KEY = bytes(range(32))


def _pem_private(key: Any) -> bytes:
    return bytes(key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def _pem_public(key: Any) -> bytes:
    return bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo))


def _keys() -> list[tuple[str, Any, int]]:
    return [("ES256", ec.generate_private_key(ec.SECP256R1()), ES256),
            ("EdDSA", ed25519.Ed25519PrivateKey.generate(), EDDSA)]


@pytest.mark.parametrize(("name", "private", "alg"), _keys())
@pytest.mark.parametrize("cwt_tag", [False, True])
def test_our_sign1_cwt_verifies_with_cwt_library(name: str, private: Any, alg: int,
                                                 cwt_tag: bool) -> None:
    token = create_sign1(cbor2.dumps(CLAIMS), PrivateKeySigner(private), kid=b"01",
                         cwt_tag=cwt_tag)
    public = COSEKey.from_pem(_pem_public(private), kid="01")
    decoded = cwt.decode(token, public, no_verify=False)
    assert decoded == CLAIMS


def test_our_mac0_cwt_verifies_with_cwt_library() -> None:
    token = create_mac0(cbor2.dumps(CLAIMS), HMAC_KEY, alg=HS256, kid=b"01")
    key = COSEKey.from_symmetric_key(HMAC_KEY, alg="HS256", kid="01")
    assert cwt.decode(token, key) == CLAIMS


def test_cwt_library_rejects_our_token_with_wrong_key() -> None:
    token = create_sign1(cbor2.dumps(CLAIMS), PrivateKeySigner(ec.generate_private_key(
        ec.SECP256R1())), kid=b"01")
    other = COSEKey.from_pem(_pem_public(ec.generate_private_key(ec.SECP256R1())), kid="01")
    with pytest.raises(cwt.VerifyError):
        cwt.decode(token, other)


@pytest.mark.parametrize(("name", "private", "alg"), _keys())
def test_cwt_library_sign1_verifies_with_ours(name: str, private: Any, alg: int) -> None:
    signing = COSEKey.from_pem(_pem_private(private), kid="01")
    token = cwt.encode(CLAIMS, signing)
    msg = decode_cose(token, limits=DEFAULT_LIMITS, options=DEFAULT_OPTIONS)
    assert msg.alg == alg and msg.kid == b"01"
    assert verify_sign1(msg, private.public_key(), options=DEFAULT_OPTIONS) == ()
    claims = strict_loads(msg.payload, limits=DEFAULT_LIMITS)
    assert {k: claims[k] for k in CLAIMS if k not in (4, 5, 6)} == {
        k: v for k, v in CLAIMS.items() if k not in (4, 5, 6)}
    # And a different key fails with ours too.
    other = (ed25519.Ed25519PrivateKey.generate() if alg == EDDSA
             else ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(SignatureInvalid):
        verify_sign1(msg, other.public_key(), options=DEFAULT_OPTIONS)


def test_cwt_library_mac0_verifies_with_ours() -> None:
    token = cwt.encode(CLAIMS, COSEKey.from_symmetric_key(HMAC_KEY, alg="HS256", kid="01"))
    msg = decode_cose(token, limits=DEFAULT_LIMITS, options=DEFAULT_OPTIONS)
    assert msg.kind == "mac0" and msg.alg == HS256
    assert verify_mac0(msg, HMAC_KEY, options=DEFAULT_OPTIONS) == ()
    with pytest.raises(SignatureInvalid):
        verify_mac0(msg, bytes(32), options=DEFAULT_OPTIONS)
