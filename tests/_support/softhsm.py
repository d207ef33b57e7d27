"""pytest fixtures for a private SoftHSM2 token.

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

The installation helper itself (:class:`SoftHsm`, :class:`SoftHsmToken`) lives in the
package, :mod:`devattest.attester.backends.simulated`; it is re-exported here for the tests
that import it from this module.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devattest.attester.backends.simulated import (
    DEFAULT_PIN,
    DEFAULT_SO_PIN,
    SESSION_TOKEN,
    SPARE_TOKEN,
    SoftHsm,
    SoftHsmToken,
    softhsm_available,
    softhsm_module,
)

__all__ = ["DEFAULT_PIN", "DEFAULT_SO_PIN", "SESSION_TOKEN", "SPARE_TOKEN", "SoftHsm",
           "SoftHsmToken", "softhsm_available", "softhsm_module"]


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
