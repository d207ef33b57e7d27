"""TCG 1.2 SHA-1 event logs (issue 13, item 11): parsed, replayed against the SHA-1 bank,
appraised as weak, refused with a message that names the format; and the TPM scheme's own
event-log size limit."""

from __future__ import annotations

import cbor2
import pytest

from devattest import errors
from devattest.model import DEFAULT_LIMITS, DEFAULT_OPTIONS, Status, TrustAnchors, ar4si
from devattest.policy import AllOf, AllowUnappraisedSoftware
from devattest.policy._builtin import DefaultPolicy
from devattest.schemes import SchemeRegistry
from devattest.schemes.tpm import MEDIA_TYPE, PcrSelection, TpmQuoteScheme
from devattest.schemes.tpm.eventlog import (
    FORMAT_TCG_SHA1,
    parse_tcg,
    replay,
)
from devattest.verifier import verify, verify_strict
from tests.unit.tpm import _legacy_log as legacy
from tests.unit.tpm._build import build

SCHEME = TpmQuoteScheme()
REG = SchemeRegistry([SCHEME])


#: No Reference Values here: signature-only appraisal is allowed explicitly, so that the
#: SHA-1 finding, not "software not appraised" (issue 13 item 8), is what executables shows.
SIGNATURE_ONLY = AllOf([AllowUnappraisedSoftware(), DefaultPolicy()])


def appraise(ev: bytes, nonce: bytes, anchor: object, registry: SchemeRegistry = REG,
             strict: bool = True) -> object:
    fn = verify_strict if strict else verify
    return fn(ev, media_type=MEDIA_TYPE, expected_nonce=nonce,
              trust_anchors=TrustAnchors.of(keys=[anchor]),  # type: ignore[list-item]
              reference_values=None, policy=SIGNATURE_ONLY, now=0, registry=registry)


def _sub(result: object) -> object:
    (sub,) = result.submods.values()  # type: ignore[attr-defined]
    return sub


@pytest.mark.parametrize("header", [b"", legacy.tcg12_spec_id_header()],
                         ids=["bios-no-header", "efi-spec-id-event02"])
def test_sha1_log_of_real_pc_with_option_roms_parses_and_replays_to_the_sha1_bank(header):
    events = legacy.real_pc_boot(option_roms=3)
    log = parse_tcg(legacy.encode(events, header=header), max_events=1024)
    assert log.format == FORMAT_TCG_SHA1 and log.banks == {0x0004}
    assert [e.component for e in log.events[:3]] == [
        "EV_S_CRTM_VERSION", "EV_POST_CODE", "EV_EFI_PLATFORM_FIRMWARE_BLOB"]
    replayed, ignored = replay(log, {0x0004: tuple(range(8))})
    assert ignored == 0
    assert replayed[0x0004] == legacy.replay_sha1(events, range(8))


def test_sha1_log_was_refused_as_corrupt_and_now_is_appraised_as_weak():
    b = legacy.build_sha1_quote(legacy.real_pc_boot())
    result = appraise(b.evidence, b.nonce, b.anchor)
    sub = _sub(result)
    # Appraised (signature, nonce, PCR digest and replay all checked), but SHA-1 is weak:
    # the executables claim carries the warning, with its reason.
    assert sub.trust_vector.executables == ar4si.UNSAFE_RUNTIME
    assert Status.from_claim(sub.trust_vector.executables) is Status.WARNING
    codes = [code for code, _ in sub.reasons]
    assert "tpm_sha1_event_log" in codes
    assert result.status is not Status.AFFIRMING  # type: ignore[attr-defined]
    assert sub.annotated_evidence["claims"]["eventLog"] == FORMAT_TCG_SHA1
    assert sub.annotated_evidence["claims"]["pcrSelection"] == "sha1:0,1,2,3,4,5,6,7"


def test_exit_boot_services_measured_twice_replays():
    b = legacy.build_sha1_quote(legacy.real_pc_boot(exit_boot_services_twice=True))
    assert _sub(appraise(b.evidence, b.nonce, b.anchor)).trust_vector.instance_identity == (
        ar4si.TRUSTWORTHY_INSTANCE)


def test_sha1_log_with_a_hidden_extend_is_contraindicated():
    events = legacy.real_pc_boot()
    b = legacy.build_sha1_quote(events)
    # The PCRs say the boot loader ran; the log shown drops it (an edited log).
    hidden = [e for e in events if e[1] != legacy.EV_EFI_BOOT_SERVICES_APPLICATION]
    m = cbor2.loads(b.evidence)
    m[4] = legacy.encode(hidden)
    with pytest.raises(errors.EventLogMismatch, match="sha1:4"):
        appraise(cbor2.dumps(m, canonical=True), b.nonce, b.anchor)


def test_sha1_log_with_a_sha256_quote_is_refused_naming_the_format():
    # A crypto-agile device's SHA-256 quote, with a SHA-1 log swapped in: the log cannot
    # explain the SHA-256 bank, and the message says which format the log is.
    b = build()
    m = cbor2.loads(b.evidence)
    m[4] = legacy.encode(legacy.real_pc_boot())
    with pytest.raises(errors.PcrSelectionMismatch,
                       match=r"TCG 1\.2 SHA-1 \(TCG_PCR_EVENT, no Spec ID Event03\)"):
        appraise(cbor2.dumps(m, canonical=True), b.nonce, b.anchor)


def test_sha1_quote_must_cover_exactly_the_configured_pcrs():
    b = legacy.build_sha1_quote(legacy.real_pc_boot(), quoted=range(4))
    with pytest.raises(errors.PcrSelectionMismatch, match="requires sha1:0,1,2,3,4,5,6,7"):
        appraise(b.evidence, b.nonce, b.anchor)


@pytest.mark.parametrize(("data", "text"), [
    (legacy.tcg_pcr_event(0, 8, b"\1" * 20, b"x" * 8)[:-3], "event 0 data truncated"),
    (legacy.tcg_pcr_event(0, 8, b"\1" * 20, b"x")[:20], "event 0 header truncated"),
    (legacy.tcg_pcr_event(24, 8, b"\1" * 20, b"x"), "PCR 24 out of range"),
    (legacy.tcg_pcr_event(0, 8, b"\1" * 20, b"x")[:28] + b"\xff\xff\xff\x7f",
     "event data of 2147483647 bytes"),
])
def test_malformed_sha1_log_message_names_the_format(data, text):
    with pytest.raises(errors.MalformedEventLog) as info:
        parse_tcg(data, max_events=16)
    assert info.value.message.startswith("TCG 1.2 SHA-1 (TCG_PCR_EVENT, no Spec ID Event03) "
                                         "event log:")
    assert text in info.value.message


def test_malformed_crypto_agile_log_message_names_the_format():
    header = legacy.tcg_pcr_event(0, legacy.EV_NO_ACTION, b"\0" * 20,
                                  b"Spec ID Event03\0" + b"\0" * 8 + b"\x09\0\0\0")
    with pytest.raises(errors.MalformedEventLog, match=r"^TCG crypto-agile \(Spec ID Event03"):
        parse_tcg(header, max_events=16)


# ------------------------------------------------------------------ size limit
def _big_boot(n: int) -> list[legacy.Event]:
    # Many EFI drivers and option ROMs: a bare-metal log well over 64 KiB.
    return legacy.real_pc_boot() + [
        (2, legacy.EV_EFI_BOOT_SERVICES_DRIVER, legacy.sha1(b"drv %d" % i), b"D" * 200)
        for i in range(n)]


def test_bare_metal_log_over_64_kib_is_appraised_under_the_default_1_mib_limit():
    b = legacy.build_sha1_quote(_big_boot(600))
    assert len(b.evidence) > 128 * 1024 > DEFAULT_LIMITS.max_token_size
    # verify() with the default DecodeLimits (64 KiB tokens): the TPM scheme's own limit
    # applies to its Evidence.
    result = appraise(b.evidence, b.nonce, b.anchor, strict=False)
    sub = _sub(result)
    assert sub.trust_vector.instance_identity == ar4si.TRUSTWORTHY_INSTANCE, sub.reasons


def test_event_log_over_the_scheme_limit_is_refused_with_the_limit_named():
    scheme = TpmQuoteScheme(max_eventlog_bytes=64 * 1024)
    b = legacy.build_sha1_quote(_big_boot(350))  # an 84 KB log, Evidence under 128 KiB
    with pytest.raises(errors.MalformedEventLog,
                       match=r"exceeds the limit of 65536 \(max_eventlog_bytes\)"):
        scheme.decode(b.evidence, limits=DEFAULT_LIMITS, options=DEFAULT_OPTIONS)
    result = appraise(b.evidence, b.nonce, b.anchor, registry=SchemeRegistry([scheme]),
                      strict=False)
    assert result.status is Status.CONTRAINDICATED  # type: ignore[attr-defined]
    assert _sub(result).reasons[0][0] == "event_log_malformed"


def test_evidence_over_the_scheme_bound_is_refused_naming_that_bound():
    scheme = TpmQuoteScheme(max_eventlog_bytes=64 * 1024)
    b = legacy.build_sha1_quote(_big_boot(600))
    result = appraise(b.evidence, b.nonce, b.anchor, registry=SchemeRegistry([scheme]),
                      strict=False)
    (code, message), = _sub(result).reasons
    assert code == "token_too_large" and "the limit is 131072" in message


def test_other_schemes_keep_the_callers_token_limit():
    # The TPM scheme's larger bound is its own: a PSA token over the caller's DecodeLimits
    # is still refused before parsing.
    from devattest.schemes import default_registry

    result = verify(b"\xd2" + b"\0" * (DEFAULT_LIMITS.max_token_size + 1),
                    media_type="application/psa-attestation-token", expected_nonce=b"n" * 32,
                    trust_anchors=TrustAnchors.of(keys=[build().anchor]),
                    reference_values=None, policy=DefaultPolicy(), now=0,
                    registry=default_registry())
    assert _sub(result).reasons[0][0] == "token_too_large"  # type: ignore[attr-defined]


def test_sha1_selection_follows_the_configured_pcrs():
    scheme = TpmQuoteScheme(pcr_selection=PcrSelection.of(sha256=[0, 2, 4, 7]))
    assert scheme.sha1_pcr_selection.describe() == "sha1:0,2,4,7"


# ------------------------------------------------------------------ SHA-1 and the policy
def _appraise_with(policy: object, refs: object = None) -> object:
    b = legacy.build_sha1_quote(legacy.real_pc_boot())
    return verify(b.evidence, media_type=MEDIA_TYPE, expected_nonce=b.nonce,
                  trust_anchors=TrustAnchors.of(keys=[b.anchor]),
                  reference_values=refs, policy=policy, now=0, registry=REG)  # type: ignore[arg-type]


def test_sha1_is_a_warning_unless_the_appraisal_policy_explicitly_accepts_it():
    from devattest.policy import AcceptSha1EventLogs, AllOf, policy_from_spec

    weak = _sub(_appraise_with(SIGNATURE_ONLY))
    assert weak.trust_vector.executables == ar4si.UNSAFE_RUNTIME
    for policy in (AllOf([AcceptSha1EventLogs(), DefaultPolicy()]),
                   policy_from_spec({"all_of": [{"accept_sha1_event_logs": True},
                                                {"default": True}]})):
        sub = _sub(_appraise_with(policy))
        # Accepting SHA-1 does not affirm software that nothing was compared with (no
        # Reference Values here): executables stays "unrecognized" (issue 13 item 8), and
        # the EAR still names the SHA-1 log and the policy that accepts it. With Reference
        # Values that match, the policy restores "approved" (the test below).
        assert sub.trust_vector.executables == ar4si.UNRECOGNIZED_RUNTIME
        assert "tpm_sha1_event_log" in [code for code, _ in sub.reasons]
        assert AcceptSha1EventLogs.policy_id in sub.appraisal_policy_ids


def test_accepting_sha1_does_not_undo_other_executables_findings():
    from dataclasses import replace

    from devattest.model import Finding
    from devattest.policy import AcceptSha1EventLogs
    from devattest.policy._base import PolicyInput
    from devattest.schemes.tpm.scheme import SHA1_EVENT_LOG_FINDING

    assert SHA1_EVENT_LOG_FINDING == "tpm_sha1_event_log"
    b = legacy.build_sha1_quote(legacy.real_pc_boot())
    d = SCHEME.decode(b.evidence, limits=DEFAULT_LIMITS, options=DEFAULT_OPTIONS)
    claims = SCHEME.extract_claims(d, now=0, options=DEFAULT_OPTIONS)
    other = Finding("executables", ar4si.UNSAFE_RUNTIME, "other", "another weakness")
    from devattest.model import TrustVector

    pi = PolicyInput(scheme="tpm", media_type=MEDIA_TYPE,
                     claims=replace(claims, findings=(*claims.findings, other)),
                     trust_vector=TrustVector(instance_identity=2, executables=32),
                     key=b.anchor, reference_values_matched=True)
    assert AcceptSha1EventLogs().evaluate(pi).trust_vector is None
    pi = replace(pi, claims=claims)
    assert AcceptSha1EventLogs().evaluate(pi).trust_vector.executables == (  # type: ignore[union-attr]
        ar4si.APPROVED_RUNTIME)
