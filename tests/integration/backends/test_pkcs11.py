"""The pkcs11 secure-element backend against a real PKCS#11 token: a private SoftHSM2."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

pkcs11 = pytest.importorskip("pkcs11")

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass  # noqa: E402
from pkcs11.util.ec import encode_named_curve_parameters  # noqa: E402

from devattest.attester.backends import open_secure_element  # noqa: E402
from devattest.attester.backends._base import SecureElement  # noqa: E402
from devattest.attester.backends.pkcs11 import Pkcs11Config, Pkcs11Key  # noqa: E402
from devattest.crypto import pki  # noqa: E402
from devattest.crypto.chain import require_hardware_backed, validate_chain  # noqa: E402
from devattest.errors import (  # noqa: E402
    ConfigurationError,
    HardwareBackingRequired,
    SecureElementError,
)
from devattest.model import CertificateAnchor, TrustAnchors  # noqa: E402
from tests._support.softhsm import SoftHsmToken  # noqa: E402

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _label() -> str:
    return f"k-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def key(softhsm_token: SoftHsmToken):
    se = open_secure_element(softhsm_token.config(key_label=_label()))
    assert isinstance(se, Pkcs11Key)
    yield se
    se.close()


@pytest.fixture
def raw_session(softhsm_token: SoftHsmToken):
    """A separate PKCS#11 session on the same token: what other firmware on the device sees."""
    token = pkcs11.lib(softhsm_token.module).get_token(token_label=softhsm_token.label)
    try:
        session = token.open(user_pin=softhsm_token.pin, rw=True)
    except pkcs11.UserAlreadyLoggedIn:  # login state is per process
        session = token.open(rw=True)
    yield session
    session.close()


def _private_object(session, label: str):
    return session.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.EC,
                           label=label)


def _verify_es256(public_key, data: bytes, sig: bytes) -> None:
    assert len(sig) == 64
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))


def test_generated_key_signs_es256_raw_r_s(key: Pkcs11Key) -> None:
    se: SecureElement = key
    data = b"COSE Sig_structure bytes"
    _verify_es256(se.public_key(), data, se.sign(data))
    assert se.alg == -7
    assert isinstance(se.public_key().curve, ec.SECP256R1)
    assert se.key_id == pki.key_identifier(se.public_key())
    assert se.properties.backend == "pkcs11"
    assert se.properties.non_exportable is True


def test_softhsm_is_not_reported_as_hardware(key: Pkcs11Key) -> None:
    assert key.properties.hardware_backed is False


def test_hardware_backed_can_be_declared_by_config(softhsm_token: SoftHsmToken) -> None:
    with Pkcs11Key(Pkcs11Config(token_label=softhsm_token.label, pin=softhsm_token.pin,
                                module=softhsm_token.module, key_label=_label(),
                                hardware_backed=True)) as se:
        assert se.properties.hardware_backed is True


def test_reopen_finds_the_same_key(softhsm_token: SoftHsmToken) -> None:
    label = _label()
    with Pkcs11Key(Pkcs11Config(token_label=softhsm_token.label, pin=softhsm_token.pin,
                                module=softhsm_token.module, key_label=label)) as first:
        public = first.public_key()
    with Pkcs11Key(Pkcs11Config(token_label=softhsm_token.label, pin=softhsm_token.pin,
                                module=softhsm_token.module, key_label=label,
                                create=False)) as again:
        assert again.public_key() == public


def test_missing_key_without_create_is_a_configuration_error(
        softhsm_token: SoftHsmToken) -> None:
    with pytest.raises(ConfigurationError, match="no key"):
        open_secure_element(softhsm_token.config(key_label=_label(), create=False))


def test_wrong_pin_is_refused(softhsm_spare_token: SoftHsmToken) -> None:
    token = softhsm_spare_token  # no session of this process is logged in to it
    with pytest.raises(SecureElementError, match="cannot log in"):
        open_secure_element({**token.config(key_label=_label()), "pin": "0000"})


def test_unknown_token_is_a_configuration_error(softhsm_token: SoftHsmToken) -> None:
    with pytest.raises(ConfigurationError, match="token"):
        open_secure_element({**softhsm_token.config(), "token_label": "no-such-token"})


# ----------------------------------------------------------------------------------------
# The private key cannot be read out.
# ----------------------------------------------------------------------------------------
def test_private_key_value_cannot_be_read(key: Pkcs11Key, raw_session) -> None:
    priv = _private_object(raw_session, key.label)
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        priv[Attribute.VALUE]


def test_private_key_is_sensitive_and_never_extractable(key: Pkcs11Key, raw_session) -> None:
    priv = _private_object(raw_session, key.label)
    assert priv[Attribute.SENSITIVE] is True
    assert priv[Attribute.EXTRACTABLE] is False
    assert priv[Attribute.ALWAYS_SENSITIVE] is True
    assert priv[Attribute.NEVER_EXTRACTABLE] is True
    assert priv[Attribute.LOCAL] is True
    assert priv[Attribute.TOKEN] is True


def test_rejects_wrapping_private_key_out_with_a_token_key(key: Pkcs11Key, raw_session) -> None:
    wrapping = raw_session.generate_key(KeyType.AES, 256, label=f"wrap-{_label()}",
                                        capabilities=pkcs11.MechanismFlag.WRAP
                                        | pkcs11.MechanismFlag.UNWRAP
                                        | pkcs11.MechanismFlag.ENCRYPT)
    priv = _private_object(raw_session, key.label)
    with pytest.raises(pkcs11.exceptions.KeyUnextractable):
        wrapping.wrap_key(priv, mechanism=Mechanism.AES_KEY_WRAP_PAD)


def test_rejects_making_private_key_extractable_again(key: Pkcs11Key, raw_session) -> None:
    priv = _private_object(raw_session, key.label)
    with pytest.raises(pkcs11.PKCS11Error):
        priv[Attribute.EXTRACTABLE] = True
    with pytest.raises(pkcs11.PKCS11Error):
        priv[Attribute.SENSITIVE] = False
    assert priv[Attribute.EXTRACTABLE] is False


def test_rejects_opening_an_imported_exportable_key(softhsm_token: SoftHsmToken,
                                                     raw_session) -> None:
    """A key planted by software (imported, extractable) must not be used to attest."""
    label = _label()
    software = ec.generate_private_key(ec.SECP256R1())
    params = encode_named_curve_parameters("secp256r1")
    raw_session.create_object({
        Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.EC,
        Attribute.EC_PARAMS: params, Attribute.LABEL: label, Attribute.ID: label.encode(),
        Attribute.VALUE: software.private_numbers().private_value.to_bytes(32, "big"),
        Attribute.TOKEN: True, Attribute.SIGN: True, Attribute.PRIVATE: True,
        Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True,
    })
    point = software.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    raw_session.create_object({
        Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.EC,
        Attribute.EC_PARAMS: params, Attribute.EC_POINT: b"\x04\x41" + point,
        Attribute.LABEL: label, Attribute.ID: label.encode(), Attribute.TOKEN: True,
        Attribute.VERIFY: True,
    })
    with pytest.raises(SecureElementError, match="not a non-exportable on-token key"):
        open_secure_element(softhsm_token.config(key_label=label, create=False))


def test_rejects_public_key_object_not_matching_private_key(softhsm_token: SoftHsmToken,
                                                             raw_session) -> None:
    """A planted public-key object with the key's label must not be certified."""
    label = _label()
    with Pkcs11Key(Pkcs11Config(token_label=softhsm_token.label, pin=softhsm_token.pin,
                                module=softhsm_token.module, key_label=label)):
        pass
    pub = raw_session.get_key(object_class=ObjectClass.PUBLIC_KEY, key_type=KeyType.EC,
                              label=label)
    pub.destroy()
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = other.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    raw_session.create_object({
        Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.EC,
        Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1"),
        Attribute.EC_POINT: b"\x04\x41" + point, Attribute.LABEL: label,
        Attribute.ID: label.encode(), Attribute.TOKEN: True, Attribute.VERIFY: True,
    })
    with pytest.raises(SecureElementError, match="does not match"):
        open_secure_element(softhsm_token.config(key_label=label, create=False))


# ----------------------------------------------------------------------------------------
# Provisioning with the token key.
# ----------------------------------------------------------------------------------------
def test_provision_csr_signed_in_token_and_chain_validates(key: Pkcs11Key) -> None:
    m = pki.create_manufacturer_pki("Acme", now=NOW)
    subject = pki.device_name(organization="Acme", serial="SN-P11")
    csr = pki.build_csr(key, subject=subject)
    assert csr.is_signature_valid
    assert csr.public_key() == key.public_key()
    leaf = pki.issue_attestation_certificate(
        m.issuing, csr, subject=subject, now=NOW,
        hardware_backend="pkcs11" if key.properties.hardware_backed else None)
    anchors = TrustAnchors.of(certificates=[CertificateAnchor(m.root.certificate,
                                                              "manufacturer:Acme")])
    anchor = validate_chain((leaf.public_bytes(Encoding.DER),
                             m.issuing.certificate.public_bytes(Encoding.DER)),
                            anchors, now=NOW)
    assert anchor.public_key == key.public_key()
    assert anchor.authority == "manufacturer:Acme"
    # SoftHSM is software: its certificate carries no hardware-backed marker.
    with pytest.raises(HardwareBackingRequired):
        require_hardware_backed(anchor)
