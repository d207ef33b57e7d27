"""AK trust by certificate (issue 4, way 1): Privacy-CA enrollment on a real (simulated) TPM,
then quotes carrying the AK certificate chain appraised by the pure core against only the
manufacturer CA anchor. Each attack is a distinct typed rejection."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devattest import errors
from devattest.attester.provisioning import chain_der, issue_owner_certificate
from devattest.attester.tpm_enrollment import (
    AkChallenge,
    EndorsementTrust,
    PrivacyCa,
    issue_tpm_ak_certificate,
    start_ak_enrollment,
)
from devattest.attester.tpm_quote import AK_ATTRIBUTES, TpmHandle, TpmQuoteAttester
from devattest.crypto import pki
from devattest.crypto.chain import with_crls
from devattest.model import CertificateAnchor, Status, TrustAnchors
from devattest.policy._builtin import DefaultPolicy
from devattest.schemes import SchemeRegistry
from devattest.schemes.tpm import DEFAULT_PCR_SELECTION, MEDIA_TYPE, TpmQuoteScheme
from devattest.schemes.tpm.structures import RESTRICTED
from devattest.verifier import verify, verify_strict
from tests._support.swtpm import Swtpm, running_swtpm
from tests.integration.tpm.conftest import BOOT, CLASS_ID, reference_values

pytestmark = pytest.mark.integration
NOW = dt.datetime.fromtimestamp(1_760_000_000, dt.UTC)
REGISTRY = SchemeRegistry([TpmQuoteScheme()])
SWTPM_LOCALCA = Path("/var/lib/swtpm-localca")


@dataclass
class TpmDevice:
    attester: TpmQuoteAttester
    ek: TpmHandle
    ak: TpmHandle

    def quote(self, nonce: bytes, chain: tuple[bytes, ...], ak: TpmHandle | None = None
              ) -> bytes:
        return self.attester.quote(ak or self.ak, nonce, DEFAULT_PCR_SELECTION, x5chain=chain)


def _boot(att: TpmQuoteAttester) -> None:
    att.measure_class_id(CLASS_ID)
    for name, image, version, pcr in BOOT:
        att.measure_image(name, image, version=version, pcr=pcr)


@pytest.fixture
def tpm_device(swtpm: Swtpm) -> Iterator[TpmDevice]:
    att = TpmQuoteAttester(swtpm.tcti)
    dev = TpmDevice(att, att.create_ek(), att.create_ak())
    _boot(att)
    yield dev
    att.close()


@pytest.fixture(scope="module")
def manufacturer() -> pki.ManufacturerPki:
    return pki.create_manufacturer_pki("Acme TPM Devices", now=NOW - dt.timedelta(days=1))


def _anchors(m: pki.ManufacturerPki, *crls: x509.CertificateRevocationList) -> TrustAnchors:
    return TrustAnchors.of(certificates=[CertificateAnchor(
        m.root.certificate, "manufacturer:acme", tuple(crls))])


def _privacy_ca(m: pki.ManufacturerPki, *eks: TpmHandle) -> PrivacyCa:
    return PrivacyCa(m.issuing, EndorsementTrust.of(registered_ek_publics=[e.public for e in eks]))


def _enroll(ca: PrivacyCa, dev: TpmDevice, ak: TpmHandle | None = None,
            serial: str = "GW-0001") -> tuple[bytes, ...]:
    ak = ak or dev.ak
    challenge = ca.challenge(dev.attester.ak_enrollment_request(dev.ek, ak), now=NOW)
    secret = dev.attester.answer_ak_challenge(ak, dev.ek, challenge)
    return chain_der(ca.complete(challenge.enrollment_id, secret, now=NOW, serial=serial))


def _appraise(evidence: bytes, nonce: bytes, anchors: TrustAnchors, *, strict: bool = False
              ) -> object:
    fn = verify_strict if strict else verify
    return fn(evidence, media_type=MEDIA_TYPE, expected_nonce=nonce, trust_anchors=anchors,
              reference_values=reference_values(), policy=DefaultPolicy(), now=NOW,
              registry=REGISTRY)


# ------------------------------------------------------------------ enrollment
def test_enrollment_issues_ak_certificate(manufacturer: pki.ManufacturerPki,
                                          tpm_device: TpmDevice) -> None:
    chain = _enroll(_privacy_ca(manufacturer, tpm_device.ek), tpm_device)
    leaf = x509.load_der_x509_certificate(chain[0])
    assert chain[1] == manufacturer.issuing.certificate.public_bytes(
        Encoding.DER)
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign and not ku.key_encipherment
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {pki.OID_KP_ATTESTATION_KEY, pki.OID_TCG_KP_AIK_CERTIFICATE}
    assert ExtendedKeyUsageOID.CLIENT_AUTH not in eku
    assert pki.hardware_backend_of(leaf) == "tpm2"
    assert pki.tpm_object_name_of(leaf) == tpm_device.ak.name
    assert leaf.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "GW-0001"
    from devattest.schemes.tpm.structures import parse_public

    assert leaf.public_key() == parse_public(tpm_device.ak.public).public_key()


def test_quote_with_ak_certificate_affirms_against_manufacturer_root_only(
        manufacturer: pki.ManufacturerPki, tpm_device: TpmDevice) -> None:
    chain = _enroll(_privacy_ca(manufacturer, tpm_device.ek), tpm_device)
    nonce = os.urandom(32)
    result = _appraise(tpm_device.quote(nonce, chain), nonce, _anchors(manufacturer),
                       strict=True)
    assert result.status is Status.AFFIRMING, result.reasons  # type: ignore[attr-defined]
    tv = result.submods["tpm"].trust_vector  # type: ignore[attr-defined]
    assert tv.instance_identity == 2
    assert tv.hardware == 2
    assert tv.executables == 2


# ------------------------------------------------------------------ attacks on the verifier
def test_rejects_ak_certificate_for_another_ak_key_substitution(
        manufacturer: pki.ManufacturerPki, tpm_device: TpmDevice) -> None:
    chain = _enroll(_privacy_ca(manufacturer, tpm_device.ek), tpm_device)
    # A second AK in the same TPM (say, created by malware) quotes under the first's cert.
    tpm_device.attester.esapi.flush_context(tpm_device.ek.handle)  # swtpm: 3 transient objects
    other = tpm_device.attester.create_ak()
    nonce = os.urandom(32)
    ev = tpm_device.quote(nonce, chain, ak=other)
    with pytest.raises(errors.KeyMismatch) as err:
        _appraise(ev, nonce, _anchors(manufacturer), strict=True)
    assert err.value.step == "3.1"
    res = _appraise(ev, nonce, _anchors(manufacturer))
    assert res.status is Status.CONTRAINDICATED  # type: ignore[attr-defined]
    assert res.reasons[0][0] == "key_mismatch"  # type: ignore[attr-defined]


def test_rejects_ak_certificate_from_another_manufacturer(
        manufacturer: pki.ManufacturerPki, tpm_device: TpmDevice) -> None:
    rogue = pki.create_manufacturer_pki("Rogue TPM Devices", now=NOW - dt.timedelta(days=1))
    chain = _enroll(_privacy_ca(rogue, tpm_device.ek), tpm_device)
    nonce = os.urandom(32)
    res = _appraise(tpm_device.quote(nonce, chain), nonce, _anchors(manufacturer))
    assert res.status is Status.CONTRAINDICATED  # type: ignore[attr-defined]
    assert res.reasons[0][0] == "chain_untrusted"  # type: ignore[attr-defined]
    tv = res.submods["evidence"].trust_vector  # type: ignore[attr-defined]
    assert tv.instance_identity in (96, 97)


def test_rejects_revoked_ak_certificate(manufacturer: pki.ManufacturerPki,
                                        tpm_device: TpmDevice) -> None:
    chain = _enroll(_privacy_ca(manufacturer, tpm_device.ek), tpm_device)
    leaf = x509.load_der_x509_certificate(chain[0])
    crl = pki.revoke(manufacturer.issuing, None, leaf.serial_number, now=NOW,
                     reason=x509.ReasonFlags.key_compromise)
    nonce = os.urandom(32)
    ev = tpm_device.quote(nonce, chain)
    # Before the CRL: affirming; with it (a new anchor generation): revoked.
    assert _appraise(ev, nonce, _anchors(manufacturer)).status is Status.AFFIRMING  # type: ignore[attr-defined]
    revoked = with_crls(_anchors(manufacturer), "manufacturer:acme", [crl])
    with pytest.raises(errors.CertificateRevoked):
        _appraise(ev, nonce, revoked, strict=True)
    res = _appraise(ev, nonce, revoked)
    assert res.reasons[0][0] == "certificate_revoked"  # type: ignore[attr-defined]


# ------------------------------------------------------------------ attacks on the CA
def test_enrollment_refuses_non_restricted_key(manufacturer: pki.ManufacturerPki,
                                               tpm_device: TpmDevice) -> None:
    # An unrestricted signing key could sign a forged TPMS_ATTEST: never certify it.
    tpm_device.attester.esapi.flush_context(tpm_device.ak.handle)  # swtpm: 3 transient objects
    unrestricted = tpm_device.attester.create_ak(attributes=AK_ATTRIBUTES & ~RESTRICTED)
    ca = _privacy_ca(manufacturer, tpm_device.ek)
    with pytest.raises(errors.AttestationKeyAttributes, match="restricted"):
        ca.challenge(tpm_device.attester.ak_enrollment_request(tpm_device.ek, unrestricted),
                     now=NOW)


def test_enrollment_refuses_wrong_activation_secret(manufacturer: pki.ManufacturerPki,
                                                    tpm_device: TpmDevice) -> None:
    ca = _privacy_ca(manufacturer, tpm_device.ek)
    challenge = ca.challenge(tpm_device.attester.ak_enrollment_request(
        tpm_device.ek, tpm_device.ak), now=NOW)
    with pytest.raises(errors.CredentialActivationFailed) as err:
        ca.complete(challenge.enrollment_id, os.urandom(32), now=NOW, serial="GW-0001")
    assert type(err.value) is errors.CredentialActivationFailed
    # The challenge is spent: even the right secret is refused afterwards.
    secret = tpm_device.attester.answer_ak_challenge(tpm_device.ak, tpm_device.ek, challenge)
    with pytest.raises(errors.CredentialActivationReplayed):
        ca.complete(challenge.enrollment_id, secret, now=NOW, serial="GW-0001")


def test_enrollment_refuses_replayed_activation(manufacturer: pki.ManufacturerPki,
                                                tpm_device: TpmDevice) -> None:
    ca = _privacy_ca(manufacturer, tpm_device.ek)
    challenge = ca.challenge(tpm_device.attester.ak_enrollment_request(
        tpm_device.ek, tpm_device.ak), now=NOW)
    secret = tpm_device.attester.answer_ak_challenge(tpm_device.ak, tpm_device.ek, challenge)
    ca.complete(challenge.enrollment_id, secret, now=NOW, serial="GW-0001")
    # An eavesdropper replays the device's answer to get a second certificate.
    with pytest.raises(errors.CredentialActivationReplayed):
        ca.complete(challenge.enrollment_id, secret, now=NOW, serial="GW-0002")


def test_enrollment_refuses_unregistered_ek(manufacturer: pki.ManufacturerPki,
                                            tpm_device: TpmDevice) -> None:
    ca = PrivacyCa(manufacturer.issuing, EndorsementTrust())
    with pytest.raises(errors.EndorsementKeyUntrusted):
        ca.challenge(tpm_device.attester.ak_enrollment_request(tpm_device.ek, tpm_device.ak),
                     now=NOW)


def test_enrollment_refuses_ak_outside_the_ek_tpm(manufacturer: pki.ManufacturerPki,
                                                  tpm_device: TpmDevice) -> None:
    # A software TPM under the attacker's control holds the AK; the genuine TPM's EK is
    # named in the request. The genuine TPM cannot activate a credential for an AK name it
    # does not hold, and the rogue TPM does not hold the EK.
    with running_swtpm() as rogue_tpm, TpmQuoteAttester(rogue_tpm.tcti) as rogue:
        rogue_ak = rogue.create_ak()
        rogue_ek = rogue.create_ek()
        pending = start_ak_enrollment(
            tpm_device.attester.ak_enrollment_request(tpm_device.ek, rogue_ak),
            trust=EndorsementTrust.of(registered_ek_publics=[tpm_device.ek.public]), now=NOW)
        ch: AkChallenge = pending.challenge
        with pytest.raises(errors.SecureElementError):
            rogue.answer_ak_challenge(rogue_ak, rogue_ek, ch)
        with pytest.raises(errors.SecureElementError):
            tpm_device.attester.answer_ak_challenge(tpm_device.ak, tpm_device.ek, ch)
        with pytest.raises(errors.CredentialActivationFailed):
            issue_tpm_ak_certificate(manufacturer.issuing, pending, b"\0" * 32,
                                     subject=pki.device_name(organization="Acme", serial="x"),
                                     now=NOW)


def test_enrollment_with_ek_certificate_from_trusted_ek_ca(
        manufacturer: pki.ManufacturerPki) -> None:
    # swtpm_setup manufactures the TPM with an EK certificate from swtpm's local CA (the
    # stand-in for a TPM manufacturer's EK issuing CA).
    tpm = Swtpm(create_ek=True)
    try:
        tpm.start()
    except subprocess.CalledProcessError as exc:
        tpm.stop()
        pytest.skip(f"swtpm_setup cannot create EK certificates here: {exc.stderr!r}")
    try:
        _enroll_with_ek_certificate(manufacturer, tpm)
    finally:
        tpm.stop()


def _enroll_with_ek_certificate(manufacturer: pki.ManufacturerPki, tpm: Swtpm) -> None:
    now = dt.datetime.now(dt.UTC)  # swtpm-localca issues EK certificates valid from today
    with TpmQuoteAttester(tpm.tcti) as att:
        ek, ak = att.create_ek(), att.create_ak()
        ek_cert = att.read_ek_certificate()
        assert ek_cert is not None
        ek_ca = x509.load_pem_x509_certificate((SWTPM_LOCALCA / "issuercert.pem").read_bytes())
        ca = PrivacyCa(manufacturer.issuing, EndorsementTrust(ek_ca_certificates=(ek_ca,)))
        req = att.ak_enrollment_request(ek, ak, ek_certificate=ek_cert)
        ch = ca.challenge(req, now=now)
        chain = ca.complete(ch.enrollment_id, att.answer_ak_challenge(ak, ek, ch), now=now,
                            serial="GW-EK-1")
        assert pki.tpm_object_name_of(chain[0]) == ak.name
        # A certificate for another key, presented as this EK's, is refused.
        forged = att.ak_enrollment_request(
            ek, ak, ek_certificate=manufacturer.issuing.certificate.public_bytes(Encoding.DER))
        with pytest.raises(errors.EndorsementKeyUntrusted, match="another key"):
            ca.challenge(forged, now=now)
        # Without a trusted EK CA the genuine EK certificate is not enough.
        with pytest.raises(errors.EndorsementKeyUntrusted, match="no trusted EK CA"):
            PrivacyCa(manufacturer.issuing, EndorsementTrust()).challenge(req, now=now)


# ------------------------------------------------------------------ onboarding
def test_onboarding_with_tpm_quote_bound_to_ak_certificate(
        manufacturer: pki.ManufacturerPki, tpm_device: TpmDevice) -> None:
    chain = _enroll(_privacy_ca(manufacturer, tpm_device.ek), tpm_device)
    nonce = os.urandom(32)
    ev = tpm_device.quote(nonce, chain)
    result = _appraise(ev, nonce, _anchors(manufacturer), strict=True)
    owner_ca = pki.create_owner_ca("Owner One", now=NOW - dt.timedelta(days=1))
    cred = issue_owner_certificate(owner_ca, result=result,  # type: ignore[arg-type]
                                   evidence=ev, device_chain=chain,
                                   manufacturer_anchors=_anchors(manufacturer), now=NOW,
                                   evidence_media_type=MEDIA_TYPE)
    assert cred.certificate.public_key() == x509.load_der_x509_certificate(
        chain[0]).public_key()
    assert pki.hardware_backend_of(cred.certificate) == "tpm2"
    # The owner chain certifies the AK too: a quote under it verifies against the owner CA.
    owner_chain = chain_der([cred.certificate])
    nonce2 = os.urandom(32)
    owner_anchors = TrustAnchors.of(certificates=[CertificateAnchor(
        owner_ca.certificate, "owner:one")])
    res = _appraise(tpm_device.quote(nonce2, owner_chain), nonce2, owner_anchors)
    assert res.status is Status.AFFIRMING, res.reasons  # type: ignore[attr-defined]


def test_onboarding_refuses_tpm_quote_by_another_ak(manufacturer: pki.ManufacturerPki,
                                                    tpm_device: TpmDevice) -> None:
    ca = _privacy_ca(manufacturer, tpm_device.ek)
    chain = _enroll(ca, tpm_device)
    tpm_device.attester.esapi.flush_context(tpm_device.ak.handle)  # swtpm: 3 transient objects
    other = tpm_device.attester.create_ak()
    other_chain = _enroll(ca, tpm_device, ak=other, serial="GW-0002")
    nonce = os.urandom(32)
    # A good quote by the other AK (with its own chain) is presented with the first chain.
    ev = tpm_device.quote(nonce, other_chain, ak=other)
    result = _appraise(ev, nonce, _anchors(manufacturer), strict=True)
    owner_ca = pki.create_owner_ca("Owner One", now=NOW - dt.timedelta(days=1))
    with pytest.raises(errors.OnboardingRefused) as err:
        issue_owner_certificate(owner_ca, result=result,  # type: ignore[arg-type]
                                evidence=ev, device_chain=chain,
                                manufacturer_anchors=_anchors(manufacturer), now=NOW,
                                evidence_media_type=MEDIA_TYPE)
    assert err.value.step == "5"
