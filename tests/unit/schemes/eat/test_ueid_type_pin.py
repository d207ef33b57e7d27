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
    size = {0x01: 16, 0x02: 6, 0x03: 14}[ueid_type]
    assert "invalid_claim" not in [c for c, _ in _codes(bytes([ueid_type]) + b"\x5a" * size)]
