"""deploy/systemd's units, as shipped, under a real systemd (in a container: Debian's systemd
as PID 1, the image's virtual environment, SQLite): the hardening (DynamicUser, the system
call filter, ProtectSystem=strict, no capabilities...) leaves the migration able to run and
the Verifier able to serve, as its own unprivileged user. systemd-analyze (the normal suite)
checks the files; only running them shows that devattest works inside the sandbox.

Opt-in with the container stack test: DEVATTEST_CONTAINER_TESTS=1.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.deploy._podman import (
    DEPLOY,
    build_image,
    image_exists,
    podman_env,
    run,
    tool,
)

pytestmark = [
    pytest.mark.integration, pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("DEVATTEST_CONTAINER_TESTS") != "1",
                       reason="opt-in: set DEVATTEST_CONTAINER_TESTS=1 (builds images)"),
    pytest.mark.timeout(1800),
]

APP_IMAGE = "localhost/devattest:systemd-test-app"
HOST_IMAGE = "localhost/devattest:systemd-test-host"
SYSTEMD_BASE = "localhost/devattest-base-systemd:bookworm"
WAIT = 120.0


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], str]]:
    podman = tool("podman")
    tmp = tmp_path_factory.mktemp("systemd")
    env = podman_env(tmp, podman)
    build_image(podman, env, APP_IMAGE)
    if not image_exists(podman, env, SYSTEMD_BASE):
        tool("mmdebstrap")
        tar = tmp / "systemd.tar"
        run(["mmdebstrap", "--quiet", "--variant=minbase",
             "--include=systemd,systemd-sysv,dbus,python3,python3-venv,libatomic1,"
             "ca-certificates", "bookworm", str(tar)], env)
        run([podman, "import", "--change", 'CMD ["/sbin/init"]', str(tar), SYSTEMD_BASE], env)
    run([podman, "build", "--build-arg", f"DEVATTEST_IMAGE={APP_IMAGE}",
         "-f", str(Path(__file__).with_name("systemd.Containerfile")), "-t", HOST_IMAGE,
         str(DEPLOY / "systemd")], env)
    name = f"dsystemd{secrets.token_hex(3)}"
    run([podman, "run", "-d", "--name", name, "--systemd=always", HOST_IMAGE], env)
    try:
        yield podman, env, name
    finally:
        journal = subprocess.run(
            [podman, "exec", name, "journalctl", "--no-pager", "-n", "60", "-u",
             "devattest-migrate", "-u", "devattest-verifier"],
            env=env, capture_output=True, text=True, check=False)
        print(journal.stdout[-6000:], journal.stderr[-2000:])
        subprocess.run([podman, "rm", "-f", "-t", "5", name], env=env, capture_output=True,
                       check=False)
        for image in (HOST_IMAGE, APP_IMAGE):
            subprocess.run([podman, "rmi", image], env=env, capture_output=True, check=False)


def _in(host: tuple[str, dict[str, str], str], *argv: str) -> subprocess.CompletedProcess[str]:
    podman, env, name = host
    return subprocess.run([podman, "exec", name, *argv], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_hardened_units_migrate_then_serve_ready_as_a_dynamic_user(
        host: tuple[str, dict[str, str], str]) -> None:
    deadline = time.monotonic() + WAIT
    probe = ("import sys, urllib.request; sys.exit(0 if urllib.request.urlopen("
             "'http://127.0.0.1:8080/readyz', timeout=4).status == 200 else 1)")
    while _in(host, "python3", "-c", probe).returncode != 0:
        state = _in(host, "systemctl", "is-failed", "devattest-verifier",
                    "devattest-migrate").stdout
        assert "failed" not in state, state
        assert time.monotonic() < deadline, "the verifier never became ready"
        time.sleep(2)
    assert _in(host, "systemctl", "is-active", "devattest-migrate").stdout.strip() == "active"
    # the service runs as its dynamic user, with no capabilities
    pid = _in(host, "systemctl", "show", "-P", "MainPID", "devattest-verifier").stdout.strip()
    status = _in(host, "cat", f"/proc/{pid}/status").stdout
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    assert uid != "0"
    cap_eff = next(line.split()[1] for line in status.splitlines()
                   if line.startswith("CapEff:"))
    assert int(cap_eff, 16) == 0
    # state in the StateDirectory, private to the service
    listing = _in(host, "ls", "-l", "/var/lib/private/devattest").stdout
    assert "devattest.db" in listing and "ear-signing-key.pem" in listing
