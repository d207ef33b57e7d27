"""Chain validation: every attack is its own typed rejection; the cache never outlives a
certificate, a CRL or a Trust Anchors generation."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devattest.crypto import chain as chain_mod
from devattest.crypto import pki
from devattest.crypto.chain import (
    check_chain,
    require_hardware_backed,
    require_key_match,
    validate_chain,
    with_crls,
)
from devattest.errors import (
    CertificateExpired,
    CertificateRevoked,
    ChainError,
    HardwareBackingRequired,
    KeyMismatch,
    KeyPurposeError,
    UntrustedChain,
)
from devattest.model import CertificateAnchor, TrustAnchors
from tests.unit.crypto.conftest import NOW, Device, der, make_device


def _raises_exactly(exc_type: type[Exception], fn, *args, **kwargs) -> Exception:
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    assert type(info.value) is exc_type, f"{type(info.value).__name__}: {info.value}"
    return info.value


def _custom_cert(issuer: pki.CertificateAuthority | tuple[x509.Name, ec.EllipticCurvePrivateKey],
                 subject: str, public_key, *, extensions=(), not_after=None) -> x509.Certificate:
    issuer_name, issuer_key = ((issuer.name, issuer.private_key)
                               if isinstance(issuer, pki.CertificateAuthority) else issuer)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
                                  x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(issuer_name).public_key(public_key)
         .serial_number(x509.random_serial_number())
         .not_valid_before(NOW - dt.timedelta(days=1))
         .not_valid_after(not_after or NOW + dt.timedelta(days=365))
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             issuer_key.public_key()), critical=False)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    for ext, critical in extensions:
        b = b.add_extension(ext, critical=critical)
    return b.sign(issuer_key, hashes.SHA256())


def _ku(**flags: bool) -> x509.KeyUsage:
    base = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False)
    base.update(flags)
    return x509.KeyUsage(**base)


LEAF_BC = (x509.BasicConstraints(ca=False, path_length=None), True)
LEAF_KU = (_ku(digital_signature=True), True)
ATTEST_EKU = (x509.ExtendedKeyUsage([pki.OID_KP_ATTESTATION_KEY]), False)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# ----------------------------------------------------------------------------------------
# The happy path.
# ----------------------------------------------------------------------------------------
def test_valid_chain_returns_certified_key(device: Device, anchors: TrustAnchors) -> None:
    anchor = validate_chain(device.chain, anchors, now=NOW)
    assert anchor.public_key == device.key.public_key()
    assert anchor.hardware_backed is True
    assert anchor.authority == "manufacturer:Acme"
    assert "SN-0001" in anchor.label
    require_key_match(anchor, device.key.public_key())
    require_hardware_backed(anchor)


def test_chain_including_the_root_validates(device: Device, anchors: TrustAnchors,
                                            acme: pki.ManufacturerPki) -> None:
    anchor = validate_chain((*device.chain, der(acme.root.certificate)), anchors, now=NOW)
    assert anchor.authority == "manufacturer:Acme"


def test_authority_comes_from_the_matching_anchor(acme, globex) -> None:
    both = TrustAnchors.of(certificates=[
        CertificateAnchor(acme.root.certificate, "manufacturer:Acme"),
        CertificateAnchor(globex.root.certificate, "manufacturer:Globex")])
    dev = make_device(globex.issuing, "G-1")
    assert validate_chain(dev.chain, both, now=NOW).authority == "manufacturer:Globex"


def test_owner_certificate_validates_against_owner_anchor(device: Device) -> None:
    owner = pki.create_owner_ca("Initech", now=NOW)
    cert = pki.issue_owner_certificate(
        owner, device.key.public_key(),
        subject=pki.device_name(organization="Initech", serial="SN-0001"), owner_epoch=1,
        now=NOW, hardware_backend="tpm2")
    anchors = TrustAnchors.of(certificates=[CertificateAnchor(owner.certificate,
                                                              "owner:Initech")])
    anchor = validate_chain((der(cert),), anchors, now=NOW)
    assert anchor.authority == "owner:Initech"
    require_key_match(anchor, device.key.public_key())


# ----------------------------------------------------------------------------------------
# Attacks: each a distinct typed rejection.
# ----------------------------------------------------------------------------------------
def test_rejects_certificate_from_another_manufacturers_ca(globex, anchors) -> None:
    dev = make_device(globex.issuing, "G-2")
    err = _raises_exactly(UntrustedChain, validate_chain, dev.chain, anchors, now=NOW)
    assert err.step == "2" and "Globex" in str(err)


def test_rejects_chain_with_no_certificate_anchors(device: Device) -> None:
    _raises_exactly(UntrustedChain, validate_chain, device.chain, TrustAnchors(), now=NOW)


def test_rejects_expired_certificate(acme, anchors) -> None:
    dev = make_device(acme.issuing, "SN-EXP", days=30)
    err = _raises_exactly(CertificateExpired, validate_chain, dev.chain, anchors,
                          now=NOW + dt.timedelta(days=31))
    assert err.step == "4"


def test_rejects_not_yet_valid_certificate(device: Device, anchors) -> None:
    _raises_exactly(CertificateExpired, validate_chain, device.chain, anchors,
                    now=NOW - dt.timedelta(days=1))


def test_rejects_revoked_certificate(acme, device: Device, anchors) -> None:
    crl = pki.revoke(acme.issuing, None, device.leaf.serial_number, now=NOW,
                     reason=x509.ReasonFlags.key_compromise)
    revoked = with_crls(anchors, "manufacturer:Acme", [crl])
    err = _raises_exactly(CertificateRevoked, validate_chain, device.chain, revoked, now=NOW)
    assert err.step == "7"


def test_rejects_revoked_intermediate(acme, device: Device, anchors) -> None:
    crl = pki.revoke(acme.root, None, acme.issuing.certificate.serial_number, now=NOW)
    _raises_exactly(CertificateRevoked, validate_chain, device.chain,
                    with_crls(anchors, "manufacturer:Acme", [crl]), now=NOW)


def test_rejects_key_substitution_valid_certificate_with_different_key(
        device: Device, anchors) -> None:
    anchor = validate_chain(device.chain, anchors, now=NOW)
    _raises_exactly(KeyMismatch, require_key_match, anchor, _new_key().public_key())


def test_rejects_intermediate_without_ca_basic_constraint(acme, anchors) -> None:
    rogue_key = _new_key()
    rogue = _custom_cert(acme.issuing, "not a CA", rogue_key.public_key(),
                         extensions=[(_ku(key_cert_sign=True, crl_sign=True), True)])
    leaf = _custom_cert((rogue.subject, rogue_key), "dev", _new_key().public_key(),
                        extensions=[LEAF_BC, LEAF_KU, ATTEST_EKU])
    chain = (der(leaf), der(rogue), der(acme.issuing.certificate))
    err = _raises_exactly(ChainError, validate_chain, chain, anchors, now=NOW)
    assert err.step == "3" and "no CA basic constraint" in str(err)


def test_rejects_leaf_used_as_ca(acme, device: Device, anchors) -> None:
    leaf1_ca = pki.CertificateAuthority(device.leaf, device.key)
    victim = _custom_cert(leaf1_ca, "minted by a device", _new_key().public_key(),
                          extensions=[LEAF_BC, LEAF_KU, ATTEST_EKU])
    chain = (der(victim), *device.chain)
    err = _raises_exactly(ChainError, validate_chain, chain, anchors, now=NOW)
    assert err.step == "3" and "end-entity certificate used as a CA" in str(err)


def test_rejects_certificate_without_attestation_key_purpose(acme, anchors) -> None:
    leaf = _custom_cert(acme.issuing, "tls client", _new_key().public_key(),
                        extensions=[LEAF_BC, LEAF_KU,
                                    (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                                     False)])
    chain = (der(leaf), der(acme.issuing.certificate))
    err = _raises_exactly(KeyPurposeError, validate_chain, chain, anchors, now=NOW)
    assert "attestation key purpose" in str(err)
    # Without the purpose requirement the same chain is acceptable.
    validate_chain(chain, anchors, now=NOW, require_purpose=False)


def test_rejects_certificate_without_eku(acme, anchors) -> None:
    leaf = _custom_cert(acme.issuing, "no eku", _new_key().public_key(),
                        extensions=[LEAF_BC, LEAF_KU])
    _raises_exactly(KeyPurposeError, validate_chain,
                    (der(leaf), der(acme.issuing.certificate)), anchors, now=NOW)


def test_rejects_attestation_key_with_certificate_signing_usage(acme, anchors) -> None:
    leaf = _custom_cert(acme.issuing, "ku abuse", _new_key().public_key(),
                        extensions=[LEAF_BC, (_ku(digital_signature=True, key_cert_sign=True),
                                              True), ATTEST_EKU])
    err = _raises_exactly(KeyPurposeError, validate_chain,
                          (der(leaf), der(acme.issuing.certificate)), anchors, now=NOW)
    assert "digitalSignature only" in str(err)


def test_rejects_ca_certificate_presented_as_attestation_key(acme, anchors) -> None:
    _raises_exactly(KeyPurposeError, validate_chain, (der(acme.issuing.certificate),),
                    anchors, now=NOW)


def test_rejects_software_key_certificate_when_hardware_required(acme, anchors) -> None:
    dev = make_device(acme.issuing, "SN-SW", hardware_backend=None)
    anchor = validate_chain(dev.chain, anchors, now=NOW)
    assert anchor.hardware_backed is False
    _raises_exactly(HardwareBackingRequired, require_hardware_backed, anchor)


def test_rejects_leaf_forged_under_genuine_issuer_name(acme, anchors) -> None:
    forger = (acme.issuing.name, _new_key())
    leaf = _custom_cert(forger, "forged", _new_key().public_key(),
                        extensions=[LEAF_BC, LEAF_KU, ATTEST_EKU])
    err = _raises_exactly(ChainError, validate_chain,
                          (der(leaf), der(acme.issuing.certificate)), anchors, now=NOW)
    assert err.step == "6"


def test_rejects_path_length_violation(acme, anchors) -> None:
    # The issuing CA has pathLen 0: a CA under it must not be accepted.
    sub = pki.create_intermediate_ca(acme.issuing, _new_key(), common_name="sub", now=NOW)
    dev = make_device(sub, "SN-DEEP")
    err = _raises_exactly(ChainError, validate_chain, dev.chain, anchors, now=NOW)
    assert err.step == "6"


def test_rejects_name_constraint_violation(acme) -> None:
    constrained = pki.create_intermediate_ca(
        acme.root, _new_key(), common_name="constrained", now=NOW,
        name_constraints=x509.NameConstraints(
            permitted_subtrees=[x509.DNSName("devices.acme.example")], excluded_subtrees=None))
    leaf = _custom_cert(constrained, "dev", _new_key().public_key(), extensions=[
        LEAF_BC, LEAF_KU, ATTEST_EKU,
        (x509.SubjectAlternativeName([x509.DNSName("evil.example")]), False)])
    ok_leaf = _custom_cert(constrained, "dev2", _new_key().public_key(), extensions=[
        LEAF_BC, LEAF_KU, ATTEST_EKU,
        (x509.SubjectAlternativeName([x509.DNSName("d1.devices.acme.example")]), False)])
    anchors = TrustAnchors.of(certificates=[CertificateAnchor(acme.root.certificate, "m")])
    ca_der = der(constrained.certificate)
    validate_chain((der(ok_leaf), ca_der), anchors, now=NOW)
    err = _raises_exactly(ChainError, validate_chain, (der(leaf), ca_der), anchors, now=NOW)
    assert err.step == "6"


def test_rejects_stale_crl(acme, device: Device, anchors) -> None:
    crl = pki.issue_crl(acme.issuing, revoked=(), now=NOW - dt.timedelta(days=60),
                        crl_number=1, days=30)
    err = _raises_exactly(ChainError, validate_chain, device.chain,
                          with_crls(anchors, "manufacturer:Acme", [crl]), now=NOW)
    assert err.step == "7" and "not current" in str(err)


def test_rejects_crl_not_signed_by_the_issuer(acme, device: Device, anchors) -> None:
    impostor = pki.CertificateAuthority(acme.issuing.certificate, _new_key())
    crl = pki.issue_crl(impostor, revoked=(), now=NOW, crl_number=1)
    err = _raises_exactly(ChainError, validate_chain, device.chain,
                          with_crls(anchors, "manufacturer:Acme", [crl]), now=NOW)
    assert "verifies" in str(err)


def test_require_crl_fails_closed_without_crl(device: Device, anchors) -> None:
    validate_chain(device.chain, anchors, now=NOW)  # a cached success without the requirement
    _raises_exactly(ChainError, validate_chain, device.chain, anchors, now=NOW,
                    require_crl=True)


@pytest.mark.parametrize("chain", [(), (b"\x30\x03\x02\x01\x00",), (b"x",) * 9])
def test_rejects_malformed_x5chain(chain, anchors) -> None:
    err = _raises_exactly(ChainError, validate_chain, chain, anchors, now=NOW)
    assert err.step == "1"


def test_check_chain_reports_instead_of_raising(globex, anchors) -> None:
    verdict = check_chain(make_device(globex.issuing, "G-3").chain, anchors, now=NOW)
    assert not verdict.ok and isinstance(verdict.error, UntrustedChain)
    assert verdict.error.code == "chain_untrusted"


# ----------------------------------------------------------------------------------------
# The verified-chain cache.
# ----------------------------------------------------------------------------------------
def test_cache_hit_returns_the_cached_anchor(device: Device, anchors) -> None:
    first = validate_chain(device.chain, anchors, now=NOW)
    assert validate_chain(device.chain, anchors, now=NOW + dt.timedelta(hours=1)) is first
    assert chain_mod.cache_info(anchors)[0] == 1


def test_revocation_after_cached_success_is_seen_with_new_anchors(acme, device, anchors
                                                                  ) -> None:
    validate_chain(device.chain, anchors, now=NOW)  # cached success
    crl = pki.revoke(acme.issuing, None, device.leaf.serial_number, now=NOW)
    _raises_exactly(CertificateRevoked, validate_chain, device.chain,
                    with_crls(anchors, "manufacturer:Acme", [crl]), now=NOW)


def test_revocation_seen_even_when_anchors_replaced_with_shared_extensions(
        acme, device, anchors) -> None:
    """dataclasses.replace shares the extensions mapping; the cache must not follow it."""
    validate_chain(device.chain, anchors, now=NOW)
    crl = pki.revoke(acme.issuing, None, device.leaf.serial_number, now=NOW)
    replaced = dataclasses.replace(anchors, certificates=(
        CertificateAnchor(acme.root.certificate, "manufacturer:Acme", (crl,)),))
    assert replaced.extensions is anchors.extensions
    _raises_exactly(CertificateRevoked, validate_chain, device.chain, replaced, now=NOW)


def test_cached_verdict_does_not_outlive_certificate(acme, anchors) -> None:
    dev = make_device(acme.issuing, "SN-SHORT", days=10)
    validate_chain(dev.chain, anchors, now=NOW)
    _raises_exactly(CertificateExpired, validate_chain, dev.chain, anchors,
                    now=NOW + dt.timedelta(days=11))


def test_cached_verdict_does_not_outlive_crl(acme, device, anchors) -> None:
    crl = pki.issue_crl(acme.issuing, revoked=(), now=NOW, crl_number=1, days=7)
    with_crl = with_crls(anchors, "manufacturer:Acme", [crl])
    validate_chain(device.chain, with_crl, now=NOW)
    _raises_exactly(ChainError, validate_chain, device.chain, with_crl,
                    now=NOW + dt.timedelta(days=8))


def test_cached_verdict_is_not_reused_before_the_crl_was_issued(acme, device, anchors
                                                                ) -> None:
    """A verdict cached with a CRL issued at NOW must not answer an appraisal dated before
    that CRL existed (RFC 5280 6.3.3 (a): the CRL is not current then): it fails closed, as
    a fresh validation does."""
    issued = NOW + dt.timedelta(days=1)
    crl = pki.issue_crl(acme.issuing, revoked=(), now=issued, crl_number=1, days=7)
    with_crl = with_crls(anchors, "manufacturer:Acme", [crl])
    validate_chain(device.chain, with_crl, now=issued + dt.timedelta(hours=1))
    _raises_exactly(ChainError, validate_chain, device.chain, with_crl,
                    now=NOW + dt.timedelta(hours=1))


def test_cache_is_bounded(acme) -> None:
    anchors = TrustAnchors(certificates=(CertificateAnchor(acme.root.certificate, "m"),),
                           extensions={chain_mod.CACHE_SIZE_EXTENSION: 2})
    for i in range(4):
        validate_chain(make_device(acme.issuing, f"SN-B{i}").chain, anchors, now=NOW)
    assert chain_mod.cache_info(anchors) == (2, 2)


def test_failures_are_not_cached(globex, anchors) -> None:
    dev = make_device(globex.issuing, "G-4")
    for _ in range(2):
        _raises_exactly(UntrustedChain, validate_chain, dev.chain, anchors, now=NOW)
    assert chain_mod.cache_info(anchors)[0] == 0
