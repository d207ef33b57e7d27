"""Test-suite configuration.

Fixture plugins that start private, real instances (swtpm, SoftHSM2, PostgreSQL, Mosquitto) on
free ports live in ``tests/_support``; they are registered here, at the top level, as pytest
requires. Nothing starts until a test asks for a fixture.

Under CI (``CI=true``) a test skipped because a real component is missing is a failure: the CI
machine is set up by ``scripts/bootstrap`` and must have them all.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = [
    f"tests._support.{name}"
    for name in ("swtpm", "softhsm", "postgres", "mosquitto")
    if (Path(__file__).parent / "_support" / f"{name}.py").exists()
]

_MISSING_INFRA = ("is not installed", "not reachable", "unavailable on this machine")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if any(marker in reason for marker in _MISSING_INFRA):
            report.outcome = "failed"
            report.longrepr = f"CI requires every real component: {reason}"


@pytest.fixture(autouse=True)
def _devattest_environment_is_restored() -> object:
    """Every test leaves the ``DEVATTEST_*`` environment as it found it.

    CLI commands export their options to the environment on purpose (``serve`` hands them to
    uvicorn's worker processes), so a command run in-process by one test would otherwise
    leak a database URL or data directory into every later test of the same worker, and
    into the subprocesses those tests start.
    """
    before = {k: v for k, v in os.environ.items() if k.startswith("DEVATTEST_")}
    yield
    for k in [k for k in os.environ if k.startswith("DEVATTEST_")]:
        if k not in before:
            del os.environ[k]
    os.environ.update(before)
