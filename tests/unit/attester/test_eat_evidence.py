"""The attester's EAT carries the whole device state, including the ownership epoch that an
ownership transfer changes, and it appraises through the core like any EAT."""

from __future__ import annotations

import logging
from dataclasses import replace

from devattest.attester.backends.unsafe_software import UnsafeSoftwareKey
from devattest.attester.claims import (
    CLAIM_OWNER_EPOCH,
    CLAIM_OWNER_ID,
    DeviceState,
    MeasuredComponent,
)
from devattest.attester.evidence import EAT_MEDIA_TYPE, attest_eat, instance_id_of
from devattest.model import (
    ComponentReference,
    KeyAnchor,
    ReferenceValues,
    ReferenceValueSet,
    Status,
    TrustAnchors,
)
from devattest.policy import DefaultPolicy
from devattest.verifier import verify

NONCE = b"\x42" * 32
BL = MeasuredComponent("BL", b"\x11" * 32, version="1.9.0", security_version=3)
STATE = DeviceState(implementation_id=b"\x00" * 32, security_lifecycle=0x3000, firmware=(BL,),
                    hardware_model="acme-sensor-v2", boot_count=7, owner_id="fleet-a",
                    owner_epoch=1)
REFS = ReferenceValues.of([ReferenceValueSet(
    class_id=b"acme-sensor-v2",
    components=(ComponentReference("BL", frozenset({b"\x11" * 32}), min_version="1.9.0"),))])


def appraise(token: bytes, se: UnsafeSoftwareKey) -> object:
    anchors = TrustAnchors.of(keys=[KeyAnchor(public_key=se.public_key(),
                                              instance_id=instance_id_of(se))])
    return verify(token, media_type=EAT_MEDIA_TYPE, expected_nonce=NONCE,
                  trust_anchors=anchors, reference_values=REFS, policy=DefaultPolicy(),
                  now=1_800_000_000)


def test_eat_evidence_affirms_and_carries_the_owner_epoch() -> None:
    logging.getLogger("devattest.unsafe").setLevel(logging.ERROR)
    se = UnsafeSoftwareKey.generate()
    result = appraise(attest_eat(STATE, se, nonce=NONCE), se)
    assert result.status is Status.AFFIRMING, result.reasons  # type: ignore[attr-defined]
    raw = result.submods["eat"].annotated_evidence["claims"]  # type: ignore[attr-defined]
    assert raw[CLAIM_OWNER_EPOCH] == 1 and raw[CLAIM_OWNER_ID] == "fleet-a"


def test_ownership_transfer_changes_the_owner_epoch_claim() -> None:
    se = UnsafeSoftwareKey.generate()
    moved = STATE.with_owner("fleet-b", 2)
    result = appraise(attest_eat(moved, se, nonce=NONCE), se)
    raw = result.submods["eat"].annotated_evidence["claims"]  # type: ignore[attr-defined]
    assert (raw[CLAIM_OWNER_ID], raw[CLAIM_OWNER_EPOCH]) == ("fleet-b", 2)


def test_tampered_firmware_in_eat_is_an_unknown_measurement() -> None:
    se = UnsafeSoftwareKey.generate()
    bad = replace(STATE, firmware=(MeasuredComponent("BL", b"\x66" * 32, version="1.9.0"),))
    result = appraise(attest_eat(bad, se, nonce=NONCE), se)
    assert result.status is Status.WARNING  # type: ignore[attr-defined]
    assert result.reasons[0][0] == "unknown_measurement"  # type: ignore[attr-defined]
