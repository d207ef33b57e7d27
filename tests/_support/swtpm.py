"""pytest fixtures for a private swtpm (TPM 2.0 simulator).

This module is a pytest plugin (listed in ``tests/integration/conftest.py``):

* ``swtpm`` - a fresh private swtpm per test (function scope);
* ``swtpm_session`` - one private swtpm shared by the session;
* ``swtpm_tcti`` / ``swtpm_session_tcti`` - their TCTI strings.

Tests using them are skipped (not failed) when swtpm is not installed.

The process helper itself (:class:`Swtpm`, :func:`running_swtpm`) lives in the package,
:mod:`devattest.attester.backends.simulated`, which the demo and the fleet simulator use too;
it is re-exported here for the tests that import it from this module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devattest.attester.backends.simulated import (
    SWTPM,
    SWTPM_SETUP,
    Swtpm,
    running_swtpm,
    swtpm_available,
)

__all__ = ["SWTPM", "SWTPM_SETUP", "Swtpm", "running_swtpm", "swtpm_available"]


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
