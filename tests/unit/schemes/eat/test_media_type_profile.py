"""The constrained-device profile applies when the media type names it, even if the token
omits the eat_profile claim (RFC 9782 media-type parameter; RFC 9711 section 6)."""

from __future__ import annotations

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec

from devattest.cose import PrivateKeySigner, create_mac0, create_sign1
from devattest.model import KeyAnchor, Status, TrustAnchors
from devattest.policy import AllOf, AllowUnappraisedSoftware, DefaultPolicy
from devattest.verifier import verify

KEY = ec.generate_private_key(ec.SECP256R1())
NONCE = b"\x05" * 32
UEID = b"\x01" + b"\x07" * 32
CONSTRAINED = 'application/eat+cwt; eat_profile="urn:ietf:rfc:rfc9711"'


def appraise(token: bytes, media_type: str, key: object) -> tuple[Status, str]:
    # These tokens measure no software: the profile rules are under test, so the explicit
    # signature-only policy lets a token that passes them affirm.
    r = verify(token, media_type=media_type, expected_nonce=NONCE,
               trust_anchors=TrustAnchors.of(keys=[KeyAnchor(public_key=key)]),
               reference_values=None,
               policy=AllOf([DefaultPolicy(), AllowUnappraisedSoftware()]), now=1_800_000_000)
    return r.status, r.reasons[0][0] if r.reasons else ""


def test_mac0_is_refused_under_the_constrained_media_type_without_the_claim() -> None:
    mac_key = b"\x42" * 32
    token = create_mac0(cbor2.dumps({10: NONCE, 256: UEID}), mac_key)
    assert appraise(token, "application/eat+cwt", mac_key)[0] is Status.AFFIRMING
    assert appraise(token, CONSTRAINED, mac_key) == (Status.CONTRAINDICATED,
                                                      "algorithm_rejected")


def test_sign1_without_claim_passes_the_constrained_profile() -> None:
    token = create_sign1(cbor2.dumps({10: NONCE, 256: UEID}), PrivateKeySigner(KEY))
    assert appraise(token, CONSTRAINED, KEY.public_key())[0] is Status.AFFIRMING


def test_token_naming_another_profile_is_refused_under_the_constrained_media_type() -> None:
    token = create_sign1(cbor2.dumps({10: NONCE, 256: UEID, 265: "tag:example.com,2025:x"}),
                         PrivateKeySigner(KEY))
    assert appraise(token, CONSTRAINED, KEY.public_key()) == (Status.CONTRAINDICATED,
                                                               "unknown_profile")
