"""Attester side of the ``tpm`` scheme, on tpm2-pytss.

A device (or its simulation on swtpm - the same code runs on ``/dev/tpmrm0``):

1. measures its boot components into PCRs and records them in the compact event log
   (:meth:`TpmQuoteAttester.measure`), or replays a TCG PC Client log
   (:meth:`TpmQuoteAttester.extend_tcg_events` for simulation, :func:`read_uefi_event_log`
   on UEFI hardware);
2. creates an attestation key (AK): a restricted ECC P-256 ECDSA/SHA-256 signing key under
   the owner storage root key (:meth:`TpmQuoteAttester.create_ak`);
3. proves the AK lives beside its EK (:meth:`TpmQuoteAttester.activate_credential`), or
   presents an AK certificate, which a Privacy CA issues after the same proof
   (:meth:`TpmQuoteAttester.ak_enrollment_request`, :meth:`TpmQuoteAttester.answer_ak_challenge`,
   :meth:`TpmQuoteAttester.read_ek_certificate`; CA side: :mod:`devattest.attester.tpm_enrollment`);
4. quotes a PCR selection over the Verifier's nonce and packages the Evidence CBOR
   (:meth:`TpmQuoteAttester.quote`).
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2

from devattest.errors import SecureElementError
from devattest.schemes.tpm.eventlog import CLASS_ID_EVENT, compact_event_data
from devattest.schemes.tpm.scheme import MEDIA_TYPE
from devattest.schemes.tpm.structures import HASH_ALGS, HASH_NAMES, PcrSelection

try:
    from tpm2_pytss import ESAPI, TSS2_Exception
    from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_SE, TPMA_OBJECT
    from tpm2_pytss.types import (
        TPM2B_ENCRYPTED_SECRET,
        TPM2B_ID_OBJECT,
        TPM2B_PUBLIC,
        TPM2B_SENSITIVE_CREATE,
        TPML_DIGEST_VALUES,
        TPML_PCR_SELECTION,
        TPMS_SENSITIVE_CREATE,
        TPMT_HA,
        TPMT_SIG_SCHEME,
        TPMT_SYM_DEF,
        TPMU_HA,
    )
    from tpm2_pytss.utils import NoSuchIndex, NVReadEK, create_ek_template
except ImportError as exc:  # pragma: no cover - depends on the hardware extra
    raise ImportError("the TPM quote attester needs tpm2-pytss (devattest[hardware])") from exc

from devattest.attester.backends.tpm2 import srk_template
from devattest.attester.tpm_enrollment import AkChallenge, AkEnrollmentRequest

#: AK attributes: a restricted signing key that never leaves this TPM (Part 2 section 8.3).
AK_ATTRIBUTES = (TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.SIGN_ENCRYPT | TPMA_OBJECT.FIXEDTPM
                 | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN
                 | TPMA_OBJECT.USERWITHAUTH)
#: Default EK persistent handle (TCG EK Credential Profile, section 2.2.1.4).
EK_HANDLE_RSA = 0x81010001
#: NV indices of the EK certificates (TCG EK Credential Profile 2.x, section 2.2.1.4):
#: RSA 2048 (template L-1) and ECC NIST P-256 (template L-2).
EK_CERT_NV_RSA2048 = 0x01C00002
EK_CERT_NV_ECC_P256 = 0x01C0000A

__all__ = [
    "AK_ATTRIBUTES",
    "EK_CERT_NV_ECC_P256",
    "EK_CERT_NV_RSA2048",
    "MEDIA_TYPE",
    "TpmHandle",
    "TpmQuoteAttester",
    "build_evidence",
    "read_uefi_event_log",
]


@dataclass(slots=True)
class TpmHandle:
    """A loaded TPM key: its ESYS handle, TPMT_PUBLIC bytes and TPM name."""

    handle: Any
    public: bytes
    name: bytes


@dataclass(slots=True)
class _TcgEvent:
    pcr: int
    event_type: int
    digests: dict[int, bytes]
    data: bytes


def build_evidence(*, attest: bytes, signature: bytes, pcr_values: dict[int, dict[int, bytes]],
                   event_log: bytes | list[list[Any]], ak_public: bytes,
                   x5chain: tuple[bytes, ...] | list[bytes] = ()) -> bytes:
    """Package TPM quote Evidence as deterministic CBOR (see ``docs/tpm.md``)."""
    m: dict[int, Any] = {1: attest, 2: signature, 3: pcr_values, 4: event_log, 5: ak_public}
    if x5chain:
        m[6] = list(x5chain)
    return cbor2.dumps(m, canonical=True)


def read_uefi_event_log(path: str | Path = "/sys/kernel/security/tpm0/binary_bios_measurements"
                        ) -> bytes:
    """The firmware's TCG crypto-agile event log, as Linux exposes it (needs root)."""
    return Path(path).read_bytes()


def _tcg_spec_id_event(banks: list[int]) -> bytes:
    spec = (b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(banks))
            + b"".join(struct.pack("<HH", a, HASH_ALGS[a][1]) for a in banks) + b"\0")
    return struct.pack("<II", 0, 3) + b"\0" * 20 + struct.pack("<I", len(spec)) + spec


class TpmQuoteAttester:
    """Measures, creates the AK, activates it, and quotes. Holds one ESAPI context.

    Args:
        tcti: TCTI string (``device:/dev/tpmrm0``, ``swtpm:host=...,port=...``).
        esapi: an open ESAPI to share (e.g. with a :class:`Tpm2Key`); not closed by us.
        banks: PCR banks :meth:`measure` extends (default: sha256).
    """

    def __init__(self, tcti: str | None = None, *, esapi: Any | None = None,
                 banks: tuple[str, ...] = ("sha256",)) -> None:
        if esapi is None and tcti is None:
            raise ValueError("give a TCTI string or an ESAPI context")
        try:
            self._esapi = esapi if esapi is not None else ESAPI(tcti)
        except TSS2_Exception as exc:
            raise SecureElementError(f"cannot open TPM at {tcti!r}: {exc}") from exc
        self._owns = esapi is None
        self.banks = tuple(banks)
        #: The compact event log recorded by :meth:`measure`.
        self.compact_log: list[list[Any]] = []
        self._tcg_events: list[_TcgEvent] = []
        self._srk: Any | None = None

    @property
    def esapi(self) -> Any:
        return self._esapi

    def close(self) -> None:
        """Flush transient objects and close the ESAPI context if we opened it."""
        if self._srk is not None:
            with contextlib.suppress(TSS2_Exception):
                self._esapi.flush_context(self._srk)
            self._srk = None
        if self._owns:
            self._esapi.close()

    def __enter__(self) -> TpmQuoteAttester:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ measurement
    def _extend(self, pcr: int, digests: dict[int, bytes]) -> None:
        vals = TPML_DIGEST_VALUES([
            TPMT_HA(hashAlg=alg, digest=TPMU_HA(**{HASH_NAMES[alg]: d}))
            for alg, d in digests.items()])
        try:
            self._esapi.pcr_extend(ESYS_TR.PCR0 + pcr, vals)
        except TSS2_Exception as exc:
            raise SecureElementError(f"TPM2_PCR_Extend failed: {exc}") from exc

    def measure(self, name: str, measurement: bytes, *, version: str | None = None,
                pcr: int = 0) -> None:
        """Extend one boot component into ``pcr`` and record it in the compact log.

        ``measurement`` is the component's SHA-256 image digest; the extended digest covers
        the name and version too (``compact_event_data``).

        Raises:
            SecureElementError: the TPM refused.
        """
        data = compact_event_data(name, version, measurement)
        digests = {}
        for bank in self.banks:
            alg = {"sha1": 0x0004, "sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D}[bank]
            digests[alg] = hashlib.new(bank, data).digest()
        self._extend(pcr, digests)
        self.compact_log.append([pcr, name, version, measurement])

    def measure_image(self, name: str, image: bytes, *, version: str | None = None,
                      pcr: int = 0) -> bytes:
        """Measure a component image (SHA-256) with :meth:`measure`; returns the digest."""
        digest = hashlib.sha256(image).digest()
        self.measure(name, digest, version=version, pcr=pcr)
        return digest

    def measure_class_id(self, class_id: str, *, pcr: int = 0) -> None:
        """Measure the device class (selects the Reference Values) as the first event."""
        self.measure(CLASS_ID_EVENT, class_id.encode(), pcr=pcr)

    def extend_tcg_events(self, events: list[tuple[int, int, bytes]]) -> None:
        """Simulation of UEFI firmware: extend ``(pcr, event_type, event_data)`` events (the
        digest is H(event_data) per bank) and record a TCG crypto-agile log."""
        for pcr, etype, data in events:
            digests = {{"sha1": 0x0004, "sha256": 0x000B, "sha384": 0x000C,
                        "sha512": 0x000D}[b]: hashlib.new(b, data).digest() for b in self.banks}
            self._extend(pcr, digests)
            self._tcg_events.append(_TcgEvent(pcr, etype, digests, data))

    def tcg_log(self) -> bytes:
        """The TCG PC Client crypto-agile binary log of :meth:`extend_tcg_events`."""
        banks = sorted({a for e in self._tcg_events for a in e.digests} or {0x000B})
        out = [_tcg_spec_id_event(banks)]
        for e in self._tcg_events:
            out.append(struct.pack("<III", e.pcr, e.event_type, len(e.digests)))
            for a in banks:
                out.append(struct.pack("<H", a) + e.digests[a])
            out.append(struct.pack("<I", len(e.data)) + e.data)
        return b"".join(out)

    # ------------------------------------------------------------------ keys
    def _srk_handle(self) -> Any:
        if self._srk is None:
            self._srk, _, _, _, _ = self._esapi.create_primary(
                TPM2B_SENSITIVE_CREATE(), srk_template(), ESYS_TR.OWNER)
        return self._srk

    def create_ek(self, kind: str = "EK-RSA2048") -> TpmHandle:
        """Create the EK with CreatePrimary and the TCG EK template (or the template the
        manufacturer stored in NV, per the EK Credential Profile).

        Raises:
            SecureElementError: the TPM refused.
        """
        try:
            _, template = create_ek_template(kind, NVReadEK(self._esapi))
            handle, pub, _, _, _ = self._esapi.create_primary(
                TPM2B_SENSITIVE_CREATE(), template, ESYS_TR.ENDORSEMENT)
            _, name, _ = self._esapi.read_public(handle)
        except TSS2_Exception as exc:
            raise SecureElementError(f"cannot create the EK: {exc}") from exc
        return TpmHandle(handle, bytes(pub.publicArea.marshal()), bytes(name))

    def create_ak(self, *, attributes: Any = AK_ATTRIBUTES, rsa: bool = False,
                  persistent_handle: int | None = None) -> TpmHandle:
        """Create and load an AK under the SRK: a restricted P-256 ECDSA/SHA-256 signing key
        (or RSA-2048 RSASSA/SHA-256 with ``rsa=True``). ``attributes`` exists so tests can
        build a non-restricted key; devices keep the default.

        Raises:
            SecureElementError: the TPM refused.
        """
        spec = "rsa2048:rsassa-sha256:null" if rsa else "ecc256:ecdsa-sha256:null"
        tmpl = TPM2B_PUBLIC.parse(spec, objectAttributes=attributes)
        try:
            srk = self._srk_handle()
            priv, pub, _, _, _ = self._esapi.create(srk, TPM2B_SENSITIVE_CREATE(
                TPMS_SENSITIVE_CREATE()), tmpl)
            handle = self._esapi.load(srk, priv, pub)
            if persistent_handle is not None:
                persistent = self._esapi.evict_control(ESYS_TR.OWNER, handle,
                                                       persistent_handle)
                self._esapi.flush_context(handle)
                handle = persistent
            _, name, _ = self._esapi.read_public(handle)
        except TSS2_Exception as exc:
            raise SecureElementError(f"cannot create the AK: {exc}") from exc
        return TpmHandle(handle, bytes(pub.publicArea.marshal()), bytes(name))

    def activate_credential(self, ak: TpmHandle, ek: TpmHandle, credential_blob: bytes,
                            encrypted_secret: bytes) -> bytes:
        """TPM2_ActivateCredential: recover the secret the Verifier sealed to EK + AK name.

        Raises:
            SecureElementError: the TPM refused (wrong EK, AK name or a tampered blob).
        """
        e = self._esapi
        try:
            sess = e.start_auth_session(ESYS_TR.NONE, ESYS_TR.NONE, TPM2_SE.POLICY,
                                        TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL), TPM2_ALG.SHA256)
            try:
                # The EK's authPolicy is PolicySecret(TPM_RH_ENDORSEMENT) (EK Credential
                # Profile, section 2.1.5).
                e.policy_secret(ESYS_TR.ENDORSEMENT, sess)
                out = e.activate_credential(
                    ak.handle, ek.handle, TPM2B_ID_OBJECT(credential=credential_blob),
                    TPM2B_ENCRYPTED_SECRET(secret=encrypted_secret),
                    session1=ESYS_TR.PASSWORD, session2=sess)
            finally:
                e.flush_context(sess)
        except TSS2_Exception as exc:
            raise SecureElementError(f"TPM2_ActivateCredential failed: {exc}") from exc
        return bytes(out)

    # ------------------------------------------------------------------ AK certificate
    def read_ek_certificate(self, nv_index: int = EK_CERT_NV_RSA2048) -> bytes | None:
        """The EK certificate the TPM manufacturer stored in NV (DER), or None if absent.

        Trailing padding after the DER certificate (some TPMs pad the NV index) is dropped.

        Raises:
            SecureElementError: the TPM refused the read.
        """
        try:
            data = NVReadEK(self._esapi)(nv_index)
        except NoSuchIndex:
            return None
        except TSS2_Exception as exc:
            raise SecureElementError(f"cannot read the EK certificate: {exc}") from exc
        # DER SEQUENCE with a definite long-form length (certificates are > 127 bytes).
        if len(data) >= 4 and data[0] == 0x30 and 0x81 <= data[1] <= 0x84:
            n = data[1] & 0x7F
            total = 2 + n + int.from_bytes(data[2:2 + n], "big")
            data = data[:total]
        return bytes(data)

    def ak_enrollment_request(self, ek: TpmHandle, ak: TpmHandle, *,
                              ek_certificate: bytes | None = None) -> AkEnrollmentRequest:
        """Step 1 of AK enrollment: what the device sends the Privacy CA."""
        return AkEnrollmentRequest(ek_public=ek.public, ak_public=ak.public,
                                   ek_certificate=ek_certificate)

    def answer_ak_challenge(self, ak: TpmHandle, ek: TpmHandle, challenge: AkChallenge
                            ) -> bytes:
        """Step 4 of AK enrollment: TPM2_ActivateCredential on the CA's challenge; return the
        recovered secret to the CA.

        Raises:
            SecureElementError: the TPM refused (the challenge is for another EK or AK name,
                or was tampered with).
        """
        return self.activate_credential(ak, ek, challenge.credential_blob,
                                        challenge.encrypted_secret)

    # ------------------------------------------------------------------ quote
    def read_pcrs(self, selection: PcrSelection) -> dict[int, dict[int, bytes]]:
        """Read the selected PCR values (TPM2_PCR_Read returns at most 8 per call)."""
        out: dict[int, dict[int, bytes]] = {}
        for alg, idx in selection.banks:
            bank: dict[int, bytes] = {}
            for start in range(0, len(idx), 8):
                chunk = idx[start:start + 8]
                sel = TPML_PCR_SELECTION.parse(f"{HASH_NAMES[alg]}:{','.join(map(str, chunk))}")
                _, got_sel, digests = self._esapi.pcr_read(sel)
                got = [i for s in got_sel for i in range(8 * s.sizeofSelect)
                       if s.pcrSelect[i // 8] & (1 << (i % 8))]
                for i, d in zip(got, digests, strict=True):
                    bank[i] = bytes(d)
            out[alg] = bank
        return out

    def quote(self, ak: TpmHandle, nonce: bytes, selection: PcrSelection, *,
              x5chain: tuple[bytes, ...] = (), event_log: bytes | list[list[Any]] | None = None
              ) -> bytes:
        """TPM2_Quote the selection over ``nonce`` with the AK and package the Evidence.

        ``event_log`` defaults to the TCG log if :meth:`extend_tcg_events` was used, else the
        compact log.

        Raises:
            SecureElementError: the TPM refused.
            ValueError: the nonce is longer than 64 bytes (TPM2B_DATA).
        """
        if len(nonce) > 64:
            raise ValueError("a TPM quote nonce is at most 64 bytes")
        spec = "+".join(f"{HASH_NAMES[a]}:{','.join(map(str, idx))}"
                        for a, idx in selection.banks)
        try:
            quoted, sig = self._esapi.quote(ak.handle, TPML_PCR_SELECTION.parse(spec), nonce,
                                            TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL))
            pcrs = self.read_pcrs(selection)
        except TSS2_Exception as exc:
            raise SecureElementError(f"TPM2_Quote failed: {exc}") from exc
        if event_log is None:
            event_log = self.tcg_log() if self._tcg_events else list(self.compact_log)
        return build_evidence(attest=bytes(quoted), signature=bytes(sig.marshal()),
                              pcr_values=pcrs, event_log=event_log, ak_public=ak.public,
                              x5chain=x5chain)

