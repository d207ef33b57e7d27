"""Pure tests of TPM AK certificates: the certificate recipe (pki.certify_activated_tpm_ak) and
the Privacy-CA enrollment state machine (attester.tpm_enrollment), with software-built TPM
public areas. The TPM side (TPM2_ActivateCredential) is exercised on swtpm in
tests/integration/tpm/test_ak_certificate.py; here the test plays the device by reading the
sealed secret from the CA's pending state."""

from __future__ import annotations

import datetime as dt
import struct
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devattest import errors
from devattest.attester.provisioning import CaDirectory
from devattest.attester.tpm_enrollment import (
    AkEnrollmentRequest,
    EndorsementTrust,
    PendingAkEnrollment,
    PrivacyCa,
    check_ak_for_certification,
    issue_tpm_ak_certificate,
    start_ak_enrollment,
)
from devattest.crypto import pki
from devattest.crypto.chain import validate_chain
from devattest.model import CertificateAnchor, Status, TrustAnchors
from devattest.policy._builtin import DefaultPolicy
from devattest.schemes import SchemeRegistry
from devattest.schemes.tpm import MEDIA_TYPE, TpmQuoteScheme
from devattest.schemes.tpm.structures import parse_public
from devattest.verifier import verify, verify_strict
from tests.unit.crypto.conftest import NOW, der
from tests.unit.tpm._build import AK_ATTRS, build, ecc_public, tpm2b
from tests.unit.tpm.test_tpm_scheme import REFS as TPM_BOOT_REFS

RESTRICTED, FIXED_PARENT, DECRYPT = 1 << 16, 1 << 4, 1 << 17
SUBJECT = pki.device_name(organization="Acme", serial="GW-1")


def _rsa_ek() -> tuple[rsa.RSAPrivateKey, bytes]:
    priv = rsa.generate_private_key(65537, 2048)
    n = priv.public_key().public_numbers().n.to_bytes(256, "big")
    # TCG EK template L-1 shape: restricted|decrypt, AES-128-CFB, RSA-2048.
    ek = (struct.pack(">HHI", 0x0001, 0x000B, 0x000300B2) + tpm2b(b"\x83" * 32)
          + struct.pack(">HHH", 0x0006, 128, 0x0043) + struct.pack(">HHI", 0x0010, 2048, 0)
          + tpm2b(n))
    return priv, ek


@pytest.fixture(scope="module")
def ek() -> tuple[rsa.RSAPrivateKey, bytes]:
    return _rsa_ek()


@pytest.fixture
def ak() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, ecc_public(key.public_key())


def _trust(ek_public: bytes) -> EndorsementTrust:
    return EndorsementTrust.of(registered_ek_publics=[ek_public])


def _pending(ek_public: bytes, ak_public: bytes) -> PendingAkEnrollment:
    return start_ak_enrollment(AkEnrollmentRequest(ek_public, ak_public),
                               trust=_trust(ek_public), now=NOW)


# ------------------------------------------------------------------ the certificate recipe
def test_certify_activated_tpm_ak_extensions(acme: pki.ManufacturerPki,
                                             ak: tuple[ec.EllipticCurvePrivateKey, bytes]
                                             ) -> None:
    name = parse_public(ak[1]).name
    cert = pki.certify_activated_tpm_ak(acme.issuing, ak[0].public_key(), ak_name=name,
                                        subject=SUBJECT, now=NOW)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        pki.OID_KP_ATTESTATION_KEY, pki.OID_TCG_KP_AIK_CERTIFICATE]
    assert pki.hardware_backend_of(cert) == "tpm2"
    assert pki.tpm_object_name_of(cert) == name
    anchors = TrustAnchors.of(certificates=[CertificateAnchor(acme.root.certificate, "m")])
    anchor = validate_chain((der(cert), der(acme.issuing.certificate)), anchors, now=NOW)
    assert anchor.hardware_backed
    no_tcg = pki.certify_activated_tpm_ak(acme.issuing, ak[0].public_key(), ak_name=name,
                                          subject=SUBJECT, now=NOW, tcg_aik_purpose=False)
    assert list(no_tcg.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        pki.OID_KP_ATTESTATION_KEY]


def test_certify_activated_tpm_ak_rsa_and_refusals(acme: pki.ManufacturerPki) -> None:
    key = rsa.generate_private_key(65537, 2048).public_key()
    cert = pki.certify_activated_tpm_ak(acme.issuing, key, ak_name=b"\x00\x0b" + b"\1" * 32,
                                        subject=SUBJECT, now=NOW)
    assert cert.public_key() == key
    with pytest.raises(errors.ProvisioningError, match="EC or RSA"):
        pki.certify_activated_tpm_ak(acme.issuing, b"k" * 32, ak_name=b"\x00\x0b" + b"1" * 32,
                                     subject=SUBJECT, now=NOW)
    with pytest.raises(errors.ProvisioningError, match="TPM name"):
        pki.certify_activated_tpm_ak(acme.issuing, key, ak_name=b"\x00\x0b", subject=SUBJECT,
                                     now=NOW)


def test_tpm_object_name_absent_from_ordinary_attestation_certificate(
        acme: pki.ManufacturerPki) -> None:
    from tests.unit.crypto.conftest import make_device

    assert pki.tpm_object_name_of(make_device(acme.issuing).leaf) is None


# ------------------------------------------------------------------ AK checks (step 2.1)
@pytest.mark.parametrize("clear,add", [(RESTRICTED, 0), (FIXED_PARENT, 0), (1 << 5, 0),
                                       (1 << 1, 0), (1 << 18, 0), (0, DECRYPT)])
def test_enrollment_refuses_ak_without_attestation_attributes(clear: int, add: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(errors.AttestationKeyAttributes):
        check_ak_for_certification(ecc_public(key, (AK_ATTRS & ~clear) | add))


def test_enrollment_refuses_sha1_name_algorithm() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pub = bytearray(ecc_public(key))
    pub[2:4] = (0x0004).to_bytes(2, "big")  # nameAlg SHA-1
    with pytest.raises(errors.AlgorithmError, match="SHA-256"):
        check_ak_for_certification(bytes(pub))


def test_enrollment_refuses_malformed_ak() -> None:
    with pytest.raises(errors.MalformedTpmStructure):
        check_ak_for_certification(b"\x00\x23\x00")


# ------------------------------------------------------------------ the enrollment
def test_enrollment_issues_certificate_for_the_activated_ak(
        acme: pki.ManufacturerPki, ek: tuple[rsa.RSAPrivateKey, bytes],
        ak: tuple[ec.EllipticCurvePrivateKey, bytes]) -> None:
    pending = _pending(ek[1], ak[1])
    assert pending.ak_name == parse_public(ak[1]).name
    assert pending.ek_name == parse_public(ek[1]).name
    assert pending.expires_at == NOW + dt.timedelta(minutes=5)
    assert repr(pending.secret) not in repr(pending)  # never logged
    cert = issue_tpm_ak_certificate(acme.issuing, pending, pending.secret, subject=SUBJECT,
                                    now=NOW)
    assert cert.public_key() == ak[0].public_key()
    assert pki.tpm_object_name_of(cert) == pending.ak_name


def test_enrollment_refuses_wrong_secret(acme: pki.ManufacturerPki,
                                         ek: tuple[rsa.RSAPrivateKey, bytes],
                                         ak: tuple[ec.EllipticCurvePrivateKey, bytes]) -> None:
    pending = _pending(ek[1], ak[1])
    with pytest.raises(errors.CredentialActivationFailed, match="not resident"):
        issue_tpm_ak_certificate(acme.issuing, pending, bytes(32), subject=SUBJECT, now=NOW)


def test_enrollment_refuses_expired_challenge(acme: pki.ManufacturerPki,
                                              ek: tuple[rsa.RSAPrivateKey, bytes],
                                              ak: tuple[ec.EllipticCurvePrivateKey, bytes]
                                              ) -> None:
    pending = _pending(ek[1], ak[1])
    with pytest.raises(errors.CredentialActivationFailed, match="expired"):
        issue_tpm_ak_certificate(acme.issuing, pending, pending.secret, subject=SUBJECT,
                                 now=NOW + dt.timedelta(minutes=6))


def test_enrollment_refuses_naive_now(ek: tuple[rsa.RSAPrivateKey, bytes],
                                      ak: tuple[ec.EllipticCurvePrivateKey, bytes]) -> None:
    with pytest.raises(ValueError, match="timezone"):
        start_ak_enrollment(AkEnrollmentRequest(ek[1], ak[1]), trust=_trust(ek[1]),
                            now=NOW.replace(tzinfo=None))


def test_privacy_ca_challenge_is_single_use(acme: pki.ManufacturerPki,
                                            ek: tuple[rsa.RSAPrivateKey, bytes],
                                            ak: tuple[ec.EllipticCurvePrivateKey, bytes]
                                            ) -> None:
    ca = PrivacyCa(acme.issuing, _trust(ek[1]))
    ch = ca.challenge(AkEnrollmentRequest(ek[1], ak[1]), now=NOW)
    secret = ca._pending[ch.enrollment_id].secret
    chain = ca.complete(ch.enrollment_id, secret, now=NOW, serial="GW-1")
    assert chain[1] == acme.issuing.certificate and len(chain) == 2
    with pytest.raises(errors.CredentialActivationReplayed):
        ca.complete(ch.enrollment_id, secret, now=NOW, serial="GW-1")
    with pytest.raises(errors.CredentialActivationReplayed):
        ca.complete(b"never issued", secret, now=NOW, serial="GW-1")


def test_privacy_ca_wrong_answer_spends_the_challenge(
        acme: pki.ManufacturerPki, ek: tuple[rsa.RSAPrivateKey, bytes],
        ak: tuple[ec.EllipticCurvePrivateKey, bytes]) -> None:
    ca = PrivacyCa(acme.issuing, _trust(ek[1]))
    ch = ca.challenge(AkEnrollmentRequest(ek[1], ak[1]), now=NOW)
    secret = ca._pending[ch.enrollment_id].secret
    with pytest.raises(errors.CredentialActivationFailed):
        ca.complete(ch.enrollment_id, bytes(32), now=NOW, serial="GW-1")
    with pytest.raises(errors.CredentialActivationReplayed):
        ca.complete(ch.enrollment_id, secret, now=NOW, serial="GW-1")


def test_privacy_ca_bounds_and_expires_pending_challenges(
        acme: pki.ManufacturerPki, ek: tuple[rsa.RSAPrivateKey, bytes],
        ak: tuple[ec.EllipticCurvePrivateKey, bytes]) -> None:
    ca = PrivacyCa(acme.issuing, _trust(ek[1]), max_pending=2)
    req = AkEnrollmentRequest(ek[1], ak[1])
    first = ca.challenge(req, now=NOW)
    ca.challenge(req, now=NOW)
    ca.challenge(req, now=NOW)
    assert first.enrollment_id not in ca._pending and len(ca._pending) == 2
    ca.challenge(req, now=NOW + dt.timedelta(minutes=10))  # the two stale ones are dropped
    assert len(ca._pending) == 1


def test_privacy_ca_directory_allocates_serials(tmp_path: Path, acme: pki.ManufacturerPki,
                                                ek: tuple[rsa.RSAPrivateKey, bytes],
                                                ak: tuple[ec.EllipticCurvePrivateKey, bytes]
                                                ) -> None:
    passphrase = b"privacy CA passphrase"
    directory = CaDirectory.create(tmp_path / "issuing", acme.issuing, now=NOW,
                                   password=passphrase)
    before = int(directory.serial_path.read_text(), 16)
    ca = PrivacyCa(directory, _trust(ek[1]), password=passphrase)
    ch = ca.challenge(AkEnrollmentRequest(ek[1], ak[1]), now=NOW)
    # A wrong answer does not consume a serial number.
    with pytest.raises(errors.CredentialActivationFailed):
        ca.complete(ch.enrollment_id, bytes(32), now=NOW, serial="GW-1")
    assert int(directory.serial_path.read_text(), 16) == before
    ch = ca.challenge(AkEnrollmentRequest(ek[1], ak[1]), now=NOW)
    leaf = ca.complete(ch.enrollment_id, ca._pending[ch.enrollment_id].secret, now=NOW,
                       ueid=b"\x01" + b"\x22" * 16)[0]
    assert leaf.serial_number == before
    assert pki.device_identity(leaf.subject) == (None, b"\x01" + b"\x22" * 16)


# ------------------------------------------------------------------ EK trust (step 2.2)
def _ek_certificate(ek_ca: pki.CertificateAuthority, key: rsa.RSAPublicKey, *,
                    not_after: dt.datetime | None = None) -> bytes:
    cert = (x509.CertificateBuilder().subject_name(x509.Name([]))
            .issuer_name(ek_ca.name).public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(not_after or NOW + dt.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(x509.Name([]))]),
                           critical=True)
            .sign(ek_ca.private_key, hashes.SHA256()))
    return der(cert)


@pytest.fixture(scope="module")
def ek_ca() -> pki.CertificateAuthority:
    return pki.create_root_ca(pki.generate_ca_key(), organization="TPM Vendor",
                              common_name="TPM Vendor EK CA", now=NOW - dt.timedelta(days=2))


def test_ek_certificate_from_trusted_ek_ca_is_accepted(
        ek_ca: pki.CertificateAuthority, ek: tuple[rsa.RSAPrivateKey, bytes],
        ak: tuple[ec.EllipticCurvePrivateKey, bytes]) -> None:
    req = AkEnrollmentRequest(ek[1], ak[1], _ek_certificate(ek_ca, ek[0].public_key()))
    trust = EndorsementTrust(ek_ca_certificates=(ek_ca.certificate,))
    assert start_ak_enrollment(req, trust=trust, now=NOW).ek_name == parse_public(ek[1]).name


@pytest.mark.parametrize("case,match", [
    ("no certificate", "no EK certificate"),
    ("other key", "another key"),
    ("expired", "not valid"),
    ("other CA", "no trusted EK CA"),
    ("garbage", "not DER"),
    ("huge", "too large"),
])
def test_enrollment_refuses_untrusted_ek(ek_ca: pki.CertificateAuthority,
                                         ek: tuple[rsa.RSAPrivateKey, bytes],
                                         ak: tuple[ec.EllipticCurvePrivateKey, bytes],
                                         case: str, match: str) -> None:
    cert: bytes | None = {
        "no certificate": None,
        "other key": _ek_certificate(ek_ca, rsa.generate_private_key(65537, 2048).public_key()),
        "expired": _ek_certificate(ek_ca, ek[0].public_key(),
                                   not_after=NOW - dt.timedelta(seconds=1)),
        "other CA": _ek_certificate(
            pki.create_root_ca(pki.generate_ca_key(), organization="TPM Vendor",
                               common_name="TPM Vendor EK CA", now=NOW),
            ek[0].public_key()),
        "garbage": b"\x30\x03\x02\x01\x00",
        "huge": b"\0" * 10_000,
    }[case]
    trust = EndorsementTrust(ek_ca_certificates=(ek_ca.certificate,))
    with pytest.raises(errors.EndorsementKeyUntrusted, match=match):
        start_ak_enrollment(AkEnrollmentRequest(ek[1], ak[1], cert), trust=trust, now=NOW)


# ------------------------------------------------------------------ through the verifier
def test_software_quote_with_ak_certificate_chain_through_verify(
        acme: pki.ManufacturerPki, globex: pki.ManufacturerPki) -> None:
    b = build()
    name = parse_public(b.ak_public).name
    chain = [der(pki.certify_activated_tpm_ak(acme.issuing, b.key.public_key(), ak_name=name,
                                              subject=SUBJECT, now=NOW)),
             der(acme.issuing.certificate)]
    m = cbor2.loads(b.evidence)
    m[6] = chain
    ev = cbor2.dumps(m, canonical=True)
    reg = SchemeRegistry([TpmQuoteScheme()])

    def run(anchors: TrustAnchors, evidence: bytes = ev, strict: bool = True) -> object:
        fn = verify_strict if strict else verify
        return fn(evidence, media_type=MEDIA_TYPE, expected_nonce=b.nonce,
                  trust_anchors=anchors, reference_values=TPM_BOOT_REFS,
                  policy=DefaultPolicy(), now=NOW, registry=reg)

    anchors = TrustAnchors.of(certificates=[CertificateAnchor(acme.root.certificate, "m")])
    res = run(anchors)
    tv = res.submods["tpm"].trust_vector  # type: ignore[attr-defined]
    assert (tv.instance_identity, tv.hardware) == (2, 2)
    assert res.status is Status.AFFIRMING  # type: ignore[attr-defined]
    # Another AK presenting this chain: key substitution.
    other = build(nonce=b.nonce)
    m2 = cbor2.loads(other.evidence)
    m2[6] = chain
    with pytest.raises(errors.KeyMismatch):
        run(anchors, cbor2.dumps(m2, canonical=True))
    # Another manufacturer's root.
    res = run(TrustAnchors.of(certificates=[CertificateAnchor(globex.root.certificate, "g")]),
              strict=False)
    assert res.reasons[0][0] == "chain_untrusted"  # type: ignore[attr-defined]
