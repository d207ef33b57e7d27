"""Pure tests of the tpm scheme: unmarshaller limits, strict CBOR, quote checks, clock rules,
MakeCredential primitives. Malformed input is always a typed EvidenceError, never a crash."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import struct

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devattest import errors
from devattest.model import (
    DEFAULT_LIMITS,
    DEFAULT_OPTIONS,
    ComponentReference,
    DecodeLimits,
    ReferenceValues,
    ReferenceValueSet,
    Status,
    TrustAnchors,
)
from devattest.policy._builtin import DefaultPolicy
from devattest.schemes import SchemeRegistry
from devattest.schemes.tpm import (
    MEDIA_TYPE,
    ClockState,
    PcrSelection,
    TpmQuoteScheme,
    check_clock_monotonic,
)
from devattest.schemes.tpm._cbor import strict_loads
from devattest.schemes.tpm.credential import kdfa
from devattest.schemes.tpm.eventlog import parse_tcg
from devattest.schemes.tpm.structures import parse_attest, parse_public, parse_signature
from devattest.verifier import verify_strict
from tests.unit.tpm._build import attest, build, pcr_select, tpm2b

SCHEME = TpmQuoteScheme()
REG = SchemeRegistry([SCHEME])


#: Reference Values for the software of ``_build.BOOT``.
REFS = ReferenceValues.of([ReferenceValueSet(class_id="unit-class", components=(
    ComponentReference("bootloader", frozenset({hashlib.sha256(b"bl").digest()})),
    ComponentReference("kernel", frozenset({hashlib.sha256(b"k").digest()}))))])


def run(ev: bytes, nonce: bytes, anchor: object,
        refs: ReferenceValues | None = None) -> object:
    return verify_strict(ev, media_type=MEDIA_TYPE, expected_nonce=nonce,
                         trust_anchors=TrustAnchors.of(keys=[anchor]),  # type: ignore[list-item]
                         reference_values=refs, policy=DefaultPolicy(), now=0, registry=REG)


def _edit(ev: bytes, k: int, v: object) -> bytes:
    m = cbor2.loads(ev)
    m[k] = v
    return cbor2.dumps(m, canonical=True)


# ------------------------------------------------------------------ the happy path
def test_software_built_quote_verifies() -> None:
    b = build()
    res = run(b.evidence, b.nonce, b.anchor, REFS)
    assert res.status is Status.AFFIRMING  # type: ignore[attr-defined]
    # Without Reference Values the quote says who signed, not what booted: not affirmed.
    assert run(b.evidence, b.nonce, b.anchor).status is Status.WARNING  # type: ignore[attr-defined]
    d = SCHEME.decode(b.evidence, limits=DEFAULT_LIMITS, options=DEFAULT_OPTIONS)
    c = SCHEME.extract_claims(d, now=0, options=DEFAULT_OPTIONS)
    assert c.class_id == "unit-class"
    assert [x.measurement_type for x in c.software_components] == ["bootloader", "kernel"]
    assert c.nonce == b.nonce and c.instance_id == b.anchor.instance_id


# ------------------------------------------------------------------ attacks, pure
def test_rejects_wrong_magic_not_tpm_generated() -> None:
    with pytest.raises(errors.MalformedTpmStructure, match="TPM_GENERATED"):
        parse_attest(attest(nonce=b"x", select=pcr_select(range(8)), pcr_digest=b"d" * 32,
                            magic=0xFF544348))


def test_rejects_attest_of_other_type_certify() -> None:
    with pytest.raises(errors.MalformedTpmStructure, match="ATTEST_QUOTE"):
        parse_attest(attest(nonce=b"x", select=pcr_select(range(8)), pcr_digest=b"d" * 32,
                            st=0x8017))


def test_rejects_version_string_edited_in_compact_log() -> None:
    # The version is covered by the extended digest: editing it breaks replay.
    b = build()
    log = cbor2.loads(b.evidence)[4]
    log[2][2] = "9.9.9"
    with pytest.raises(errors.EventLogMismatch):
        run(_edit(b.evidence, 4, log), b.nonce, b.anchor)


def test_rejects_non_restricted_ak() -> None:
    b = build(attrs=(1 << 18) | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6))
    with pytest.raises(errors.AttestationKeyAttributes):
        run(b.evidence, b.nonce, b.anchor)


def test_rejects_ak_substitution_key_mismatch() -> None:
    a, b = build(), build()
    from devattest.model import KeyAnchor

    anchor = KeyAnchor(public_key=b.anchor.public_key, instance_id=a.anchor.instance_id)
    with pytest.raises(errors.KeyMismatch):
        run(a.evidence, a.nonce, anchor)


def test_rejects_clock_unsafe_with_warning_finding() -> None:
    b = build(safe=0)
    d = SCHEME.decode(b.evidence, limits=DEFAULT_LIMITS, options=DEFAULT_OPTIONS)
    c = SCHEME.extract_claims(d, now=0, options=DEFAULT_OPTIONS)
    assert [f.code for f in c.findings] == ["tpm_clock_unsafe"]
    res = run(b.evidence, b.nonce, b.anchor)
    assert res.status is Status.WARNING  # type: ignore[attr-defined]


def test_rejects_extra_pcr_values_outside_selection() -> None:
    b = build()
    pcrs = cbor2.loads(b.evidence)[3]
    pcrs[0x000B][9] = b"\0" * 32
    with pytest.raises(errors.PcrDigestMismatch):
        run(_edit(b.evidence, 3, pcrs), b.nonce, b.anchor)


def test_configured_selection_is_enforced_exactly() -> None:
    b = build(quoted=range(8))
    scheme = TpmQuoteScheme(pcr_selection=PcrSelection.of(sha256=range(10)))
    d = scheme.decode(b.evidence, limits=DEFAULT_LIMITS, options=DEFAULT_OPTIONS)
    with pytest.raises(errors.PcrSelectionMismatch):
        scheme.extract_claims(d, now=0, options=DEFAULT_OPTIONS)


# ------------------------------------------------------------------ clock
@pytest.mark.parametrize(("prev", "cur", "code", "rebooted"), [
    (None, (10, 3, 0), None, False),
    ((10, 3, 0), (20, 3, 0), None, False),
    ((10, 3, 0), (5, 4, 0), None, True),  # reboot; safe=YES but clock is NV-backed ...
    ((10, 3, 0), (10, 3, 0), "quote_replayed", False),
    ((10, 3, 1), (20, 3, 0), "tpm_clock_regression", False),
    ((10, 3, 0), (20, 2, 5), "tpm_clock_regression", False),
    ((10, 0xFFFFFFFF, 0), (20, 0, 0), None, True),  # obfuscated counter wraps forward
])
def test_clock_monotonicity(prev: tuple[int, int, int] | None, cur: tuple[int, int, int],
                            code: str | None, rebooted: bool) -> None:
    p = ClockState(*prev) if prev else None
    c = ClockState(*cur, safe=cur[1] != 4)  # the reboot case reports safe=NO
    check = check_clock_monotonic(p, c)
    assert [f.code for f in check.findings] == ([code] if code else [])
    assert check.rebooted is rebooted


def test_clock_going_backwards_across_reboot_while_safe_is_contraindicated() -> None:
    check = check_clock_monotonic(ClockState(100, 3, 0), ClockState(50, 4, 0, safe=True))
    assert check.findings[0].code == "tpm_clock_regression"
    assert check.findings[0].value == 96


# ------------------------------------------------------------------ malformed inputs
def test_oversized_structures_are_typed_errors() -> None:
    with pytest.raises(errors.MalformedTpmStructure, match="maximum"):
        parse_attest(b"\xff" * 2000)
    with pytest.raises(errors.MalformedTpmStructure, match="maximum"):
        parse_public(b"\0" * 5000)
    with pytest.raises(errors.MalformedTpmStructure, match="maximum"):
        parse_signature(struct.pack(">HH", 0x18, 0x0B) + struct.pack(">H", 300) + b"\0" * 300)


def test_tpm2b_length_beyond_limit_or_buffer() -> None:
    base = struct.pack(">IH", 0xFF544347, 0x8018)
    with pytest.raises(errors.MalformedTpmStructure, match="qualifiedSigner"):
        parse_attest(base + struct.pack(">H", 500) + b"\0" * 500)
    with pytest.raises(errors.MalformedTpmStructure, match="truncated"):
        parse_attest(base + struct.pack(">H", 34) + b"\0" * 10)


def test_trailing_bytes_and_too_many_banks() -> None:
    good = attest(nonce=b"n", select=pcr_select(range(8)), pcr_digest=b"d" * 32)
    with pytest.raises(errors.MalformedTpmStructure, match="trailing"):
        parse_attest(good + b"\0")
    many = struct.pack(">I", 9) + (struct.pack(">HB", 0x0B, 3) + b"\xff\0\0") * 9
    bad = attest(nonce=b"n", select=b"", pcr_digest=b"")[:-2]
    with pytest.raises(errors.MalformedTpmStructure, match="banks"):
        parse_attest(bad + many + tpm2b(b"d" * 32))


def test_duplicate_pcr_bank_in_selection() -> None:
    sel = struct.pack(">I", 2) + (struct.pack(">HB", 0x0B, 3) + b"\xff\0\0") * 2
    with pytest.raises(errors.MalformedTpmStructure, match="twice"):
        parse_attest(attest(nonce=b"n", select=sel, pcr_digest=b"d" * 32))


def test_unsupported_signature_and_key_types() -> None:
    with pytest.raises(errors.MalformedTpmStructure, match="sigAlg"):
        parse_signature(struct.pack(">H", 0x0005) + b"\0" * 10)
    with pytest.raises(errors.MalformedTpmStructure, match="key type"):
        parse_public(struct.pack(">HHI", 0x0008, 0x000B, 0) + tpm2b(b"") + b"\0\x10\0\x10")


@pytest.mark.parametrize(("data", "err"), [
    (b"\xa2\x01\x01\x01\x02", errors.DuplicateMapKey),
    (b"\x9f\x01\xff", errors.InvalidCbor),  # indefinite length
    (b"\x18\x01", errors.InvalidCbor),  # non-shortest integer
    (b"\xc1\x01", errors.UnexpectedTag),
    (b"\xf9\x3c\x00", errors.InvalidCbor),  # float
    (b"\x01\x02", errors.TrailingBytes),
    (b"\x5a\xff\xff\xff\xff", errors.TruncatedEvidence),
    (b"\x81" * 40 + b"\x00", errors.NestingTooDeep),
    (b"\xa1\x81\x01\x01", errors.InvalidCbor),  # array as map key
])
def test_strict_cbor_rejections(data: bytes, err: type[Exception]) -> None:
    with pytest.raises(err):
        strict_loads(data, limits=DEFAULT_LIMITS)


def test_token_size_and_container_limits() -> None:
    with pytest.raises(errors.TokenTooLarge):
        strict_loads(b"\x00" * 100, limits=DecodeLimits(max_token_size=10))
    with pytest.raises(errors.InvalidCbor, match="exceeds"):
        strict_loads(b"\x99\xff\xff" + b"\x00" * 10, limits=DEFAULT_LIMITS)


def test_evidence_map_shape() -> None:
    b = build()
    m = cbor2.loads(b.evidence)
    for mutate in (lambda x: x.pop(1), lambda x: x.__setitem__(9, 1),
                   lambda x: x.__setitem__(3, {0x000B: {0: b"short"}}),
                   lambda x: x.__setitem__(4, "not a log"),
                   lambda x: x.__setitem__(6, [1])):
        mm = dict(m)
        mutate(mm)
        with pytest.raises(errors.EvidenceError):
            SCHEME.decode(cbor2.dumps(mm, canonical=True), limits=DEFAULT_LIMITS,
                          options=DEFAULT_OPTIONS)


HUGE = 2**16000  # a 2,000-byte bignum: printing it raises


@pytest.mark.parametrize("where", ["unknown-key", "pcr-bank", "pcr-index"])
def test_bignum_in_tpm_evidence_is_malformed_not_a_verifier_malfunction(where: str) -> None:
    """Issue 13, defect 2: error messages printed an attacker's integer of thousands of
    digits (Python refuses: ValueError), a "verifier malfunction" before any signature."""
    from devattest.verifier import verify

    b = build()
    m = cbor2.loads(b.evidence)
    if where == "unknown-key":
        m[HUGE] = 1
    elif where == "pcr-bank":
        m[3] = {HUGE: {0: b"\x00" * 32}}
    else:
        m[3] = {0x000B: {HUGE: b"\x00" * 32}}
    ev = cbor2.dumps(m, canonical=True)
    with pytest.raises(errors.EvidenceError):
        SCHEME.decode(ev, limits=DEFAULT_LIMITS, options=DEFAULT_OPTIONS)
    result = verify(ev, media_type=MEDIA_TYPE, expected_nonce=b.nonce,
                    trust_anchors=TrustAnchors.of(keys=[b.anchor]), reference_values=None,
                    policy=DefaultPolicy(), now=0, registry=REG)
    (sub,) = result.submods.values()
    assert result.status is Status.CONTRAINDICATED
    assert sub.reasons[0][0] != "verifier_malfunction", sub.reasons


def test_tcg_log_malformed() -> None:
    for data in (b"", b"\0" * 10, b"\0\0\0\0\3\0\0\0" + b"\0" * 20 + b"\xff\xff\0\0"):
        with pytest.raises(errors.MalformedEventLog):
            parse_tcg(data, max_events=10)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_unmarshallers_raise_only_typed_errors(data: bytes) -> None:
    for fn in (parse_attest, parse_signature, parse_public):
        with contextlib.suppress(errors.MalformedTpmStructure):
            fn(data)
    with contextlib.suppress(errors.MalformedEventLog):
        parse_tcg(data, max_events=50)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2000), st.integers(min_value=0, max_value=255))
def test_fuzz_byte_flips_in_evidence_are_typed(pos: int, val: int) -> None:
    b = _FIXED
    ev = bytearray(b.evidence)
    ev[pos % len(ev)] = val
    with contextlib.suppress(errors.DevattestError):
        run(bytes(ev), b.nonce, b.anchor)


_FIXED = build()


# ------------------------------------------------------------------ credential primitives
def test_kdfa_matches_counter_mode_definition() -> None:
    key, label, u, v = b"k" * 32, b"STORAGE", b"name", b""
    expect = hmac.new(key, struct.pack(">I", 1) + b"STORAGE\0" + u + v + struct.pack(">I", 128),
                      hashlib.sha256).digest()[:16]
    assert kdfa(0x000B, key, label, u, v, 128) == expect


def test_make_credential_matches_tpm2_pytss_reference() -> None:
    tpm2 = pytest.importorskip("tpm2_pytss")
    del tpm2
    from cryptography.hazmat.primitives.asymmetric import rsa
    from tpm2_pytss.types import TPM2B_PUBLIC
    from tpm2_pytss.utils import make_credential as ref_make

    from devattest.schemes.tpm.credential import make_credential

    priv = rsa.generate_private_key(65537, 2048)
    n = priv.public_key().public_numbers().n.to_bytes(256, "big")
    # TCG EK template L-1 shape: restricted|decrypt, AES-128-CFB, RSA-2048.
    ek = (struct.pack(">HHI", 0x0001, 0x000B, 0x000300B2) + tpm2b(b"\x83" * 32)
          + struct.pack(">HHH", 0x0006, 128, 0x0043) + struct.pack(">HHI", 0x0010, 2048, 0)
          + tpm2b(n))
    name = b"\x00\x0b" + hashlib.sha256(b"ak").digest()
    seed = b"S" * 32
    ours = make_credential(ek, name, b"secret", rng=lambda k: seed[:k])
    # Recover the seed with the private key and compare the blob with tpm2-pytss's.
    pub, _ = TPM2B_PUBLIC.unmarshal(tpm2b(ek))
    ref_blob, ref_secret = ref_make(pub, b"secret", name)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), b"IDENTITY\0")
    assert priv.decrypt(ours.encrypted_secret, oaep) == seed
    ref_seed = priv.decrypt(bytes(ref_secret), oaep)
    ours_with_ref_seed = make_credential(ek, name, b"secret", rng=lambda k: ref_seed[:k])
    assert ours_with_ref_seed.credential_blob == bytes(ref_blob)
