"""Steps 2.3, 2.5 and 4 pinned one check at a time (issue 14): each test fails when that one
check is broken, with no other check standing in for it. Each asserts the failing step's own
reason (code and step), not the overall status, so it stays valid when defaults change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devattest.crypto.pki import (
    build_csr,
    create_manufacturer_pki,
    device_name,
    issue_attestation_certificate,
)
from devattest.errors import KeyMismatch
from devattest.model import (
    AttestationResult,
    CertificateAnchor,
    KeyAnchor,
    Status,
    TrustAnchors,
)
from devattest.policy import DefaultPolicy
from devattest.schemes.eat import MEDIA_TYPE_EAT_CWT, EatScheme, create_eat
from devattest.schemes.psa import MEDIA_TYPE_PSA, PsaScheme, create_psa_token, psa_instance_id
from devattest.verifier import verify
from devattest.verifier.core import require_identity

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NONCE = bytes(range(32))
EAT_NONCE = b"eat-nonce-" + bytes(6)
UEID_A = b"\x01" + b"\xaa" * 16
UEID_B = b"\x01" + b"\xbb" * 16


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _iid(key: ec.EllipticCurvePrivateKey) -> bytes:
    iid = psa_instance_id(key.public_key())
    assert iid is not None
    return iid


def _psa(key: ec.EllipticCurvePrivateKey, instance_id: bytes | None, *,
         kid: bytes | None = None, x5chain: tuple[bytes, ...] = ()) -> bytes:
    claims: dict[str, Any] = {
        "profile_id": "tag:psacertified.org,2023:psa#tfm",
        "client_id": 1, "security_lifecycle": "sl_secured",
        "implementation_id": bytes(32), "boot_seed": bytes(32), "challenge": NONCE,
        "sw_components": [{"sw_component_type": "BL", "measurement_value": bytes(32),
                           "signer_id": bytes(32)}],
    }
    if instance_id is not None:
        claims["instance_id"] = instance_id
    return create_psa_token(claims, key, kid=kid, x5chain=x5chain)


def _reasons(r: AttestationResult) -> list[tuple[str, str | None]]:
    sub = next(iter(r.submods.values()))
    return [(code, sub.failed_step) for code, _ in r.reasons]


def _run(token: bytes, anchors: TrustAnchors, *, media_type: str = MEDIA_TYPE_PSA,
         nonce: bytes = NONCE, expected: bytes | None = None) -> AttestationResult:
    return verify(token, media_type=media_type, expected_nonce=nonce, trust_anchors=anchors,
                  reference_values=None, policy=DefaultPolicy(), now=NOW,
                  expected_identity=expected)


# ------------------------------------------------------------------ step 4, eat_nonce array
def test_eat_nonce_array_without_the_expected_nonce_is_not_fresh() -> None:
    """An eat_nonce array (RFC 9711 section 4.1) of old nonces must not pass freshness
    because it is an array: one of its members must equal the Verifier's nonce."""
    key = _key()
    anchors = TrustAnchors.of(keys=[KeyAnchor(key.public_key())])
    stale = create_eat({"eat_nonce": [b"old-nonce-1" + bytes(5), b"old-nonce-2" + bytes(5)]},
                       key)
    r = _run(stale, anchors, media_type=MEDIA_TYPE_EAT_CWT, nonce=EAT_NONCE)
    assert r.status is Status.CONTRAINDICATED
    assert _reasons(r) == [("nonce_mismatch", "4")]
    # The same array holding the expected nonce, anywhere in it, is fresh.
    for arr in ([EAT_NONCE, b"old-nonce-1" + bytes(5)], [b"old-nonce-1" + bytes(5), EAT_NONCE]):
        r = _run(create_eat({"eat_nonce": arr}, key), anchors, media_type=MEDIA_TYPE_EAT_CWT,
                 nonce=EAT_NONCE)
        assert "nonce_mismatch" not in [c for c, _ in r.reasons]


# ------------------------------------------------------------------ step 2.3, x5chain
@pytest.fixture(scope="module")
def pki() -> Any:
    return create_manufacturer_pki("Test Devices", now=NOW - timedelta(days=1))


def _certified(key: ec.EllipticCurvePrivateKey, pki: Any) -> tuple[bytes, ...]:
    subject = device_name(organization="Test Devices", serial=_iid(key).hex()[:12],
                          ueid=_iid(key))
    cert = issue_attestation_certificate(pki.issuing, build_csr(key, subject=subject),
                                         subject=subject, now=NOW - timedelta(hours=1),
                                         hardware_backend="tpm2")
    der = serialization.Encoding.DER
    return cert.public_bytes(der), pki.issuing.certificate.public_bytes(der)


def test_x5chain_token_of_device_b_claiming_device_a_instance_id_is_a_key_mismatch(
        pki: Any) -> None:
    """Step 2.3 with no expected identity: device B's certified key signs a token naming
    device A's Instance ID. The chain is valid, the signature verifies; only the binding
    of the certified key to the claimed Instance ID stops it."""
    a, b = _key(), _key()
    anchors = TrustAnchors.of(certificates=[CertificateAnchor(pki.root.certificate,
                                                              "manufacturer:Test")])
    r = _run(_psa(b, _iid(a), x5chain=_certified(b, pki)), anchors)
    assert r.status is Status.CONTRAINDICATED
    assert _reasons(r) == [("key_mismatch", "2.3")]
    # Device B naming itself is not refused at step 2.
    r = _run(_psa(b, _iid(b), x5chain=_certified(b, pki)), anchors)
    assert "key_mismatch" not in [c for c, _ in r.reasons]


# ------------------------------------------------------------------ step 2.5
def test_psa_kid_anchor_of_device_b_without_instance_id_presented_as_a_is_refused() -> None:
    """Step 2.5's compare: B's anchor (registered for B) is found by kid; the Evidence
    carries no Instance ID, so nothing but the anchor's own identity can say it is B's."""
    a, b = _key(), _key()
    anchors = TrustAnchors.of(keys=[KeyAnchor(b.public_key(), instance_id=_iid(b), kid=b"B")])
    r = _run(_psa(b, None, kid=b"B"), anchors, expected=_iid(a))
    assert _reasons(r) == [("key_mismatch", "2.5")]


def test_psa_kid_only_anchor_of_device_b_claiming_a_is_refused_by_the_implied_identity(
        ) -> None:
    """Step 2.5, the implied identity: B's key is registered by kid only (no Instance ID),
    and B's token claims A's Instance ID. A PSA Instance ID is derived from the key, so the
    key implies B, not A."""
    a, b = _key(), _key()
    anchors = TrustAnchors.of(keys=[KeyAnchor(b.public_key(), kid=b"B")])
    r = _run(_psa(b, _iid(a), kid=b"B"), anchors, expected=_iid(a))
    assert r.status is Status.CONTRAINDICATED
    assert _reasons(r) == [("key_mismatch", "2.5")]
    # B's own key, found the same way and expected as B, is bound.
    r = _run(_psa(b, _iid(b), kid=b"B"), anchors, expected=_iid(b))
    assert "key_mismatch" not in [c for c, _ in r.reasons]


def test_eat_kid_anchor_of_device_b_without_ueid_presented_as_a_is_refused() -> None:
    """EAT: B's anchor, registered for B's UEID and found by kid, signs Evidence with no
    UEID; the Verifier expects A. Nothing else in the pipeline would object."""
    b = _key()
    anchors = TrustAnchors.of(keys=[KeyAnchor(b.public_key(), instance_id=UEID_B, kid=b"B")])
    token = create_eat({"eat_nonce": EAT_NONCE}, b, kid=b"B")
    r = _run(token, anchors, media_type=MEDIA_TYPE_EAT_CWT, nonce=EAT_NONCE, expected=UEID_A)
    assert r.status is Status.CONTRAINDICATED
    assert _reasons(r) == [("key_mismatch", "2.5")]
    r = _run(token, anchors, media_type=MEDIA_TYPE_EAT_CWT, nonce=EAT_NONCE, expected=UEID_B)
    assert "key_mismatch" not in [c for c, _ in r.reasons]


def test_eat_kid_only_anchor_without_ueid_has_no_implied_identity_and_is_refused() -> None:
    """EAT: a key registered by kid alone is bound to no UEID (EAT does not derive one from
    the key), so it cannot vouch for any expected device."""
    b = _key()
    anchors = TrustAnchors.of(keys=[KeyAnchor(b.public_key(), kid=b"B")])
    token = create_eat({"eat_nonce": EAT_NONCE}, b, kid=b"B")
    r = _run(token, anchors, media_type=MEDIA_TYPE_EAT_CWT, nonce=EAT_NONCE, expected=UEID_A)
    assert r.status is Status.CONTRAINDICATED
    assert _reasons(r) == [("key_mismatch", "2.5")]


# ------------------------------------------------------------------ require_identity directly
class _Decoded:
    def __init__(self, instance_id: bytes | None) -> None:
        from devattest.model import KeyHints

        self.key_hints = KeyHints(instance_id=instance_id)


def test_require_identity_refuses_a_claim_of_another_identity_with_a_bound_key() -> None:
    """The claimed identity is checked on its own: the key is the expected device's, but the
    Evidence names another device."""
    key = _key()
    bound = KeyAnchor(key.public_key(), instance_id=_iid(key))
    with pytest.raises(KeyMismatch) as err:
        require_identity(PsaScheme(), _Decoded(b"\x01" + b"\x99" * 32), bound, _iid(key))
    assert err.value.step == "2.5"
    require_identity(PsaScheme(), _Decoded(_iid(key)), bound, _iid(key))
    require_identity(PsaScheme(), _Decoded(None), bound, _iid(key))


def test_require_identity_refuses_a_key_registered_for_another_identity() -> None:
    key = _key()
    other = KeyAnchor(key.public_key(), instance_id=UEID_B)
    with pytest.raises(KeyMismatch) as err:
        require_identity(EatScheme(), _Decoded(None), other, UEID_A)
    assert err.value.step == "2.5"
    require_identity(EatScheme(), _Decoded(None), other, UEID_B)


def test_require_identity_refuses_a_key_whose_implied_identity_is_another() -> None:
    a, b = _key(), _key()
    unregistered = KeyAnchor(b.public_key())
    with pytest.raises(KeyMismatch):
        require_identity(PsaScheme(), _Decoded(_iid(a)), unregistered, _iid(a))
    require_identity(PsaScheme(), _Decoded(_iid(b)), unregistered, _iid(b))


def test_require_identity_refuses_a_key_with_no_identity_at_all() -> None:
    unregistered = KeyAnchor(_key().public_key())
    with pytest.raises(KeyMismatch):
        require_identity(EatScheme(), _Decoded(UEID_A), unregistered, UEID_A)
    with pytest.raises(KeyMismatch):
        require_identity(EatScheme(), _Decoded(None), unregistered, UEID_A)
