"""``devattest pki``, ``device``, ``attester`` and ``verify`` with CA anchors, in process, on
the unsafe_software backend (the lifecycle page runs the same commands on SoftHSM2): the
options the page does not exercise, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from devattest.cli.main import app, console, err_console

pytestmark = pytest.mark.integration

NONCE = "ab" * 32
runner = CliRunner()
#: The CA keys of these tests are encrypted under a passphrase from the environment, as a
#: factory keeps them; every command that creates or uses a CA key is given it.
CA_PASSPHRASE_ENV = "DEVATTEST_TEST_CA_PASSPHRASE"
_USES_CA_KEY = {("pki", "init-manufacturer"), ("pki", "init-owner"), ("device", "provision"),
                ("device", "revoke"), ("device", "onboard")}


@pytest.fixture(autouse=True)
def _ca_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CA_PASSPHRASE_ENV, "a factory passphrase")


def run(*args: str | Path) -> tuple[int, str]:
    argv = [str(a) for a in args]
    if tuple(argv[:2]) in _USES_CA_KEY:
        argv += ["--key-passphrase-env", CA_PASSPHRASE_ENV]
    # The CLI's rich consoles fix their width when first built (whichever test did that):
    # make it wide enough that messages are not wrapped, and restore it.
    widths = console.width, err_console.width
    console.width = err_console.width = 240
    try:
        result = runner.invoke(app, argv)
    finally:
        console.width, err_console.width = widths
    return result.exit_code, result.output


def ok(*args: str | Path) -> str:
    code, out = run(*args)
    assert code == 0, out
    return out


def _pem_key(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub = path.with_suffix(".pub.pem")
    pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return pub


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A manufacturer PKI, a provisioned device (unsafe_software key) and a Verifier key."""
    monkeypatch.chdir(tmp_path)
    ok("pki", "init-manufacturer", "acme", "--org", "Acme Devices")
    Path("images").mkdir()
    Path("images/bl.bin").write_bytes(b"bootloader 1.0\n")
    Path("device.yaml").write_text(yaml.safe_dump({
        "implementation_id": "aa" * 32, "hardware_model": "m1",
        "firmware": [{"type": "BL", "image": "images/bl.bin", "version": "1.0.0",
                      "signer_id": "a5" * 32}]}))
    Path("se.yaml").write_text(yaml.safe_dump({"backend": "unsafe_software",
                                               "unsafe_software": {"key_path": "dev.pem"}}))
    ok("device", "provision", "--ca", "acme/issuing", "--se", "se.yaml", "--serial", "SN-9",
       "--firmware", "device.yaml", "--out", "certs")
    # The firmware's Reference Values: without them nothing about the software is affirmed.
    ok("attester", "measure", "device.yaml", "--reference-values", "rv.yaml")
    _pem_key(tmp_path / "verifier.pem")
    return tmp_path


def attest(chain: str = "certs/chain.pem", out: str = "ev.cbor") -> str:
    ok("attester", "attest", "device.yaml", "--se", "se.yaml", "--chain", chain,
       "--nonce", NONCE, "--out", out)
    return out


def test_pki_show_reports_purpose_tcbinfo_and_no_hardware_marker(factory: Path) -> None:
    shown = json.loads(ok("pki", "show", "certs/cert.pem"))
    assert shown["key_purposes"] == ["devattest-attestation-key"]
    assert shown["hardware_backed"] is None
    assert shown["device_serial"] == "SN-9"
    assert shown["tcb_info"]["model"] == "m1"
    assert len(shown["tcb_info"]["fwids"]) == 1
    # The key path in se.yaml is relative to the config file.
    assert (factory / "dev.pem").exists()


def test_verify_with_trust_anchors_document(factory: Path) -> None:
    attest()
    Path("anchors.yaml").write_text(yaml.safe_dump({
        "format": "devattest.trust-anchors/v1",
        "certificates": [{"certificate": Path("acme/root/cert.pem").read_text(),
                          "manufacturer": "Acme Devices",
                          "crls": [Path("acme/issuing/crl.pem").read_text()]}]}))
    code, out = run("verify", "ev.cbor", "--nonce", NONCE, "--anchors", "anchors.yaml",
                    "--refvals", "rv.yaml")
    assert code == 0, out
    assert "instance-identity=2" in out


def test_verify_require_hardware_refuses_software_key(factory: Path) -> None:
    attest()
    code, out = run("verify", "ev.cbor", "--nonce", NONCE, "--ca", "acme/root/cert.pem",
                    "--require-hardware")
    assert code == 2, out
    assert "hardware_backing_required" in out and "not hardware-backed" in out


def test_verify_refuses_key_together_with_ca_anchors_and_neither(factory: Path) -> None:
    attest()
    code, out = run("verify", "ev.cbor", "--nonce", NONCE, "--ca", "acme/root/cert.pem",
                    "--key", "verifier.pub.pem")
    assert code == 3, out
    code, out = run("verify", "ev.cbor", "--nonce", NONCE)
    assert code == 3, out


def test_verify_refuses_a_leaf_certificate_as_trust_anchor(factory: Path) -> None:
    attest()
    code, out = run("verify", "ev.cbor", "--nonce", NONCE, "--ca", "certs/cert.pem")
    assert code == 3, out
    assert "not a CA certificate" in out


def test_revoked_device_is_contraindicated_with_the_new_crl(factory: Path) -> None:
    attest()
    ok("device", "revoke", "--ca", "acme/issuing", "--cert", "certs/chain.pem")
    crl = json.loads(ok("pki", "crl", "acme/issuing"))
    assert crl["crl_number"] == 2 and crl["revoked"][0]["reason"] == "key_compromise"
    code, out = run("verify", "ev.cbor", "--nonce", NONCE, "--ca", "acme/root/cert.pem",
                    "--crl", "acme/issuing/crl.pem")
    assert code == 2, out
    assert "certificate_revoked" in out


def test_onboarding_refuses_an_ear_signed_by_another_key(factory: Path) -> None:
    attest()
    ok("pki", "init-owner", "owner", "--org", "Fleet A")
    code, out = run("verify", "ev.cbor", "--nonce", NONCE, "--ca", "acme/root/cert.pem",
                    "--refvals", "rv.yaml", "--ear-key", "verifier.pem", "--ear-out", "ear.jwt")
    assert code == 0, out
    _pem_key(factory / "impostor.pem")
    code, out = run("device", "onboard", "--owner-ca", "owner", "--chain", "certs/chain.pem",
                    "--evidence", "ev.cbor", "--result", "ear.jwt",
                    "--verifier-key", "impostor.pub.pem", "--manufacturer-ca",
                    "acme/root/cert.pem", "--out", "owner.pem")
    assert code == 3, out
    assert "onboarding_refused (step 0)" in out and "does not verify" in out
    assert not Path("owner.pem").exists()


def test_onboarding_refuses_a_contraindicated_result(factory: Path) -> None:
    attest()
    ok("pki", "init-owner", "owner", "--org", "Fleet A")
    code, out = run("verify", "ev.cbor", "--nonce", "cd" * 32, "--ca", "acme/root/cert.pem",
                    "--ear-key", "verifier.pem", "--ear-out", "ear.jwt")
    assert code == 2, out  # wrong nonce: contraindicated, and the EAR says so
    code, out = run("device", "onboard", "--owner-ca", "owner", "--chain", "certs/chain.pem",
                    "--evidence", "ev.cbor", "--result", "ear.jwt",
                    "--verifier-key", "verifier.pub.pem", "--manufacturer-ca",
                    "acme/root/cert.pem", "--out", "owner.pem")
    assert code == 3, out
    assert "not affirming" in out
    assert not Path("owner.pem").exists()


def test_onboarding_refuses_a_result_about_other_evidence(factory: Path) -> None:
    attest()
    ok("pki", "init-owner", "owner", "--org", "Fleet A")
    ok("verify", "ev.cbor", "--nonce", NONCE, "--ca", "acme/root/cert.pem",
       "--refvals", "rv.yaml", "--ear-key", "verifier.pem", "--ear-out", "ear.jwt")
    attest(out="other.cbor")
    code, out = run("device", "onboard", "--owner-ca", "owner", "--chain", "certs/chain.pem",
                    "--evidence", "other.cbor", "--result", "ear.jwt",
                    "--verifier-key", "verifier.pub.pem", "--manufacturer-ca",
                    "acme/root/cert.pem", "--out", "owner.pem")
    assert code == 3, out
    assert "not bound to the presented Evidence" in out


def test_attest_refuses_a_chain_for_another_key(factory: Path, tmp_path: Path) -> None:
    Path("se2.yaml").write_text(yaml.safe_dump({"backend": "unsafe_software",
                                                "key_path": "other.pem"}))
    ok("device", "provision", "--ca", "acme/issuing", "--se", "se2.yaml", "--serial", "SN-10",
       "--out", "certs2")
    code, out = run("attester", "attest", "device.yaml", "--se", "se.yaml", "--chain",
                    "certs2/chain.pem", "--nonce", NONCE, "--out", "ev.cbor")
    assert code == 3, out
    assert "another key" in out


def test_attester_measure_writes_reference_values_the_verifier_accepts(factory: Path) -> None:
    out = ok("attester", "measure", "device.yaml", "--reference-values", "rv.yaml")
    assert '"type": "BL"' in out
    attest()
    code, out = run("verify", "ev.cbor", "--nonce", NONCE, "--ca", "acme/root/cert.pem",
                    "--refvals", "rv.yaml")
    assert code == 0, out
    assert "executables=2" in out


def test_tpm2_device_through_the_cli_passes_require_hardware(factory: Path, swtpm: Any) -> None:
    pytest.importorskip("tpm2_pytss")
    Path("tpm.yaml").write_text(yaml.safe_dump({
        "backend": "tpm2", "tpm2": {"tcti": swtpm.tcti, "persistent_handle": "0x81010060"}}))
    ok("device", "provision", "--ca", "acme/issuing", "--se", "tpm.yaml", "--serial", "SN-T",
       "--out", "tcerts")
    assert json.loads(ok("pki", "show", "tcerts/cert.pem"))["hardware_backed"] == "tpm2"
    ok("attester", "attest", "device.yaml", "--se", "tpm.yaml", "--chain", "tcerts/chain.pem",
       "--nonce", NONCE, "--out", "tev.cbor")
    code, out = run("verify", "tev.cbor", "--nonce", NONCE, "--ca", "acme/root/cert.pem",
                    "--crl", "acme/issuing/crl.pem", "--require-hardware", "--refvals", "rv.yaml")
    assert code == 0, out
    assert "hardware=2" in out


def test_ca_key_is_encrypted_and_refused_in_clear_without_the_unsafe_flag(
        factory: Path) -> None:
    assert Path("acme/issuing/key.pem").read_bytes().startswith(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    result = runner.invoke(app, ["pki", "init-owner", "owner", "--org", "F"])
    assert result.exit_code == 3
    assert "choose how to keep the CA key" in result.output
    assert not Path("owner").exists()
    result = runner.invoke(app, ["pki", "init-owner", "owner", "--org", "F",
                                 "--unsafe-plaintext-key"])
    assert result.exit_code == 0, result.output
    assert Path("owner/key.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_ca_passphrase_is_never_an_argument_value(factory: Path) -> None:
    result = runner.invoke(app, ["pki", "init-owner", "owner", "--org", "F",
                                 "--key-passphrase", "in the process list"])
    assert result.exit_code == 2  # no such option
    assert not Path("owner").exists()


def test_issuing_without_the_ca_passphrase_is_a_clear_error(factory: Path) -> None:
    result = runner.invoke(app, ["device", "provision", "--ca", "acme/issuing", "--se",
                                 "se.yaml", "--serial", "SN-11", "--out", "certs3"])
    assert result.exit_code == 3
    assert "the CA key needs its passphrase" in result.output
    assert not Path("certs3").exists()
