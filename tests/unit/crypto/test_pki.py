"""PKI recipes: CAs, proof-of-possession CSRs, attestation and owner certificates, CRLs."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from devattest.attester.backends.unsafe_software import UnsafeSoftwareKey
from devattest.crypto import pki
from devattest.errors import ProvisioningError
from tests.unit.crypto.conftest import NOW

FWID = pki.Fwid(bytes(range(32)))


def test_manufacturer_root_and_issuing_ca_constraints(acme: pki.ManufacturerPki) -> None:
    root, issuing = acme.root.certificate, acme.issuing.certificate
    assert root.issuer == root.subject
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 1
    ibc = issuing.extensions.get_extension_for_class(x509.BasicConstraints)
    assert ibc.critical and ibc.value.ca and ibc.value.path_length == 0
    ku = issuing.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    issuing.verify_directly_issued_by(root)
    assert acme.issuing.chain == (root,)
    assert issuing.not_valid_after_utc <= root.not_valid_after_utc


def test_csr_signed_by_secure_element_proves_possession() -> None:
    se = UnsafeSoftwareKey.generate()
    subject = pki.device_name(organization="Acme", serial="SN-9")
    csr = pki.build_csr(se, subject=subject)
    assert csr.is_signature_valid
    assert csr.subject == subject
    assert csr.public_key() == se.public_key()
    assert csr.signature_hash_algorithm is not None
    assert csr.signature_hash_algorithm.name == "sha256"


def test_rejects_csr_from_signer_that_does_not_hold_the_key() -> None:
    """A signer whose sign() uses another key than public_key() has no proof of possession."""
    real, other = UnsafeSoftwareKey.generate(), UnsafeSoftwareKey.generate()

    class Impostor:
        alg = -7

        def public_key(self):
            return real.public_key()

        def sign(self, data: bytes) -> bytes:
            return other.sign(data)

    with pytest.raises(ProvisioningError, match="proof of possession"):
        pki.build_csr(Impostor(), subject=pki.device_name(organization="A", serial="1"))


def test_rejects_csr_for_unsupported_algorithm() -> None:
    class EdSigner:
        alg = -8

        def public_key(self):
            return None

        def sign(self, data: bytes) -> bytes:
            return b""

    with pytest.raises(ProvisioningError, match="alg"):
        pki.build_csr(EdSigner(), subject=pki.device_name(organization="A", serial="1"))


def test_attestation_certificate_profile(acme: pki.ManufacturerPki) -> None:
    se = UnsafeSoftwareKey.generate()
    subject = pki.device_name(organization="Acme", ueid=b"\x01" + bytes(32))
    tcb = pki.TcbInfo(fwids=(FWID,), vendor="Acme", model="Widget", svn=7, layer=0)
    cert = pki.issue_attestation_certificate(
        acme.issuing, pki.build_csr(se, subject=subject), subject=subject, now=NOW,
        hardware_backend="pkcs11", tcb_info=tcb)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature
    assert not (ku.value.key_cert_sign or ku.value.crl_sign or ku.value.key_agreement
                or ku.value.content_commitment or ku.value.key_encipherment)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [pki.OID_KP_ATTESTATION_KEY]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert pki.device_identity(cert.subject) == (None, b"\x01" + bytes(32))
    marker = cert.extensions.get_extension_for_oid(pki.OID_EXT_HARDWARE_BACKED)
    assert not marker.critical
    assert pki.hardware_backend_of(cert) == "pkcs11"
    tcb_ext = cert.extensions.get_extension_for_oid(pki.OID_TCG_DICE_TCBINFO)
    assert not tcb_ext.critical
    assert pki.tcb_info_of(cert) == tcb
    cert.verify_directly_issued_by(acme.issuing.certificate)
    assert cert.public_key() == se.public_key()


def test_software_key_certificate_has_no_hardware_marker(acme: pki.ManufacturerPki) -> None:
    se = UnsafeSoftwareKey.generate()
    subject = pki.device_name(organization="Acme", serial="SN-SW")
    cert = pki.issue_attestation_certificate(acme.issuing, pki.build_csr(se, subject=subject),
                                             subject=subject, now=NOW, hardware_backend=None)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_oid(pki.OID_EXT_HARDWARE_BACKED)
    assert pki.hardware_backend_of(cert) is None
    assert pki.tcb_info_of(cert) is None


def test_tcb_info_der_layout_follows_tcg_dice() -> None:
    """DiceTcbInfo: IMPLICIT context tags, fwids [6] constructed SEQUENCE OF FWID."""
    der = pki.encode_tcb_info(pki.TcbInfo(fwids=(FWID,), vendor="V", svn=1))
    assert der[0] == 0x30
    body = der[2:]
    assert body[:3] == b"\x80\x01V"          # vendor [0] IMPLICIT UTF8String
    assert body[3:6] == b"\x83\x01\x01"      # svn [3] IMPLICIT INTEGER
    assert body[6] == 0xA6                   # fwids [6] IMPLICIT SEQUENCE OF
    fwid = body[8:]
    assert fwid[0] == 0x30 and fwid[2] == 0x06  # FWID ::= SEQUENCE { hashAlg OID, digest }
    assert fwid.endswith(b"\x04\x20" + FWID.digest)


def test_rejects_malformed_tcb_info() -> None:
    with pytest.raises(ProvisioningError):
        pki.decode_tcb_info(b"\x30\x05\xa6\x03\x04\x01\x00")


def test_owner_certificate_carries_epoch_and_client_auth(acme: pki.ManufacturerPki) -> None:
    owner = pki.create_owner_ca("Initech", now=NOW)
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    cert = pki.issue_owner_certificate(
        owner, key, subject=pki.device_name(organization="Initech", serial="SN-1"),
        owner_epoch=3, now=NOW, hardware_backend="tpm2")
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert pki.OID_KP_ATTESTATION_KEY in eku and ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert pki.owner_epoch_of(cert) == 3
    assert pki.hardware_backend_of(cert) == "tpm2"
    cert.verify_directly_issued_by(owner.certificate)


def test_leaf_validity_never_exceeds_issuer(acme: pki.ManufacturerPki) -> None:
    se = UnsafeSoftwareKey.generate()
    subject = pki.device_name(organization="Acme", serial="SN-L")
    cert = pki.issue_attestation_certificate(acme.issuing, pki.build_csr(se, subject=subject),
                                             subject=subject, now=NOW, hardware_backend=None,
                                             days=365 * 100)
    assert cert.not_valid_after_utc == acme.issuing.certificate.not_valid_after_utc


def test_crl_issue_revoke_and_reload(tmp_path, acme: pki.ManufacturerPki) -> None:
    ca = acme.issuing
    crl = pki.issue_crl(ca, revoked=(), now=NOW, crl_number=1)
    assert pki.crl_number_of(crl) == 1 and len(crl) == 0
    later = NOW + dt.timedelta(days=1)
    crl2 = pki.revoke(ca, crl, 0x1234, now=later, reason=x509.ReasonFlags.key_compromise)
    crl3 = pki.revoke(ca, crl2, 0x5678, now=later)
    assert pki.crl_number_of(crl3) == 3
    assert {e.serial_number for e in pki.crl_entries(crl3)} == {0x1234, 0x5678}
    assert pki.crl_entries(crl3)[0].reason is x509.ReasonFlags.key_compromise
    # Revoking twice keeps one entry.
    assert len(pki.revoke(ca, crl3, 0x1234, now=later)) == 2
    path = tmp_path / "crl.pem"
    pki.save_crl(path, crl3)
    loaded = pki.load_crl(path)
    assert loaded == crl3
    pki.verify_crl_signature(loaded, ca.certificate)


def test_rejects_extending_another_cas_crl(acme: pki.ManufacturerPki,
                                           globex: pki.ManufacturerPki) -> None:
    foreign = pki.issue_crl(globex.issuing, revoked=(), now=NOW, crl_number=1)
    with pytest.raises(ProvisioningError):
        pki.revoke(acme.issuing, foreign, 1, now=NOW)


def test_private_key_saved_owner_only_and_reloads(tmp_path) -> None:
    key = pki.generate_ca_key()
    path = tmp_path / "key.pem"
    pki.save_private_key(path, key)
    assert path.stat().st_mode & 0o777 == 0o600
    assert pki.load_private_key(path).private_numbers() == key.private_numbers()


def test_key_identifier_is_sha256_of_spki() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert len(pki.key_identifier(key)) == 32
    assert pki.key_identifier(key) != pki.key_identifier(
        ec.generate_private_key(ec.SECP256R1()).public_key())


def test_device_name_carries_serial_and_ueid() -> None:
    name = pki.device_name(organization="Acme", serial="SN-7", ueid=b"\x02" + bytes(32))
    assert pki.device_identity(name) == ("SN-7", b"\x02" + bytes(32))
    with pytest.raises(ValueError):
        pki.device_name(organization="Acme")
