"""Device life cycle over CA directories: provision, onboard, transfer, revoke."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

import pytest
from cryptography import x509

from devattest.attester import provisioning as prov
from devattest.attester.backends._base import SecureElementProperties
from devattest.attester.backends.unsafe_software import UnsafeSoftwareKey
from devattest.cose import create_sign1
from devattest.crypto import pki
from devattest.crypto.chain import require_key_match, validate_chain
from devattest.errors import CertificateRevoked, OnboardingRefused, ProvisioningError
from devattest.model import (
    Appraisal,
    AttestationResult,
    CertificateAnchor,
    Status,
    TrustAnchors,
    TrustVector,
)

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _quiet_unsafe(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="devattest.unsafe")


class HardwareLike(UnsafeSoftwareKey):
    """A software key that claims to be a secure element (to test the marker path)."""

    @property
    def properties(self) -> SecureElementProperties:
        return SecureElementProperties(hardware_backed=True, non_exportable=True,
                                       backend="pkcs11")


@pytest.fixture
def world(tmp_path):
    root, issuing = prov.init_manufacturer_ca(tmp_path / "acme-root", tmp_path / "acme-issuing",
                                              "Acme", now=NOW, unsafe_plaintext=True)
    owner_a = prov.init_owner_ca(tmp_path / "owner-a", "Initech", now=NOW, unsafe_plaintext=True)
    owner_b = prov.init_owner_ca(tmp_path / "owner-b", "Umbrella", now=NOW, unsafe_plaintext=True)
    se = UnsafeSoftwareKey.generate()
    chain = prov.provision_device(se, manufacturer_ca=issuing, serial="SN-42", now=NOW,
                                  fw_measurements=[hashlib.sha256(b"bl2").digest()])
    x5chain = prov.chain_der(chain)
    anchors = TrustAnchors.of(certificates=[CertificateAnchor(root.certificate(),
                                                              "manufacturer:Acme")])
    return dict(root=root, issuing=issuing, owner_a=owner_a, owner_b=owner_b, se=se,
                chain=chain, x5chain=x5chain, anchors=anchors)


def _evidence(se, x5chain) -> bytes:
    return create_sign1(b"claims", se, x5chain=x5chain)


def _result(evidence: bytes, *, status: Status = Status.AFFIRMING,
            iat: dt.datetime = NOW) -> AttestationResult:
    return AttestationResult(
        status=status,
        submods={"device": Appraisal(status=status, trust_vector=TrustVector(
            instance_identity=2 if status is Status.AFFIRMING else 96))},
        iat=int(iat.timestamp()), evidence_digest=hashlib.sha256(evidence).digest())


def test_provisioned_chain_validates_against_manufacturer_root(world) -> None:
    leaf, issuing_cert = world["chain"]
    assert issuing_cert.subject == world["issuing"].certificate().subject
    anchor = validate_chain(world["x5chain"], world["anchors"], now=NOW)
    require_key_match(anchor, world["se"].public_key())
    assert anchor.hardware_backed is False  # software key: no marker
    tcb = pki.tcb_info_of(leaf)
    assert tcb is not None and tcb.fwids[0].digest == hashlib.sha256(b"bl2").digest()
    assert pki.device_identity(leaf.subject) == ("SN-42", None)


def test_hardware_secure_element_gets_the_marker(world) -> None:
    chain = prov.provision_device(HardwareLike.generate(), manufacturer_ca=world["issuing"],
                                  ueid=b"\x01" + bytes(32), now=NOW)
    assert pki.hardware_backend_of(chain[0]) == "pkcs11"


def test_serials_come_from_the_ca_directory_counter(world) -> None:
    first = world["chain"][0].serial_number
    nxt = prov.provision_device(UnsafeSoftwareKey.generate(), manufacturer_ca=world["issuing"],
                                serial="SN-43", now=NOW)[0].serial_number
    assert nxt == first + 1


def test_ca_directory_is_not_overwritten(world) -> None:
    with pytest.raises(ProvisioningError, match="already holds"):
        prov.init_owner_ca(world["owner_a"].path, "Again", now=NOW, unsafe_plaintext=True)


def test_onboarding_after_affirming_attestation(world) -> None:
    evidence = _evidence(world["se"], world["x5chain"])
    cred = prov.issue_owner_certificate(world["owner_a"], result=_result(evidence),
                                        evidence=evidence, device_chain=world["x5chain"],
                                        manufacturer_anchors=world["anchors"], now=NOW)
    assert cred.owner_epoch == 1 and pki.owner_epoch_of(cred.certificate) == 1
    owner_anchors = TrustAnchors.of(certificates=[CertificateAnchor(cred.ca_certificate,
                                                                    "owner:Initech")])
    anchor = validate_chain(prov.chain_der([cred.certificate]), owner_anchors, now=NOW)
    require_key_match(anchor, world["se"].public_key())
    assert anchor.authority == "owner:Initech"


@pytest.mark.parametrize("status", [Status.CONTRAINDICATED, Status.WARNING, Status.NONE])
def test_rejects_onboarding_without_affirming_result(world, status) -> None:
    evidence = _evidence(world["se"], world["x5chain"])
    with pytest.raises(OnboardingRefused) as info:
        prov.issue_owner_certificate(world["owner_a"], result=_result(evidence, status=status),
                                     evidence=evidence, device_chain=world["x5chain"],
                                     manufacturer_anchors=world["anchors"], now=NOW)
    assert info.value.step == "1"


def test_rejects_onboarding_with_stale_result(world) -> None:
    evidence = _evidence(world["se"], world["x5chain"])
    with pytest.raises(OnboardingRefused) as info:
        prov.issue_owner_certificate(
            world["owner_a"], result=_result(evidence, iat=NOW - dt.timedelta(hours=1)),
            evidence=evidence, device_chain=world["x5chain"],
            manufacturer_anchors=world["anchors"], now=NOW)
    assert info.value.step == "2"


def test_rejects_onboarding_with_result_for_other_evidence(world) -> None:
    evidence = _evidence(world["se"], world["x5chain"])
    other = _evidence(world["se"], world["x5chain"])  # ECDSA: different bytes
    with pytest.raises(OnboardingRefused) as info:
        prov.issue_owner_certificate(world["owner_a"], result=_result(other),
                                     evidence=evidence, device_chain=world["x5chain"],
                                     manufacturer_anchors=world["anchors"], now=NOW)
    assert info.value.step == "3"


def test_rejects_onboarding_a_device_from_another_manufacturer(world, tmp_path) -> None:
    _, g_issuing = prov.init_manufacturer_ca(tmp_path / "g-root", tmp_path / "g-iss",
                                             "Globex", now=NOW, unsafe_plaintext=True)
    se = UnsafeSoftwareKey.generate()
    x5chain = prov.chain_der(prov.provision_device(se, manufacturer_ca=g_issuing, serial="G",
                                                   now=NOW))
    evidence = _evidence(se, x5chain)
    with pytest.raises(OnboardingRefused) as info:
        prov.issue_owner_certificate(world["owner_a"], result=_result(evidence),
                                     evidence=evidence, device_chain=x5chain,
                                     manufacturer_anchors=world["anchors"], now=NOW)
    assert info.value.step == "4"


def test_rejects_onboarding_certified_chain_with_evidence_from_another_key(world) -> None:
    """Key substitution: a genuine device's chain presented with an attacker's Evidence."""
    attacker = UnsafeSoftwareKey.generate()
    evidence = create_sign1(b"claims", attacker)
    with pytest.raises(OnboardingRefused) as info:
        prov.issue_owner_certificate(world["owner_a"], result=_result(evidence),
                                     evidence=evidence, device_chain=world["x5chain"],
                                     manufacturer_anchors=world["anchors"], now=NOW)
    assert info.value.step == "5"


def test_transfer_revokes_previous_owner_and_increments_epoch(world) -> None:
    evidence = _evidence(world["se"], world["x5chain"])
    first = prov.issue_owner_certificate(world["owner_a"], result=_result(evidence),
                                         evidence=evidence, device_chain=world["x5chain"],
                                         manufacturer_anchors=world["anchors"], now=NOW)
    later = NOW + dt.timedelta(days=1)
    evidence2 = _evidence(world["se"], world["x5chain"])
    transfer = prov.transfer_ownership(
        previous_owner_ca=world["owner_a"], previous_certificate=first.certificate,
        new_owner_ca=world["owner_b"], result=_result(evidence2, iat=later),
        evidence=evidence2, device_chain=world["x5chain"],
        manufacturer_anchors=world["anchors"], now=later)
    assert transfer.credential.owner_epoch == 2
    assert pki.owner_epoch_of(transfer.credential.certificate) == 2
    assert transfer.previous_owner_crl.get_revoked_certificate_by_serial_number(
        first.certificate.serial_number) is not None
    # The stored CRL is the new one.
    assert world["owner_a"].crl() == transfer.previous_owner_crl


def test_rejects_previous_owner_credentials_after_transfer(world) -> None:
    evidence = _evidence(world["se"], world["x5chain"])
    first = prov.issue_owner_certificate(world["owner_a"], result=_result(evidence),
                                         evidence=evidence, device_chain=world["x5chain"],
                                         manufacturer_anchors=world["anchors"], now=NOW)
    later = NOW + dt.timedelta(days=1)
    evidence2 = _evidence(world["se"], world["x5chain"])
    prov.transfer_ownership(
        previous_owner_ca=world["owner_a"], previous_certificate=first.certificate,
        new_owner_ca=world["owner_b"], result=_result(evidence2, iat=later),
        evidence=evidence2, device_chain=world["x5chain"],
        manufacturer_anchors=world["anchors"], now=later)
    owner_a_anchors = TrustAnchors.of(certificates=[CertificateAnchor(
        world["owner_a"].certificate(), "owner:Initech", (world["owner_a"].crl(),))])
    with pytest.raises(CertificateRevoked):
        validate_chain(prov.chain_der([first.certificate]), owner_a_anchors, now=later)


def test_rejects_transfer_of_a_certificate_the_previous_owner_did_not_issue(world) -> None:
    evidence = _evidence(world["se"], world["x5chain"])
    cred_b = prov.issue_owner_certificate(world["owner_b"], result=_result(evidence),
                                          evidence=evidence, device_chain=world["x5chain"],
                                          manufacturer_anchors=world["anchors"], now=NOW)
    with pytest.raises(ProvisioningError, match="not issued by the previous owner"):
        prov.transfer_ownership(
            previous_owner_ca=world["owner_a"], previous_certificate=cred_b.certificate,
            new_owner_ca=world["owner_b"], result=_result(evidence), evidence=evidence,
            device_chain=world["x5chain"], manufacturer_anchors=world["anchors"], now=NOW)


def test_failed_transfer_revokes_nothing(world) -> None:
    evidence = _evidence(world["se"], world["x5chain"])
    first = prov.issue_owner_certificate(world["owner_a"], result=_result(evidence),
                                         evidence=evidence, device_chain=world["x5chain"],
                                         manufacturer_anchors=world["anchors"], now=NOW)
    with pytest.raises(OnboardingRefused):
        prov.transfer_ownership(
            previous_owner_ca=world["owner_a"], previous_certificate=first.certificate,
            new_owner_ca=world["owner_b"],
            result=_result(evidence, status=Status.CONTRAINDICATED), evidence=evidence,
            device_chain=world["x5chain"], manufacturer_anchors=world["anchors"], now=NOW)
    assert len(world["owner_a"].crl()) == 0


def test_revoked_device_is_rejected(world) -> None:
    crl = prov.revoke(world["issuing"], world["chain"][0], now=NOW,
                      reason=x509.ReasonFlags.key_compromise)
    anchors = TrustAnchors.of(certificates=[CertificateAnchor(
        world["root"].certificate(), "manufacturer:Acme", (crl,))])
    with pytest.raises(CertificateRevoked):
        validate_chain(world["x5chain"], anchors, now=NOW)


def test_rejects_revoking_a_certificate_of_another_ca(world) -> None:
    with pytest.raises(ProvisioningError):
        prov.revoke(world["owner_a"], world["chain"][0], now=NOW)


def test_refresh_crl_keeps_entries_and_bumps_number(world) -> None:
    crl = prov.revoke(world["issuing"], 77, now=NOW)
    fresh = world["issuing"].refresh_crl(now=NOW + dt.timedelta(days=20))
    assert pki.crl_number_of(fresh) == pki.crl_number_of(crl) + 1
    assert fresh.get_revoked_certificate_by_serial_number(77) is not None


# --------------------------------------------------------------------------------------
# CA keys at rest
# --------------------------------------------------------------------------------------
PASSPHRASE = b"correct horse battery staple"


def test_stolen_ca_directory_does_not_yield_the_ca_key_without_its_passphrase(tmp_path) -> None:
    owner = prov.init_owner_ca(tmp_path / "owner", "Initech", now=NOW, password=PASSPHRASE)
    pem = owner.key_path.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert oct(owner.key_path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ProvisioningError, match="needs its passphrase"):
        owner.load()
    with pytest.raises(ProvisioningError, match="wrong passphrase"):
        owner.load(b"not the passphrase")
    ca = owner.load(PASSPHRASE)
    assert ca.certificate == owner.certificate()


def test_ca_key_is_not_written_in_clear_without_the_unsafe_flag(tmp_path) -> None:
    with pytest.raises(ProvisioningError, match="refusing to write a CA key unencrypted"):
        prov.init_manufacturer_ca(tmp_path / "root", tmp_path / "issuing", "Acme", now=NOW)
    with pytest.raises(ProvisioningError, match="refusing to write a CA key unencrypted"):
        prov.init_owner_ca(tmp_path / "owner", "Initech", now=NOW)
    assert not (tmp_path / "root").exists() and not (tmp_path / "owner").exists()
    with pytest.raises(ProvisioningError, match="at least 8 bytes"):
        prov.init_owner_ca(tmp_path / "owner", "Initech", now=NOW, password=b"short")


def test_issuing_with_an_encrypted_manufacturer_ca_needs_the_passphrase(tmp_path) -> None:
    _, issuing = prov.init_manufacturer_ca(tmp_path / "root", tmp_path / "issuing", "Acme",
                                              now=NOW, password=PASSPHRASE)
    se = UnsafeSoftwareKey.generate()
    with pytest.raises(ProvisioningError, match="needs its passphrase"):
        prov.provision_device(se, manufacturer_ca=issuing, serial="SN-1", now=NOW)
    chain = prov.provision_device(se, manufacturer_ca=issuing, serial="SN-1", now=NOW,
                                  password=PASSPHRASE)
    chain[0].verify_directly_issued_by(issuing.certificate())
    crl = prov.revoke(issuing, chain[0], now=NOW, password=PASSPHRASE)
    assert crl.get_revoked_certificate_by_serial_number(chain[0].serial_number) is not None
    assert crl.is_signature_valid(issuing.certificate().public_key())
