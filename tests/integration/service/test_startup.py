"""Start-up a person can read: the version, one line for a bad setting, owner-only files,
and API docs that render without network access."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from devattest.service.context import build_context
from devattest.service.settings import Settings
from devattest.store import migrate
from tests.integration.service._sim import ServiceProcess, ensure_signing_key

DEVATTEST = Path(sys.executable).with_name("devattest")
CHROMIUM = "/usr/bin/chromium"


def _run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DEVATTEST), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, cwd=cwd, check=False)


def test_version_prints_the_installed_distribution_version() -> None:
    from importlib.metadata import version

    proc = _run("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"devattest {version('devattest')}"


@pytest.mark.parametrize("command", [["serve"], ["service", "serve"],
                                     ["admin", "create-token", "--role", "admin"]])
def test_invalid_setting_gives_one_line_naming_it_not_a_traceback(
        command: list[str], tmp_path: Path) -> None:
    proc = _run(*command, env={"DEVATTEST_CHALLENGE_TTL_SECONDS": "abc",
                               "DEVATTEST_DATA_DIR": str(tmp_path / "data")}, cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0] == ("error: invalid setting DEVATTEST_CHALLENGE_TTL_SECONDS='abc': "
                        "expected an integer, at least 1 and at most 3600")
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "data").exists()  # nothing was started or created


def test_invalid_setting_line_names_the_values_a_flag_accepts(tmp_path: Path) -> None:
    proc = _run("serve", env={"DEVATTEST_DASHBOARD": "maybe",
                              "DEVATTEST_DATA_DIR": str(tmp_path / "data")}, cwd=tmp_path)
    assert proc.returncode == 3
    assert proc.stderr.strip() == ("error: invalid setting DEVATTEST_DASHBOARD='maybe': "
                                   "expected true or false")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_and_signing_key_are_not_readable_by_other_users(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, which would make new files 0644
    try:
        data = tmp_path / "fresh" / "data"
        ctx = build_context(Settings(data_dir=data))
        try:
            migrate(ctx.store.engine)
            with ctx.store.engine.connect() as conn:  # keep a connection: WAL and SHM stay
                conn.execute(text("SELECT 1"))
                with ctx.store.write() as s:
                    s.execute(text("CREATE TABLE IF NOT EXISTS _mode_probe (x INTEGER)"))
                files = sorted(p.name for p in data.iterdir())
                assert {"devattest.db", "devattest.db-wal", "devattest.db-shm",
                        "ear-signing-key.pem"} <= set(files), files
                assert _mode(data) == 0o700
                for name in files:
                    assert _mode(data / name) == 0o600, (name, oct(_mode(data / name)))
        finally:
            ctx.store.dispose()
    finally:
        os.umask(old)


def test_create_token_makes_an_owner_only_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "new-data"
    proc = _run("admin", "create-token", "--role", "admin", "--data-dir", str(data))
    assert proc.returncode == 0, proc.stderr
    assert _mode(data) == 0o700
    assert _mode(data / "devattest.db") == 0o600


# --------------------------------------------------------------------------------------
# /docs offline, in a real browser
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    data = tmp_path_factory.mktemp("docs")
    ensure_signing_key(data)
    svc = ServiceProcess(data, f"sqlite:///{data / 'devattest.db'}",
                         env={"DEVATTEST_WEBHOOK_WORKER": "false"}).start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def offline_page_factory(service: ServiceProcess) -> Iterator[Any]:
    pw = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (scripts/bootstrap installs it)")
    from tests.integration.dashboard.conftest import CHROMIUM_ARGS

    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                    headless=True)

        def make() -> tuple[Any, list[str]]:
            ctx = browser.new_context(base_url=service.url, offline=False)
            ctx.set_default_timeout(20_000)
            elsewhere: list[str] = []

            def only_the_service(route: Any) -> None:
                # No network but the service itself: anything else (a CDN) fails.
                if route.request.url.startswith(service.url + "/"):
                    route.continue_()
                else:
                    elsewhere.append(route.request.url)
                    route.abort("internetdisconnected")

            ctx.route("**/*", only_the_service)
            return ctx.new_page(), elsewhere

        try:
            yield make
        finally:
            browser.close()


def test_swagger_ui_renders_with_no_network_but_the_service(offline_page_factory: Any) -> None:
    page, elsewhere = offline_page_factory()
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "devattest Verifier" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/v1/challenges" in p for p in paths), paths
    assert elsewhere == []


def test_redoc_renders_with_no_network_but_the_service(offline_page_factory: Any) -> None:
    page, elsewhere = offline_page_factory()
    page.goto("/redoc")
    page.wait_for_selector("h1:has-text('devattest Verifier')")
    assert page.get_by_text("/v1/challenges").count() > 0
    # ReDoc's own "API docs by Redocly" footer asks its CDN for a logo; it is decorative (the
    # page rendered above without it) and is the only thing asked of another host.
    assert all(u.startswith("https://cdn.redoc.ly/") and u.endswith(".svg")
               for u in elsewhere), elsewhere
