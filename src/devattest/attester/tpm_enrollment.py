"""TPM AK certificates: the Privacy-CA enrollment flow, CA side.

A restricted TPM attestation key (AK) cannot sign a CSR: the TPM signs only digests it
produced itself (TPM 2.0 Part 1 section 27.2.2). Proof that the AK is a genuine key of a
genuine TPM is therefore credential activation (Part 1 section 24, "Credential Protection"),
as in the TCG Privacy-CA / attestation-CA protocol:

1. the device sends its EK public area (and EK certificate, if it has one) and the AK's
   ``TPMT_PUBLIC`` (:class:`AkEnrollmentRequest`);
2. the CA checks the AK is ``restricted|sign|fixedTPM|fixedParent|sensitiveDataOrigin`` and
   not ``decrypt``, and that it trusts the EK (registered on the factory line, or certified by
   a trusted TPM manufacturer CA);
3. the CA seals a random secret to the EK *and* the AK's TPM name with TPM2_MakeCredential
   (:func:`devattest.schemes.tpm.credential.make_credential`) and sends the challenge;
4. the device runs TPM2_ActivateCredential, which succeeds only in the TPM that holds the EK
   private key *and* a loaded object with exactly that name, and returns the secret;
5. only when the secret matches (in constant time, before the challenge expires, once) does
   the CA issue the AK certificate (:func:`devattest.crypto.pki.certify_activated_tpm_ak`).

The pure functions (:func:`start_ak_enrollment`, :func:`issue_tpm_ak_certificate`) take
``now`` and keep no state; :class:`PrivacyCa` keeps the pending challenges, makes each one
single-use and allocates serial numbers. Nothing here needs a TPM or tpm2-pytss: the device
side is :class:`devattest.attester.tpm_quote.TpmQuoteAttester`.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devattest.attester.provisioning import CaDirectory
from devattest.crypto import pki
from devattest.errors import (
    AlgorithmError,
    AttestationKeyAttributes,
    CredentialActivationFailed,
    CredentialActivationReplayed,
    EndorsementKeyUntrusted,
)
from devattest.schemes.tpm.credential import make_credential
from devattest.schemes.tpm.structures import (
    ALG_ECC,
    ALG_RSA,
    ALG_SHA256,
    ALG_SHA384,
    ALG_SHA512,
    DECRYPT,
    FIXED_PARENT,
    FIXED_TPM,
    RESTRICTED,
    SENSITIVE_DATA_ORIGIN,
    SIGN,
    Public,
    parse_public,
)

#: Attributes the CA requires of an AK before certifying it (TPM 2.0 Part 2 section 8.3):
#: a restricted signing key (signs only TPM-generated data), that cannot be duplicated
#: (fixedTPM, fixedParent) and whose private part the TPM generated (sensitiveDataOrigin).
AK_CERT_REQUIRED_ATTRIBUTES = (RESTRICTED | SIGN | FIXED_TPM | FIXED_PARENT
                               | SENSITIVE_DATA_ORIGIN)
#: How long a credential challenge may stay unanswered.
DEFAULT_CHALLENGE_TTL = dt.timedelta(minutes=5)
#: Maximum number of unanswered challenges a :class:`PrivacyCa` keeps (denial of service).
DEFAULT_MAX_PENDING = 10_000
#: Maximum size of a DER EK certificate accepted in a request.
MAX_EK_CERTIFICATE_BYTES = 8 * 1024

_NAME_ALGS = frozenset({ALG_SHA256, ALG_SHA384, ALG_SHA512})
_SECRET_BYTES = 32

__all__ = [
    "AK_CERT_REQUIRED_ATTRIBUTES",
    "DEFAULT_CHALLENGE_TTL",
    "AkChallenge",
    "AkEnrollmentRequest",
    "EndorsementTrust",
    "PendingAkEnrollment",
    "PrivacyCa",
    "check_activation_answer",
    "check_ak_for_certification",
    "check_endorsement_key",
    "issue_tpm_ak_certificate",
    "start_ak_enrollment",
]


@dataclass(frozen=True, slots=True)
class AkEnrollmentRequest:
    """What the device sends the CA (step 1)."""

    #: The EK's TPMT_PUBLIC.
    ek_public: bytes
    #: The AK's TPMT_PUBLIC.
    ak_public: bytes
    #: The EK certificate (DER) from the TPM's NV, when the TPM has one.
    ek_certificate: bytes | None = None


@dataclass(frozen=True, slots=True)
class EndorsementTrust:
    """Which EKs the CA trusts (step 2).

    Either the EK's TPM name was registered on the factory line, or its EK certificate was
    issued directly by one of ``ek_ca_certificates`` (the TPM manufacturers' EK issuing CAs
    the operator trusts) and is valid at ``now``.
    """

    registered_ek_names: frozenset[bytes] = frozenset()
    ek_ca_certificates: tuple[x509.Certificate, ...] = ()

    @classmethod
    def of(cls, *, registered_ek_publics: Iterable[bytes] = (),
           ek_ca_certificates: Iterable[x509.Certificate] = ()) -> EndorsementTrust:
        """Trust built from registered EK public areas (TPMT_PUBLIC) and EK CA certificates.

        Raises:
            MalformedTpmStructure: a registered EK public area is malformed.
        """
        return cls(frozenset(parse_public(p).name for p in registered_ek_publics),
                   tuple(ek_ca_certificates))


@dataclass(frozen=True, slots=True)
class AkChallenge:
    """What the CA sends the device (step 3): the two inputs of TPM2_ActivateCredential."""

    enrollment_id: bytes
    #: TPM2B_ID_OBJECT contents.
    credential_blob: bytes
    #: TPM2B_ENCRYPTED_SECRET contents.
    encrypted_secret: bytes


@dataclass(frozen=True, slots=True)
class PendingAkEnrollment:
    """CA-side state between the challenge and the answer. Never sent to the device."""

    challenge: AkChallenge
    ak_public: bytes
    ak_name: bytes
    ek_name: bytes
    expires_at: dt.datetime
    secret: bytes = field(repr=False)


def check_ak_for_certification(ak_public: bytes) -> Public:
    """Step 2.1: the AK is a key the CA may certify.

    Raises:
        MalformedTpmStructure: the public area is malformed or its key is invalid.
        AttestationKeyAttributes: the AK lacks restricted|sign|fixedTPM|fixedParent|
            sensitiveDataOrigin, or has decrypt.
        AlgorithmError: the AK's nameAlg is weaker than SHA-256, or its key is not P-256,
            P-384 or RSA of at least 2048 bits.
    """
    ak = parse_public(ak_public)
    attrs = ak.object_attributes
    # 2.1.1: TPM 2.0 Part 1 section 27.2.2 / Part 2 section 8.3: only a restricted signing key
    #        signs only what the TPM generated; fixedTPM|fixedParent: never duplicated;
    #        sensitiveDataOrigin: the TPM, not someone who kept a copy, made the private key.
    if attrs & AK_CERT_REQUIRED_ATTRIBUTES != AK_CERT_REQUIRED_ATTRIBUTES or attrs & DECRYPT:
        raise AttestationKeyAttributes(
            f"AK objectAttributes {attrs:#010x} are not restricted|sign|fixedTPM|fixedParent|"
            "sensitiveDataOrigin (without decrypt): the CA certifies only attestation keys",
            step="2.1")
    # 2.1.2: the name (which the certificate binds) must use a collision-resistant hash.
    if ak.name_alg not in _NAME_ALGS:
        raise AlgorithmError(f"AK nameAlg {ak.name_alg:#06x} is weaker than SHA-256",
                             step="2.1")
    key = ak.public_key()
    if ak.type == ALG_RSA and isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise AlgorithmError(f"RSA AK of {key.key_size} bits is too short", step="2.1")
    elif ak.type != ALG_ECC or not isinstance(key, ec.EllipticCurvePublicKey):
        raise AlgorithmError("the AK is neither an ECC nor an RSA key", step="2.1")
    return ak


def _same_public_key(a: object, b: object) -> bool:
    try:
        return bool(a.public_numbers() == b.public_numbers())  # type: ignore[attr-defined]
    except AttributeError:
        return False


def check_endorsement_key(request: AkEnrollmentRequest, trust: EndorsementTrust, *,
                          now: dt.datetime) -> Public:
    """Step 2.2: the CA trusts the EK (registered, or certified by a trusted EK CA).

    Raises:
        MalformedTpmStructure: the EK public area is malformed.
        EndorsementKeyUntrusted: the EK is neither registered nor certified by a trusted EK
            CA at ``now`` (or its certificate certifies another key).
    """
    ek = parse_public(request.ek_public)
    name = ek.name
    # 2.2.1: registered on the factory line (by TPM name: key and template together).
    if name in trust.registered_ek_names:
        return ek
    if request.ek_certificate is None:
        raise EndorsementKeyUntrusted(
            "the EK is not registered and the request carries no EK certificate", step="2.2")
    # 2.2.2: the EK certificate (TCG EK Credential Profile section 3) certifies this EK and
    #        was issued directly by a trusted EK CA, and is valid at `now`.
    if len(request.ek_certificate) > MAX_EK_CERTIFICATE_BYTES:
        raise EndorsementKeyUntrusted("the EK certificate is too large", step="2.2")
    try:
        cert = x509.load_der_x509_certificate(request.ek_certificate)
    except ValueError as exc:
        raise EndorsementKeyUntrusted("the EK certificate is not DER X.509", step="2.2") \
            from exc
    if not _same_public_key(cert.public_key(), ek.public_key()):
        raise EndorsementKeyUntrusted("the EK certificate certifies another key", step="2.2")
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise EndorsementKeyUntrusted(
            f"the EK certificate is not valid at {now.isoformat()}", step="2.2")
    for ca in trust.ek_ca_certificates:
        if ca.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            continue
        return ek
    raise EndorsementKeyUntrusted(
        f"no trusted EK CA issued the EK certificate ({cert.issuer.rfc4514_string()})",
        step="2.2")


def start_ak_enrollment(request: AkEnrollmentRequest, *, trust: EndorsementTrust,
                        now: dt.datetime, ttl: dt.timedelta = DEFAULT_CHALLENGE_TTL,
                        rng: Callable[[int], bytes] = secrets.token_bytes
                        ) -> PendingAkEnrollment:
    """Steps 2-3: check the AK and the EK, and seal a fresh secret to EK + AK name.

    Args:
        request: The device's EK and AK public areas (and EK certificate).
        trust: The EKs this CA trusts.
        now: The time (the challenge expires at ``now + ttl``).
        ttl: How long the challenge may stay unanswered.
        rng: Randomness for the secret, the enrollment ID and an RSA seed.

    Returns:
        The pending enrollment; send ``.challenge`` to the device, keep the rest.

    Raises:
        MalformedTpmStructure: a public area is malformed.
        AttestationKeyAttributes: the AK may not be certified (or the EK is not a
            restricted decryption key with AES-CFB).
        AlgorithmError: the AK's nameAlg or key is too weak.
        EndorsementKeyUntrusted: the CA does not trust the EK.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    ak = check_ak_for_certification(request.ak_public)
    ek = check_endorsement_key(request, trust, now=now)
    # 3: TPM2_MakeCredential (Part 1 section 24) to the EK, bound to the AK's name.
    secret = rng(_SECRET_BYTES)
    sealed = make_credential(request.ek_public, ak.name, secret, rng=rng)
    challenge = AkChallenge(rng(16), sealed.credential_blob, sealed.encrypted_secret)
    return PendingAkEnrollment(challenge=challenge, ak_public=request.ak_public,
                               ak_name=ak.name, ek_name=ek.name, expires_at=now + ttl,
                               secret=secret)


def issue_tpm_ak_certificate(ca: pki.CertificateAuthority, pending: PendingAkEnrollment,
                             returned_secret: bytes, *, subject: x509.Name, now: dt.datetime,
                             tcg_aik_purpose: bool = True, days: int = pki.DEFAULT_DEVICE_DAYS,
                             serial_number: int | None = None) -> x509.Certificate:
    """Steps 4-5: check the device's activation answer, then certify the AK.

    The certificate carries KeyUsage digitalSignature, the devattest attestation key purpose
    (and tcg-kp-AIKCertificate unless ``tcg_aik_purpose`` is false), the hardware-backed
    marker ``"tpm2"`` and the AK's TPM name.

    This function keeps no state: a caller that calls it twice with the same ``pending``
    issues twice. :class:`PrivacyCa` makes each challenge single-use.

    Args:
        ca: The issuing CA.
        pending: The enrollment from :func:`start_ak_enrollment`.
        returned_secret: What TPM2_ActivateCredential gave the device.
        subject: The device subject (:func:`devattest.crypto.pki.device_name`).
        now: Issuance time.
        tcg_aik_purpose: Add tcg-kp-AIKCertificate (2.23.133.8.3) to the EKU.
        days: Validity (capped at the CA's notAfter).
        serial_number: Certificate serial (random when ``None``).

    Returns:
        The AK certificate.

    Raises:
        CredentialActivationFailed: the challenge expired, or the secret is not the sealed
            one (the AK is not resident in the TPM that holds the EK).
    """
    check_activation_answer(pending, returned_secret, now=now)
    # 5: certify the AK (its attributes were checked in step 2.1; the name binds them).
    ak = parse_public(pending.ak_public)
    return pki.certify_activated_tpm_ak(
        ca, ak.public_key(), ak_name=pending.ak_name, subject=subject, now=now,
        tcg_aik_purpose=tcg_aik_purpose, days=days, serial_number=serial_number)


def check_activation_answer(pending: PendingAkEnrollment, returned_secret: bytes, *,
                            now: dt.datetime) -> None:
    """Step 4: the challenge is open and the device returned the sealed secret.

    Raises:
        CredentialActivationFailed: the challenge expired, or the secret is not the sealed
            one (the AK is not resident in the TPM that holds the EK).
    """
    # 4.1: the challenge is still open.
    if now > pending.expires_at:
        raise CredentialActivationFailed(
            f"the credential challenge expired at {pending.expires_at.isoformat()}", step="4")
    # 4.2: the secret matches, in constant time (Part 1 section 24: only the TPM holding the
    #      EK private key and an object named ak_name could unwrap it).
    if not hmac.compare_digest(returned_secret, pending.secret):
        raise CredentialActivationFailed(
            "the device did not recover the credential: the AK is not resident in the TPM "
            "that holds the EK", step="4")


class PrivacyCa:
    """A stateful attestation CA for TPM AKs: each challenge admits exactly one answer.

    Args:
        ca: The issuing CA (a directory, whose serial counter is then used, or in memory).
        trust: The EKs this CA trusts.
        challenge_ttl: How long a challenge may stay unanswered.
        max_pending: Maximum number of open challenges (the oldest are dropped).
        password: Passphrase of the CA key in a directory, if any.
    """

    def __init__(self, ca: CaDirectory | pki.CertificateAuthority, trust: EndorsementTrust, *,
                 challenge_ttl: dt.timedelta = DEFAULT_CHALLENGE_TTL,
                 max_pending: int = DEFAULT_MAX_PENDING, password: bytes | None = None
                 ) -> None:
        self._ca = ca
        self._password = password
        self.trust = trust
        self.challenge_ttl = challenge_ttl
        self.max_pending = max_pending
        self._pending: dict[bytes, PendingAkEnrollment] = {}
        self._lock = threading.Lock()

    def challenge(self, request: AkEnrollmentRequest, *, now: dt.datetime) -> AkChallenge:
        """Steps 2-3: check the request and return the credential challenge.

        Raises:
            MalformedTpmStructure: a public area is malformed.
            AttestationKeyAttributes: the AK may not be certified.
            AlgorithmError: the AK's nameAlg or key is too weak.
            EndorsementKeyUntrusted: the CA does not trust the EK.
        """
        pending = start_ak_enrollment(request, trust=self.trust, now=now,
                                      ttl=self.challenge_ttl)
        with self._lock:
            for eid in [e for e, p in self._pending.items() if now > p.expires_at]:
                del self._pending[eid]
            while len(self._pending) >= self.max_pending:
                del self._pending[next(iter(self._pending))]
            self._pending[pending.challenge.enrollment_id] = pending
        return pending.challenge

    def complete(self, enrollment_id: bytes, returned_secret: bytes, *, now: dt.datetime,
                 serial: str | None = None, ueid: bytes | None = None,
                 tcg_aik_purpose: bool = True, days: int = pki.DEFAULT_DEVICE_DAYS
                 ) -> tuple[x509.Certificate, ...]:
        """Steps 4-5: check the answer (once) and issue the AK certificate.

        The challenge is spent by this call whatever its outcome, so a wrong answer cannot be
        retried and a right one cannot be replayed.

        Args:
            enrollment_id: The challenge's ID.
            returned_secret: What TPM2_ActivateCredential gave the device.
            now: Issuance time.
            serial: Device serial number (``serialNumber`` in the subject).
            ueid: Device UEID (``UID`` in the subject).
            tcg_aik_purpose: Add tcg-kp-AIKCertificate to the EKU.
            days: Validity.

        Returns:
            The chain for the Evidence's ``x5chain``, leaf first, up to (excluding) the root.

        Raises:
            CredentialActivationReplayed: no open challenge has that ID (already answered,
                expired and dropped, or never issued).
            CredentialActivationFailed: the challenge expired or the secret is wrong.
            ValueError: neither ``serial`` nor ``ueid`` is given.
            ProvisioningError: the CA directory is unreadable.
        """
        with self._lock:
            pending = self._pending.pop(enrollment_id, None)
        if pending is None:
            raise CredentialActivationReplayed(
                "no open credential challenge with this enrollment ID (already answered, "
                "expired or never issued)", step="4")
        check_activation_answer(pending, returned_secret, now=now)
        if isinstance(self._ca, CaDirectory):
            ca = self._ca.load(self._password)
            serial_number: int | None = self._ca.next_serial()
        else:
            ca, serial_number = self._ca, None
        subject = pki.device_name(organization=ca.organization, serial=serial, ueid=ueid)
        leaf = issue_tpm_ak_certificate(ca, pending, returned_secret, subject=subject, now=now,
                                        tcg_aik_purpose=tcg_aik_purpose, days=days,
                                        serial_number=serial_number)
        root_excluded = tuple(c for c in ca.chain if c.issuer != c.subject)
        return (leaf, ca.certificate, *root_excluded)
