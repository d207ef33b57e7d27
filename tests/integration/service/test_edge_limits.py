"""Issue 13, defect 7 (edge limits): an oversized streamed (chunked) body is refused with
413, not 400, on every kind of route; slow clients are disconnected; ``/metrics`` is not
open to anyone who can reach the port.

The body-limit tests drive the ASGI application in-process (SQLite), so that an error
raised inside the application would surface here instead of being turned into a response."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devattest.service.app import create_app
from devattest.service.settings import Settings
from devattest.store import migrate, open_store
from tests.integration.service._sim import add_device, ensure_signing_key, make_token

LIMIT = 4096


class App:
    def __init__(self, app: Any, tokens: dict[str, str]) -> None:
        self.app = app
        self.tokens = tokens

    def stream(self, path: str, chunks: list[bytes], *, who: str = "provisioner",
               content_type: str = "application/json") -> tuple[int | None, bytes, int]:
        """POST ``chunks`` without Content-Length (chunked); returns the status, the body
        and how many chunks the application read."""
        scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
                 "query_string": b"name=big", "http_version": "1.1", "scheme": "http",
                 "server": ("test", 80), "client": ("client", 1), "root_path": "",
                 "headers": [(b"authorization", f"Bearer {self.tokens[who]}".encode()),
                             (b"content-type", content_type.encode()),
                             (b"transfer-encoding", b"chunked")]}
        read = 0
        out: dict[str, Any] = {"status": None, "body": b""}

        async def receive() -> dict[str, Any]:
            nonlocal read
            if read >= len(chunks):
                return {"type": "http.disconnect"}
            read += 1
            return {"type": "http.request", "body": chunks[read - 1],
                    "more_body": read < len(chunks)}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                assert out["status"] is None, "a second response"
                out["status"] = message["status"]
            elif message["type"] == "http.response.body":
                out["body"] += message.get("body", b"")

        asyncio.run(self.app(scope, receive, send))
        return out["status"], out["body"], read


def _make_app(tmp_path: Path, **settings: Any) -> App:
    url = f"sqlite:///{tmp_path / 'devattest.db'}"
    open_store(url).dispose()
    add_device(url, "dev-a", model="m1", owner="acme")
    tokens = {r: make_token(url, r) for r in ("admin", "provisioner", "relying-party")}
    ensure_signing_key(tmp_path)
    application = create_app(Settings(
        data_dir=tmp_path, database_url=url, webhook_worker=False, dashboard=False,
        retention_interval_seconds=0, auth_cache_seconds=0, max_body_bytes=LIMIT,
        max_evidence_bytes=1024, **settings))
    migrate(application.state.ctx.store.engine)
    return App(application, tokens)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    made = _make_app(tmp_path)
    try:
        yield made
    finally:
        made.app.state.ctx.store.dispose()


def _oversized(n_chunks: int = 8) -> list[bytes]:
    doc = json.dumps({"id": "dev-big", "model": "x" * (LIMIT * 2)}).encode()
    size = len(doc) // n_chunks + 1
    return [doc[i:i + size] for i in range(0, len(doc), size)]


@pytest.mark.parametrize(("path", "who"), [
    ("/v1/devices", "provisioner"),  # a JSON body parsed by FastAPI (was 400)
    ("/v1/challenges", "relying-party"),  # the fast lane
    ("/v1/webhooks", "relying-party"),
    ("/v1/reference-values", "provisioner"),  # a raw body read by the route
])
def test_oversized_chunked_body_is_413_not_400(app: App, path: str, who: str) -> None:
    status, body, read = app.stream(path, _oversized(), who=who)
    assert status == 413, body
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert read < len(_oversized())  # refused while streaming, not after reading it all


def test_oversized_chunked_evidence_is_413(app: App) -> None:
    status, body, _ = app.stream("/v1/challenges/" + "0" * 32 + "/evidence",
                                 [b"\xa0" * 600, b"\xa0" * 600], who="relying-party",
                                 content_type="application/psa-attestation-token")
    assert status == 413, body


def test_chunked_body_within_the_limit_is_served(app: App) -> None:
    doc = json.dumps({"id": "dev-ok", "model": "m1"}).encode()
    status, body, _ = app.stream("/v1/devices", [doc[:10], doc[10:]])
    assert status == 201, body


# -- /metrics ---------------------------------------------------------------------------------
METRICS_TOKEN = "prometheus-scrape-0123456789"


def _scrape(app: App, authorization: str | None) -> int:
    headers = {"Authorization": authorization} if authorization else {}

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.get("/healthz")  # one request counted before the scrape
            return await client.get("/metrics", headers=headers)

    r = asyncio.run(get())
    if r.status_code == 200:
        assert "devattest_http_requests_total" in r.text
    return r.status_code


def test_metrics_are_not_served_to_anyone_who_reaches_the_port(app: App) -> None:
    assert _scrape(app, None) == 401
    assert _scrape(app, "Bearer not-a-token") == 401
    assert _scrape(app, f"Bearer {app.tokens['relying-party']}") == 403
    assert _scrape(app, f"Bearer {app.tokens['admin']}") == 200


def test_metrics_token_lets_the_scraper_in_without_an_api_token(tmp_path: Path) -> None:
    made = _make_app(tmp_path, metrics_token=METRICS_TOKEN)
    try:
        assert _scrape(made, f"Bearer {METRICS_TOKEN}") == 200
        assert _scrape(made, f"Bearer {METRICS_TOKEN[:-1]}x") == 401
        assert _scrape(made, None) == 401
    finally:
        made.app.state.ctx.store.dispose()


def test_public_metrics_are_an_explicit_opt_in(tmp_path: Path) -> None:
    made = _make_app(tmp_path, metrics_public=True)
    try:
        assert _scrape(made, None) == 200
    finally:
        made.app.state.ctx.store.dispose()


def test_short_metrics_token_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        Settings(metrics_token="short")
