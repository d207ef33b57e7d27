"""deploy/systemd: the host-install units are valid (systemd-analyze verify), hardened, and
start commands devattest has."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.deploy._commands import assert_devattest_accepts

ROOT = Path(__file__).resolve().parents[3]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
SYSTEM_UNITS = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                     if (p / "sysinit.target").exists()), None)

#: Each unit runs unprivileged in a read-only system with no capabilities (issue 15, item 6).
HARDENING = {
    "DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
    "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
    "CapabilityBoundingSet": "", "StateDirectory": "devattest",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes", "UMask": "0077",
}


def _service(unit: Path) -> dict[str, list[str]]:
    """The [Service] section, each key with all its values (systemd keys repeat)."""
    values: dict[str, list[str]] = {}
    section = None
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def _analyze_root(tmp_path: Path) -> Path:
    """A root holding the system's units, ours, and a stand-in devattest executable."""
    if shutil.which("systemd-analyze") is None or SYSTEM_UNITS is None:
        pytest.skip("systemd-analyze is not installed")
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    exe = root / "opt/devattest/bin/devattest"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return root


def test_units_exist_for_verifier_bridge_and_migration() -> None:
    assert {u.name for u in UNITS} == {"devattest-verifier.service",
                                       "devattest-bridge.service",
                                       "devattest-migrate.service"}


def test_systemd_analyze_verify_finds_no_error_or_unknown_directive(tmp_path: Path) -> None:
    root = _analyze_root(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *(u.name for u in UNITS)],
        capture_output=True, text=True, timeout=60, check=False)
    # verify exits 0 on an unknown (misspelt, so silently ignored) key: any output fails
    assert result.returncode == 0 and not result.stdout and not result.stderr, (
        result.stdout + result.stderr)


def test_units_exposure_stays_low_so_a_compromised_worker_is_contained(
        tmp_path: Path) -> None:
    root = _analyze_root(tmp_path)
    for unit in UNITS:
        result = subprocess.run(
            ["systemd-analyze", "security", "--offline=true", f"--root={root}",
             "--threshold=20", "--no-pager", unit.name],
            capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, f"{unit.name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_runs_unprivileged_in_a_read_only_system(unit: Path) -> None:
    service = _service(unit)
    for key, value in HARDENING.items():
        assert value in service.get(key, []), f"{unit.name}: {key}={value} missing"
    assert "@system-service" in service.get("SystemCallFilter", [])
    # secrets are credentials handed over as *_FILE paths, never values in the unit
    assert any(v.startswith("database_url:") for v in service["LoadCredential"])
    env = " ".join(service.get("Environment", []))
    assert "DEVATTEST_DATABASE_URL_FILE=%d/database_url" in env
    assert "DEVATTEST_DATABASE_URL=" not in env and "PASSWORD=" not in env


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_starts_a_command_devattest_has(unit: Path) -> None:
    service = _service(unit)
    (exec_start,) = service["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == "/opt/devattest/bin/devattest"
    defaults = dict(kv.split("=", 1) for e in service["Environment"] for kv in e.split())
    args = [defaults.get(a[2:-1], a) if a.startswith("${") else a for a in argv[1:]]
    assert_devattest_accepts([a.replace("%H", "host") for a in args])


def test_unit_files_parse_as_ini() -> None:
    for unit in UNITS:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.read_string(unit.read_text())
        assert parser.has_section("Unit") and parser.has_section("Install")
