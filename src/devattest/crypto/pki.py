"""The embedded PKI: recipes for manufacturer and owner CAs, proof-of-possession CSRs signed
inside a secure element, attestation-key and owner certificates, and CRLs.

Everything here is pure (no I/O, no clock: ``now`` is an argument) except the explicit
``load_*``/``save_*`` helpers at the bottom, which take paths.

Object identifiers
------------------
devattest mints its private OIDs under a UUID-derived arc (ITU-T X.667 / RFC 4122 section 4.1
"2.25.<UUID as integer>"), which needs no registration and cannot collide:

* ``2.25.247535724174575017682455909960595568484`` (UUID ba39a577-267a-4392-8351-04669ae47764):
  the devattest arc, :data:`OID_DEVATTEST_ARC`.
* ``<arc>.1.1`` :data:`OID_KP_ATTESTATION_KEY`: ExtendedKeyUsage key purpose "this key signs
  attestation Evidence".
* ``<arc>.2.1`` :data:`OID_EXT_HARDWARE_BACKED`: non-critical extension, present only when the
  certified key lives in a real secure element. Value: UTF8String naming the backend.
* ``<arc>.2.2`` :data:`OID_EXT_OWNER_EPOCH`: non-critical extension in owner certificates.
  Value: INTEGER, the owner epoch (incremented on every ownership transfer).
* ``<arc>.2.3`` :data:`OID_EXT_TPM_OBJECT_NAME`: non-critical extension in TPM AK
  certificates. Value: OCTET STRING, the AK's TPM name (``nameAlg || H(TPMT_PUBLIC)``, TPM 2.0
  Part 1 section 16), which binds the certificate to the exact public area (and so to the
  ``restricted|sign|fixedTPM`` attributes) the CA checked.

TPM AK certificates also carry TCG's ``tcg-kp-AIKCertificate`` key purpose ``2.23.133.8.3``
(TCG EK Credential Profile 2.x, section 3.2; :data:`OID_TCG_KP_AIK_CERTIFICATE`).

The TCG DICE TcbInfo extension is ``2.23.133.5.4.1`` (TCG DICE Attestation Architecture,
section 6.1.1), encoded by :func:`encode_tcb_info`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devattest.crypto import _der
from devattest.errors import ProvisioningError

OID_DEVATTEST_ARC = "2.25.247535724174575017682455909960595568484"
#: ExtendedKeyUsage key purpose of an attestation key.
OID_KP_ATTESTATION_KEY = x509.ObjectIdentifier(OID_DEVATTEST_ARC + ".1.1")
#: Marker extension: the certified key is held by a real secure element.
OID_EXT_HARDWARE_BACKED = x509.ObjectIdentifier(OID_DEVATTEST_ARC + ".2.1")
#: Owner epoch carried in owner certificates.
OID_EXT_OWNER_EPOCH = x509.ObjectIdentifier(OID_DEVATTEST_ARC + ".2.2")
#: The TPM name of a certified TPM attestation key (AK certificates).
OID_EXT_TPM_OBJECT_NAME = x509.ObjectIdentifier(OID_DEVATTEST_ARC + ".2.3")
#: TCG key purpose of an attestation identity key certificate (tcg-kp-AIKCertificate).
OID_TCG_KP_AIK_CERTIFICATE = x509.ObjectIdentifier("2.23.133.8.3")
#: TCG DICE TcbInfo (tcg-dice-TcbInfo).
OID_TCG_DICE_TCBINFO = x509.ObjectIdentifier("2.23.133.5.4.1")

#: Hash algorithm OIDs used in FWIDs (NIST CSOR).
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_SHA384 = "2.16.840.1.101.3.4.2.2"
OID_SHA512 = "2.16.840.1.101.3.4.2.3"

# ecdsa-with-SHA* (RFC 5758 section 3.2) by COSE alg (RFC 9053 section 2.1).
_ECDSA_SIG_OIDS = {
    -7: ("1.2.840.10045.4.3.2", 32),  # ES256
    -35: ("1.2.840.10045.4.3.3", 48),  # ES384
    -36: ("1.2.840.10045.4.3.4", 66),  # ES512
}

DEFAULT_ROOT_DAYS = 365 * 25
DEFAULT_INTERMEDIATE_DAYS = 365 * 15
DEFAULT_DEVICE_DAYS = 365 * 20
DEFAULT_OWNER_DAYS = 365 * 5
DEFAULT_CRL_DAYS = 30


class KeySigner(Protocol):
    """What :func:`build_csr` needs from a secure element (a subset of ``SecureElement``)."""

    @property
    def alg(self) -> int: ...

    def public_key(self) -> Any: ...

    def sign(self, data: bytes) -> bytes:
        """Raw r||s ECDSA signature over ``data`` hashed with the alg's hash."""
        ...


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA: its certificate, its private key and the certificates above it."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    #: The issuers above this CA, nearest first, up to and including the root (empty for a root).
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def name(self) -> x509.Name:
        return self.certificate.subject

    @property
    def organization(self) -> str:
        attrs = self.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(attrs[0].value) if attrs else ""


@dataclass(frozen=True, slots=True)
class Fwid:
    """One TCG DICE FWID: a firmware measurement."""

    digest: bytes
    hash_alg: str = OID_SHA256


@dataclass(frozen=True, slots=True)
class TcbInfo:
    """The TCG DICE TcbInfo fields devattest provisions (all optional per the spec)."""

    fwids: tuple[Fwid, ...] = ()
    vendor: str | None = None
    model: str | None = None
    version: str | None = None
    svn: int | None = None
    layer: int | None = None
    index: int | None = None


@dataclass(frozen=True, slots=True)
class RevokedEntry:
    """One CRL entry."""

    serial_number: int
    revocation_date: dt.datetime
    reason: x509.ReasonFlags | None = None


@dataclass(frozen=True, slots=True)
class ManufacturerPki:
    """An offline manufacturer root and the issuing intermediate used on the factory line."""

    root: CertificateAuthority
    issuing: CertificateAuthority = field(repr=False)


# --------------------------------------------------------------------------------------
# Keys and identifiers
# --------------------------------------------------------------------------------------
def generate_ca_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    """A new software CA key (P-256 unless ``curve`` says otherwise)."""
    return ec.generate_private_key(curve or ec.SECP256R1())


def key_identifier(public_key: Any) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo: the key ID devattest uses everywhere (COSE
    ``kid``, backend ``key_id``)."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def device_name(*, organization: str, serial: str | None = None, ueid: bytes | None = None
                ) -> x509.Name:
    """The subject of a device certificate.

    The serial goes in ``serialNumber``, the UEID (RFC 9711 section 4.2.1, up to 33 bytes:
    too long for ``serialNumber``'s 64-character bound in hex) in hex in ``UID``
    (0.9.2342.19200300.100.1.1), and ``CN`` names the device for humans.

    Raises:
        ValueError: if neither ``serial`` nor ``ueid`` is given.
    """
    if serial is None and ueid is None:
        raise ValueError("a device needs a serial number or a UEID")
    cn = serial if serial is not None else f"ueid:{ueid.hex()[:40]}"  # type: ignore[union-attr]
    attrs = []
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    if serial is not None:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    if ueid is not None:
        attrs.append(x509.NameAttribute(NameOID.USER_ID, ueid.hex()))
    return x509.Name(attrs)


def device_identity(name: x509.Name) -> tuple[str | None, bytes | None]:
    """The (serial, UEID) a device subject names (inverse of :func:`device_name`).

    Raises:
        ProvisioningError: if the UID attribute is not hex.
    """
    serials = name.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    uids = name.get_attributes_for_oid(NameOID.USER_ID)
    try:
        ueid = bytes.fromhex(str(uids[0].value)) if uids else None
    except ValueError as exc:
        raise ProvisioningError("device UID attribute is not a hex UEID") from exc
    return (str(serials[0].value) if serials else None), ueid


def _ca_name(organization: str, common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


# --------------------------------------------------------------------------------------
# CAs
# --------------------------------------------------------------------------------------
def _ca_builder(subject: x509.Name, issuer: x509.Name, public_key: Any, issuer_key: Any, *,
                now: dt.datetime, days: int, path_length: int | None,
                name_constraints: x509.NameConstraints | None) -> x509.CertificateBuilder:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key),
                       critical=False)
    )
    if name_constraints is not None:
        builder = builder.add_extension(name_constraints, critical=True)
    return builder


def create_root_ca(private_key: ec.EllipticCurvePrivateKey, *, organization: str,
                   common_name: str, now: dt.datetime, days: int = DEFAULT_ROOT_DAYS,
                   path_length: int | None = 1) -> CertificateAuthority:
    """A self-signed root CA (kept offline by a manufacturer, or an owner's CA).

    Args:
        private_key: The CA's key.
        organization: ``O`` of the subject (the manufacturer or owner name).
        common_name: ``CN`` of the subject.
        now: Start of validity.
        days: Length of validity.
        path_length: BasicConstraints pathLenConstraint (1: root -> issuing CA -> device).

    Returns:
        The new CA.
    """
    name = _ca_name(organization, common_name)
    cert = _ca_builder(name, name, private_key.public_key(), private_key.public_key(), now=now,
                       days=days, path_length=path_length, name_constraints=None
                       ).sign(private_key, hashes.SHA256())
    return CertificateAuthority(certificate=cert, private_key=private_key)


def create_intermediate_ca(issuer: CertificateAuthority,
                           private_key: ec.EllipticCurvePrivateKey, *, common_name: str,
                           now: dt.datetime, days: int = DEFAULT_INTERMEDIATE_DAYS,
                           path_length: int | None = 0,
                           name_constraints: x509.NameConstraints | None = None,
                           ) -> CertificateAuthority:
    """An issuing CA under ``issuer`` (same organization).

    Args:
        issuer: The parent CA.
        private_key: The new CA's key.
        common_name: ``CN`` of the subject.
        now: Start of validity.
        days: Length of validity (capped at the issuer's notAfter).
        path_length: pathLenConstraint (0: may issue only end-entity certificates).
        name_constraints: Optional NameConstraints (critical).

    Returns:
        The new CA, whose ``chain`` is the issuer followed by the issuer's chain.
    """
    name = _ca_name(issuer.organization, common_name)
    days = min(days, max(0, (issuer.certificate.not_valid_after_utc - now).days))
    cert = _ca_builder(name, issuer.name, private_key.public_key(),
                       issuer.private_key.public_key(), now=now, days=days,
                       path_length=path_length, name_constraints=name_constraints
                       ).sign(issuer.private_key, hashes.SHA256())
    return CertificateAuthority(certificate=cert, private_key=private_key,
                                chain=(issuer.certificate, *issuer.chain))


def create_manufacturer_pki(organization: str, *, now: dt.datetime,
                            root_key: ec.EllipticCurvePrivateKey | None = None,
                            issuing_key: ec.EllipticCurvePrivateKey | None = None
                            ) -> ManufacturerPki:
    """A manufacturer root (P-384) and an issuing intermediate (P-256) with fresh keys, or
    with the given keys (for example keys that live in a PKCS#11 token)."""
    root = create_root_ca(root_key or generate_ca_key(ec.SECP384R1()),
                          organization=organization,
                          common_name=f"{organization} Attestation Root CA", now=now)
    issuing = create_intermediate_ca(root, issuing_key or generate_ca_key(),
                                     common_name=f"{organization} Device Issuing CA", now=now)
    return ManufacturerPki(root=root, issuing=issuing)


def create_owner_ca(organization: str, *, now: dt.datetime, days: int = DEFAULT_ROOT_DAYS,
                    key: ec.EllipticCurvePrivateKey | None = None) -> CertificateAuthority:
    """A single-level owner CA that issues LDevID-like owner certificates (with a fresh key,
    or the given one)."""
    return create_root_ca(key or generate_ca_key(), organization=organization,
                          common_name=f"{organization} Owner CA", now=now, days=days,
                          path_length=0)


# --------------------------------------------------------------------------------------
# CSR with proof of possession (RFC 2986)
# --------------------------------------------------------------------------------------
def build_csr(signer: KeySigner | ec.EllipticCurvePrivateKey, *, subject: x509.Name
              ) -> x509.CertificateSigningRequest:
    """A PKCS#10 CSR for ``signer``'s key, signed by that key (proof of possession).

    ``cryptography`` can only sign with its own private keys, so for a secure element the
    CertificationRequest (RFC 2986 section 4) is assembled here in DER and signed by the
    element; its ECDSA r||s signature is re-encoded as Ecdsa-Sig-Value (RFC 5480 section 2.2).

    Args:
        signer: A secure element (``alg``/``public_key()``/``sign()``) or a software EC key.
        subject: The requested subject.

    Returns:
        The CSR, already checked to carry a valid self-signature.

    Raises:
        ProvisioningError: if the algorithm is unsupported or the signature does not verify.
    """
    if isinstance(signer, ec.EllipticCurvePrivateKey):
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(
            signer, hashes.SHA256())
    else:
        if signer.alg not in _ECDSA_SIG_OIDS:
            raise ProvisioningError(f"cannot build a CSR for COSE alg {signer.alg}")
        sig_oid, half = _ECDSA_SIG_OIDS[signer.alg]
        spki = signer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        # RFC 2986 4.1: CertificationRequestInfo ::= SEQUENCE { version INTEGER { v1(0) },
        #   subject Name, subjectPKInfo, attributes [0] IMPLICIT SET OF Attribute }
        info = _der.sequence(_der.integer(0), subject.public_bytes(), spki,
                             _der.tlv(0xA0, b""))
        raw = signer.sign(info)
        if len(raw) != 2 * half:
            raise ProvisioningError("secure element returned a malformed ECDSA signature")
        sig = encode_dss_signature(int.from_bytes(raw[:half], "big"),
                                   int.from_bytes(raw[half:], "big"))
        # RFC 2986 4.2: CertificationRequest ::= SEQUENCE { info, signatureAlgorithm,
        #   signature BIT STRING }; ecdsa-with-SHA* has absent parameters (RFC 5758 3.2).
        der = _der.sequence(info, _der.sequence(_der.oid(sig_oid)), _der.bit_string(sig))
        csr = x509.load_der_x509_csr(der)
    if not csr.is_signature_valid:
        raise ProvisioningError("CSR signature does not verify (no proof of possession)")
    return csr


def _checked_csr_key(csr: x509.CertificateSigningRequest) -> ec.EllipticCurvePublicKey:
    if not csr.is_signature_valid:
        raise ProvisioningError("CSR signature does not verify (no proof of possession)")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ProvisioningError("attestation keys must be EC keys")
    return key


# --------------------------------------------------------------------------------------
# TCG DICE TcbInfo (TCG DICE Attestation Architecture v1.1, section 6.1.1)
# --------------------------------------------------------------------------------------
#   DiceTcbInfo ::= SEQUENCE {
#     vendor  [0] IMPLICIT UTF8String OPTIONAL, model [1] IMPLICIT UTF8String OPTIONAL,
#     version [2] IMPLICIT UTF8String OPTIONAL, svn   [3] IMPLICIT INTEGER OPTIONAL,
#     layer   [4] IMPLICIT INTEGER OPTIONAL,    index [5] IMPLICIT INTEGER OPTIONAL,
#     fwids   [6] IMPLICIT FWIDLIST OPTIONAL, ... }
#   FWIDLIST ::= SEQUENCE SIZE (1..MAX) OF FWID
#   FWID ::= SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING }
_TCB_STR = {0: "vendor", 1: "model", 2: "version"}
_TCB_INT = {3: "svn", 4: "layer", 5: "index"}


def encode_tcb_info(info: TcbInfo) -> bytes:
    """DER of a DiceTcbInfo."""
    parts: list[bytes] = []
    for tag, name in _TCB_STR.items():
        value = getattr(info, name)
        if value is not None:
            parts.append(_der.tlv(0x80 | tag, value.encode("utf-8")))
    for tag, name in _TCB_INT.items():
        value = getattr(info, name)
        if value is not None:
            parts.append(_der.tlv(0x80 | tag, _der.integer(value)[2:]))
    if info.fwids:
        fwids = b"".join(_der.sequence(_der.oid(f.hash_alg), _der.octet_string(f.digest))
                         for f in info.fwids)
        parts.append(_der.tlv(0xA6, fwids))
    return _der.sequence(*parts)


def decode_tcb_info(der: bytes) -> TcbInfo:
    """Parse a DiceTcbInfo (fields devattest does not model are skipped).

    Raises:
        ProvisioningError: if the DER is malformed.
    """
    values: dict[str, Any] = {}
    fwids: list[Fwid] = []
    for tag, content in _der.read_tlvs(_der.read_one(der, _der.TAG_SEQUENCE)):
        number = tag & 0x1F
        if tag == 0xA6:
            for ftag, fwid in _der.read_tlvs(content):
                if ftag != _der.TAG_SEQUENCE:
                    raise ProvisioningError("FWID is not a SEQUENCE")
                items = list(_der.read_tlvs(fwid))
                if [t for t, _ in items] != [_der.TAG_OID, _der.TAG_OCTET_STRING]:
                    raise ProvisioningError("FWID must be (hashAlg OID, digest OCTET STRING)")
                fwids.append(Fwid(digest=items[1][1], hash_alg=_der.decode_oid(items[0][1])))
        elif tag & 0xE0 == 0x80 and number in _TCB_STR:
            values[_TCB_STR[number]] = content.decode("utf-8")
        elif tag & 0xE0 == 0x80 and number in _TCB_INT:
            values[_TCB_INT[number]] = _der.decode_integer(content)
    return TcbInfo(fwids=tuple(fwids), **values)


def tcb_info_of(certificate: x509.Certificate) -> TcbInfo | None:
    """The TcbInfo a certificate carries, if any.

    Raises:
        ProvisioningError: if the extension is malformed.
    """
    try:
        ext = certificate.extensions.get_extension_for_oid(OID_TCG_DICE_TCBINFO)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    assert isinstance(value, x509.UnrecognizedExtension)
    return decode_tcb_info(value.value)


# --------------------------------------------------------------------------------------
# End-entity certificates
# --------------------------------------------------------------------------------------
_KU_DIGITAL_SIGNATURE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
    encipher_only=False, decipher_only=False)


def _ee_builder(ca: CertificateAuthority, subject: x509.Name, public_key: Any, *,
                now: dt.datetime, days: int, serial_number: int | None,
                purposes: Sequence[x509.ObjectIdentifier], hardware_backend: str | None
                ) -> x509.CertificateBuilder:
    not_after = min(now + dt.timedelta(days=days), ca.certificate.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.name)
        .public_key(public_key)
        .serial_number(serial_number or x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_KU_DIGITAL_SIGNATURE, critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(purposes)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False)
    )
    if hardware_backend is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(OID_EXT_HARDWARE_BACKED,
                                       _der.utf8_string(hardware_backend)), critical=False)
    return builder


def issue_attestation_certificate(ca: CertificateAuthority, csr: x509.CertificateSigningRequest,
                                  *, subject: x509.Name, now: dt.datetime,
                                  hardware_backend: str | None,
                                  tcb_info: TcbInfo | None = None,
                                  days: int = DEFAULT_DEVICE_DAYS,
                                  serial_number: int | None = None) -> x509.Certificate:
    """An attestation-key certificate for the key in ``csr``.

    KeyUsage digitalSignature only (critical), ExtendedKeyUsage the devattest attestation
    purpose, the hardware-backed marker only when ``hardware_backend`` names a real secure
    element, and optionally a TCG DICE TcbInfo.

    Args:
        ca: The issuing CA.
        csr: A CSR whose self-signature proves possession of the key.
        subject: The device subject (see :func:`device_name`). The CSR's subject is ignored:
            the factory line, not the device, decides the identity.
        now: Start of validity.
        hardware_backend: Backend name when the key is in real hardware, else ``None``.
        tcb_info: Provisioned firmware measurements.
        days: Validity (capped at the CA's notAfter).
        serial_number: Certificate serial (random when ``None``).

    Returns:
        The certificate.

    Raises:
        ProvisioningError: if the CSR's signature does not verify or its key is not EC.
    """
    key = _checked_csr_key(csr)
    builder = _ee_builder(ca, subject, key, now=now, days=days, serial_number=serial_number,
                          purposes=[OID_KP_ATTESTATION_KEY], hardware_backend=hardware_backend)
    if tcb_info is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(OID_TCG_DICE_TCBINFO, encode_tcb_info(tcb_info)),
            critical=False)
    return builder.sign(ca.private_key, hashes.SHA256())


def issue_owner_certificate(ca: CertificateAuthority,
                            public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey, *,
                            subject: x509.Name, owner_epoch: int, now: dt.datetime,
                            hardware_backend: str | None, days: int = DEFAULT_OWNER_DAYS,
                            serial_number: int | None = None) -> x509.Certificate:
    """An LDevID-like owner certificate for an already-certified secure-element key.

    It carries the attestation purpose and id-kp-clientAuth, and the owner epoch. The caller
    must have established possession and genuineness of ``public_key`` (by a successful
    attestation): this function does not.

    Args:
        ca: The owner CA.
        public_key: The device's secure-element key.
        subject: The device subject under this owner.
        owner_epoch: The owner epoch (incremented on each transfer).
        now: Start of validity.
        hardware_backend: Backend name when the key is in real hardware, else ``None``.
        days: Validity (capped at the CA's notAfter).
        serial_number: Certificate serial (random when ``None``).

    Returns:
        The certificate.
    """
    builder = _ee_builder(ca, subject, public_key, now=now, days=days,
                          serial_number=serial_number,
                          purposes=[OID_KP_ATTESTATION_KEY, ExtendedKeyUsageOID.CLIENT_AUTH],
                          hardware_backend=hardware_backend)
    builder = builder.add_extension(
        x509.UnrecognizedExtension(OID_EXT_OWNER_EPOCH, _der.integer(owner_epoch)),
        critical=False)
    return builder.sign(ca.private_key, hashes.SHA256())


def hardware_backend_of(certificate: x509.Certificate) -> str | None:
    """The backend named by the hardware-backed marker, or ``None`` when absent.

    Raises:
        ProvisioningError: if the marker is malformed.
    """
    try:
        ext = certificate.extensions.get_extension_for_oid(OID_EXT_HARDWARE_BACKED)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    assert isinstance(value, x509.UnrecognizedExtension)
    try:
        return _der.read_one(value.value, _der.TAG_UTF8_STRING).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProvisioningError("malformed hardware-backed marker") from exc


def certify_activated_tpm_ak(ca: CertificateAuthority, public_key: Any, *, ak_name: bytes,
                             subject: x509.Name, now: dt.datetime,
                             hardware_backend: str = "tpm2", tcg_aik_purpose: bool = True,
                             days: int = DEFAULT_DEVICE_DAYS,
                             serial_number: int | None = None) -> x509.Certificate:
    """An attestation-key certificate for a TPM AK whose residency was already proven.

    A restricted TPM AK cannot sign a CSR (the TPM signs only digests it produced itself), so
    possession is proven by credential activation instead (TPM 2.0 Part 1 section 24; the
    Privacy-CA flow in :mod:`devattest.attester.tpm_enrollment`, which is the only intended
    caller). This function does **not** check that: it only builds the certificate.

    Extensions: KeyUsage digitalSignature only (critical); ExtendedKeyUsage the devattest
    attestation purpose and, unless ``tcg_aik_purpose`` is false, tcg-kp-AIKCertificate; the
    hardware-backed marker naming ``hardware_backend``; the AK's TPM name
    (:data:`OID_EXT_TPM_OBJECT_NAME`).

    Args:
        ca: The issuing CA.
        public_key: The AK's public key (EC or RSA), from its verified TPMT_PUBLIC.
        ak_name: The AK's TPM name (``nameAlg || H(TPMT_PUBLIC)``).
        subject: The device subject (see :func:`device_name`).
        now: Start of validity.
        hardware_backend: The marker's backend name (a TPM AK is always hardware-backed).
        tcg_aik_purpose: Add tcg-kp-AIKCertificate to the ExtendedKeyUsage.
        days: Validity (capped at the CA's notAfter).
        serial_number: Certificate serial (random when ``None``).

    Returns:
        The certificate.

    Raises:
        ProvisioningError: if the key is neither EC nor RSA, or the name is malformed.
    """
    if not isinstance(public_key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise ProvisioningError("a TPM AK must be an EC or RSA key")
    if not 2 < len(ak_name) <= 2 + 64:
        raise ProvisioningError("malformed TPM name (nameAlg || digest)")
    purposes = [OID_KP_ATTESTATION_KEY]
    if tcg_aik_purpose:
        purposes.append(OID_TCG_KP_AIK_CERTIFICATE)
    builder = _ee_builder(ca, subject, public_key, now=now, days=days,
                          serial_number=serial_number, purposes=purposes,
                          hardware_backend=hardware_backend)
    builder = builder.add_extension(
        x509.UnrecognizedExtension(OID_EXT_TPM_OBJECT_NAME, _der.octet_string(ak_name)),
        critical=False)
    return builder.sign(ca.private_key, hashes.SHA256())


def tpm_object_name_of(certificate: x509.Certificate) -> bytes | None:
    """The TPM name a TPM AK certificate carries, if any.

    Raises:
        ProvisioningError: if the extension is malformed.
    """
    try:
        ext = certificate.extensions.get_extension_for_oid(OID_EXT_TPM_OBJECT_NAME)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    assert isinstance(value, x509.UnrecognizedExtension)
    return _der.read_one(value.value, _der.TAG_OCTET_STRING)


def owner_epoch_of(certificate: x509.Certificate) -> int | None:
    """The owner epoch an owner certificate carries, if any.

    Raises:
        ProvisioningError: if the extension is malformed.
    """
    try:
        ext = certificate.extensions.get_extension_for_oid(OID_EXT_OWNER_EPOCH)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    assert isinstance(value, x509.UnrecognizedExtension)
    return _der.decode_integer(_der.read_one(value.value, _der.TAG_INTEGER))


# --------------------------------------------------------------------------------------
# CRLs (RFC 5280 section 5)
# --------------------------------------------------------------------------------------
def issue_crl(ca: CertificateAuthority, *, revoked: Iterable[RevokedEntry], now: dt.datetime,
              crl_number: int, days: int = DEFAULT_CRL_DAYS
              ) -> x509.CertificateRevocationList:
    """A CRL signed by ``ca`` listing ``revoked``, valid from ``now`` for ``days``.

    Args:
        ca: The CA whose certificates the CRL covers.
        revoked: The revoked certificates.
        now: thisUpdate.
        crl_number: The monotonically increasing cRLNumber (RFC 5280 5.2.3).
        days: nextUpdate - thisUpdate.

    Returns:
        The CRL.
    """
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.name)
        .last_update(now)
        .next_update(now + dt.timedelta(days=days))
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False)
    )
    for entry in revoked:
        rb = (x509.RevokedCertificateBuilder().serial_number(entry.serial_number)
              .revocation_date(entry.revocation_date))
        if entry.reason is not None:
            rb = rb.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(rb.build())
    return builder.sign(ca.private_key, hashes.SHA256())


def crl_entries(crl: x509.CertificateRevocationList) -> tuple[RevokedEntry, ...]:
    """The entries of a CRL as :class:`RevokedEntry` values."""
    out: list[RevokedEntry] = []
    for rc in crl:
        reason: x509.ReasonFlags | None = None
        try:
            ext = rc.extensions.get_extension_for_class(x509.CRLReason)
            reason = ext.value.reason
        except x509.ExtensionNotFound:
            pass
        out.append(RevokedEntry(rc.serial_number, rc.revocation_date_utc, reason))
    return tuple(out)


def crl_number_of(crl: x509.CertificateRevocationList) -> int:
    """The cRLNumber of ``crl`` (0 when absent)."""
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def revoke(ca: CertificateAuthority, crl: x509.CertificateRevocationList | None,
           serial_number: int, *, now: dt.datetime,
           reason: x509.ReasonFlags | None = None, days: int = DEFAULT_CRL_DAYS
           ) -> x509.CertificateRevocationList:
    """A new CRL: ``crl``'s entries plus ``serial_number``, with the next cRLNumber.

    Revoking an already-revoked serial keeps the original entry (and still re-signs).

    Raises:
        ProvisioningError: if ``crl`` was not issued by ``ca``.
    """
    entries: list[RevokedEntry] = []
    number = 1
    if crl is not None:
        if crl.issuer != ca.name or not crl.is_signature_valid(ca.private_key.public_key()):
            raise ProvisioningError("the CRL was not issued by this CA")
        entries = list(crl_entries(crl))
        number = crl_number_of(crl) + 1
    if all(e.serial_number != serial_number for e in entries):
        entries.append(RevokedEntry(serial_number, now, reason))
    return issue_crl(ca, revoked=entries, now=now, crl_number=number, days=days)


def verify_crl_signature(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> None:
    """Check ``crl`` is signed by ``issuer``.

    Raises:
        InvalidSignature: if not.
    """
    if crl.issuer != issuer.subject or not crl.is_signature_valid(
            issuer.public_key()):  # type: ignore[arg-type]
        raise InvalidSignature("CRL not signed by its issuer")


# --------------------------------------------------------------------------------------
# Explicit I/O helpers (take paths)
# --------------------------------------------------------------------------------------
def load_certificates(path: str | os.PathLike[str]) -> tuple[x509.Certificate, ...]:
    """All PEM certificates in a file, in order."""
    return tuple(x509.load_pem_x509_certificates(Path(path).read_bytes()))


def load_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    """The first PEM certificate in a file."""
    return load_certificates(path)[0]


def save_certificates(path: str | os.PathLike[str], certs: Iterable[x509.Certificate]) -> None:
    """Write certificates as concatenated PEM."""
    Path(path).write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))


def load_crl(path: str | os.PathLike[str]) -> x509.CertificateRevocationList:
    """A PEM CRL."""
    return x509.load_pem_x509_crl(Path(path).read_bytes())


def save_crl(path: str | os.PathLike[str], crl: x509.CertificateRevocationList) -> None:
    """Write a CRL as PEM."""
    Path(path).write_bytes(crl.public_bytes(serialization.Encoding.PEM))


def load_private_key(path: str | os.PathLike[str], password: bytes | None = None
                     ) -> ec.EllipticCurvePrivateKey:
    """A PEM EC private key.

    Raises:
        ProvisioningError: if the key is not an EC key.
    """
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=password)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ProvisioningError(f"{path}: not an EC private key")
    return key


def save_private_key(path: str | os.PathLike[str], key: ec.EllipticCurvePrivateKey,
                     password: bytes | None = None) -> None:
    """Write a PEM PKCS#8 private key readable by the owner only (mode 0600)."""
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password
        else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
