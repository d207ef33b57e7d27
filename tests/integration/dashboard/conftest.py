"""Fixtures for the dashboard's browser tests: a simulated fleet on SQLite, the real service
(uvicorn, in a subprocess) serving the dashboard from the same database, and Debian's
headless Chromium driven by Playwright (never ``playwright install``)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dashboard._fleet import Fleet
from tests.integration.service._sim import ServiceProcess, ensure_signing_key, make_token

pw = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "dashboard"
FLEET_SIZE = 24


@dataclass
class Env:
    """The running service, its fleet and tokens per role."""

    fleet: Fleet
    svc: ServiceProcess
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.svc.url


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{data / 'devattest.db'}"
    ensure_signing_key(data)
    fleet = Fleet(data, url, FLEET_SIZE)
    fleet.provision()
    tokens = {r: make_token(url, r) for r in ("admin", "provisioner", "relying-party")}
    tokens["device"] = make_token(url, "device", "dev-001")
    svc = ServiceProcess(data, url, env={
        "DEVATTEST_DASHBOARD_SAMPLE_SECONDS": "1", "DEVATTEST_DASHBOARD_LIVE_POLL_SECONDS": "0.5",
        "DEVATTEST_DASHBOARD_CACHE_SECONDS": "0", "DEVATTEST_WEBHOOK_WORKER": "false"}).start()
    try:
        yield Env(fleet, svc, tokens)
    finally:
        svc.stop()
        fleet.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (scripts/bootstrap installs it)")
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_page(browser: Any, env: Env) -> Iterator[Callable[..., Any]]:
    """Pages in fresh browser contexts (no shared cookies); closed after the test."""
    contexts = []

    def make(role: str | None = None) -> Any:
        ctx = browser.new_context(base_url=env.url,
                                  viewport={"width": 1280, "height": 900})
        ctx.set_default_timeout(15_000)
        contexts.append(ctx)
        page = ctx.new_page()
        if role is not None:
            login(page, env.tokens[role])
        return page

    yield make
    for c in contexts:
        c.close()


def login(page: Any, token: str, next_path: str = "/dashboard/") -> None:
    """Log in through the form."""
    page.goto(f"/dashboard/login?next={next_path}")
    page.fill("#token", token)
    page.click("form.login button[type=submit]")
    page.wait_for_url(re.compile(r".*/dashboard/(?!login).*"))


def shot(page: Any, name: str) -> Path:
    """A full-page screenshot in test-artifacts/dashboard/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
