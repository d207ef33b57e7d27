"""The ``tpm`` evidence scheme: a TPM 2.0 quote with a measured-boot event log.

Media type: ``application/vnd.devattest.tpm-quote+cbor``. The Evidence is one deterministic
CBOR map (see ``docs/tpm.md``)::

    tpm-quote-evidence = {
      1 => bstr,                    ; TPMS_ATTEST, exactly as signed by the TPM (TPM2_Quote)
      2 => bstr,                    ; TPMT_SIGNATURE over key 1
      3 => { + hash-alg => { + pcr-index => bstr } },  ; quoted PCR values (TPM_ALG_ID keys)
      4 => bstr / [* compact-event], ; TCG PC Client crypto-agile log, or devattest compact log
      5 => bstr,                    ; AK TPMT_PUBLIC
      ? 6 => [+ bstr],              ; AK certificate chain (x5chain), leaf first, DER
    }

The attestation key (AK) is found either through its certificate chain (``x5chain``,
validated by the appraisal core) or as a Trust Anchor registered under its TPM name
(``nameAlg || H(TPMT_PUBLIC)``) after EK credential activation (``credential.py``). The TPM
name is the Evidence's Instance ID.

Verification steps (TPM 2.0 Library Part 2 section 10.12, RFC 9334 section 10); the step
numbers extend the core's pipeline (``devattest.verifier.core``):

* 1.1 the Evidence is a strict, deterministic CBOR map with exactly the keys above;
* 1.2 AK TPMT_PUBLIC, TPMT_SIGNATURE and the event log parse strictly;
* 1.3 TPMS_ATTEST: ``magic`` is TPM_GENERATED_VALUE and ``type`` is TPM_ST_ATTEST_QUOTE;
* 3.1 the AK in the Evidence is the Trust Anchor's key;
* 3.2 the AK is ``restricted | sign | fixedTPM`` (so the TPM signs only what it generated);
* 3.3 the signature scheme is ECDSA (P-256/P-384) or RSASSA/RSAPSS with SHA-256 or better,
  matching the AK;
* 3.4 the signature over the TPMS_ATTEST bytes verifies with the AK;
* 4   (core) ``extraData`` equals the Verifier's nonce, in constant time;
* 5.1 the PCR selection is exactly the requested one (for a TCG 1.2 SHA-1 event log, the
  same PCRs in the SHA-1 bank, the only bank such a log can replay);
* 5.2 the carried PCR values cover exactly that selection and hash to ``pcrDigest``;
* 5.3 replaying the event log gives exactly the quoted PCR values;
* 5.4 ``clockInfo.safe`` is honoured (a warning finding when NO); a SHA-1 log is a warning
  finding on ``executables`` (``tpm_sha1_event_log``): SHA-1 is broken for collisions;
* 5.5 the log's components become ``Claims.software_components`` for step 6;
* 5.6 (service, stateful) ``resetCount``/``restartCount``/``clock`` are monotonic:
  :func:`devattest.schemes.tpm.clock.check_clock_monotonic`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from devattest.errors import (
    AlgorithmError,
    AttestationKeyAttributes,
    EventLogMismatch,
    KeyMismatch,
    MalformedClaims,
    PcrDigestMismatch,
    PcrSelectionMismatch,
    SignatureInvalid,
    shown,
)
from devattest.model import (
    Claims,
    DecodeLimits,
    Finding,
    KeyAnchor,
    KeyHints,
    SoftwareComponent,
    VerifyOptions,
    ar4si,
)
from devattest.schemes.tpm._cbor import loads
from devattest.schemes.tpm.eventlog import (
    DEFAULT_MAX_EVENTLOG_BYTES,
    FORMAT_NAMES,
    FORMAT_TCG_SHA1,
    EventLog,
    parse_event_log,
    replay,
)
from devattest.schemes.tpm.structures import (
    ALG_ECC,
    ALG_ECDSA,
    ALG_RSA,
    ALG_RSAPSS,
    ALG_RSASSA,
    ALG_SHA1,
    ALG_SHA256,
    ALG_SHA384,
    ALG_SHA512,
    DECRYPT,
    FIXED_TPM,
    HASH_ALGS,
    HASH_NAMES,
    RESTRICTED,
    SIGN,
    Attest,
    PcrSelection,
    Public,
    Signature,
    parse_attest,
    parse_public,
    parse_signature,
)

MEDIA_TYPE = "application/vnd.devattest.tpm-quote+cbor"
PROFILE = "tag:devattest.dev,2026:tpm-quote"

#: The PCR selection requested when none is configured: SHA-256 bank, PCRs 0-7 (the PC
#: Client static root of trust: firmware, configuration, option ROMs, boot loader,
#: platform and Secure Boot policy).
DEFAULT_PCR_SELECTION = PcrSelection.of(sha256=range(8))

#: Attributes an AK must have (TPM 2.0 Part 1 section 27.2.2 / Part 2 section 8.3).
AK_REQUIRED_ATTRIBUTES = RESTRICTED | SIGN | FIXED_TPM

_KEY_ATTEST, _KEY_SIG, _KEY_PCRS, _KEY_LOG, _KEY_AK, _KEY_X5CHAIN = 1, 2, 3, 4, 5, 6
_REQUIRED_KEYS = frozenset({1, 2, 3, 4, 5})
_ALLOWED_KEYS = frozenset({1, 2, 3, 4, 5, 6})
_SIG_HASHES: dict[int, hashes.HashAlgorithm] = {
    ALG_SHA256: hashes.SHA256(), ALG_SHA384: hashes.SHA384(), ALG_SHA512: hashes.SHA512()}
#: One (immutable) signature-algorithm object per hash, instead of one per appraisal.
_ECDSA: dict[int, ec.ECDSA] = {alg: ec.ECDSA(h) for alg, h in _SIG_HASHES.items()}
_HASH_FUNCS = {ALG_SHA256: hashlib.sha256, ALG_SHA384: hashlib.sha384,
               ALG_SHA512: hashlib.sha512, 0x0004: hashlib.sha1}
_MAX_PCR = 32
#: Room in TPM Evidence for everything but the event log (TPMS_ATTEST, signature, AK,
#: PCR values, an AK certificate chain), added to ``max_eventlog_bytes`` for the Evidence's
#: own size limit.
EVIDENCE_OVERHEAD_BYTES = 64 * 1024
#: Finding code of an appraisal that rests on a SHA-1 event log.
SHA1_EVENT_LOG_FINDING = "tpm_sha1_event_log"
_SHA1_FINDING = Finding(
    "executables", ar4si.UNSAFE_RUNTIME, SHA1_EVENT_LOG_FINDING,
    f"the {FORMAT_NAMES[FORMAT_TCG_SHA1]} was replayed against the SHA-1 PCR bank: SHA-1 is "
    "broken for collisions, so its measurements are weak evidence of what ran (an "
    "Appraisal Policy may accept SHA-1 explicitly: accept_sha1_event_logs)")
_EMPTY: dict[int, bytes] = {}
#: SoftwareComponent.measurement_desc for each PCR index.
_PCR_DESC = tuple(f"pcr {i}" for i in range(_MAX_PCR))


@dataclass(frozen=True, slots=True)
class TpmQuoteEvidence:
    """Decoded (step 1) TPM quote Evidence. Well-formed, not yet verified."""

    attest_bytes: bytes
    attest: Attest
    signature: Signature
    ak: Public
    ak_name: bytes
    pcr_values: dict[int, dict[int, bytes]]
    event_log: EventLog
    x5chain: tuple[bytes, ...] = ()
    key_hints: KeyHints = field(default_factory=KeyHints)

    @property
    def nonce(self) -> bytes:
        """``extraData`` of the TPMS_ATTEST: the Verifier's nonce (checked in step 4)."""
        return self.attest.extra_data


def _decode_pcrs(value: Any) -> dict[int, dict[int, bytes]]:
    if not isinstance(value, dict) or not value or len(value) > 8:
        raise MalformedClaims("key 3 (PCR values) must be a non-empty map of banks")
    out: dict[int, dict[int, bytes]] = {}
    for alg, bank in value.items():
        if type(alg) is not int or alg not in HASH_ALGS:
            raise MalformedClaims(f"PCR bank {shown(alg)} is not a supported TPM_ALG_ID")
        size = HASH_ALGS[alg][1]
        if not isinstance(bank, dict) or len(bank) > _MAX_PCR:
            raise MalformedClaims("each PCR bank must be a map of PCR index to value")
        vals: dict[int, bytes] = {}
        for idx, v in bank.items():
            if type(idx) is not int or not 0 <= idx < _MAX_PCR:
                raise MalformedClaims(f"PCR index {shown(idx)} out of range")
            if not isinstance(v, bytes) or len(v) != size:
                raise MalformedClaims(f"PCR {idx} value must be {size} bytes")
            vals[idx] = v
        out[alg] = vals
    return out


#: Derived data of Trust Anchor keys, per key object: ``id(key) -> (key, derived)``. The
#: entry holds the key itself, so the ``id`` cannot be reused while the entry exists. What is
#: cached is a function of the anchor alone (its public numbers), never of Evidence.
_ANCHOR_DERIVED: dict[int, tuple[Any, tuple[int, int, int, int] | None]] = {}
_ANCHOR_DERIVED_MAX = 4096
_EC, _RSA = 1, 2


def _anchor_numbers(anchor_key: Any) -> tuple[int, int, int, int] | None:
    """``(kind, x or n, y or e, EC key bits or 0)`` of a Trust Anchor key, computed once per
    key object (``public_numbers()`` costs a few microseconds); None for other key types."""
    entry = _ANCHOR_DERIVED.get(id(anchor_key))
    if entry is not None and entry[0] is anchor_key:
        return entry[1]
    derived: tuple[int, int, int, int] | None = None
    if isinstance(anchor_key, ec.EllipticCurvePublicKey):
        n = anchor_key.public_numbers()
        derived = (_EC, n.x, n.y, anchor_key.curve.key_size)
    elif isinstance(anchor_key, rsa.RSAPublicKey):
        rn = anchor_key.public_numbers()
        derived = (_RSA, rn.n, rn.e, 0)
    if len(_ANCHOR_DERIVED) >= _ANCHOR_DERIVED_MAX:
        _ANCHOR_DERIVED.clear()
    _ANCHOR_DERIVED[id(anchor_key)] = (anchor_key, derived)
    return derived


def _same_key(anchor_key: Any, ak: Public) -> bool:
    nums = _anchor_numbers(anchor_key)
    if nums is None:
        return False
    kind, a, b, bits = nums
    if ak.type == ALG_ECC and kind == _EC:
        return (a == int.from_bytes(ak.x, "big") and b == int.from_bytes(ak.y, "big")
                and bits == (256 if ak.curve_or_bits == 3 else 384))
    if ak.type == ALG_RSA and kind == _RSA:
        return a == int.from_bytes(ak.x, "big") and b == (ak.exponent or 65537)
    return False


class TpmQuoteScheme:
    """Evidence scheme ``tpm``: TPM 2.0 quotes with TCG or compact event logs.

    Args:
        pcr_selection: the PCR selection the Verifier requests (and requires, exactly).
            Defaults to :data:`DEFAULT_PCR_SELECTION` (sha256:0-7).
        max_events: maximum number of events in an event log.
        max_eventlog_bytes: maximum size of a TCG binary event log (1 MiB by default:
            bare-metal logs exceed 64 KiB). TPM Evidence may then be up to this plus
            :data:`EVIDENCE_OVERHEAD_BYTES`, even when the caller's ``DecodeLimits`` allow
            less (:attr:`max_evidence_bytes`).
    """

    name: ClassVar[str] = "tpm"
    media_types: ClassVar[tuple[str, ...]] = (MEDIA_TYPE,)
    profiles: ClassVar[tuple[str, ...]] = (PROFILE,)

    def __init__(self, *, pcr_selection: PcrSelection = DEFAULT_PCR_SELECTION,
                 max_events: int = 1024,
                 max_eventlog_bytes: int = DEFAULT_MAX_EVENTLOG_BYTES) -> None:
        if max_eventlog_bytes < 1:
            raise ValueError("max_eventlog_bytes must be positive")
        self.pcr_selection = pcr_selection
        self._wanted = pcr_selection.normalised()
        self._describe = pcr_selection.describe()
        # A TCG 1.2 SHA-1 log replays only into the SHA-1 bank: the same PCRs, there.
        self.sha1_pcr_selection = PcrSelection(
            ((ALG_SHA1, tuple(sorted({i for _, idx in pcr_selection.banks for i in idx}))),))
        self._sha1_wanted = self.sha1_pcr_selection.normalised()
        self.max_events = max_events
        self.max_eventlog_bytes = max_eventlog_bytes
        #: The largest TPM Evidence this scheme decodes (its event log dominates).
        self.max_evidence_bytes = max_eventlog_bytes + EVIDENCE_OVERHEAD_BYTES
        self._widened: tuple[DecodeLimits, DecodeLimits] | None = None

    def _limits(self, limits: DecodeLimits) -> DecodeLimits:
        """The caller's limits, with the token size raised to :attr:`max_evidence_bytes`."""
        if limits.max_token_size >= self.max_evidence_bytes:
            return limits
        cached = self._widened
        if cached is not None and cached[0] is limits:
            return cached[1]
        wide = dataclasses.replace(limits, max_token_size=self.max_evidence_bytes)
        self._widened = (limits, wide)
        return wide

    # --------------------------------------------------------------------- step 1
    def decode(self, data: bytes, *, limits: DecodeLimits, options: VerifyOptions
               ) -> TpmQuoteEvidence:
        """Step 1: parse the Evidence map and the TPM structures it carries.

        Raises:
            EvidenceError: a subclass says what is malformed (CBOR, map shape, TPM structure,
                event log).
        """
        # 1.1: strict deterministic CBOR (RFC 8949 section 4.2.1), exactly the known keys.
        limits = self._limits(limits)
        m = loads(data, limits=limits)
        if not isinstance(m, dict):
            raise MalformedClaims("TPM quote Evidence must be a CBOR map")
        keys = m.keys()
        if not keys >= _REQUIRED_KEYS or not keys <= _ALLOWED_KEYS:
            missing = sorted(_REQUIRED_KEYS - keys)
            extra = sorted(shown(k) for k in keys - _ALLOWED_KEYS)
            raise MalformedClaims(f"TPM quote Evidence keys: missing {missing}, "
                                  f"unknown {extra}")
        attest_bytes = m[_KEY_ATTEST]
        # 1.2: the AK public area, signature and event log (strict, bounded unmarshalling).
        ak = parse_public(m[_KEY_AK])
        signature = parse_signature(m[_KEY_SIG])
        # 1.3: TPMS_ATTEST magic == TPM_GENERATED_VALUE, type == TPM_ST_ATTEST_QUOTE
        #      (TPM 2.0 Part 2 section 10.12.8).
        attest = parse_attest(attest_bytes)
        pcrs = _decode_pcrs(m[_KEY_PCRS])
        log = parse_event_log(m[_KEY_LOG], max_events=min(self.max_events,
                                                          limits.max_container_items),
                              max_bytes=self.max_eventlog_bytes)
        chain: tuple[bytes, ...] = ()
        if _KEY_X5CHAIN in m:
            x5 = m[_KEY_X5CHAIN]
            if (not isinstance(x5, list) or not x5 or len(x5) > limits.max_chain_length
                    or not all(isinstance(c, bytes) for c in x5)):
                raise MalformedClaims(
                    f"x5chain must be 1-{limits.max_chain_length} DER certificates")
            chain = tuple(x5)
        name = ak.name
        return TpmQuoteEvidence(attest_bytes, attest, signature, ak, name, pcrs, log, chain,
                                KeyHints(instance_id=name, x5chain=chain))

    # --------------------------------------------------------------------- step 3
    def verify_integrity(self, decoded: Any, key: KeyAnchor, *, options: VerifyOptions
                         ) -> tuple[str, ...]:
        """Step 3: the AK is the anchor's key, is a restricted TPM signing key, and signed
        the TPMS_ATTEST.

        Raises:
            KeyMismatch: the Evidence's AK is not the Trust Anchor's key.
            AttestationKeyAttributes: the AK is not restricted|sign|fixedTPM.
            AlgorithmError: the signature scheme or hash is not acceptable for the AK.
            SignatureInvalid: the signature does not verify.
        """
        ev: TpmQuoteEvidence = decoded
        ak, sig = ev.ak, ev.signature
        # 3.1: the AK carried in the Evidence is the key the Trust Anchor vouches for.
        if not _same_key(key.public_key, ak):
            raise KeyMismatch("the AK in the Evidence is not the Trust Anchor's key",
                              step="3.1")
        # 3.2: restricted|sign|fixedTPM (and not decrypt): only then does a valid signature
        #      prove the TPM produced the TPMS_ATTEST (TPM 2.0 Part 1 section 27.2.2).
        attrs = ak.object_attributes
        if attrs & AK_REQUIRED_ATTRIBUTES != AK_REQUIRED_ATTRIBUTES or attrs & DECRYPT:
            raise AttestationKeyAttributes(
                f"AK objectAttributes {attrs:#010x} lack restricted|sign|fixedTPM "
                "(or include decrypt): it could sign data the TPM did not generate",
                step="3.2")
        # 3.3: the signature scheme must fit the key and use SHA-256 or better.
        h = _SIG_HASHES.get(sig.hash_alg)
        if h is None:
            raise AlgorithmError(f"quote signature hash {sig.hash_alg:#06x} is not accepted",
                                 step="3.3")
        if ak.scheme not in (0x0010, sig.sig_alg) or (
                ak.scheme != 0x0010 and ak.scheme_hash != sig.hash_alg):
            raise AlgorithmError("the signature scheme differs from the AK's scheme",
                                 step="3.3")
        pub = key.public_key
        # 3.4: verify the signature over the TPMS_ATTEST bytes (TPM 2.0 Part 3 18.4).
        try:
            if sig.sig_alg == ALG_ECDSA and isinstance(pub, ec.EllipticCurvePublicKey):
                der = encode_dss_signature(int.from_bytes(sig.r, "big"),
                                           int.from_bytes(sig.s, "big"))
                pub.verify(der, ev.attest_bytes, _ECDSA[sig.hash_alg])
            elif sig.sig_alg == ALG_RSASSA and isinstance(pub, rsa.RSAPublicKey):
                pub.verify(sig.r, ev.attest_bytes, padding.PKCS1v15(), h)
            elif sig.sig_alg == ALG_RSAPSS and isinstance(pub, rsa.RSAPublicKey):
                pub.verify(sig.r, ev.attest_bytes,
                           padding.PSS(padding.MGF1(h), padding.PSS.AUTO), h)
            else:
                raise AlgorithmError(
                    f"signature algorithm {sig.sig_alg:#06x} does not fit the AK", step="3.3")
        except InvalidSignature:
            raise SignatureInvalid("the quote signature does not verify with the AK",
                                   step="3.4") from None
        return ()

    def check_quoted_pcrs(self, ev: TpmQuoteEvidence) -> bool:
        """Steps 5.1 and 5.2 alone: the quote selects exactly the requested PCRs, and the
        carried PCR values hash to its ``pcrDigest``. :meth:`extract_claims` runs this first;
        it is separate so that benchmarks can time the quote check without the event log.

        Returns:
            True when the selection is the configured one in its order (else equal order-free).

        Raises:
            PcrSelectionMismatch: the quote does not cover exactly the requested PCRs.
            PcrDigestMismatch: the carried PCR values do not hash to ``pcrDigest``.
        """
        at = ev.attest
        sel = at.pcr_select
        # 5.1: exactly the requested selection (a narrowed quote hides PCRs). Equal banks in
        #      the configured order are the common case; otherwise compare order-free. A
        #      SHA-1 log can only be checked against the SHA-1 bank: the same PCRs, there.
        if ev.event_log.format == FORMAT_TCG_SHA1:
            if (sel != self.sha1_pcr_selection
                    and sel.normalised() != self._sha1_wanted):
                raise PcrSelectionMismatch(
                    f"quote selects {sel.describe()}; with a "
                    f"{FORMAT_NAMES[FORMAT_TCG_SHA1]} the Verifier requires "
                    f"{self.sha1_pcr_selection.describe()}", step="5.1")
            same_sel = False  # not the configured selection (the claims describe it)
        else:
            same_sel = sel == self.pcr_selection
            if not same_sel and sel.normalised() != self._wanted:
                raise PcrSelectionMismatch(
                    f"quote selects {sel.describe()}, the Verifier requested "
                    f"{self.pcr_selection.describe()}", step="5.1")
        # 5.2: the PCR values hash (with the signing scheme's hash) to pcrDigest
        #      (TPM 2.0 Part 3 section 18.4: TPMS_QUOTE_INFO.pcrDigest).
        hfunc = _HASH_FUNCS[ev.signature.hash_alg]
        pcr_values = ev.pcr_values
        parts = []
        for alg, idx in sel.banks:
            bank = pcr_values.get(alg, _EMPTY)
            for i in idx:
                v = bank.get(i)
                if v is None:
                    raise PcrDigestMismatch(
                        f"PCR {HASH_NAMES[alg]}:{i} is quoted but its value is missing",
                        step="5.2")
                parts.append(v)
        carried = sum(len(b) for b in pcr_values.values())
        if carried != len(parts):
            raise PcrDigestMismatch("PCR values are carried for PCRs outside the quote",
                                    step="5.2")
        if hfunc(b"".join(parts)).digest() != at.pcr_digest:
            raise PcrDigestMismatch("the PCR values do not match the quote's pcrDigest",
                                    step="5.2")
        return same_sel

    # --------------------------------------------------------------------- step 5
    def extract_claims(self, decoded: Any, *, now: int, options: VerifyOptions) -> Claims:
        """Step 5: PCR selection, PCR digest, event-log replay, clock; then the claims.

        Raises:
            PcrSelectionMismatch: the quote does not cover exactly the requested PCRs.
            PcrDigestMismatch: the carried PCR values do not hash to ``pcrDigest``.
            EventLogMismatch: the event log does not replay to the quoted PCR values.
            MalformedEventLog: the log lacks a bank the quote covers.
        """
        ev: TpmQuoteEvidence = decoded
        at = ev.attest
        sel = at.pcr_select
        same_sel = self.check_quoted_pcrs(ev)
        pcr_values = ev.pcr_values
        # 5.3: replay the event log and compare with every quoted PCR.
        wanted = {alg: idx for alg, idx in sel.banks if idx}
        replayed, ignored = replay(ev.event_log, wanted)
        if replayed != {alg: pcr_values[alg] for alg in wanted}:
            for alg, idx in wanted.items():
                for i in idx:
                    if replayed[alg][i] != pcr_values[alg][i]:
                        raise EventLogMismatch(
                            f"PCR {HASH_NAMES[alg]}:{i}: the event log replays to "
                            f"{replayed[alg][i].hex()}, the quote has "
                            f"{pcr_values[alg][i].hex()}", step="5.3")
            raise EventLogMismatch(  # pragma: no cover - the loop above finds the PCR
                "the event log does not replay to the quoted PCR values", step="5.3")
        annotations: tuple[str, ...] = ()
        if ignored:
            annotations = (f"{ignored} event(s) for PCRs outside the quote were ignored",)
        # 5.4: clockInfo.safe (TPM 2.0 Part 2 section 10.11.1).
        findings: tuple[Finding, ...] = ()
        if ev.event_log.format == FORMAT_TCG_SHA1:
            # SHA-1 (TCG 1.2) logs: what ran is attested only as strongly as SHA-1 binds
            # it; the executables claim says so (a warning) unless a policy accepts it.
            findings = (_SHA1_FINDING,)
        ci = at.clock_info
        if not ci.safe:
            findings += (Finding(
                "hardware", ar4si.UNSAFE_HARDWARE, "tpm_clock_unsafe",
                "clockInfo.safe is NO: the TPM clock may repeat values after an unorderly "
                "shutdown, so clock-based replay detection is weakened"),)
        # 5.5: the measured components, for Reference-Value appraisal in step 6.
        if len(wanted) == 1:
            selected_pcrs: Any = next(iter(wanted.values()))
        else:
            selected_pcrs = {i for idx in wanted.values() for i in idx}
        comps = tuple(
            SoftwareComponent(e.measurement, e.component, None, e.version, None,
                              _PCR_DESC[e.pcr])
            for e in ev.event_log.events
            if e.component is not None and e.pcr in selected_pcrs)
        raw: dict[str | int, Any] = {
            "akName": ev.ak_name.hex(),
            "clock": ci.clock,
            "resetCount": ci.reset_count,
            "restartCount": ci.restart_count,
            "safe": ci.safe,
            "firmwareVersion": at.firmware_version,
            "pcrSelection": self._describe if same_sel else sel.describe(),
            "pcrs": {HASH_NAMES[a]: {str(i): v.hex() for i, v in sorted(b.items())}
                     for a, b in pcr_values.items()},
            "eventLog": ev.event_log.format,
            "qualifiedSigner": at.qualified_signer.hex(),
        }
        return Claims(
            profile=PROFILE, nonce=at.extra_data, instance_id=ev.ak_name,
            class_id=ev.event_log.class_id, software_components=comps,
            boot_count=ci.reset_count, raw=raw, annotations=annotations,
            findings=findings)

    def instance_id_for_key(self, key: KeyAnchor) -> bytes | None:
        """Not derivable from a bare key (the TPM name hashes the whole TPMT_PUBLIC); the
        binding is checked in step 3.1 instead."""
        return None


__all__ = [
    "AK_REQUIRED_ATTRIBUTES",
    "DEFAULT_PCR_SELECTION",
    "EVIDENCE_OVERHEAD_BYTES",
    "MEDIA_TYPE",
    "PROFILE",
    "SHA1_EVENT_LOG_FINDING",
    "TpmQuoteEvidence",
    "TpmQuoteScheme",
]
