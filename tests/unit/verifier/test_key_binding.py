"""Step 2 key look-up: the key found must be the one the token's Instance ID names.

Each test is named after the key-confusion attack it stops.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ec

from devattest.model import KeyAnchor, Status, TrustAnchors
from devattest.policy import DefaultPolicy
from devattest.schemes.psa import MEDIA_TYPE_PSA, create_psa_token, psa_instance_id
from devattest.verifier import verify

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NONCE = bytes(range(32))


def _token(key: ec.EllipticCurvePrivateKey, instance_id: bytes, *, kid: bytes | None) -> bytes:
    claims = {
        "profile_id": "tag:psacertified.org,2023:psa#tfm",
        "client_id": 1, "security_lifecycle": "sl_secured",
        "implementation_id": bytes(32), "boot_seed": bytes(32),
        "instance_id": instance_id, "challenge": NONCE,
        "sw_components": [{"sw_component_type": "BL", "measurement_value": bytes(32),
                           "signer_id": bytes(32)}],
    }
    return create_psa_token(claims, key, kid=kid)


def _iid(key: ec.EllipticCurvePrivateKey) -> bytes:
    iid = psa_instance_id(key.public_key())
    assert iid is not None
    return iid


def _appraise(token: bytes, anchors: TrustAnchors) -> tuple[Status, list[str]]:
    r = verify(token, media_type=MEDIA_TYPE_PSA, expected_nonce=NONCE, trust_anchors=anchors,
               reference_values=None, policy=DefaultPolicy(), now=NOW)
    return r.status, [code for code, _ in r.reasons]


def test_rejects_device_a_key_found_by_kid_claiming_device_b_instance_id() -> None:
    a = ec.generate_private_key(ec.SECP256R1())
    b = ec.generate_private_key(ec.SECP256R1())
    anchors = TrustAnchors.of(keys=[KeyAnchor(a.public_key(), instance_id=_iid(a),
                                              kid=b"device-a", label="A")])
    # Device A's genuine key, found by its kid, signs a token naming device B's Instance ID.
    status, reasons = _appraise(_token(a, _iid(b), kid=b"device-a"), anchors)
    assert status is Status.CONTRAINDICATED and reasons == ["key_mismatch"]
    # Its own Instance ID still verifies.
    status, reasons = _appraise(_token(a, _iid(a), kid=b"device-a"), anchors)
    assert "key_mismatch" not in reasons and "key_not_found" not in reasons


def test_memoised_instance_id_is_never_served_for_another_key() -> None:
    """Key confusion through the scheme's memo of certified keys' Instance IDs: a key
    object created where a collected one lived (same id) must get its own Instance ID."""
    from devattest.schemes.psa import PsaScheme

    scheme = PsaScheme()
    seen: set[bytes] = set()
    for _ in range(200):
        key = ec.generate_private_key(ec.SECP256R1())
        got = scheme.instance_id_for_key(KeyAnchor(public_key=key.public_key()))
        assert got == _iid(key)
        assert got not in seen
        seen.add(got)
        del key, got
    one = ec.generate_private_key(ec.SECP256R1())
    anchor = KeyAnchor(public_key=one.public_key())
    assert scheme.instance_id_for_key(anchor) == scheme.instance_id_for_key(anchor) == _iid(one)


# -- Step 2.5: the attesting key is the expected device's --------------------------------
def _expect(token: bytes, anchors: TrustAnchors, identity: bytes
            ) -> tuple[Status, list[str]]:
    r = verify(token, media_type=MEDIA_TYPE_PSA, expected_nonce=NONCE, trust_anchors=anchors,
               reference_values=None, policy=DefaultPolicy(), now=NOW,
               expected_identity=identity)
    return r.status, [code for code, _ in r.reasons]


def _certified(key: ec.EllipticCurvePrivateKey, pki: object) -> tuple[bytes, ...]:
    from datetime import timedelta

    from cryptography.hazmat.primitives import serialization

    from devattest.crypto.pki import build_csr, device_name, issue_attestation_certificate

    subject = device_name(organization="Test Devices", serial=_iid(key).hex()[:12],
                          ueid=_iid(key))
    cert = issue_attestation_certificate(pki.issuing,  # type: ignore[attr-defined]
                                         build_csr(key, subject=subject), subject=subject,
                                         now=NOW - timedelta(hours=1), hardware_backend="tpm2")
    return (cert.public_bytes(serialization.Encoding.DER),
            pki.issuing.certificate.public_bytes(  # type: ignore[attr-defined]
                serialization.Encoding.DER))


def test_relayed_evidence_from_another_trusted_device_is_refused() -> None:
    """Relay: device A forwards its nonce to healthy device B, whose genuine, trusted key
    signs; the Verifier expects A, so B's Evidence must not vouch for A."""
    a = ec.generate_private_key(ec.SECP256R1())
    b = ec.generate_private_key(ec.SECP256R1())
    anchors = TrustAnchors.of(keys=[KeyAnchor(a.public_key(), instance_id=_iid(a)),
                                    KeyAnchor(b.public_key(), instance_id=_iid(b))])
    status, reasons = _expect(_token(b, _iid(b), kid=None), anchors, _iid(a))
    assert status is Status.CONTRAINDICATED and reasons == ["key_mismatch"]
    status, reasons = _expect(_token(a, _iid(a), kid=None), anchors, _iid(a))
    assert "key_mismatch" not in reasons and "key_not_found" not in reasons


def test_unbound_anchor_cannot_stand_in_for_the_expected_device() -> None:
    """A single unbound key (step 2.4) signs Evidence claiming device A's identity."""
    a = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    anchors = TrustAnchors.of(keys=[KeyAnchor(other.public_key())])
    status, reasons = _expect(_token(other, _iid(a), kid=None), anchors, _iid(a))
    assert status is Status.CONTRAINDICATED and reasons == ["key_mismatch"]


def test_certified_key_of_the_expected_device_is_accepted_and_another_refused() -> None:
    """A device bound to its Instance ID whose key is certified by x5chain (no raw anchor)
    attests; another device's certified key does not vouch for it."""
    from datetime import timedelta

    from devattest.crypto.pki import create_manufacturer_pki
    from devattest.model import CertificateAnchor

    pki = create_manufacturer_pki("Test Devices", now=NOW - timedelta(days=1))
    anchors = TrustAnchors.of(certificates=[CertificateAnchor(pki.root.certificate,
                                                              "manufacturer:Test")])
    a = ec.generate_private_key(ec.SECP256R1())
    b = ec.generate_private_key(ec.SECP256R1())

    def x5_token(key: ec.EllipticCurvePrivateKey) -> bytes:
        claims = {
            "profile_id": "tag:psacertified.org,2023:psa#tfm",
            "client_id": 1, "security_lifecycle": "sl_secured",
            "implementation_id": bytes(32), "boot_seed": bytes(32),
            "instance_id": _iid(key), "challenge": NONCE,
            "sw_components": [{"sw_component_type": "BL", "measurement_value": bytes(32),
                               "signer_id": bytes(32)}],
        }
        return create_psa_token(claims, key, x5chain=_certified(key, pki))

    status, reasons = _expect(x5_token(a), anchors, _iid(a))
    assert "key_mismatch" not in reasons and "key_not_found" not in reasons, reasons
    status, reasons = _expect(x5_token(b), anchors, _iid(a))
    assert status is Status.CONTRAINDICATED and reasons == ["key_mismatch"]
