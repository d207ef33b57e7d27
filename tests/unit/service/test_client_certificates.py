"""Device client certificates: the application-side checks and CRL revocation
(the TLS side is tests/integration/service/test_mtls.py)."""

from __future__ import annotations

import datetime as dt
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devattest.crypto import pki
from devattest.errors import ConfigurationError
from devattest.service.auth import _device_from_certificate
from devattest.service.problems import Unauthorized
from devattest.service.tls import CertificateRevoked, ClientRevocation

NOW = datetime.now(UTC)
CA = pki.create_owner_ca("ACME", now=NOW)
OTHER_CA = pki.create_owner_ca("Other", now=NOW)
KEY = ec.generate_private_key(ec.SECP256R1())


def owner_cert(ca: pki.CertificateAuthority = CA, device_id: str = "dev-a"
               ) -> x509.Certificate:
    return pki.issue_owner_certificate(
        ca, KEY.public_key(), subject=pki.device_name(organization="ACME", serial=device_id),
        owner_epoch=1, now=NOW, hardware_backend=None)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def write_crl(path: Path, *crls: x509.CertificateRevocationList) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in crls))
    return path


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "cas.pem"
    path.write_bytes(b"".join(c.certificate.public_bytes(serialization.Encoding.PEM)
                              for c in (CA, OTHER_CA)))
    return path


def test_certificate_names_its_device_by_cn() -> None:
    p = _device_from_certificate(der(owner_cert()))
    assert (p.role, p.device_id, p.via) == ("device", "dev-a", "mtls")


def test_rejects_certificate_without_client_auth_purpose() -> None:
    cert = pki.issue_attestation_certificate(
        CA, pki.build_csr(KEY, subject=x509.Name([])),
        subject=pki.device_name(organization="ACME", serial="dev-a"), now=NOW,
        hardware_backend=None)
    with pytest.raises(Unauthorized, match="client authentication"):
        _device_from_certificate(der(cert))


def test_rejects_revoked_certificate_and_reloads_the_crl(tmp_path: Path, ca_file: Path
                                                         ) -> None:
    cert, other = owner_cert(), owner_cert(OTHER_CA)
    crl = write_crl(tmp_path / "crl.pem", pki.issue_crl(CA, revoked=[], now=NOW, crl_number=1),
                    pki.issue_crl(OTHER_CA, revoked=[], now=NOW, crl_number=1))
    rev = ClientRevocation(crl, ca_file)
    rev.check(cert, now=NOW)
    new = tmp_path / "new.pem"
    write_crl(new, pki.revoke(CA, None, cert.serial_number, now=NOW),
              pki.issue_crl(OTHER_CA, revoked=[], now=NOW, crl_number=1))
    os.replace(new, crl)
    with pytest.raises(CertificateRevoked, match="revoked"):
        rev.check(cert, now=NOW)
    rev.check(other, now=NOW)
    with pytest.raises(Unauthorized, match="revoked"):
        _device_from_certificate(der(cert), revocation=rev)


def test_rejects_certificate_whose_issuer_has_no_crl(tmp_path: Path, ca_file: Path) -> None:
    crl = write_crl(tmp_path / "crl.pem", pki.issue_crl(CA, revoked=[], now=NOW, crl_number=1))
    with pytest.raises(CertificateRevoked, match="no CRL"):
        ClientRevocation(crl, ca_file).check(owner_cert(OTHER_CA), now=NOW)


def test_rejects_certificate_when_the_crl_is_stale(tmp_path: Path, ca_file: Path) -> None:
    crl = write_crl(tmp_path / "crl.pem",
                    pki.issue_crl(CA, revoked=[], now=NOW, crl_number=1, days=1))
    with pytest.raises(CertificateRevoked, match="stale"):
        ClientRevocation(crl, ca_file).check(owner_cert(), now=NOW + dt.timedelta(days=2))


def test_rejects_forged_crl_at_start_and_fails_closed_on_reload(tmp_path: Path,
                                                                ca_file: Path) -> None:
    rogue = pki.create_owner_ca("ACME", now=NOW)  # the same issuer name, another key
    forged = pki.issue_crl(rogue, revoked=[], now=NOW, crl_number=9)
    with pytest.raises(ConfigurationError, match="not signed"):
        ClientRevocation(write_crl(tmp_path / "forged.pem", forged), ca_file)
    crl = write_crl(tmp_path / "crl.pem", pki.issue_crl(CA, revoked=[], now=NOW, crl_number=1))
    rev = ClientRevocation(crl, ca_file)
    write_crl(tmp_path / "next.pem", forged)
    os.replace(tmp_path / "next.pem", crl)
    with pytest.raises(CertificateRevoked, match="unusable"):
        rev.check(owner_cert(), now=NOW)
