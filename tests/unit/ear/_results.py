"""Attestation Results for the EAR tests."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from devattest.ear._claims import b64url_encode
from devattest.model import Appraisal, AttestationResult, Status, TrustVector, VerifierId

NOW = 1_800_000_000


def make_result(**over: object) -> AttestationResult:
    """A rich affirming result: every optional field set, bytes in annotated evidence."""
    sub = Appraisal(
        status=Status.AFFIRMING,
        trust_vector=TrustVector(instance_identity=2, executables=2, hardware=2),
        reasons=(("legacy_profile", "PSA_IOT_PROFILE_1 seen"),),
        appraisal_policy_id="urn:devattest:policy:default",
        annotated_evidence={"profile": "tag:psacertified.org,2023:psa#tfm", "boot": 3},
        failed_step=None,
    )
    fields: dict[str, object] = {
        "status": Status.AFFIRMING, "submods": {"psa": sub}, "iat": NOW, "exp": NOW + 300,
        "nonce": bytes(range(32)), "verifier_id": VerifierId("https://example.org/v", "v 1"),
        "evidence_digest": b"\xaa" * 32, "media_type": "application/psa-attestation-token",
    }
    fields.update(over)
    return AttestationResult(**fields)  # type: ignore[arg-type]


def sign_raw_jwt(key: ec.EllipticCurvePrivateKey, header: Any, claims: Any) -> str:
    """A JWS (ES256) over arbitrary JSON header and claims, as another Verifier (or an
    attacker holding the key) would sign it."""
    def part(value: Any) -> str:
        return b64url_encode(json.dumps(value, separators=(",", ":")).encode())

    signing_input = f"{part(header)}.{part(claims)}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + b64url_encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
