"""Simulated secure elements for the fleet simulator, the demo and the integration tests.

* :class:`Swtpm` runs a private swtpm (TPM 2.0 simulator) on a private state directory and two
  free TCP ports, and hands out a TCTI string ``swtpm:host=127.0.0.1,port=P`` that the
  ``tpm2`` backend and tpm2-tools use unchanged (the same code serves ``/dev/tpmrm0``).
* :class:`SoftHsm` is a private SoftHSM2 installation (its own ``softhsm2.conf`` and token
  directory) whose tokens the ``pkcs11`` backend opens like any secure element's module.

These start processes and write files: they belong to the Attester side and to tests, never
to the appraisal core.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
        self.state_dir.mkdir(parents=True, exist_ok=True)
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
        if self._proc is not None and self._proc.poll() is None:
            return self  # already running (``with Swtpm().start():`` must not start two)
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


SOFTHSM2_UTIL = shutil.which("softhsm2-util")
_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)

SESSION_TOKEN = "devattest-session"
SPARE_TOKEN = "devattest-spare"
DEFAULT_PIN = "1234"
DEFAULT_SO_PIN = "12345678"


def softhsm_module() -> str | None:
    """Path of libsofthsm2.so, or ``None``."""
    return next((m for m in _MODULE_CANDIDATES if Path(m).exists()), None)


def softhsm_available() -> bool:
    """Whether softhsm2-util and the PKCS#11 module are installed."""
    return SOFTHSM2_UTIL is not None and softhsm_module() is not None


@dataclass(frozen=True)
class SoftHsmToken:
    """An initialised token: everything a Pkcs11Config needs."""

    module: str
    label: str
    pin: str
    so_pin: str
    conf: Path

    def config(self, **overrides: object) -> dict[str, object]:
        """A ``open_secure_element`` config for a key on this token."""
        return {"backend": "pkcs11", "module": self.module, "token_label": self.label,
                "pin": self.pin, **overrides}


class SoftHsm:
    """A private SoftHSM2 installation (its own conf and token directory)."""

    def __init__(self, directory: Path) -> None:
        module = softhsm_module()
        if SOFTHSM2_UTIL is None or module is None:
            raise RuntimeError("SoftHSM2 is not installed")
        self.module = module
        self.directory = directory
        self.tokendir = directory / "tokens"
        self.tokendir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.conf = directory / "softhsm2.conf"
        self.conf.write_text(
            f"directories.tokendir = {self.tokendir}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
            "slots.removable = false\n")

    def env(self) -> dict[str, str]:
        """The environment for processes that must see this installation."""
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}

    def init_token(self, label: str, *, pin: str = DEFAULT_PIN,
                   so_pin: str = DEFAULT_SO_PIN) -> SoftHsmToken:
        """Initialise a token in the first free slot (before the module is loaded: SoftHSM2
        does not see tokens created after ``C_Initialize``)."""
        assert SOFTHSM2_UTIL is not None
        subprocess.run(
            [SOFTHSM2_UTIL, "--init-token", "--free", "--label", label, "--pin", pin,
             "--so-pin", so_pin],
            env=self.env(), check=True, capture_output=True, timeout=60)
        return self.token(label, pin=pin, so_pin=so_pin)

    def token(self, label: str, *, pin: str = DEFAULT_PIN, so_pin: str = DEFAULT_SO_PIN
              ) -> SoftHsmToken:
        """The description of an initialised token."""
        return SoftHsmToken(module=self.module, label=label, pin=pin, so_pin=so_pin,
                            conf=self.conf)
