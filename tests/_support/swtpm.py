"""A private swtpm (TPM 2.0 simulator) for integration tests, and its pytest fixtures.

This module is a pytest plugin (listed in ``tests/integration/conftest.py``):

* ``swtpm`` - a fresh private swtpm per test (function scope);
* ``swtpm_session`` - one private swtpm shared by the session;
* ``swtpm_tcti`` / ``swtpm_session_tcti`` - their TCTI strings.

Tests using them are skipped (not failed) when swtpm is not installed.

:class:`Swtpm` starts ``swtpm socket --tpm2`` on a private state directory and two free TCP
ports (command and control), waits until it answers, and hands out a TCTI string
``swtpm:host=127.0.0.1,port=P`` usable by tpm2-pytss and tpm2-tools alike. ``stop()`` asks
swtpm to shut down over the control channel, then terminates the process if it lingers.

``swtpm_setup`` is optional: with ``create_ek=True`` it manufactures the TPM the way a vendor
does (EK created and its certificate written to NV), otherwise tests create the EK with
``CreatePrimary`` and the standard TCG EK template (see :func:`tpm_quote.create_ek`).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SWTPM = shutil.which("swtpm")
SWTPM_SETUP = shutil.which("swtpm_setup")

# swtpm control-channel command CMD_SHUTDOWN (swtpm's tpm_ioctl.h), big-endian u32.
_CMD_SHUTDOWN = 3


def swtpm_available() -> bool:
    """Whether the swtpm binary is installed."""
    return SWTPM is not None


def _free_port_pair() -> int:
    """A port P such that P and P+1 were both free a moment ago."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free TCP port pair for swtpm")


class Swtpm:
    """One private swtpm instance."""

    def __init__(self, state_dir: Path | None = None, *, create_ek: bool = False) -> None:
        self._own_dir = state_dir is None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="devattest-swtpm-"))
        self.create_ek = create_ek
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def tcti(self) -> str:
        """TCTI configuration string for tpm2-pytss (``TCTILdr.parse``) and tpm2-tools."""
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def _manufacture(self) -> None:
        if SWTPM_SETUP is None:
            raise RuntimeError("swtpm_setup is not installed")
        subprocess.run(
            [SWTPM_SETUP, "--tpm2", "--tpmstate", str(self.state_dir), "--create-ek-cert",
             "--create-platform-cert", "--lock-nvram", "--overwrite", "--ecc",
             "--display"],
            check=True, capture_output=True, timeout=120,
        )

    def start(self) -> Swtpm:
        """Start swtpm and wait until the command port accepts connections.

        Raises:
            RuntimeError: swtpm is missing or did not come up.
        """
        if SWTPM is None:
            raise RuntimeError("swtpm is not installed")
        if self.create_ek and not any(self.state_dir.iterdir()):
            self._manufacture()
        last_err = ""
        for _ in range(5):
            self.port = _free_port_pair()
            self._proc = subprocess.Popen(
                [SWTPM, "socket", "--tpm2",
                 "--tpmstate", f"dir={self.state_dir}",
                 "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
                 "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1",
                 "--flags", "not-need-init,startup-clear"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    last_err = (self._proc.stderr.read() if self._proc.stderr else b"").decode()
                    break
                try:
                    with socket.create_connection(("127.0.0.1", self.port + 1), timeout=0.2):
                        return self
                except OSError:
                    time.sleep(0.02)
            else:
                self.stop()
                raise RuntimeError("swtpm did not start within 10 s")
        raise RuntimeError(f"swtpm failed to start: {last_err}")

    def stop(self) -> None:
        """Shut swtpm down cleanly (control channel), then make sure the process is gone."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port + 1), timeout=1
            ) as c:
                c.sendall(_CMD_SHUTDOWN.to_bytes(4, "big"))
                c.settimeout(1)
                c.recv(4)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Swtpm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_swtpm(*, create_ek: bool = False) -> Iterator[Swtpm]:
    """Context manager: a started private swtpm, stopped and wiped on exit."""
    tpm = Swtpm(create_ek=create_ek).start()
    try:
        yield tpm
    finally:
        tpm.stop()


# ---------------------------------------------------------------- pytest fixtures

def _require_swtpm() -> None:
    if not swtpm_available():
        pytest.skip("swtpm is not installed")


@pytest.fixture
def swtpm() -> Iterator[Swtpm]:
    """A private swtpm for one test."""
    _require_swtpm()
    tpm = Swtpm().start()
    try:
        yield tpm
    finally:
        tpm.stop()


@pytest.fixture(scope="session")
def swtpm_session() -> Iterator[Swtpm]:
    """A private swtpm shared by the session (tests must not rely on a pristine TPM)."""
    _require_swtpm()
    tpm = Swtpm().start()
    try:
        yield tpm
    finally:
        tpm.stop()


@pytest.fixture
def swtpm_tcti(swtpm: Swtpm) -> str:
    return swtpm.tcti


@pytest.fixture(scope="session")
def swtpm_session_tcti(swtpm_session: Swtpm) -> str:
    return swtpm_session.tcti
