"""The UEID type byte (RFC 9711 section 4.2.1), pinned (issue 14): type 0x00 is reserved,
not RAND, IEEE EUI or IMEI, and a UEID of that type is an invalid claim."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from devattest.model import KeyAnchor, TrustAnchors
from devattest.policy import DefaultPolicy
from devattest.schemes.eat import MEDIA_TYPE_EAT_CWT, create_eat
from devattest.verifier import verify

NONCE = b"eat-nonce-" + bytes(6)
KEY = ec.generate_private_key(ec.SECP256R1())


def _codes(ueid: bytes) -> list[tuple[str, str | None]]:
    r = verify(create_eat({"eat_nonce": NONCE, "ueid": ueid}, KEY),
               media_type=MEDIA_TYPE_EAT_CWT, expected_nonce=NONCE,
               trust_anchors=TrustAnchors.of(keys=[KeyAnchor(KEY.public_key())]),
               reference_values=None, policy=DefaultPolicy(), now=1_800_000_000)
    sub = next(iter(r.submods.values()))
    return [(code, sub.failed_step) for code, _ in r.reasons]


@pytest.mark.parametrize("ueid_type", [0x00, 0x04, 0xFF])
def test_ueid_of_a_reserved_or_unknown_type_is_an_invalid_claim(ueid_type: int) -> None:
    codes = _codes(bytes([ueid_type]) + b"\x5a" * 16)
    assert [c for c, _ in codes] == ["invalid_claim"]


@pytest.mark.parametrize("ueid_type", [0x01, 0x02, 0x03])
def test_ueid_of_a_defined_type_is_accepted(ueid_type: int) -> None:
    # RFC 9711 section 4.2.1: RAND 16 bytes, EUI-48 6 bytes, IMEI 14 decimal digit values.
    body = {0x01: b"\x5a" * 16, 0x02: b"\x5a" * 6, 0x03: bytes([3, 5, 2, 0, 9, 9, 0, 0,
                                                                1, 2, 3, 4, 5, 6])}[ueid_type]
    assert "invalid_claim" not in [c for c, _ in _codes(bytes([ueid_type]) + body)]


@pytest.mark.parametrize("ueid_type", [0x00, 0x02])
def test_psa_instance_id_that_is_not_a_rand_ueid_is_an_invalid_claim(ueid_type: int) -> None:
    """RFC 9783 section 4.2.1: the Instance ID is a RAND UEID (type 0x01); type 0x00 is
    reserved and must not pass as one."""
    from devattest.schemes.psa import MEDIA_TYPE_PSA, create_psa_token

    psa_nonce = bytes(range(32))
    claims = {
        "profile_id": "tag:psacertified.org,2023:psa#tfm",
        "client_id": 1, "security_lifecycle": "sl_secured",
        "implementation_id": bytes(32), "boot_seed": bytes(32), "challenge": psa_nonce,
        "instance_id": bytes([ueid_type]) + b"\x5a" * 32,
        "sw_components": [{"sw_component_type": "BL", "measurement_value": bytes(32),
                           "signer_id": bytes(32)}],
    }
    r = verify(create_psa_token(claims, KEY), media_type=MEDIA_TYPE_PSA,
               expected_nonce=psa_nonce,
               trust_anchors=TrustAnchors.of(keys=[KeyAnchor(KEY.public_key())]),
               reference_values=None, policy=DefaultPolicy(), now=1_800_000_000)
    reasons = [c for c, _ in r.reasons]
    assert reasons == ["invalid_claim"]
    assert "UEID type 0x01" in r.reasons[0][1]
