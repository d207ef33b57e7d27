"""The PSA scheme's steps on tokens built here: integrity, key hints, held-back claim rules."""

from __future__ import annotations

import hashlib
import hmac

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from devattest.cose import PrivateKeySigner, create_sign1
from devattest.errors import (
    AlgorithmError,
    InvalidClaim,
    MalformedClaims,
    SignatureInvalid,
    UnexpectedTag,
)
from devattest.model import DEFAULT_LIMITS, DEFAULT_OPTIONS, KeyAnchor, Status, TrustAnchors
from devattest.policy import AllOf, AllowUnappraisedSoftware, DefaultPolicy
from devattest.schemes.psa import (
    MEDIA_TYPE_PSA,
    PsaScheme,
    create_psa_token,
    encode_psa_claims,
    psa_instance_id,
)
from devattest.verifier import verify
from tests.unit.schemes.psa.test_claims import yaml_claims

KEY = ec.generate_private_key(ec.SECP256R1())
PUB = KEY.public_key()
HMAC_KEY = b"\x5a" * 32
NONCE = b"\x01" * 32
SCHEME = PsaScheme()


def decode(token: bytes):  # type: ignore[no-untyped-def]
    return SCHEME.decode(token, limits=DEFAULT_LIMITS, options=DEFAULT_OPTIONS)


def test_sign1_token_verifies_and_normalises() -> None:
    decoded = decode(create_psa_token(yaml_claims(), KEY))
    assert SCHEME.verify_integrity(decoded, KeyAnchor(PUB), options=DEFAULT_OPTIONS) == ()
    claims = SCHEME.extract_claims(decoded, now=0, options=DEFAULT_OPTIONS)
    assert claims.class_id == b"\xaa" * 32
    assert claims.nonce == NONCE
    assert claims.security_lifecycle == 0x3000
    assert claims.debug_enabled is False
    assert claims.findings == ()


def test_mac0_token_verifies() -> None:
    decoded = decode(create_psa_token(yaml_claims(), HMAC_KEY))
    assert decoded.message.kind == "mac0"
    SCHEME.verify_integrity(decoded, KeyAnchor(HMAC_KEY), options=DEFAULT_OPTIONS)


def test_rejects_alg_substitution_hmac_with_ec_public_key() -> None:
    # An attacker MACs the claims with the (public) EC point as HMAC key, hoping the verifier
    # keys HMAC with the anchor's public key bytes.
    point = PUB.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    protected, payload = cbor2.dumps({1: 5}), encode_psa_claims(yaml_claims())
    tag = hmac.new(point, cbor2.dumps(["MAC0", protected, b"", payload]), "sha256").digest()
    forged = cbor2.dumps(cbor2.CBORTag(17, [protected, {}, payload, tag]))
    with pytest.raises(AlgorithmError, match="COSE_Mac0 token needs a symmetric key"):
        SCHEME.verify_integrity(decode(forged), KeyAnchor(PUB), options=DEFAULT_OPTIONS)


def test_rejects_sign1_checked_with_a_symmetric_anchor() -> None:
    with pytest.raises(AlgorithmError, match="COSE_Sign1 token needs a public key"):
        SCHEME.verify_integrity(decode(create_psa_token(yaml_claims(), KEY)),
                                KeyAnchor(HMAC_KEY), options=DEFAULT_OPTIONS)


def test_broken_claims_under_a_forged_signature_report_the_signature() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    decoded = decode(create_psa_token(yaml_claims(challenge=b"\x01" * 5), other))
    with pytest.raises(SignatureInvalid):
        SCHEME.verify_integrity(decoded, KeyAnchor(PUB), options=DEFAULT_OPTIONS)


def test_broken_claims_are_reported_once_the_signature_verifies() -> None:
    decoded = decode(create_psa_token(yaml_claims(challenge=b"\x01" * 5), KEY))
    assert decoded.nonce is None  # an ill-formed nonce is never offered to step 4
    with pytest.raises(InvalidClaim, match=r"nonce \(10\) must be 32, 48 or 64 bytes"):
        SCHEME.verify_integrity(decoded, KeyAnchor(PUB), options=DEFAULT_OPTIONS)


def test_rejects_untagged_token() -> None:
    token = create_psa_token(yaml_claims(), KEY, tagged=False)
    with pytest.raises(UnexpectedTag):
        decode(token)


def test_rejects_payload_that_is_not_a_map() -> None:
    token = create_sign1(cbor2.dumps([1, 2]), PrivateKeySigner(KEY))
    with pytest.raises(MalformedClaims, match="must be a CBOR map, found list"):
        decode(token)


def test_key_hints_carry_instance_id_kid_and_x5chain() -> None:
    decoded = decode(create_psa_token(yaml_claims(), KEY, kid=b"iak-1", x5chain=(b"\x30",)))
    assert decoded.key_hints.instance_id == yaml_claims()["instance_id"]
    assert decoded.key_hints.kid == b"iak-1"
    assert decoded.key_hints.x5chain == (b"\x30",)


def test_instance_id_for_key_is_first_byte_rand_and_sha256_of_the_point() -> None:
    point = PUB.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    want = b"\x01" + hashlib.sha256(point).digest()
    assert SCHEME.instance_id_for_key(KeyAnchor(PUB)) == want


def test_token_is_found_by_its_instance_id_among_several_anchors() -> None:
    iid = psa_instance_id(PUB)
    token = create_psa_token(yaml_claims(instance_id=iid), KEY)
    decoy = ec.generate_private_key(ec.SECP256R1()).public_key()
    anchors = TrustAnchors.of([KeyAnchor(decoy, instance_id=psa_instance_id(decoy)),
                               KeyAnchor(PUB, instance_id=iid)])
    # Key look-up is under test, not the software: signature-only appraisal, explicitly.
    result = verify(token, media_type=MEDIA_TYPE_PSA, expected_nonce=NONCE,
                    trust_anchors=anchors, reference_values=None,
                    policy=AllOf([DefaultPolicy(), AllowUnappraisedSoftware()]), now=0)
    assert result.status is Status.AFFIRMING, result.reasons


def test_lifecycle_outside_secured_range_is_a_finding_not_a_failure() -> None:
    decoded = decode(create_psa_token(yaml_claims(security_lifecycle=0x5000), KEY))
    SCHEME.verify_integrity(decoded, KeyAnchor(PUB), options=DEFAULT_OPTIONS)
    claims = SCHEME.extract_claims(decoded, now=0, options=DEFAULT_OPTIONS)
    assert claims.debug_enabled is True
    (finding,) = claims.findings
    assert (finding.claim, finding.value) == ("configuration", 96)
