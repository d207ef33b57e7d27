"""Device life-cycle services over the embedded PKI, for the ``devattest pki`` and
``devattest device`` commands: provision on the factory line, onboard to an owner, transfer
ownership, revoke.

State on disk is one directory per CA::

    <ca-dir>/
      key.pem     the CA's private key, PKCS#8 PEM encrypted with a passphrase, mode 0600
                  (keep a root's offline); unencrypted only when created with
                  ``unsafe_plaintext=True``
      key.pkcs11.json  instead of key.pem when the key lives in a PKCS#11 token: the module,
                  token label and key label (never the PIN)
      cert.pem    the CA's certificate
      chain.pem   the certificates above it, nearest first, up to the root (empty for a root)
      crl.pem     its current CRL (re-signed on every revocation, see refresh_crl)
      serial      the next certificate serial number, hex (advanced under a file lock)

Manufacturer: ``<root-dir>`` (offline) and ``<issuing-dir>`` from :func:`init_manufacturer_ca`.
Owner: one directory per owner from :func:`init_owner_ca`. Verifiers trust the root (or owner
CA) certificate and its CRLs as :class:`~devattest.model.CertificateAnchor` values.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from devattest.attester.backends._base import SecureElement
from devattest.cose import decode_cose, verify_sign1
from devattest.crypto import pki
from devattest.crypto.chain import validate_chain
from devattest.errors import DevattestError, OnboardingRefused, ProvisioningError
from devattest.model import DEFAULT_LIMITS, DEFAULT_OPTIONS, AttestationResult, Status
from devattest.model.anchors import KeyAnchor, TrustAnchors
from devattest.schemes.tpm.scheme import MEDIA_TYPE as TPM_QUOTE_MEDIA_TYPE
from devattest.schemes.tpm.scheme import TpmQuoteScheme

_log = logging.getLogger(__name__)

#: How old an Attestation Result may be when it is presented for onboarding.
DEFAULT_MAX_RESULT_AGE = dt.timedelta(minutes=15)
_CLOCK_SKEW = dt.timedelta(minutes=1)


# --------------------------------------------------------------------------------------
# CA directories
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaDirectory:
    """A CA's state directory (see the module docstring for the layout)."""

    path: Path

    @property
    def key_path(self) -> Path:
        return self.path / "key.pem"

    @property
    def cert_path(self) -> Path:
        return self.path / "cert.pem"

    @property
    def chain_path(self) -> Path:
        return self.path / "chain.pem"

    @property
    def crl_path(self) -> Path:
        return self.path / "crl.pem"

    @property
    def serial_path(self) -> Path:
        return self.path / "serial"

    @property
    def pkcs11_path(self) -> Path:
        return self.path / "key.pkcs11.json"

    @property
    def key_in_token(self) -> Pkcs11CaKeyRef | None:
        """Where the CA key lives when it is in a PKCS#11 token (else ``None``).

        Raises:
            ProvisioningError: if the reference file is unreadable.
        """
        if not self.pkcs11_path.exists():
            return None
        try:
            doc = json.loads(self.pkcs11_path.read_text())
            return Pkcs11CaKeyRef(module=str(doc["module"]), token_label=str(doc["token_label"]),
                                  key_label=str(doc["key_label"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ProvisioningError(f"{self.pkcs11_path}: not a PKCS#11 key reference: "
                                    f"{exc}") from exc

    @classmethod
    def create(cls, path: str | os.PathLike[str], ca: pki.CertificateAuthority, *,
               now: dt.datetime, password: bytes | None = None,
               pkcs11: Pkcs11CaKeyRef | None = None, unsafe_plaintext: bool = False
               ) -> CaDirectory:
        """Write a new CA directory with an empty CRL.

        The key is kept in one of three ways: encrypted under ``password`` (PKCS#8,
        best available encryption); in the PKCS#11 token ``pkcs11`` names (``ca``'s key is
        then a :class:`~devattest.attester.backends.pkcs11.TokenCaKey` and only the reference
        is written); or, with ``unsafe_plaintext`` alone, unencrypted.

        Raises:
            ProvisioningError: if ``path`` already holds a CA, or no way to keep the key is
                chosen (an unencrypted key needs ``unsafe_plaintext``).
        """
        directory = cls(Path(path))
        _check_key_protection(password=password, pkcs11=pkcs11, unsafe_plaintext=unsafe_plaintext)
        directory.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory.key_path.exists() or directory.cert_path.exists() or \
                directory.pkcs11_path.exists():
            raise ProvisioningError(f"{directory.path} already holds a CA")
        if pkcs11 is not None:
            fd = os.open(directory.pkcs11_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({"module": pkcs11.module, "token_label": pkcs11.token_label,
                           "key_label": pkcs11.key_label}, fh, indent=2)
                fh.write("\n")
        else:
            if password is None:
                _log.warning("writing the CA key of %s UNENCRYPTED (unsafe_plaintext)",
                             directory.path)
            pki.save_private_key(directory.key_path, ca.private_key, password)
        pki.save_certificates(directory.cert_path, [ca.certificate])
        pki.save_certificates(directory.chain_path, ca.chain)
        pki.save_crl(directory.crl_path, pki.issue_crl(ca, revoked=(), now=now, crl_number=1))
        # Start serials at a random 64-bit offset so two CAs never count alike.
        directory.serial_path.write_text(f"{x509.random_serial_number() >> 95:x}\n")
        return directory

    def load(self, password: bytes | None = None) -> pki.CertificateAuthority:
        """The CA (certificate, key, chain).

        Args:
            password: The key's passphrase (an encrypted key.pem) or the token's user PIN (a
                key in a PKCS#11 token).

        Raises:
            ProvisioningError: if files are missing, the key is encrypted and no passphrase
                was given or a wrong one, or the key does not match the certificate.
            ConfigurationError: if the PKCS#11 module, token or key is not found.
            SecureElementError: on a wrong PIN or a token failure.
        """
        token = self.key_in_token
        try:
            key: ec.EllipticCurvePrivateKey
            if token is not None:
                key = _open_token_key(token, password, create=False)
            else:
                key = pki.load_private_key(self.key_path, password)
            cert = pki.load_certificate(self.cert_path)
            chain = (pki.load_certificates(self.chain_path) if self.chain_path.exists()
                     and self.chain_path.stat().st_size else ())
        except TypeError as exc:  # cryptography: encrypted and no password, or the reverse
            needed = "needs its passphrase" if password is None else "is not encrypted"
            raise ProvisioningError(f"{self.path}: the CA key {needed} ({exc})") from exc
        except (OSError, ValueError, IndexError) as exc:
            raise ProvisioningError(f"{self.path}: not a readable CA directory (or a wrong "
                                    f"passphrase): {exc}") from exc
        if key.public_key() != cert.public_key():
            raise ProvisioningError(f"{self.path}: the CA key does not match cert.pem")
        return pki.CertificateAuthority(certificate=cert, private_key=key, chain=chain)

    def certificate(self) -> x509.Certificate:
        """The CA certificate alone (no private key needed)."""
        return pki.load_certificate(self.cert_path)

    def crl(self) -> x509.CertificateRevocationList:
        """The current CRL."""
        return pki.load_crl(self.crl_path)

    def next_serial(self) -> int:
        """Take the next certificate serial number (under an exclusive file lock)."""
        with self._locked() as fh:
            value = int(fh.read().strip() or "1", 16)
            fh.seek(0)
            fh.truncate()
            fh.write(f"{value + 1:x}\n")
            fh.flush()
            os.fsync(fh.fileno())
        return value

    @contextlib.contextmanager
    def _locked(self) -> Iterator[TextIO]:
        with self.serial_path.open("r+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield fh
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def revoke(self, serial_number: int, *, now: dt.datetime,
               reason: x509.ReasonFlags | None = None, password: bytes | None = None
               ) -> x509.CertificateRevocationList:
        """Add ``serial_number`` to this CA's CRL, re-sign and save it.

        Raises:
            ProvisioningError: if the stored CRL was not issued by this CA.
        """
        ca = self.load(password)
        crl = pki.revoke(ca, self.crl(), serial_number, now=now, reason=reason)
        pki.save_crl(self.crl_path, crl)
        return crl

    def refresh_crl(self, *, now: dt.datetime, password: bytes | None = None
                    ) -> x509.CertificateRevocationList:
        """Re-sign the CRL with the same entries and a new validity (run before nextUpdate).

        Raises:
            ProvisioningError: if the stored CRL was not issued by this CA.
        """
        ca = self.load(password)
        old = self.crl()
        if old.issuer != ca.name or not old.is_signature_valid(ca.private_key.public_key()):
            raise ProvisioningError(f"{self.crl_path} was not issued by this CA")
        crl = pki.issue_crl(ca, revoked=pki.crl_entries(old), now=now,
                            crl_number=pki.crl_number_of(old) + 1)
        pki.save_crl(self.crl_path, crl)
        return crl


@dataclass(frozen=True, slots=True)
class Pkcs11CaKeyRef:
    """Where a CA key lives in a PKCS#11 token (the PIN is never stored)."""

    module: str
    token_label: str
    key_label: str


def _check_key_protection(*, password: bytes | None, pkcs11: Pkcs11CaKeyRef | None,
                          unsafe_plaintext: bool) -> None:
    chosen = sum((password is not None, pkcs11 is not None, unsafe_plaintext))
    if chosen == 0:
        raise ProvisioningError("refusing to write a CA key unencrypted: give a passphrase or "
                                "a PKCS#11 token (or, for tests only, unsafe_plaintext)")
    if pkcs11 is not None and unsafe_plaintext:
        raise ProvisioningError("a CA key in a PKCS#11 token is not a plaintext file")
    if password is not None and unsafe_plaintext:
        raise ProvisioningError("give a passphrase or unsafe_plaintext, not both")
    if password is not None and pkcs11 is None and len(password) < 8:
        raise ProvisioningError("a CA key passphrase must be at least 8 bytes long")


def _open_token_key(ref: Pkcs11CaKeyRef, pin: bytes | None, *, create: bool
                    ) -> ec.EllipticCurvePrivateKey:
    if pin is None:
        raise ProvisioningError(f"the CA key is in PKCS#11 token {ref.token_label!r}: give "
                                "its user PIN")
    try:
        from devattest.attester.backends.pkcs11 import TokenCaKey
    except ImportError as exc:
        raise ProvisioningError("a CA key in a PKCS#11 token needs python-pkcs11 (pip install "
                                "'devattest[hardware]')") from exc
    return TokenCaKey.open(module=ref.module, token_label=ref.token_label,
                           key_label=ref.key_label, pin=pin.decode(), create=create)


def init_manufacturer_ca(root_dir: str | os.PathLike[str], issuing_dir: str | os.PathLike[str],
                         organization: str, *, now: dt.datetime,
                         password: bytes | None = None, pkcs11: Pkcs11CaKeyRef | None = None,
                         unsafe_plaintext: bool = False) -> tuple[CaDirectory, CaDirectory]:
    """Create a manufacturer's offline root and its issuing intermediate.

    Args:
        root_dir: The root CA's directory (keep it offline).
        issuing_dir: The issuing CA's directory (the factory line).
        organization: The manufacturer's name.
        now: Issuance time.
        password: Encrypt both keys under this passphrase; with ``pkcs11``, the token's user
            PIN instead.
        pkcs11: Generate both keys in this token, labelled ``<key_label>-root`` and
            ``<key_label>-issuing`` (P-256, non-extractable).
        unsafe_plaintext: Write both keys unencrypted (tests only).

    Raises:
        ProvisioningError: if either directory already holds a CA, or no key protection is
            chosen.
        SecureElementError: if the token already holds a key with either label.
    """
    _check_key_protection(password=password, pkcs11=pkcs11, unsafe_plaintext=unsafe_plaintext)
    for d in (root_dir, issuing_dir):
        if CaDirectory(Path(d)).cert_path.exists():
            raise ProvisioningError(f"{d} already holds a CA")
    if pkcs11 is not None:
        refs = [Pkcs11CaKeyRef(pkcs11.module, pkcs11.token_label, f"{pkcs11.key_label}-{x}")
                for x in ("root", "issuing")]
        keys = [_open_token_key(r, password, create=True) for r in refs]
        m = pki.create_manufacturer_pki(organization, now=now, root_key=keys[0],
                                        issuing_key=keys[1])
        return (CaDirectory.create(root_dir, m.root, now=now, pkcs11=refs[0]),
                CaDirectory.create(issuing_dir, m.issuing, now=now, pkcs11=refs[1]))
    m = pki.create_manufacturer_pki(organization, now=now)
    return (CaDirectory.create(root_dir, m.root, now=now, password=password,
                               unsafe_plaintext=unsafe_plaintext),
            CaDirectory.create(issuing_dir, m.issuing, now=now, password=password,
                               unsafe_plaintext=unsafe_plaintext))


def init_owner_ca(directory: str | os.PathLike[str], organization: str, *, now: dt.datetime,
                  password: bytes | None = None, pkcs11: Pkcs11CaKeyRef | None = None,
                  unsafe_plaintext: bool = False) -> CaDirectory:
    """Create an owner CA (key protection as for :func:`init_manufacturer_ca`; in a token
    the key is labelled ``key_label`` itself).

    Raises:
        ProvisioningError: if the directory already holds a CA, or no key protection is
            chosen.
        SecureElementError: if the token already holds a key with that label.
    """
    _check_key_protection(password=password, pkcs11=pkcs11, unsafe_plaintext=unsafe_plaintext)
    if CaDirectory(Path(directory)).cert_path.exists():
        raise ProvisioningError(f"{directory} already holds a CA")
    if pkcs11 is not None:
        key = _open_token_key(pkcs11, password, create=True)
        return CaDirectory.create(directory, pki.create_owner_ca(organization, now=now, key=key),
                                  now=now, pkcs11=pkcs11)
    return CaDirectory.create(directory, pki.create_owner_ca(organization, now=now), now=now,
                              password=password, unsafe_plaintext=unsafe_plaintext)


def _ca_and_serial(ca: CaDirectory | pki.CertificateAuthority, password: bytes | None
                   ) -> tuple[pki.CertificateAuthority, int | None]:
    if isinstance(ca, CaDirectory):
        return ca.load(password), ca.next_serial()
    return ca, None


# --------------------------------------------------------------------------------------
# Factory line
# --------------------------------------------------------------------------------------
def provision_device(se: SecureElement, *, manufacturer_ca: CaDirectory | pki.CertificateAuthority,
                     now: dt.datetime, serial: str | None = None, ueid: bytes | None = None,
                     fw_measurements: Iterable[bytes | pki.Fwid] | None = None,
                     tcb_info: pki.TcbInfo | None = None, days: int = pki.DEFAULT_DEVICE_DAYS,
                     password: bytes | None = None) -> tuple[x509.Certificate, ...]:
    """Certify a secure element's attestation key on the factory line.

    The key was generated inside ``se`` (its backend's open-or-create). A CSR signed by the
    element proves possession; the issuing CA then issues the attestation-key certificate,
    with the hardware-backed marker only when ``se`` is real hardware.

    Args:
        se: The device's secure element.
        manufacturer_ca: The issuing CA (a directory, or an in-memory CA for tests).
        now: Issuance time.
        serial: Device serial number (``serialNumber`` in the subject).
        ueid: Device UEID (``UID`` in the subject).
        fw_measurements: Provisioned firmware digests (SHA-256 unless given as ``Fwid``),
            recorded as TCG DICE TcbInfo FWIDs.
        tcb_info: A full TcbInfo instead (its fwids are extended by ``fw_measurements``).
        days: Certificate validity.
        password: Passphrase of the CA key, if any.

    Returns:
        The chain for COSE ``x5chain``, leaf first, up to (excluding) the root.

    Raises:
        ValueError: if neither ``serial`` nor ``ueid`` is given.
        ProvisioningError: if the element's CSR does not verify.
        SecureElementError: if the element fails to sign.
    """
    ca, serial_number = _ca_and_serial(manufacturer_ca, password)
    subject = pki.device_name(organization=ca.organization, serial=serial, ueid=ueid)
    csr = pki.build_csr(se, subject=subject)
    if fw_measurements is not None:
        fwids = tuple(m if isinstance(m, pki.Fwid) else pki.Fwid(bytes(m))
                      for m in fw_measurements)
        base = tcb_info or pki.TcbInfo()
        tcb_info = pki.TcbInfo(fwids=base.fwids + fwids, vendor=base.vendor or ca.organization,
                               model=base.model, version=base.version, svn=base.svn,
                               layer=base.layer, index=base.index)
    props = se.properties
    leaf = pki.issue_attestation_certificate(
        ca, csr, subject=subject, now=now,
        hardware_backend=props.backend if props.hardware_backed else None,
        tcb_info=tcb_info, days=days, serial_number=serial_number)
    root_excluded = tuple(c for c in ca.chain if c.issuer != c.subject)
    return (leaf, ca.certificate, *root_excluded)


def chain_der(chain: Iterable[x509.Certificate]) -> tuple[bytes, ...]:
    """DER encodings for COSE ``x5chain``."""
    return tuple(c.public_bytes(Encoding.DER) for c in chain)


# --------------------------------------------------------------------------------------
# Onboarding and ownership transfer
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OwnerCredential:
    """What onboarding or a transfer hands the device."""

    certificate: x509.Certificate
    #: The owner CA's certificate (the device's owner chain is ``(certificate, ca)``).
    ca_certificate: x509.Certificate
    owner_epoch: int


def _require_tpm_quote_bound(evidence: bytes, device_chain: tuple[bytes, ...],
                             anchor: KeyAnchor, leaf: x509.Certificate) -> None:
    """Step 5 for TPM quote Evidence: the quote is by the certified AK, names that chain.

    Raises:
        OnboardingRefused: if not.
    """
    scheme = TpmQuoteScheme()
    try:
        decoded = scheme.decode(evidence, limits=DEFAULT_LIMITS, options=DEFAULT_OPTIONS)
        # 5.1: the Evidence carries this chain (RFC 9360 x5chain, TPM evidence key 6).
        if decoded.x5chain and decoded.x5chain != tuple(device_chain):
            raise OnboardingRefused("the Evidence carries another certificate chain", step="5")
        # 5.2: the AK certificate names the quoting AK (its TPM name), when it carries one.
        name = pki.tpm_object_name_of(leaf)
        if name is not None and name != decoded.ak_name:
            raise OnboardingRefused("the quote's AK is not the AK the certificate names",
                                    step="5")
        # 5.3: the quote is signed by the certified key, which is a restricted TPM AK
        #      (TPM 2.0 Part 2 section 10.12; the scheme's steps 3.1-3.4).
        scheme.verify_integrity(decoded, anchor, options=DEFAULT_OPTIONS)
    except OnboardingRefused:
        raise
    except DevattestError as exc:
        raise OnboardingRefused(f"the TPM quote is not signed by the device's certified AK: "
                                f"{exc.diagnostics()}", step="5") from exc


def _require_attested(result: AttestationResult, evidence: bytes, device_chain: tuple[bytes, ...],
                      manufacturer_anchors: TrustAnchors, *, now: dt.datetime,
                      max_result_age: dt.timedelta, evidence_media_type: str | None = None
                      ) -> tuple[ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
                                 x509.Certificate, str | None]:
    # 1: the result is affirming, in every submodule.
    if result.status is not Status.AFFIRMING or any(
            sub.status is not Status.AFFIRMING for sub in result.submods.values()):
        raise OnboardingRefused(f"attestation result is {result.status.value}, not affirming",
                                step="1")
    # 2: the result is fresh.
    iat = dt.datetime.fromtimestamp(result.iat, dt.UTC)
    if iat > now + _CLOCK_SKEW or now - iat > max_result_age:
        raise OnboardingRefused(f"attestation result issued at {iat.isoformat()} is not fresh",
                                step="2")
    if result.exp is not None and dt.datetime.fromtimestamp(result.exp, dt.UTC) < now:
        raise OnboardingRefused("attestation result has expired", step="2")
    # 3: the result is about this Evidence.
    if result.evidence_digest is None or \
            result.evidence_digest != hashlib.sha256(evidence).digest():
        raise OnboardingRefused("attestation result is not bound to the presented Evidence",
                                step="3")
    # 4: the device's manufacturer chain is valid now.
    try:
        anchor = validate_chain(device_chain, manufacturer_anchors, now=now)
    except DevattestError as exc:
        raise OnboardingRefused(f"device certificate chain: {exc.diagnostics()}",
                                step="4") from exc
    leaf = x509.load_der_x509_certificate(device_chain[0])
    key = anchor.public_key
    if evidence_media_type == TPM_QUOTE_MEDIA_TYPE:
        # 5 (TPM): the quote was signed by the certified AK, and names that chain.
        _require_tpm_quote_bound(evidence, device_chain, anchor, leaf)
        assert isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey))
        return key, leaf, pki.hardware_backend_of(leaf)
    # 5: the Evidence was signed by the certified key, and names that chain (RFC 9360).
    try:
        msg = decode_cose(evidence, limits=DEFAULT_LIMITS, options=DEFAULT_OPTIONS,
                          expected="sign1")
        if msg.x5chain and msg.x5chain != tuple(device_chain):
            raise OnboardingRefused("the Evidence carries another certificate chain", step="5")
        verify_sign1(msg, anchor.public_key, options=DEFAULT_OPTIONS)
    except OnboardingRefused:
        raise
    except DevattestError as exc:
        raise OnboardingRefused(f"the Evidence is not signed by the device's certified key: "
                                f"{exc.diagnostics()}", step="5") from exc
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key, leaf, pki.hardware_backend_of(leaf)


def issue_owner_certificate(owner_ca: CaDirectory | pki.CertificateAuthority, *,
                            result: AttestationResult, evidence: bytes,
                            device_chain: tuple[bytes, ...], manufacturer_anchors: TrustAnchors,
                            now: dt.datetime, owner_epoch: int = 1,
                            max_result_age: dt.timedelta = DEFAULT_MAX_RESULT_AGE,
                            days: int = pki.DEFAULT_OWNER_DAYS, password: bytes | None = None,
                            evidence_media_type: str | None = None) -> OwnerCredential:
    """Onboard a device: issue an owner certificate for its secure-element key, only after a
    successful attestation.

    Steps: (1) ``result`` is affirming; (2) it is fresh; (3) its ``evidence_digest`` is
    SHA-256 of ``evidence``; (4) ``device_chain`` validates against the manufacturer anchors;
    (5) ``evidence`` is a COSE_Sign1 signed by the chain's leaf key (and names that chain),
    or, when ``evidence_media_type`` is ``TPM_QUOTE_MEDIA_TYPE``, a TPM quote whose AK is the
    chain's certified key (a restricted TPM AK, with the TPM name the AK certificate carries)
    and whose signature verifies (and that names that chain).

    Args:
        owner_ca: The owner's CA.
        result: The verifier's Attestation Result for ``evidence``.
        evidence: The Evidence the device presented (COSE_Sign1: PSA token or EAT).
        device_chain: The device's manufacturer x5chain (DER, leaf first).
        manufacturer_anchors: The manufacturer Trust Anchors (with current CRLs).
        now: Issuance time.
        owner_epoch: The owner epoch to certify (1 on first onboarding).
        max_result_age: How old ``result`` may be.
        days: Certificate validity.
        password: Passphrase of the CA key, if any.
        evidence_media_type: The Evidence's media type; ``None`` (or any other) means
            COSE_Sign1 (PSA token or EAT). ``TPM_QUOTE_MEDIA_TYPE`` selects a TPM quote
            bound to an AK certificate chain (:mod:`devattest.attester.tpm_enrollment`).

    Returns:
        The owner credential.

    Raises:
        OnboardingRefused: if any step fails (``step`` says which).
    """
    key, leaf, backend = _require_attested(result, evidence, device_chain, manufacturer_anchors,
                                           now=now, max_result_age=max_result_age,
                                           evidence_media_type=evidence_media_type)
    ca, serial_number = _ca_and_serial(owner_ca, password)
    device_serial, ueid = pki.device_identity(leaf.subject)
    subject = pki.device_name(organization=ca.organization, serial=device_serial, ueid=ueid)
    cert = pki.issue_owner_certificate(ca, key, subject=subject, owner_epoch=owner_epoch,
                                       now=now, hardware_backend=backend, days=days,
                                       serial_number=serial_number)
    return OwnerCredential(certificate=cert, ca_certificate=ca.certificate,
                           owner_epoch=owner_epoch)


@dataclass(frozen=True, slots=True)
class OwnershipTransfer:
    """The outcome of a transfer: the new owner's credential and the old owner's new CRL."""

    credential: OwnerCredential
    previous_owner_crl: x509.CertificateRevocationList


def transfer_ownership(*, previous_owner_ca: CaDirectory, previous_certificate: x509.Certificate,
                       new_owner_ca: CaDirectory | pki.CertificateAuthority,
                       result: AttestationResult, evidence: bytes,
                       device_chain: tuple[bytes, ...], manufacturer_anchors: TrustAnchors,
                       now: dt.datetime, max_result_age: dt.timedelta = DEFAULT_MAX_RESULT_AGE,
                       days: int = pki.DEFAULT_OWNER_DAYS,
                       previous_password: bytes | None = None,
                       new_password: bytes | None = None,
                       evidence_media_type: str | None = None) -> OwnershipTransfer:
    """Move a device to a new owner: the new owner's certificate is issued (after a successful
    attestation, as for onboarding) with the owner epoch incremented, then the previous
    owner's certificate is revoked on the previous owner's CRL (reason superseded).

    Raises:
        OnboardingRefused: if the attestation checks fail (nothing is revoked then).
        ProvisioningError: if ``previous_certificate`` was not issued by
            ``previous_owner_ca`` or certifies another key.
    """
    prev_ca_cert = previous_owner_ca.certificate()
    try:
        previous_certificate.verify_directly_issued_by(prev_ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ProvisioningError("the previous owner certificate was not issued by the "
                                "previous owner CA") from exc
    epoch = pki.owner_epoch_of(previous_certificate)
    if epoch is None:
        raise ProvisioningError("the previous owner certificate carries no owner epoch")
    if not device_chain or previous_certificate.public_key() != \
            x509.load_der_x509_certificate(device_chain[0]).public_key():
        raise ProvisioningError("the previous owner certificate certifies another key")
    credential = issue_owner_certificate(
        new_owner_ca, result=result, evidence=evidence, device_chain=device_chain,
        manufacturer_anchors=manufacturer_anchors, now=now, owner_epoch=epoch + 1,
        max_result_age=max_result_age, days=days, password=new_password,
        evidence_media_type=evidence_media_type)
    crl = previous_owner_ca.revoke(previous_certificate.serial_number, now=now,
                                   reason=x509.ReasonFlags.superseded,
                                   password=previous_password)
    return OwnershipTransfer(credential=credential, previous_owner_crl=crl)


def revoke(ca: CaDirectory, certificate_or_serial: x509.Certificate | int, *, now: dt.datetime,
           reason: x509.ReasonFlags | None = None, password: bytes | None = None
           ) -> x509.CertificateRevocationList:
    """Revoke a device (or owner) certificate on its CA's CRL and return the new CRL.

    Raises:
        ProvisioningError: if a certificate is given that this CA did not issue.
    """
    if isinstance(certificate_or_serial, x509.Certificate):
        if certificate_or_serial.issuer != ca.certificate().subject:
            raise ProvisioningError("that certificate was not issued by this CA")
        serial_number = certificate_or_serial.serial_number
    else:
        serial_number = certificate_or_serial
    return ca.revoke(serial_number, now=now, reason=reason, password=password)
