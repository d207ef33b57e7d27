"""``devattest verify --max-eventlog-size``: the TPM scheme's event-log limit from the CLI
(issue 13 item 11). A bare-metal SHA-1 log over 64 KiB is appraised under the default
(1 MiB) and refused, naming the limit, under a smaller one."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from devattest.cli.main import app
from tests.unit.tpm import _legacy_log as legacy

runner = CliRunner()


def _files(tmp_path: Path) -> tuple[Path, Path, str]:
    events = legacy.real_pc_boot() + [
        (2, legacy.EV_EFI_BOOT_SERVICES_DRIVER, legacy.sha1(b"drv %d" % i), b"D" * 200)
        for i in range(600)]
    b = legacy.build_sha1_quote(events)
    assert len(b.evidence) > 128 * 1024
    ev = tmp_path / "quote.cbor"
    ev.write_bytes(b.evidence)
    key = tmp_path / "ak.pem"
    key.write_bytes(b.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return ev, key, b.nonce.hex()


def test_bare_metal_sha1_log_over_64_kib_is_appraised_from_the_cli(tmp_path: Path) -> None:
    ev, key, nonce = _files(tmp_path)
    r = runner.invoke(app, ["verify", str(ev), "--nonce", nonce, "--key", str(key), "--json",
                            "--media-type", "application/vnd.devattest.tpm-quote+cbor",
                            "--allow-unappraised-software"])
    claims = json.loads(r.output)
    tv = claims["submods"]["tpm"]["ear_trustworthiness_vector"]
    assert tv["instance-identity"] == 2 and tv["executables"] == 32, claims
    assert r.exit_code == 1  # warning: SHA-1


def test_max_eventlog_size_refuses_a_larger_log_naming_the_limit(tmp_path: Path) -> None:
    ev, key, nonce = _files(tmp_path)
    r = runner.invoke(app, ["verify", str(ev), "--nonce", nonce, "--key", str(key), "--json",
                            "--max-eventlog-size", "65536",
                            "--media-type", "application/vnd.devattest.tpm-quote+cbor",
                            "--allow-unappraised-software"])
    assert r.exit_code == 2, r.output
    # 65536 of log + 65536 for the rest of the Evidence: 131072.
    assert "the limit is 131072" in r.output, r.output
