"""The unsafe_software backend: a test-only key that says so, loudly, on every use."""

from __future__ import annotations

import logging

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from devattest.attester.backends import open_secure_element
from devattest.attester.backends._base import SecureElement
from devattest.attester.backends.unsafe_software import UnsafeSoftwareConfig, UnsafeSoftwareKey
from devattest.crypto import pki
from devattest.errors import ConfigurationError


def _unsafe_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "devattest.unsafe" and r.levelno == logging.WARNING]


def test_signs_es256_raw_r_s() -> None:
    se: SecureElement = UnsafeSoftwareKey.generate()
    sig = se.sign(b"tbs")
    assert len(sig) == 64
    se.public_key().verify(
        encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")),
        b"tbs", ec.ECDSA(hashes.SHA256()))
    assert se.alg == -7
    assert se.key_id == pki.key_identifier(se.public_key())


def test_properties_say_not_hardware_backed_and_exportable() -> None:
    props = UnsafeSoftwareKey.generate().properties
    assert props.hardware_backed is False
    assert props.non_exportable is False
    assert props.backend == "unsafe_software"


def test_logs_a_warning_on_every_use(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="devattest.unsafe")
    se = UnsafeSoftwareKey.generate()
    assert len(_unsafe_warnings(caplog)) == 1
    for _ in range(3):
        se.sign(b"x")
    warnings = _unsafe_warnings(caplog)
    assert len(warnings) == 4
    assert all("UNSAFE" in r.getMessage() for r in warnings)


def test_key_file_created_owner_only_and_reopened(tmp_path) -> None:
    path = tmp_path / "device-key.pem"
    first = open_secure_element({"backend": "unsafe_software", "key_path": str(path)})
    assert path.stat().st_mode & 0o777 == 0o600
    again = UnsafeSoftwareKey.open(UnsafeSoftwareConfig(str(path), create=False))
    assert again.public_key() == first.public_key()


def test_missing_key_file_without_create_is_a_configuration_error(tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="no such key"):
        UnsafeSoftwareKey.open(UnsafeSoftwareConfig(str(tmp_path / "nope.pem"), create=False))


def test_rejects_non_p256_key_file(tmp_path) -> None:
    path = tmp_path / "p384.pem"
    pki.save_private_key(path, ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ConfigurationError, match="P-256"):
        UnsafeSoftwareKey.open(UnsafeSoftwareConfig(str(path)))


def test_rejects_garbage_key_file(tmp_path) -> None:
    path = tmp_path / "bad.pem"
    path.write_text("not a key")
    with pytest.raises(ConfigurationError):
        UnsafeSoftwareKey.open(UnsafeSoftwareConfig(str(path)))
