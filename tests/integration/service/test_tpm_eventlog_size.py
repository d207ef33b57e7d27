"""The service's TPM event-log limit (issue 13 item 11, ``tpm_max_eventlog_bytes``): TPM
quote Evidence with a bare-metal SHA-1 event log over 64 KiB is appraised although
``max_evidence_bytes`` is 64 KiB; other Evidence keeps that limit; TPM Evidence over its
own limit is refused with 413. The ASGI application runs in-process on SQLite."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from devattest.schemes.tpm import MEDIA_TYPE as TPM
from devattest.service.app import create_app
from devattest.service.settings import Settings
from devattest.store import migrate, open_store
from tests.integration.service._sim import MEDIA_TYPE as PSA
from tests.integration.service._sim import (
    add_device,
    b64url_decode,
    ensure_signing_key,
    make_token,
)
from tests.unit.tpm import _legacy_log as legacy


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TestClient]]:
    data = tmp_path_factory.mktemp("tpm-eventlog-size")
    url = f"sqlite:///{data / 'devattest.db'}"
    open_store(url).dispose()
    add_device(url, "pc-1", model="bare-metal", owner="acme")
    tokens = {r: make_token(url, r) for r in ("provisioner", "relying-party")}
    ensure_signing_key(data)
    app = create_app(Settings(data_dir=data, database_url=url, webhook_worker=False,
                              retention_interval_seconds=0, auth_cache_seconds=0,
                              dashboard=False, max_evidence_bytes=64 * 1024,
                              tpm_max_eventlog_bytes=256 * 1024))
    migrate(app.state.ctx.store.engine)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield {who: TestClient(app, raise_server_exceptions=False,
                                   headers={"Authorization": f"Bearer {tok}"})
                   for who, tok in tokens.items()} | {"anon": client}
    finally:
        app.state.ctx.store.dispose()


def _boot(drivers: int) -> list[legacy.Event]:
    return legacy.real_pc_boot() + [
        (2, legacy.EV_EFI_BOOT_SERVICES_DRIVER, legacy.sha1(b"drv %d" % i), b"D" * 200)
        for i in range(drivers)]


def _challenge(rp: TestClient) -> tuple[str, bytes]:
    r = rp.post("/v1/challenges", json={"device_id": "pc-1"})
    assert r.status_code == 201, r.text
    return r.json()["id"], b64url_decode(r.json()["nonce"])


def test_bare_metal_tpm_evidence_over_64_kib_is_appraised_by_the_service(service) -> None:
    cid, nonce = _challenge(service["relying-party"])
    b = legacy.build_sha1_quote(_boot(600), nonce=nonce)
    assert 128 * 1024 < len(b.evidence) < 256 * 1024
    pem = b.key.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    doc = {"format": "devattest.trust-anchors/v1", "keys": [{
        "instance_id": b.anchor.instance_id.hex(), "public_key": pem.decode(),  # type: ignore[union-attr]
        "hardware_backed": True}]}
    r = service["provisioner"].post("/v1/trust-anchors", params={"name": "pc-1"},
                                    content=json.dumps(doc),
                                    headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    r = service["relying-party"].post(f"/v1/challenges/{cid}/evidence", content=b.evidence,
                                      headers={"Content-Type": TPM})
    assert r.status_code == 200, r.text[:300]
    # Appraised (not refused for its size): the SHA-1 log's weakness is the reason given.
    text = json.dumps(r.json())
    assert "token_too_large" not in text and "payload_too_large" not in text
    assert "tpm_sha1_event_log" in text, text[:2000]


def test_other_evidence_keeps_max_evidence_bytes(service) -> None:
    cid, _ = _challenge(service["relying-party"])
    r = service["relying-party"].post(f"/v1/challenges/{cid}/evidence",
                                      content=b"\xd2" * (65 * 1024),
                                      headers={"Content-Type": PSA})
    assert r.status_code == 413, r.text[:300]


def test_tpm_evidence_over_its_own_limit_is_413(service) -> None:
    cid, _ = _challenge(service["relying-party"])
    r = service["relying-party"].post(f"/v1/challenges/{cid}/evidence",
                                      content=b"\xa5" * (256 * 1024 + 64 * 1024 + 1),
                                      headers={"Content-Type": TPM})
    assert r.status_code == 413, r.text[:300]
    assert "327680" in r.text
