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
