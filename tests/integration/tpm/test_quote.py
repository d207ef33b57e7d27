"""TPM quote appraisal end to end: a real (simulated) TPM, the pure appraisal core.

Each attack is a distinct typed rejection.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cbor2
import pytest

from devattest import errors
from devattest.attester.tpm_quote import AK_ATTRIBUTES, TpmQuoteAttester
from devattest.model import KeyAnchor, Status, TrustAnchors
from devattest.policy._builtin import DefaultPolicy
from devattest.schemes import SchemeRegistry
from devattest.schemes.tpm import (
    MEDIA_TYPE,
    ClockState,
    PcrSelection,
    TpmQuoteScheme,
    check_clock_monotonic,
)
from devattest.verifier import NonceBook, verify, verify_strict
from tests._support.swtpm import Swtpm
from tests.integration.tpm.conftest import Device, make_device, reference_values

pytestmark = pytest.mark.integration
NOW = 1_760_000_000
# The tpm scheme alone (the default registry also loads psa/eat).
REGISTRY = SchemeRegistry([TpmQuoteScheme()])


def appraise(evidence: bytes, nonce: bytes, anchors: list[KeyAnchor], *,
             strict: bool = True) -> Any:
    fn = verify_strict if strict else verify
    return fn(evidence, media_type=MEDIA_TYPE, expected_nonce=nonce,
              trust_anchors=TrustAnchors.of(keys=anchors), reference_values=reference_values(),
              policy=DefaultPolicy(), now=NOW, registry=REGISTRY)


def edit(evidence: bytes, key: int, value: Any) -> bytes:
    m = cbor2.loads(evidence)
    m[key] = value
    return cbor2.dumps(m, canonical=True)


def test_good_quote_affirms(device: Device, nonce: bytes) -> None:
    ev = device.quote(nonce)
    result = appraise(ev, nonce, [device.anchor])
    assert result.status is Status.AFFIRMING, result.reasons
    sub = result.submods["tpm"]
    assert sub.trust_vector.executables == 2
    assert sub.trust_vector.instance_identity == 2
    assert sub.trust_vector.hardware == 2
    claims = sub.annotated_evidence["claims"]
    assert claims["akName"] == device.ak.name.hex()
    assert claims["eventLog"] == "compact"


def test_rejects_unlogged_extend_tampered_pcr(device: Device, nonce: bytes) -> None:
    # Malware extends PCR 4 after boot without logging it.
    device.attester._extend(4, {0x000B: hashlib.sha256(b"rootkit").digest()})
    ev = device.quote(nonce)
    with pytest.raises(errors.EventLogMismatch, match="sha256:4"):
        appraise(ev, nonce, [device.anchor])
    res = appraise(ev, nonce, [device.anchor], strict=False)
    assert res.status is Status.CONTRAINDICATED
    assert res.reasons[0][0] == "event_log_mismatch"


def test_rejects_pcr_values_rewritten_to_match_log(device: Device, nonce: bytes) -> None:
    # The attacker also rewrites the carried PCR value to the one the log replays to.
    good_pcr4 = cbor2.loads(device.quote(os.urandom(32)))[3][0x000B][4]
    device.attester._extend(4, {0x000B: hashlib.sha256(b"rootkit").digest()})
    ev = device.quote(nonce)
    pcrs = cbor2.loads(ev)[3]
    pcrs[0x000B][4] = good_pcr4
    with pytest.raises(errors.PcrDigestMismatch):
        appraise(edit(ev, 3, pcrs), nonce, [device.anchor])


def test_rejects_wrong_nonce(device: Device, nonce: bytes) -> None:
    ev = device.quote(nonce)
    with pytest.raises(errors.NonceMismatch):
        appraise(ev, os.urandom(32), [device.anchor])


def test_rejects_replayed_quote(device: Device) -> None:
    book = NonceBook()
    n = book.issue(now=NOW)
    ev = device.quote(n)
    book.consume(n, now=NOW)
    first = appraise(ev, n, [device.anchor])
    assert first.affirming
    # The same Evidence again: the nonce is spent (service gate) ...
    with pytest.raises(errors.NonceReplayed):
        book.consume(n, now=NOW + 1)
    # ... and the TPM clock has not advanced (stateful check, independent of nonce state).
    state = ClockState.from_claims(first.submods["tpm"].annotated_evidence["claims"])
    again = appraise(ev, n, [device.anchor])
    check = check_clock_monotonic(state, ClockState.from_claims(
        again.submods["tpm"].annotated_evidence["claims"]))
    assert not check.ok
    with pytest.raises(errors.QuoteReplayed):
        check.raise_for_findings()


def test_rejects_quote_by_non_restricted_key(device: Device, nonce: bytes) -> None:
    att = device.attester
    from tpm2_pytss.constants import TPMA_OBJECT

    att.esapi.flush_context(device.ak.handle)
    rogue = att.create_ak(attributes=AK_ATTRIBUTES & ~TPMA_OBJECT.RESTRICTED)
    ev = att.quote(rogue, nonce, PcrSelection.of(sha256=range(8)))
    # Even if such a key were (wrongly) registered as a Trust Anchor, it is refused.
    anchor = KeyAnchor(public_key=device.anchor.public_key, instance_id=rogue.name)
    from devattest.schemes.tpm.structures import parse_public

    anchor = KeyAnchor(public_key=parse_public(rogue.public).public_key(),
                       instance_id=rogue.name)
    with pytest.raises(errors.AttestationKeyAttributes):
        appraise(ev, nonce, [anchor])


def test_rejects_signature_by_another_tpms_ak(device: Device, nonce: bytes) -> None:
    with Swtpm() as other_tpm:
        other = make_device(other_tpm)
        try:
            forged = other.quote(nonce)
        finally:
            other.attester.close()
    # Presented as device A's quote (A's AK public), signed by B's AK.
    with pytest.raises(errors.SignatureInvalid):
        appraise(edit(forged, 5, device.ak.public), nonce, [device.anchor])
    # Presented honestly with B's AK: B's AK is not a Trust Anchor.
    with pytest.raises(errors.KeyNotFound):
        appraise(forged, nonce, [device.anchor])


def test_rejects_event_log_edited_to_hide_a_component(device: Device, nonce: bytes) -> None:
    device.attester.measure_image("debug-shell", b"backdoor", version="1", pcr=5)
    ev = device.quote(nonce)
    log = [e for e in cbor2.loads(ev)[4] if e[1] != "debug-shell"]
    with pytest.raises(errors.EventLogMismatch, match="sha256:5"):
        appraise(edit(ev, 4, log), nonce, [device.anchor])
    # Unedited, the extra component is reported and fails Reference Values instead.
    res = appraise(ev, nonce, [device.anchor])
    assert res.status is not Status.AFFIRMING
    assert ("unknown_measurement" in [r[0] for r in res.reasons])


def test_rejects_narrowed_pcr_selection(device: Device, nonce: bytes) -> None:
    ev = device.quote(nonce, selection=PcrSelection.of(sha256=range(4)))
    with pytest.raises(errors.PcrSelectionMismatch):
        appraise(ev, nonce, [device.anchor])


def test_rejects_reset_count_going_backwards() -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="devattest-swtpm-rollback-"))
    snapshot = Path(tempfile.mkdtemp(prefix="devattest-swtpm-snap-")) / "state"
    persistent = 0x81010050
    scheme_nonce = os.urandom(32)
    try:
        def boot_and_quote(first: bool = False) -> tuple[ClockState, KeyAnchor | None]:
            with Swtpm(state_dir) as tpm:
                if first:
                    dev = make_device(tpm)
                    att = dev.attester
                    from tpm2_pytss.constants import ESYS_TR

                    att.esapi.evict_control(ESYS_TR.OWNER, dev.ak.handle, persistent)
                    anchor: KeyAnchor | None = dev.anchor
                    att.close()
                att = TpmQuoteAttester(tpm.tcti)
                try:
                    h = att.esapi.tr_from_tpmpublic(persistent)
                    pub, name, _ = att.esapi.read_public(h)
                    from devattest.attester.tpm_quote import TpmHandle

                    ak = TpmHandle(h, bytes(pub.publicArea.marshal()), bytes(name))
                    ev = att.quote(ak, scheme_nonce, PcrSelection.of(sha256=range(8)),
                                   event_log=[])
                finally:
                    att.close()
            scheme = TpmQuoteScheme()
            from devattest.model import DEFAULT_LIMITS, DEFAULT_OPTIONS

            d = scheme.decode(ev, limits=DEFAULT_LIMITS, options=DEFAULT_OPTIONS)
            c = d.attest.clock_info
            return ClockState(c.clock, c.reset_count, c.restart_count, c.safe), (
                anchor if first else None)

        s1, _ = boot_and_quote(first=True)
        shutil.copytree(state_dir, snapshot)
        s2, _ = boot_and_quote()
        s3, _ = boot_and_quote()
        reboot = check_clock_monotonic(s1, s2)
        assert reboot.ok and reboot.rebooted, reboot
        assert check_clock_monotonic(s2, s3).rebooted
        # Roll the TPM state back to the snapshot taken after the first boot.
        shutil.rmtree(state_dir)
        shutil.copytree(snapshot, state_dir)
        s4, _ = boot_and_quote()
        check = check_clock_monotonic(s3, s4)
        assert not check.ok
        assert check.findings[0].value == 96
        with pytest.raises(errors.TpmClockRegression):
            check.raise_for_findings()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(snapshot.parent, ignore_errors=True)


def test_tcg_event_log_quote_affirms_and_hidden_event_is_rejected(device: Device,
                                                                  nonce: bytes) -> None:
    from devattest.model import ReferenceValues, ReferenceValueSet

    # A fresh TPM boot recorded as UEFI firmware would: PCR 0 firmware blob, PCR 4 app.
    with Swtpm() as tpm:
        dev = make_device(tpm)
        try:
            # make_device measured a compact boot; use PCRs 1 and 2 for the TCG log part.
            dev.attester.extend_tcg_events([
                (1, 0x80000008, b"platform firmware blob"),
                (2, 0x80000003, b"grubx64.efi"),
                (2, 0x00000004, b"\0\0\0\0"),
            ])
            sel = PcrSelection.of(sha256=[1, 2])
            ev = dev.attester.quote(dev.ak, nonce, sel)
        finally:
            dev.attester.close()
    refs = ReferenceValues.of([ReferenceValueSet("tcg-box", (), reject_unknown_components=False)])
    scheme = TpmQuoteScheme(pcr_selection=sel)
    from devattest.schemes import SchemeRegistry

    reg = SchemeRegistry([scheme])
    res = verify_strict(ev, media_type=MEDIA_TYPE, expected_nonce=nonce,
                        trust_anchors=TrustAnchors.of(keys=[dev.anchor]),
                        reference_values=refs, policy=DefaultPolicy(), now=NOW, registry=reg)
    claims = res.submods["tpm"].annotated_evidence["claims"]
    assert claims["eventLog"] == "tcg"
    # class_id is None for TCG logs here, so step 6 reports no reference values: still a
    # cryptographically verified quote; check the components the scheme extracted directly.
    from devattest.model import DEFAULT_LIMITS, DEFAULT_OPTIONS

    d = scheme.decode(ev, limits=DEFAULT_LIMITS, options=DEFAULT_OPTIONS)
    comps = scheme.extract_claims(d, now=NOW, options=DEFAULT_OPTIONS).software_components
    assert [c.measurement_type for c in comps] == ["EV_EFI_PLATFORM_FIRMWARE_BLOB",
                                                   "EV_EFI_BOOT_SERVICES_APPLICATION"]
    assert comps[1].measurement_value == hashlib.sha256(b"grubx64.efi").digest()
    # Drop the boot application's record from the binary log: replay no longer matches.
    from devattest.attester.tpm_quote import _tcg_spec_id_event  # test-only helper use

    log = cbor2.loads(ev)[4]
    hdr = _tcg_spec_id_event([0x000B])
    body = log[len(hdr):]
    first_len = 12 + 2 + 32 + 4 + len(b"platform firmware blob")
    second_len = 12 + 2 + 32 + 4 + len(b"grubx64.efi")
    edited = hdr + body[:first_len] + body[first_len + second_len:]
    with pytest.raises(errors.EventLogMismatch, match="sha256:2"):
        verify_strict(edit(ev, 4, edited), media_type=MEDIA_TYPE, expected_nonce=nonce,
                      trust_anchors=TrustAnchors.of(keys=[dev.anchor]), reference_values=refs,
                      policy=DefaultPolicy(), now=NOW, registry=reg)
