"""A private SoftHSM2 token for integration tests, and its pytest fixtures.

This module is a pytest plugin (listed in ``tests/integration/conftest.py``):

* ``softhsm`` - a private SoftHSM2 installation for the session: its own ``softhsm2.conf``
  and token directory under a temp dir, exported as ``SOFTHSM2_CONF``;
* ``softhsm_token`` - one initialised token in it (session scope), shared: use distinct key
  labels per test;
* ``softhsm_spare_token`` - a second token that no fixture ever logs in to (for tests of the
  login itself: PKCS#11 login state is per process and token).

libsofthsm2 reads ``SOFTHSM2_CONF`` and scans its token directory once, at ``C_Initialize``,
and python-pkcs11 loads a module once per process, so the installation and its tokens are
created up front, session-scoped (each xdist worker has its own).
Tests using these fixtures are skipped (not failed) when SoftHSM2 is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def softhsm() -> Iterator[SoftHsm]:
    """A private SoftHSM2 installation, exported through ``SOFTHSM2_CONF``."""
    if not softhsm_available():
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    directory = Path(tempfile.mkdtemp(prefix="devattest-softhsm-"))
    previous = os.environ.get("SOFTHSM2_CONF")
    hsm = SoftHsm(directory)
    hsm.init_token(SESSION_TOKEN)
    hsm.init_token(SPARE_TOKEN)
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
    try:
        yield hsm
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def softhsm_token(softhsm: SoftHsm) -> SoftHsmToken:
    """One initialised token shared by the session (use distinct key labels per test)."""
    return softhsm.token(SESSION_TOKEN)


@pytest.fixture(scope="session")
def softhsm_spare_token(softhsm: SoftHsm) -> SoftHsmToken:
    """A token no fixture logs in to."""
    return softhsm.token(SPARE_TOKEN)
