"""TPM quote checks pinned by pure tests on quotes built in software (issue 14): each test
fails when its one check is broken, without swtpm. The quote (TPMS_ATTEST) is always
genuinely signed by the AK; what the attacker edits is the unsigned part of the Evidence:
the carried PCR values and the event log.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from devattest.crypto.pki import (
    build_csr,
    create_manufacturer_pki,
    device_name,
    issue_attestation_certificate,
)
from devattest.model import (
    AttestationResult,
    CertificateAnchor,
    ComponentReference,
    KeyAnchor,
    ReferenceValues,
    ReferenceValueSet,
    TrustAnchors,
)
from devattest.policy import DefaultPolicy
from devattest.schemes import SchemeRegistry
from devattest.schemes.tpm import MEDIA_TYPE, TpmQuoteScheme
from devattest.schemes.tpm.eventlog import compact_event_data
from devattest.schemes.tpm.structures import object_name
from devattest.verifier import verify
from tests.unit.tpm._build import (
    AK_ATTRS,
    BOOT,
    attest,
    build,
    ecc_public,
    ecdsa_signature,
    pcr_select,
    tpm2b,
)

REG = SchemeRegistry([TpmQuoteScheme()])
NOW = datetime(2026, 1, 1, tzinfo=UTC)
NONCE = b"n" * 32
EVIL_KERNEL = hashlib.sha256(b"rootkit").digest()
GOLDEN_KERNEL = hashlib.sha256(b"k").digest()


def _codes(r: AttestationResult) -> list[tuple[str, str | None]]:
    sub = next(iter(r.submods.values()))
    return [(code, sub.failed_step) for code, _ in r.reasons]


def _run(evidence: bytes, anchors: TrustAnchors, *, refvals: ReferenceValues | None = None,
         expected: bytes | None = None) -> AttestationResult:
    return verify(evidence, media_type=MEDIA_TYPE, expected_nonce=NONCE,
                  trust_anchors=anchors, reference_values=refvals, policy=DefaultPolicy(),
                  now=NOW, registry=REG, expected_identity=expected)


def _replay(log: list[list[Any]], quoted: range) -> dict[int, bytes]:
    """The compact log's PCR values for the quoted PCRs (events elsewhere skipped)."""
    vals = {i: b"\0" * 32 for i in quoted}
    for pcr, name, version, meas in log:
        if pcr in vals:
            d = hashlib.sha256(compact_event_data(name, version, meas)).digest()
            vals[pcr] = hashlib.sha256(vals[pcr] + d).digest()
    return vals


def _refvals(*components: ComponentReference) -> ReferenceValues:
    return ReferenceValues.of([ReferenceValueSet(class_id="unit-class", components=components)])


GOLDEN = _refvals(
    ComponentReference("bootloader", frozenset({hashlib.sha256(b"bl").digest()})),
    ComponentReference("kernel", frozenset({GOLDEN_KERNEL})))


def test_pcr_values_rewritten_to_match_a_forged_log_fail_the_pcr_digest() -> None:
    """Step 5.2: the device booted a rootkit kernel; the TPM's quote covers the real PCRs.
    The attacker swaps in a log with the golden kernel and the PCR values that log replays
    to. Signature, selection and replay all pass: only pcrDigest binds the carried PCR
    values to what the TPM signed."""
    evil_log = [BOOT[0], BOOT[1], [4, "kernel", "6.1.0", EVIL_KERNEL]]
    b = build(log=evil_log, nonce=NONCE)
    anchors = TrustAnchors.of(keys=[b.anchor])
    honest = _run(b.evidence, anchors, refvals=GOLDEN)
    assert "unknown_measurement" in [c for c, _ in honest.reasons]

    forged_log = [BOOT[0], BOOT[1], [4, "kernel", "6.1.0", GOLDEN_KERNEL]]
    m = cbor2.loads(b.evidence)
    m[4] = forged_log
    m[3] = {0x000B: _replay(forged_log, range(8))}
    r = _run(cbor2.dumps(m, canonical=True), anchors, refvals=GOLDEN)
    assert _codes(r) == [("pcr_digest_mismatch", "5.2")]


def test_events_on_pcrs_outside_the_quote_never_reach_reference_value_appraisal() -> None:
    """Step 5.5: an event for PCR 10 is not covered by a quote of PCRs 0-7, so anyone can
    write it. A required "kernel" measured only there must count as not measured, never as
    matching its golden value."""
    key = ec.generate_private_key(ec.SECP256R1())
    log = [BOOT[0], BOOT[1], [10, "kernel", "6.1.0", GOLDEN_KERNEL]]
    quoted = range(8)
    vals = _replay(log, quoted)
    at = attest(nonce=NONCE, select=pcr_select(quoted),
                pcr_digest=hashlib.sha256(b"".join(vals[i] for i in quoted)).digest())
    pub = ecc_public(key.public_key())
    ev = cbor2.dumps({1: at, 2: ecdsa_signature(key, at), 3: {0x000B: vals}, 4: log, 5: pub},
                     canonical=True)
    anchors = TrustAnchors.of(keys=[KeyAnchor(key.public_key(),
                                              instance_id=object_name(0x000B, pub))])
    r = _run(ev, anchors, refvals=GOLDEN)
    assert [c for c, _ in r.reasons] == ["missing_component"]
    # The same event on a quoted PCR is appraised (and matches).
    good = build(log=[BOOT[0], BOOT[1], [4, "kernel", "6.1.0", GOLDEN_KERNEL]], nonce=NONCE)
    r = _run(good.evidence, TrustAnchors.of(keys=[good.anchor]), refvals=GOLDEN)
    assert "missing_component" not in [c for c, _ in r.reasons]


def test_tpm_ak_registered_for_device_b_presented_as_device_a_is_refused() -> None:
    """Step 2.5 for TPM: B's AK, registered under B's TPM name, answers a challenge meant
    for A."""
    a, b = build(nonce=NONCE), build(nonce=NONCE)
    anchors = TrustAnchors.of(keys=[a.anchor, b.anchor])
    assert a.anchor.instance_id is not None and b.anchor.instance_id is not None
    r = _run(b.evidence, anchors, expected=a.anchor.instance_id)
    assert _codes(r) == [("key_mismatch", "2.5")]
    r = _run(b.evidence, anchors, expected=b.anchor.instance_id)
    assert "key_mismatch" not in [c for c, _ in r.reasons]


def test_tpm_ak_certified_by_x5chain_has_no_implied_tpm_name_and_is_not_bound() -> None:
    """Step 2.5, the "no implied identity" branch for TPM: a TPM name hashes the whole
    TPMT_PUBLIC, so a bare certified key implies no name; with an expected identity the
    certified AK alone is not bound to it (fail closed), whatever name the Evidence claims."""
    pki = create_manufacturer_pki("Test Devices", now=NOW - timedelta(days=1))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = device_name(organization="Test Devices", serial="tpm-ak-1")
    cert = issue_attestation_certificate(pki.issuing, build_csr(key, subject=subject),
                                         subject=subject, now=NOW - timedelta(hours=1),
                                         hardware_backend="tpm2")
    der = serialization.Encoding.DER
    b = build(key=key, nonce=NONCE)
    m = cbor2.loads(b.evidence)
    m[6] = [cert.public_bytes(der), pki.issuing.certificate.public_bytes(der)]
    ev = cbor2.dumps(m, canonical=True)
    anchors = TrustAnchors.of(certificates=[CertificateAnchor(pki.root.certificate, "mfr")])
    assert b.anchor.instance_id is not None
    # Without an expected identity the certified AK attests (step 2.3 finds it).
    r = _run(ev, anchors)
    assert "key_mismatch" not in [c for c, _ in r.reasons], r.reasons
    r = _run(ev, anchors, expected=b.anchor.instance_id)
    assert _codes(r) == [("key_mismatch", "2.5")]


def test_ak_that_can_also_decrypt_is_not_an_attestation_key() -> None:
    """Step 3.2: restricted|sign|fixedTPM is not enough if the key can also decrypt (TPM 2.0
    Part 1 section 27.2.2: a restricted decryption key is a storage parent; an AK is a
    signing key only)."""
    decrypt = 1 << 17
    b = build(nonce=NONCE, attrs=AK_ATTRS | decrypt)
    r = _run(b.evidence, TrustAnchors.of(keys=[b.anchor]))
    assert _codes(r) == [("ak_attributes_invalid", "3.2")]


def test_quote_signed_with_another_hash_than_the_ak_scheme_is_refused() -> None:
    """Step 3.3: the AK's scheme fixes ECDSA with SHA-256; a signature that says SHA-384 is
    not one the TPM made with this AK's scheme (a hash substitution), even if it verifies."""
    key = ec.generate_private_key(ec.SECP256R1())
    vals = _replay(BOOT, range(8))
    at = attest(nonce=NONCE, select=pcr_select(range(8)),
                pcr_digest=hashlib.sha384(b"".join(vals[i] for i in range(8))).digest())
    r_, s_ = decode_dss_signature(key.sign(at, ec.ECDSA(hashes.SHA384())))
    sig = struct.pack(">HH", 0x0018, 0x000C) + tpm2b(r_.to_bytes(32, "big")) + tpm2b(
        s_.to_bytes(32, "big"))
    pub = ecc_public(key.public_key())
    ev = cbor2.dumps({1: at, 2: sig, 3: {0x000B: vals}, 4: BOOT, 5: pub}, canonical=True)
    anchors = TrustAnchors.of(keys=[KeyAnchor(key.public_key(),
                                              instance_id=object_name(0x000B, pub))])
    r = _run(ev, anchors)
    assert _codes(r) == [("algorithm_rejected", "3.3")]
