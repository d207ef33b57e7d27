"""Security regressions of the service, each named after the attack it stops.

These drive the ASGI application in-process (SQLite), so that a request can be cut off at
an exact point of its body, which a client over a socket cannot do deterministically.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devattest.service.app import create_app
from devattest.service.settings import Settings
from devattest.store import migrate, open_store
from tests.integration.service._sim import (
    MEDIA_TYPE,
    PsaDevice,
    add_device,
    b64url_decode,
    ensure_signing_key,
    make_token,
    reference_values_json,
    trust_anchors_json,
)


@dataclass
class Reply:
    status: int | None
    body: bytes


@dataclass
class InProcess:
    app: Any
    tokens: dict[str, str]
    devices: dict[str, PsaDevice]

    def call(self, path: str, *, who: str, content_type: str, chunks: list[bytes],
             disconnect_after: int | None = None, query: bytes = b"") -> Reply:
        """POST ``chunks`` as one body; after ``disconnect_after`` chunks the client is gone
        (what uvicorn reports when the connection closes before Content-Length bytes)."""
        total = sum(len(c) for c in chunks)
        scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
                 "query_string": query, "http_version": "1.1", "scheme": "http",
                 "server": ("test", 80), "client": ("client", 1), "root_path": "",
                 "headers": [(b"authorization", f"Bearer {self.tokens[who]}".encode()),
                             (b"content-type", content_type.encode()),
                             (b"content-length", str(total).encode())]}
        sent = 0
        out: dict[str, Any] = {"status": None, "body": b""}

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent >= len(chunks) or (disconnect_after is not None
                                       and sent >= disconnect_after):
                return {"type": "http.disconnect"}
            sent += 1
            return {"type": "http.request", "body": chunks[sent - 1],
                    "more_body": sent < len(chunks)}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out["status"] = message["status"]
            elif message["type"] == "http.response.body":
                out["body"] += message.get("body", b"")

        asyncio.run(self.app(scope, receive, send))
        return Reply(out["status"], out["body"])

    def challenge(self, device_id: str) -> tuple[str, bytes]:
        r = self.call("/v1/challenges", who="relying-party", content_type="application/json",
                      chunks=[json.dumps({"device_id": device_id}).encode()])
        assert r.status == 201, r.body
        doc = json.loads(r.body)
        return str(doc["id"]), b64url_decode(doc["nonce"])


def _inproc(tmp_path: Path, **settings: Any) -> Iterator[InProcess]:
    url = f"sqlite:///{tmp_path / 'devattest.db'}"
    store = open_store(url)
    store.dispose()
    add_device(url, "dev-a", model="m1", owner="acme")
    tokens = {r: make_token(url, r) for r in ("provisioner", "relying-party")}
    ensure_signing_key(tmp_path)
    app = create_app(Settings(data_dir=tmp_path, database_url=url, webhook_worker=False,
                              retention_interval_seconds=0, auth_cache_seconds=0,
                              dashboard=False, **settings))
    migrate(app.state.ctx.store.engine)
    devices = {"dev-a": PsaDevice("dev-a")}
    ip = InProcess(app, tokens, devices)
    for kind, doc in (("trust-anchors", trust_anchors_json(list(devices.values()))),
                      ("reference-values", reference_values_json())):
        r = ip.call(f"/v1/{kind}", who="provisioner", content_type="application/json",
                    chunks=[doc], query=b"name=x")
        assert r.status == 201, r.body
    try:
        yield ip
    finally:
        app.state.ctx.store.dispose()


@pytest.fixture
def inproc(tmp_path: Path) -> Iterator[InProcess]:
    yield from _inproc(tmp_path)


def test_truncated_evidence_from_a_dropped_connection_consumes_no_nonce(
        inproc: InProcess) -> None:
    # The connection closes after part of the declared body: the fast lane must not appraise
    # the fragment (burning the nonce and turning the device contraindicated), as the
    # FastAPI route does not (Starlette raises ClientDisconnect).
    cid, nonce = inproc.challenge("dev-a")
    evidence = inproc.devices["dev-a"].token(nonce)
    cut = inproc.call(f"/v1/challenges/{cid}/evidence", who="relying-party",
                      content_type=MEDIA_TYPE, chunks=[evidence[:40], evidence[40:]],
                      disconnect_after=1)
    assert cut.status is None and cut.body == b""
    # The nonce is still unused: the whole Evidence is appraised and affirmed.
    r = inproc.call(f"/v1/challenges/{cid}/evidence", who="relying-party",
                    content_type=MEDIA_TYPE, chunks=[evidence])
    assert r.status == 200, r.body
    assert json.loads(r.body)["result"]["ear_status"] == "affirming"


def test_challenge_issued_before_suspension_cannot_be_answered_after(
        inproc: InProcess, tmp_path: Path) -> None:
    # A device under investigation is suspended: no challenge is issued to it, and one issued
    # before must not be answerable either (it would refresh a suspended device's status).
    cid, nonce = inproc.challenge("dev-a")
    evidence = inproc.devices["dev-a"].token(nonce)
    store = open_store(f"sqlite:///{tmp_path / 'devattest.db'}")
    try:
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE devices SET lifecycle_state = 'suspended' WHERE id = 'dev-a'")
    finally:
        store.dispose()
    r = inproc.call(f"/v1/challenges/{cid}/evidence", who="relying-party",
                    content_type=MEDIA_TYPE, chunks=[evidence])
    assert r.status == 409, r.body
    assert json.loads(r.body)["error"]["code"] == "device_inactive"


def test_psa_token_sent_as_generic_eat_is_refused_not_appraised_by_eat(
        inproc: InProcess) -> None:
    # Scheme confusion (issue 13 item 9): the request's media type selects the scheme, never
    # the token alone, and the token's profile must agree with it. A device's PSA token sent
    # as generic EAT would skip every PSA rule; it is a signed contraindicated result.
    cid, nonce = inproc.challenge("dev-a")
    evidence = inproc.devices["dev-a"].token(nonce)
    r = inproc.call(f"/v1/challenges/{cid}/evidence", who="relying-party",
                    content_type="application/eat+cwt", chunks=[evidence])
    assert r.status == 200, r.body
    result = json.loads(r.body)["result"]
    assert result["ear_status"] == "contraindicated"
    (sub,) = result["submods"].values()
    assert [x["code"] for x in sub["ear_devattest"]["reasons"]] == ["profile_mismatch"]


def test_evidence_for_an_unbound_device_is_refused_when_binding_is_required(
        tmp_path: Path) -> None:
    # Device binding required at registration (require_device_binding): no key is trusted
    # for a device without a bound Instance ID, so its Evidence is refused (a signed
    # contraindicated result), until a provisioner binds it.
    for ip in _inproc(tmp_path, require_device_binding=True):
        dev = ip.devices["dev-a"]
        cid, nonce = ip.challenge("dev-a")
        r = ip.call(f"/v1/challenges/{cid}/evidence", who="relying-party",
                    content_type=MEDIA_TYPE, chunks=[dev.token(nonce)])
        assert r.status == 200, r.body
        result = json.loads(r.body)["result"]
        assert result["ear_status"] == "contraindicated"
        (sub,) = result["submods"].values()
        assert [x["code"] for x in sub["ear_devattest"]["reasons"]] == ["device_not_bound"]
        body = json.dumps({"instance_id": dev.instance_id.hex()}).encode()
        denied = ip.call("/v1/devices/dev-a/binding", who="relying-party",
                         content_type="application/json", chunks=[body])
        assert denied.status == 403, denied.body
        bound = ip.call("/v1/devices/dev-a/binding", who="provisioner",
                        content_type="application/json", chunks=[body])
        assert bound.status == 200, bound.body
        assert json.loads(bound.body)["instance_id"] == dev.instance_id.hex()
        cid, nonce = ip.challenge("dev-a")
        r = ip.call(f"/v1/challenges/{cid}/evidence", who="relying-party",
                    content_type=MEDIA_TYPE, chunks=[dev.token(nonce)])
        assert json.loads(r.body)["result"]["ear_status"] == "affirming", r.body


def test_rebinding_over_http_unbinds_so_the_next_affirming_attestation_binds(
        inproc: InProcess) -> None:
    dev = inproc.devices["dev-a"]
    cid, nonce = inproc.challenge("dev-a")
    r = inproc.call(f"/v1/challenges/{cid}/evidence", who="relying-party",
                    content_type=MEDIA_TYPE, chunks=[dev.token(nonce)])
    assert json.loads(r.body)["result"]["ear_status"] == "affirming", r.body
    unbound = inproc.call("/v1/devices/dev-a/binding", who="provisioner",
                          content_type="application/json",
                          chunks=[json.dumps({"instance_id": None}).encode()])
    assert unbound.status == 200 and json.loads(unbound.body)["instance_id"] is None
    bad = inproc.call("/v1/devices/dev-a/binding", who="provisioner",
                      content_type="application/json",
                      chunks=[json.dumps({"instance_id": "zz"}).encode()])
    assert bad.status == 400, bad.body


def test_admin_cli_rebinds_a_device_explicitly(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from devattest.cli.main import app as cli_app
    from devattest.store import DeviceRepository

    url = f"sqlite:///{tmp_path / 'devattest.db'}"
    add_device(url, "dev-a", model="m1", owner="acme")
    runner = CliRunner()

    def bound() -> str | None:
        store = open_store(url)
        try:
            with store.read() as s:
                device = DeviceRepository(s).get("dev-a")
                assert device is not None
                return device.instance_id
        finally:
            store.dispose()

    r = runner.invoke(cli_app, ["admin", "rebind-device", "dev-a", "--instance-id",
                                "01" + "ab" * 32, "--db-url", url])
    assert r.exit_code == 0, r.output
    assert bound() == "01" + "ab" * 32
    r = runner.invoke(cli_app, ["admin", "rebind-device", "dev-a", "--unbind", "--db-url", url])
    assert r.exit_code == 0 and "unbound" in r.output, r.output
    assert bound() is None
    r = runner.invoke(cli_app, ["admin", "rebind-device", "dev-a", "--db-url", url])
    assert r.exit_code == 3
    r = runner.invoke(cli_app, ["admin", "rebind-device", "nope", "--unbind", "--db-url", url])
    assert r.exit_code == 3 and "no device" in r.output
