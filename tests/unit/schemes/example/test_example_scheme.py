"""The copy-me example scheme, end to end through the appraisal core."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from devattest.model import (
    ComponentReference,
    KeyAnchor,
    ReferenceValues,
    ReferenceValueSet,
    Status,
    TrustAnchors,
)
from devattest.policy import DefaultPolicy
from devattest.schemes import SchemeRegistry, default_registry
from devattest.schemes.example import MEDIA_TYPE, ExampleScheme, create_example_evidence
from devattest.verifier import verify

KEY = ec.generate_private_key(ec.SECP256R1())
NONCE = b"\x42" * 16
REGISTRY = SchemeRegistry([ExampleScheme()])
#: The firmware model-x may run: without Reference Values nothing would be affirmed.
REFS = ReferenceValues.of([ReferenceValueSet(class_id="model-x", components=(
    ComponentReference("firmware", frozenset({b"\x01" * 32})),))])


def appraise(evidence: bytes, key: object = KEY.public_key()) -> object:
    return verify(evidence, media_type=MEDIA_TYPE, expected_nonce=NONCE,
                  trust_anchors=TrustAnchors.of([KeyAnchor(key, kid=b"dev-1")]),
                  reference_values=REFS, policy=DefaultPolicy(), now=1_800_000_000,
                  registry=REGISTRY)


def test_example_evidence_verifies() -> None:
    result = appraise(create_example_evidence(NONCE, "model-x", b"\x01" * 32, KEY,
                                              kid=b"dev-1"))
    assert result.status is Status.AFFIRMING, result.reasons  # type: ignore[attr-defined]


def test_example_evidence_signed_by_another_key_is_rejected() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    result = appraise(create_example_evidence(NONCE, "model-x", b"\x01" * 32, other,
                                              kid=b"dev-1"))
    assert result.reasons[0][0] == "signature_invalid"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("firmware", "device", "message"), [
    (b"\x01" * 31, "model-x", "'firmware' must be a 32-byte digest"),
    (b"\x01" * 32, "", "'device' must be a non-empty text string"),
])
def test_example_claim_rules(firmware: bytes, device: str, message: str) -> None:
    result = appraise(create_example_evidence(NONCE, device, firmware, KEY, kid=b"dev-1"))
    assert result.reasons[0] == ("invalid_claim", message)  # type: ignore[attr-defined]


def test_example_scheme_is_not_in_the_default_registry() -> None:
    assert "example" not in default_registry().names
    assert MEDIA_TYPE not in default_registry().media_types
