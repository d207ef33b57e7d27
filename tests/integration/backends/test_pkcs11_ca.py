"""Manufacturer and owner CA keys kept in a PKCS#11 token (a private SoftHSM2), through the
``devattest pki`` and ``devattest device`` commands: the key is generated on the token, never
written to disk, and every certificate and CRL is signed inside the token."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

pytest.importorskip("pkcs11")

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from devattest.attester.backends.pkcs11 import TokenCaKey
from devattest.attester.provisioning import CaDirectory
from devattest.cli.main import app, console, err_console
from devattest.crypto import pki
from devattest.errors import SecureElementError
from tests._support.softhsm import SoftHsmToken

pytestmark = pytest.mark.integration
runner = CliRunner()
PIN_ENV = "DEVATTEST_TEST_CA_PIN"


def cli(*args: str | Path) -> tuple[int, str]:
    widths = console.width, err_console.width
    console.width = err_console.width = 240
    try:
        result = runner.invoke(app, [str(a) for a in args])
    finally:
        console.width, err_console.width = widths
    return result.exit_code, result.output


def token_args(token: SoftHsmToken, key_label: str) -> list[str]:
    return ["--pkcs11-module", token.module, "--token-label", token.label,
            "--key-label", key_label, "--pin-env", PIN_ENV]


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, softhsm_token: SoftHsmToken
            ) -> tuple[Path, str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(PIN_ENV, softhsm_token.pin)
    label = f"acme-{uuid.uuid4().hex[:8]}"
    code, out = cli("pki", "init-manufacturer", "acme", "--org", "Acme Devices",
                    *token_args(softhsm_token, label))
    assert code == 0, out
    return tmp_path, label


def test_copied_ca_directory_holds_no_ca_key_when_it_lives_in_a_token(
        factory: tuple[Path, str], softhsm_token: SoftHsmToken) -> None:
    _, label = factory
    for name, suffix in (("root", "root"), ("issuing", "issuing")):
        directory = Path("acme") / name
        assert not (directory / "key.pem").exists()
        ref = json.loads((directory / "key.pkcs11.json").read_text())
        assert ref == {"module": softhsm_token.module, "token_label": softhsm_token.label,
                       "key_label": f"{label}-{suffix}"}
        assert softhsm_token.pin not in (directory / "key.pkcs11.json").read_text()
    root = pki.load_certificate("acme/root/cert.pem")
    issuing = pki.load_certificate("acme/issuing/cert.pem")
    root.verify_directly_issued_by(root)
    issuing.verify_directly_issued_by(root)
    ca = CaDirectory(Path("acme/issuing")).load(softhsm_token.pin.encode())
    assert isinstance(ca.private_key, TokenCaKey)
    with pytest.raises(SecureElementError):
        ca.private_key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


def test_device_certificate_and_crl_are_signed_inside_the_token(
        factory: tuple[Path, str], softhsm_token: SoftHsmToken) -> None:
    Path("se.yaml").write_text("backend: unsafe_software\nunsafe_software:\n"
                               "  key_path: dev.pem\n")
    code, out = cli("device", "provision", "--ca", "acme/issuing", "--se", "se.yaml",
                    "--serial", "SN-1", "--out", "certs", "--pin-env", PIN_ENV)
    assert code == 0, out
    leaf = pki.load_certificate("certs/cert.pem")
    issuing = pki.load_certificate("acme/issuing/cert.pem")
    leaf.verify_directly_issued_by(issuing)
    code, out = cli("device", "revoke", "--ca", "acme/issuing", "--cert", "certs/cert.pem",
                    "--pin-env", PIN_ENV)
    assert code == 0, out
    crl = x509.load_pem_x509_crl(Path("acme/issuing/crl.pem").read_bytes())
    assert crl.is_signature_valid(issuing.public_key())
    assert crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None


def test_issuing_from_a_token_ca_without_its_pin_is_a_clear_error(
        factory: tuple[Path, str]) -> None:
    Path("se.yaml").write_text("backend: unsafe_software\nunsafe_software:\n"
                               "  key_path: dev.pem\n")
    code, out = cli("device", "provision", "--ca", "acme/issuing", "--se", "se.yaml",
                    "--serial", "SN-2", "--out", "certs")
    assert code == 3
    assert "give its user PIN" in out


def test_init_refuses_to_reuse_a_key_label_already_on_the_token(
        factory: tuple[Path, str], softhsm_token: SoftHsmToken) -> None:
    _, label = factory
    code, out = cli("pki", "init-manufacturer", "other", "--org", "Other",
                    *token_args(softhsm_token, label))
    assert code == 3
    assert "already holds a key labelled" in out
    assert not Path("other/root/cert.pem").exists()


def test_owner_ca_in_a_token(factory: tuple[Path, str], softhsm_token: SoftHsmToken) -> None:
    code, out = cli("pki", "init-owner", "owner", "--org", "Fleet A",
                    *token_args(softhsm_token, f"owner-{uuid.uuid4().hex[:8]}"))
    assert code == 0, out
    assert not Path("owner/key.pem").exists()
    code, out = cli("pki", "crl", "owner", "--reissue", "--pin-env", PIN_ENV)
    assert code == 0, out
    assert json.loads(out)["crl_number"] == 2
