"""Shared PKI fixtures for the crypto unit tests (module-scoped: key generation is slow-ish)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from devattest.crypto import pki
from devattest.model import CertificateAnchor, TrustAnchors

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


@dataclass
class Device:
    key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate
    chain: tuple[bytes, ...]


def make_device(ca: pki.CertificateAuthority, serial: str = "SN-0001", *,
                hardware_backend: str | None = "tpm2", now: dt.datetime = NOW,
                days: int = pki.DEFAULT_DEVICE_DAYS) -> Device:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = pki.device_name(organization=ca.organization, serial=serial)
    csr = pki.build_csr(key, subject=subject)
    leaf = pki.issue_attestation_certificate(ca, csr, subject=subject, now=now,
                                             hardware_backend=hardware_backend, days=days)
    return Device(key, leaf, (der(leaf), *(der(c) for c in (ca.certificate, *ca.chain))))


@pytest.fixture(scope="module")
def acme() -> pki.ManufacturerPki:
    return pki.create_manufacturer_pki("Acme", now=NOW)


@pytest.fixture(scope="module")
def globex() -> pki.ManufacturerPki:
    return pki.create_manufacturer_pki("Globex", now=NOW)


@pytest.fixture
def anchors(acme: pki.ManufacturerPki) -> TrustAnchors:
    return TrustAnchors.of(certificates=[CertificateAnchor(acme.root.certificate,
                                                           "manufacturer:Acme")])


@pytest.fixture(scope="module")
def device(acme: pki.ManufacturerPki) -> Device:
    return make_device(acme.issuing)
