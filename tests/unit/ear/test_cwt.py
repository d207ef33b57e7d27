"""EAR CWT: COSE_Sign1 over the -03 CBOR claims-set, and Relying-Party verification."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from devattest.cose import HS256, PrivateKeySigner, create_sign1
from devattest.ear import EAR_PROFILE, sign_ear_cwt, verify_ear_cwt
from devattest.errors import (
    MalformedResult,
    ResultAlgorithmRejected,
    ResultExpired,
    ResultSignatureInvalid,
)
from devattest.model import Status
from tests.unit.ear._results import NOW, make_result

P256 = ec.generate_private_key(ec.SECP256R1())


def test_ear_cwt_signed_without_a_kid_carries_the_jwks_thumbprint() -> None:
    """Issue 13 item 14: every EAR names its key; a CWT's kid is the UTF-8 of the JWK Set's."""
    from devattest.ear import public_jwks

    token = cbor2.loads(sign_ear_cwt(make_result(), PrivateKeySigner(P256)))
    unprotected = dict(token.value[1])
    assert unprotected[4] == public_jwks([P256])["keys"][0]["kid"].encode()
    verify_ear_cwt(cbor2.dumps(token), P256.public_key(), now=NOW)


def test_ear_cwt_without_a_kid_needs_a_signer_that_names_its_key() -> None:
    from devattest.errors import ConfigurationError

    class Opaque:
        alg = PrivateKeySigner(P256).alg

        def sign(self, tbs: bytes) -> bytes:
            return PrivateKeySigner(P256).sign(tbs)

    with pytest.raises(ConfigurationError, match="needs a kid"):
        sign_ear_cwt(make_result(), Opaque())
    assert sign_ear_cwt(make_result(), Opaque(), kid=b"k")


@pytest.mark.parametrize("key", [P256, ec.generate_private_key(ec.SECP384R1()),
                                 ed25519.Ed25519PrivateKey.generate()])
def test_sign_and_verify_round_trip(key: Any) -> None:
    token = sign_ear_cwt(make_result(), PrivateKeySigner(key), kid=b"k1")
    result = verify_ear_cwt(token, key.public_key(), now=NOW)
    assert result.status is Status.AFFIRMING and result.profile == EAR_PROFILE
    assert result.submods == make_result().submods
    assert result.nonce == make_result().nonce


def test_cwt_payload_uses_integer_keys_and_deterministic_cbor() -> None:
    token = sign_ear_cwt(make_result(), PrivateKeySigner(P256))
    tagged = cbor2.loads(token)
    assert tagged.tag == 18
    payload = tagged.value[2]
    claims = cbor2.loads(payload)
    assert claims[265] == EAR_PROFILE and claims[266]["psa"][1000] == 2
    assert cbor2.dumps(claims, canonical=True) == payload


def test_rejects_tampered_cwt() -> None:
    tagged = cbor2.loads(sign_ear_cwt(make_result(), PrivateKeySigner(P256)))
    body = list(tagged.value)  # a tuple on cbor2 6
    claims = cbor2.loads(body[2])
    claims[266]["psa"][1001][2] = 2
    claims[6] += 1
    body[2] = cbor2.dumps(claims, canonical=True)
    with pytest.raises(ResultSignatureInvalid):
        verify_ear_cwt(cbor2.dumps(cbor2.CBORTag(tagged.tag, body)), P256.public_key(),
                       now=NOW)


def test_rejects_signature_by_another_key() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ResultSignatureInvalid):
        verify_ear_cwt(sign_ear_cwt(make_result(), PrivateKeySigner(other)),
                       P256.public_key(), now=NOW)


def test_rejects_alg_substitution_mac0_keyed_with_ec_public_key() -> None:
    import hashlib
    import hmac

    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    # Built by hand: devattest.cose itself refuses to MAC with a public key.
    payload = cbor2.dumps({265: EAR_PROFILE})
    secret = P256.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    protected = cbor2.dumps({1: HS256})
    tag = hmac.new(secret, cbor2.dumps(["MAC0", protected, b"", payload]),
                   hashlib.sha256).digest()
    token = cbor2.dumps(cbor2.CBORTag(17, [protected, {}, payload, tag]))
    with pytest.raises((MalformedResult, ResultAlgorithmRejected)):
        verify_ear_cwt(token, P256.public_key(), now=NOW)


def test_rejects_alg_only_in_unprotected_header() -> None:
    payload = cbor2.dumps({265: EAR_PROFILE})
    token = create_sign1(payload, PrivateKeySigner(P256), alg_in_protected=False)
    with pytest.raises(ResultAlgorithmRejected):
        verify_ear_cwt(token, P256.public_key(), now=NOW)


def test_rejects_expired_cwt() -> None:
    token = sign_ear_cwt(make_result(), PrivateKeySigner(P256))
    with pytest.raises(ResultExpired):
        verify_ear_cwt(token, P256.public_key(), now=NOW + 1000)


def test_rejects_trailing_bytes() -> None:
    token = sign_ear_cwt(make_result(), PrivateKeySigner(P256)) + b"\x00"
    with pytest.raises(MalformedResult):
        verify_ear_cwt(token, P256.public_key(), now=NOW)
