"""End to end with real secure elements: provision (key generated in the element, CSR signed by
it, manufacturer certificate), attest (PSA token with x5chain, signed inside the element) and
appraise with :func:`devattest.verifier.verify` against the manufacturer CA anchor, for each
backend: tpm2 on a private swtpm, pkcs11 on a private SoftHSM2 token, unsafe_software.

Then the attacks on the chain, each through the full verify() pipeline: each is a
contraindicated result with its own reason code and the instance-identity claim the AR4SI
rules assign (96 untrustworthy, 97 unrecognised).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from devattest.attester.backends import open_secure_element
from devattest.attester.backends.unsafe_software import UnsafeSoftwareKey
from devattest.attester.claims import DeviceState, MeasuredComponent, psa_claims
from devattest.attester.evidence import PSA_MEDIA_TYPE, attest_psa, instance_id_of
from devattest.attester.provisioning import (
    chain_der,
    init_owner_ca,
    issue_owner_certificate,
    provision_device,
    transfer_ownership,
)
from devattest.crypto import pki
from devattest.model import (
    AttestationResult,
    CertificateAnchor,
    ComponentReference,
    ReferenceValues,
    ReferenceValueSet,
    Status,
    TrustAnchors,
    ar4si,
)
from devattest.policy import AllOf, DefaultPolicy, RequireHardwareBackedKey
from devattest.schemes.psa import create_psa_token
from devattest.verifier import verify
from tests._support.softhsm import SoftHsmToken
from tests._support.swtpm import Swtpm

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
ISSUED = NOW - dt.timedelta(days=30)
NONCE = bytes(range(32))
STATE = DeviceState(
    implementation_id=bytes.fromhex("aa" * 32),
    security_lifecycle=0x3000,
    firmware=(MeasuredComponent("BL", bytes.fromhex("11" * 32), version="1.0.0",
                                signer_id=bytes.fromhex("a5" * 32)),
              MeasuredComponent("PRoT", bytes.fromhex("22" * 32), version="2.0.0",
                                signer_id=bytes.fromhex("a5" * 32))),
    boot_seed=bytes(32),
)
#: The firmware of STATE as Reference Values: nothing affirms without them.
REFS = ReferenceValues.of([ReferenceValueSet(
    class_id=STATE.implementation_id,
    components=tuple(ComponentReference(c.measurement_type, frozenset({c.measurement_value}),
                                        frozenset({c.signer_id}) if c.signer_id else frozenset())
                     for c in STATE.firmware))])


# --------------------------------------------------------------------------------------
# PKI and helpers
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def acme() -> pki.ManufacturerPki:
    return pki.create_manufacturer_pki("Acme Devices", now=ISSUED - dt.timedelta(days=1))


def anchors_for(m: pki.ManufacturerPki, *crls: x509.CertificateRevocationList
                ) -> TrustAnchors:
    crls = crls or (pki.issue_crl(m.issuing, revoked=(), now=NOW, crl_number=1),)
    return TrustAnchors.of(certificates=[CertificateAnchor(
        m.root.certificate, f"manufacturer:{m.root.organization}", crls)])


def appraise(token: bytes, anchors: TrustAnchors, *, policy: Any = None) -> AttestationResult:
    return verify(token, media_type=PSA_MEDIA_TYPE, expected_nonce=NONCE, trust_anchors=anchors,
                  reference_values=REFS, policy=policy or DefaultPolicy(), now=NOW)


def only(result: AttestationResult) -> Any:
    assert len(result.submods) == 1
    return next(iter(result.submods.values()))


def assert_rejected(result: AttestationResult, code: str, instance_identity: int) -> None:
    sub = only(result)
    assert result.status is Status.CONTRAINDICATED, sub.reasons
    assert [c for c, _ in sub.reasons] == [code], sub.reasons
    assert sub.trust_vector.instance_identity == instance_identity


def certify(se: Any, ca: pki.CertificateAuthority, *, serial: str = "SN-1",
            now: dt.datetime = ISSUED, days: int = pki.DEFAULT_DEVICE_DAYS) -> tuple[bytes, ...]:
    chain = provision_device(se, manufacturer_ca=ca, now=now, serial=serial,
                             ueid=instance_id_of(se), days=days)
    return chain_der(chain)


def _builder(subject: x509.Name, issuer: pki.CertificateAuthority, public_key: Any
             ) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.name)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(ISSUED).not_valid_after(NOW + dt.timedelta(days=365))
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer.private_key.public_key()), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                           critical=False))


_KU_SIGN = x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=False, crl_sign=False, encipher_only=False,
                         decipher_only=False)


# --------------------------------------------------------------------------------------
# Each backend: provision, attest, verify -> affirming
# --------------------------------------------------------------------------------------
@pytest.fixture
def tpm2_se(swtpm: Swtpm) -> Iterator[Any]:
    pytest.importorskip("tpm2_pytss")
    se = open_secure_element({"backend": "tpm2", "tcti": swtpm.tcti,
                              "persistent_handle": 0x81010040, "create": True})
    yield se
    se.close()  # type: ignore[attr-defined]


@pytest.fixture
def pkcs11_se(softhsm_token: SoftHsmToken) -> Iterator[Any]:
    pytest.importorskip("pkcs11")
    se = open_secure_element(softhsm_token.config(key_label=f"e2e-{uuid.uuid4().hex[:12]}"))
    yield se
    se.close()  # type: ignore[attr-defined]


@pytest.fixture
def unsafe_se(tmp_path: Path) -> Any:
    return open_secure_element({"backend": "unsafe_software",
                                "key_path": str(tmp_path / "attestation-key.pem")})


@pytest.fixture(params=["tpm2", "pkcs11", "unsafe_software"])
def se(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue({"tpm2": "tpm2_se", "pkcs11": "pkcs11_se",
                                    "unsafe_software": "unsafe_se"}[request.param])


def test_provision_attest_verify_is_affirming(se: Any, acme: pki.ManufacturerPki) -> None:
    x5chain = certify(se, acme.issuing)
    leaf = x509.load_der_x509_certificate(x5chain[0])
    # The certificate certifies the element's key, marked hardware-backed only for a TPM.
    assert leaf.public_key() == se.public_key()
    expected_marker = "tpm2" if se.properties.backend == "tpm2" else None
    assert pki.hardware_backend_of(leaf) == expected_marker

    token = attest_psa(STATE, se, nonce=NONCE, x5chain=x5chain)
    result = appraise(token, anchors_for(acme))

    sub = only(result)
    assert result.status is Status.AFFIRMING, sub.reasons
    assert sub.trust_vector.instance_identity == ar4si.TRUSTWORTHY_INSTANCE
    assert sub.annotated_evidence["claims"]["instance_id"] == instance_id_of(se)
    if se.properties.hardware_backed:
        assert sub.trust_vector.hardware == ar4si.GENUINE_HARDWARE
        hw = appraise(token, anchors_for(acme),
                      policy=AllOf([DefaultPolicy(), RequireHardwareBackedKey()]))
        assert hw.status is Status.AFFIRMING


def test_rejects_software_key_certificate_when_policy_requires_hardware(
        pkcs11_se: Any, acme: pki.ManufacturerPki) -> None:
    # SoftHSM2 keeps the key non-extractable, but it is software: no hardware marker.
    token = attest_psa(STATE, pkcs11_se, nonce=NONCE, x5chain=certify(pkcs11_se, acme.issuing))
    result = appraise(token, anchors_for(acme),
                      policy=AllOf([DefaultPolicy(), RequireHardwareBackedKey()]))
    sub = only(result)
    assert result.status is Status.CONTRAINDICATED
    assert [c for c, _ in sub.reasons] == ["hardware_backing_required"]
    assert "not hardware-backed" in sub.reasons[0][1]
    # The chain itself is genuine: the identity stands; the hardware is not recognised.
    assert sub.trust_vector.instance_identity == ar4si.TRUSTWORTHY_INSTANCE
    assert sub.trust_vector.hardware == ar4si.UNRECOGNIZED_HARDWARE


def test_rejects_unsafe_software_key_when_policy_requires_hardware(
        unsafe_se: Any, acme: pki.ManufacturerPki) -> None:
    token = attest_psa(STATE, unsafe_se, nonce=NONCE, x5chain=certify(unsafe_se, acme.issuing))
    result = appraise(token, anchors_for(acme), policy=RequireHardwareBackedKey())
    assert result.status is Status.CONTRAINDICATED
    assert [c for c, _ in only(result).reasons] == ["hardware_backing_required"]


# --------------------------------------------------------------------------------------
# Attacks on the chain, through verify()
# --------------------------------------------------------------------------------------
@pytest.fixture
def device() -> UnsafeSoftwareKey:
    return UnsafeSoftwareKey.generate()


def test_rejects_certificate_from_another_manufacturers_ca(
        device: UnsafeSoftwareKey, acme: pki.ManufacturerPki) -> None:
    evil = pki.create_manufacturer_pki("Acme Devices", now=ISSUED - dt.timedelta(days=1))
    token = attest_psa(STATE, device, nonce=NONCE, x5chain=certify(device, evil.issuing))
    assert_rejected(appraise(token, anchors_for(acme)), "chain_untrusted",
                    ar4si.UNRECOGNIZED_INSTANCE)


def test_rejects_expired_certificate(device: UnsafeSoftwareKey,
                                     acme: pki.ManufacturerPki) -> None:
    x5chain = certify(device, acme.issuing, now=NOW - dt.timedelta(days=10), days=5)
    token = attest_psa(STATE, device, nonce=NONCE, x5chain=x5chain)
    assert_rejected(appraise(token, anchors_for(acme)), "certificate_expired",
                    ar4si.UNTRUSTWORTHY_INSTANCE)


def test_rejects_revoked_certificate(device: UnsafeSoftwareKey,
                                     acme: pki.ManufacturerPki) -> None:
    x5chain = certify(device, acme.issuing)
    serial = x509.load_der_x509_certificate(x5chain[0]).serial_number
    crl = pki.revoke(acme.issuing, None, serial, now=NOW - dt.timedelta(hours=1),
                     reason=x509.ReasonFlags.key_compromise)
    token = attest_psa(STATE, device, nonce=NONCE, x5chain=x5chain)
    # Genuine before the CRL arrives, refused after.
    assert appraise(token, anchors_for(acme)).status is Status.AFFIRMING
    assert_rejected(appraise(token, anchors_for(acme, crl)), "certificate_revoked",
                    ar4si.UNTRUSTWORTHY_INSTANCE)


def test_rejects_key_substitution_valid_certificate_other_key(
        device: UnsafeSoftwareKey, acme: pki.ManufacturerPki) -> None:
    # The attacker presents the device's genuine chain but signs with its own key, claiming
    # its own Instance ID: the certified key is not the token's key.
    x5chain = certify(device, acme.issuing)
    attacker = UnsafeSoftwareKey.generate()
    token = attest_psa(STATE, attacker, nonce=NONCE, x5chain=x5chain)
    assert_rejected(appraise(token, anchors_for(acme)), "key_mismatch",
                    ar4si.UNTRUSTWORTHY_INSTANCE)


def test_rejects_key_substitution_claiming_the_certified_instance_id(
        device: UnsafeSoftwareKey, acme: pki.ManufacturerPki) -> None:
    # Same, but the attacker copies the device's Instance ID: the signature cannot verify.
    x5chain = certify(device, acme.issuing)
    attacker = UnsafeSoftwareKey.generate()
    claims = psa_claims(STATE, nonce=NONCE, instance_id=instance_id_of(device))
    token = create_psa_token(claims, attacker, x5chain=x5chain)
    assert_rejected(appraise(token, anchors_for(acme)), "signature_invalid",
                    ar4si.CRYPTO_VALIDATION_FAILED)


def test_rejects_intermediate_without_ca_basic_constraint(
        device: UnsafeSoftwareKey, acme: pki.ManufacturerPki) -> None:
    # An "issuing CA" the root signed without basicConstraints cA=TRUE.
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue_name = x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Acme Devices"),
                            x509.NameAttribute(x509.NameOID.COMMON_NAME, "Acme Rogue Issuer")])
    rogue_cert = _builder(rogue_name, acme.root, rogue_key.public_key()).sign(
        acme.root.private_key, hashes.SHA256())
    rogue = pki.CertificateAuthority(rogue_cert, rogue_key, (acme.root.certificate,))
    token = attest_psa(STATE, device, nonce=NONCE, x5chain=certify(device, rogue))
    result = appraise(token, anchors_for(acme))
    assert_rejected(result, "chain_invalid", ar4si.UNTRUSTWORTHY_INSTANCE)
    assert "no CA basic constraint" in only(result).reasons[0][1]


def test_rejects_leaf_used_as_ca(acme: pki.ManufacturerPki) -> None:
    # A device whose software key leaked issues a "device certificate" for the attacker's key.
    leaked = ec.generate_private_key(ec.SECP256R1())
    subject = pki.device_name(organization="Acme Devices", serial="SN-LEAKED")
    leaked_cert = pki.issue_attestation_certificate(
        acme.issuing, pki.build_csr(leaked, subject=subject), subject=subject, now=ISSUED,
        hardware_backend=None)
    as_ca = pki.CertificateAuthority(leaked_cert, leaked, (acme.issuing.certificate,
                                                           acme.root.certificate))
    attacker = UnsafeSoftwareKey.generate()
    forged = pki.issue_attestation_certificate(
        as_ca, pki.build_csr(attacker, subject=subject), now=ISSUED, hardware_backend="tpm2",
        subject=pki.device_name(organization="Acme Devices", serial="SN-FORGED"))
    x5chain = chain_der([forged, leaked_cert, acme.issuing.certificate])
    token = attest_psa(STATE, attacker, nonce=NONCE, x5chain=x5chain)
    result = appraise(token, anchors_for(acme))
    assert_rejected(result, "chain_invalid", ar4si.UNTRUSTWORTHY_INSTANCE)
    assert "end-entity certificate used as a CA" in only(result).reasons[0][1]


def test_rejects_certificate_without_attestation_key_purpose(
        device: UnsafeSoftwareKey, acme: pki.ManufacturerPki) -> None:
    # A genuine Acme certificate, but for TLS client authentication, not for attestation.
    subject = pki.device_name(organization="Acme Devices", serial="SN-TLS")
    cert = (_builder(subject, acme.issuing, device.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_KU_SIGN, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(acme.issuing.private_key, hashes.SHA256()))
    token = attest_psa(STATE, device, nonce=NONCE,
                       x5chain=chain_der([cert, acme.issuing.certificate]))
    assert_rejected(appraise(token, anchors_for(acme)), "key_purpose_invalid",
                    ar4si.UNTRUSTWORTHY_INSTANCE)


def test_rejects_evidence_signed_with_previous_owner_credentials_after_transfer(
        pkcs11_se: Any, acme: pki.ManufacturerPki, tmp_path: Path) -> None:
    x5chain = certify(pkcs11_se, acme.issuing)
    manufacturer = anchors_for(acme)
    owner_a = init_owner_ca(tmp_path / "owner-a", "Fleet A", now=ISSUED,
                            unsafe_plaintext=True)
    owner_b = init_owner_ca(tmp_path / "owner-b", "Fleet B", now=ISSUED,
                            unsafe_plaintext=True)

    def attested() -> tuple[bytes, AttestationResult]:
        evidence = attest_psa(STATE, pkcs11_se, nonce=NONCE, x5chain=x5chain)
        return evidence, appraise(evidence, manufacturer)

    evidence, result = attested()
    cred_a = issue_owner_certificate(owner_a, result=result, evidence=evidence,
                                     device_chain=x5chain, manufacturer_anchors=manufacturer,
                                     now=NOW)
    evidence, result = attested()
    moved = transfer_ownership(previous_owner_ca=owner_a, previous_certificate=cred_a.certificate,
                               new_owner_ca=owner_b, result=result, evidence=evidence,
                               device_chain=x5chain, manufacturer_anchors=manufacturer, now=NOW)
    assert pki.owner_epoch_of(moved.credential.certificate) == 2

    owners = TrustAnchors.of(certificates=[
        CertificateAnchor(owner_a.certificate(), "owner:Fleet A", (moved.previous_owner_crl,)),
        CertificateAnchor(owner_b.certificate(), "owner:Fleet B", (owner_b.crl(),))])
    stale = attest_psa(STATE, pkcs11_se, nonce=NONCE,
                       x5chain=chain_der([cred_a.certificate]))
    assert_rejected(appraise(stale, owners), "certificate_revoked",
                    ar4si.UNTRUSTWORTHY_INSTANCE)
    # The new owner's credential for the same secure-element key is affirmed.
    current = attest_psa(STATE, pkcs11_se, nonce=NONCE,
                         x5chain=chain_der([moved.credential.certificate]))
    assert appraise(current, owners).status is Status.AFFIRMING

