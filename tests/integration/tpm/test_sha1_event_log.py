"""A real (simulated) TPM quoting its SHA-1 bank with a TCG 1.2 SHA-1 event log (issue 13
item 11): the quote and the log come from swtpm, appraisal is the pure core. Such logs were
refused as corrupt; now they are appraised, as weak."""

from __future__ import annotations

import pytest

from devattest import errors
from devattest.model import Status, TrustAnchors, ar4si
from devattest.policy import AcceptSha1EventLogs, AllOf, AllowUnappraisedSoftware
from devattest.policy._builtin import DefaultPolicy
from devattest.schemes import SchemeRegistry
from devattest.schemes.tpm import MEDIA_TYPE, PcrSelection, TpmQuoteScheme
from devattest.verifier import verify, verify_strict
from tests._support.swtpm import Swtpm
from tests.integration.tpm.conftest import make_device
from tests.unit.tpm import _legacy_log as legacy

pytestmark = pytest.mark.integration
NOW = 1_760_000_000
REGISTRY = SchemeRegistry([TpmQuoteScheme()])  # configured sha256:0-7, as by default
SHA1 = 0x0004


def _quote(nonce: bytes, *, unlogged: bytes | None = None) -> tuple[bytes, object]:
    events = legacy.real_pc_boot(option_roms=2, exit_boot_services_twice=True)
    with Swtpm() as tpm:
        dev = make_device(tpm)
        try:
            # What BIOS firmware with a TCG 1.2-format log does: extend the SHA-1 bank.
            for pcr, _etype, digest, _data in events:
                dev.attester._extend(pcr, {SHA1: digest})
            if unlogged is not None:
                dev.attester._extend(4, {SHA1: unlogged})  # an extend the log hides
            ev = dev.attester.quote(dev.ak, nonce, PcrSelection.of(sha1=range(8)),
                                    event_log=legacy.encode(
                                        events, header=legacy.tcg12_spec_id_header()))
        finally:
            dev.attester.close()
    return ev, dev.anchor


#: No Reference Values in these tests: signature-only appraisal is allowed explicitly, so the
#: SHA-1 finding, not "software not appraised" (issue 13 item 8), is what executables shows.
SIGNATURE_ONLY = AllOf([AllowUnappraisedSoftware(), DefaultPolicy()])


def test_swtpm_sha1_bank_quote_with_tcg12_log_is_appraised_as_weak() -> None:
    nonce = b"\x5a" * 32
    ev, anchor = _quote(nonce)
    res = verify_strict(ev, media_type=MEDIA_TYPE, expected_nonce=nonce,
                        trust_anchors=TrustAnchors.of(keys=[anchor]),  # type: ignore[list-item]
                        reference_values=None, policy=SIGNATURE_ONLY, now=NOW,
                        registry=REGISTRY)
    sub = res.submods["tpm"]
    assert sub.trust_vector.instance_identity == ar4si.TRUSTWORTHY_INSTANCE
    assert sub.trust_vector.executables == ar4si.UNSAFE_RUNTIME
    assert "tpm_sha1_event_log" in [code for code, _ in sub.reasons]
    assert res.status is not Status.AFFIRMING
    claims = sub.annotated_evidence["claims"]
    assert claims["eventLog"] == "tcg-sha1" and claims["pcrSelection"].startswith("sha1:")
    # Accepting SHA-1 does not affirm software nothing was compared with (no Reference
    # Values here): executables stays "unrecognized", and the EAR names the SHA-1 log.
    accepted = verify(ev, media_type=MEDIA_TYPE, expected_nonce=nonce,
                      trust_anchors=TrustAnchors.of(keys=[anchor]),  # type: ignore[list-item]
                      reference_values=None,
                      policy=AllOf([AcceptSha1EventLogs(), DefaultPolicy()]), now=NOW,
                      registry=REGISTRY).submods["tpm"]
    assert accepted.trust_vector.executables == ar4si.UNRECOGNIZED_RUNTIME
    assert "tpm_sha1_event_log" in [code for code, _ in accepted.reasons]


def test_swtpm_sha1_quote_with_an_unlogged_extend_is_contraindicated() -> None:
    nonce = b"\x6b" * 32
    ev, anchor = _quote(nonce, unlogged=legacy.sha1(b"rootkit"))
    with pytest.raises(errors.EventLogMismatch, match="sha1:4"):
        verify_strict(ev, media_type=MEDIA_TYPE, expected_nonce=nonce,
                      trust_anchors=TrustAnchors.of(keys=[anchor]),  # type: ignore[list-item]
                      reference_values=None, policy=SIGNATURE_ONLY, now=NOW,
                      registry=REGISTRY)
