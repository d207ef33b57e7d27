"""Fixtures for the store and service tests: a migrated store on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devattest.store import Store, open_store
from tests.integration.service._sim import (
    MEDIA_TYPE,
    PsaDevice,
    ServiceProcess,
    add_device,
    b64url_decode,
    ensure_signing_key,
    make_token,
    reference_values_json,
    trust_anchors_json,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: SQLite in a temp dir, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'devattest.db'}"
    make: Callable[[], str] = request.getfixturevalue("make_postgres_database")
    return make()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated store."""
    s = open_store(db_url)
    try:
        yield s
    finally:
        s.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Live]:
    """A real uvicorn service (subprocess) with tokens, one device, Trust Anchors and
    Reference Values provisioned through the API."""
    data = tmp_path_factory.mktemp("svc")
    if request.param == "sqlite":
        url = f"sqlite:///{data / 'devattest.db'}"
    else:
        make: Callable[[], str] = request.getfixturevalue("make_postgres_database")
        url = make()
    ensure_signing_key(data)
    # Migrate and seed tokens before start (what `admin create-token` does).
    add_device(url, "dev-a", model="m1", owner="acme")
    add_device(url, "dev-b", model="m1", owner="acme")
    tokens = {r: make_token(url, r) for r in ("admin", "provisioner", "relying-party")}
    tokens["device-a"] = make_token(url, "device", "dev-a")
    svc = ServiceProcess(data, url, env={
        "DEVATTEST_WEBHOOK_BACKOFF_SECONDS": "0.05", "DEVATTEST_WEBHOOK_POLL_SECONDS": "0.05",
        "DEVATTEST_WEBHOOK_MAX_ATTEMPTS": "2", "DEVATTEST_WEBHOOK_TIMEOUT_SECONDS": "1",
        "DEVATTEST_AUTH_CACHE_SECONDS": "0",
        # The test receiver listens on loopback, which webhooks may not target by default.
        "DEVATTEST_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]'}).start()
    devices = {"dev-a": PsaDevice.rfc9783("dev-a"), "dev-b": PsaDevice("dev-b")}
    live = Live(svc, url, tokens, devices)
    r = live.client("provisioner").post("/v1/trust-anchors", params={"name": "fleet"},
                                        content=trust_anchors_json(list(devices.values())),
                                        headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    r = live.client("provisioner").post("/v1/reference-values", params={"name": "fw"},
                                        content=reference_values_json(),
                                        headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    try:
        yield live
    finally:
        svc.stop()


@dataclass
class Live:
    """A running service and what the tests need to talk to it."""

    svc: ServiceProcess
    db_url: str
    tokens: dict[str, str]
    devices: dict[str, PsaDevice]

    def client(self, who: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.svc.url, headers=headers, timeout=30)

    def challenge(self, device_id: str, who: str = "relying-party", size: int = 32
                  ) -> tuple[str, bytes]:
        r = self.client(who).post("/v1/challenges", json={"device_id": device_id,
                                                           "nonce_size": size})
        assert r.status_code == 201, r.text
        return r.json()["id"], b64url_decode(r.json()["nonce"])

    def submit(self, challenge_id: str, evidence: bytes, who: str = "relying-party",
               media_type: str = MEDIA_TYPE) -> httpx.Response:
        return self.client(who).post(f"/v1/challenges/{challenge_id}/evidence",
                                     content=evidence, headers={"Content-Type": media_type})
