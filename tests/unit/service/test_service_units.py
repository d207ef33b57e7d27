"""Pure service logic: roles, body limits, settings, signing, document parsing, webhooks."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devattest.ear import public_key_from_jwk, verify_ear_jwt
from devattest.errors import NonceReplayed, ProvisioningSchemaError
from devattest.service.auth import Principal
from devattest.service.middleware import BodyLimitMiddleware
from devattest.service.problems import Forbidden, Unprocessable, UnsupportedMedia
from devattest.service.services.material import base_media_type, parse_document
from devattest.service.services.webhooks import signature, verify_signature
from devattest.service.settings import Settings
from devattest.service.signing import FileKeySigner
from devattest.verifier import contraindicated_result

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_rejects_device_credential_acting_for_another_device() -> None:
    dev = Principal(role="device", device_id="a")
    dev.require_device_access("a", "relying-party")
    with pytest.raises(Forbidden):
        dev.require_device_access("b", "relying-party")
    with pytest.raises(Forbidden):
        dev.require("relying-party")


def test_roles_admin_may_do_everything_others_only_their_own() -> None:
    Principal(role="admin").require("provisioner")
    Principal(role="admin").require_device_access("x")
    Principal(role="relying-party").require_device_access("x", "relying-party")
    with pytest.raises(Forbidden):
        Principal(role="provisioner").require()
    with pytest.raises(Forbidden):
        Principal(role="relying-party").require("provisioner")


def _run_limit(headers: list[tuple[bytes, bytes]], chunks: list[bytes], path: str,
               ) -> tuple[list[dict[str, Any]], bytes | None]:
    sent: list[dict[str, Any]] = []
    got: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            m = await receive()
            got.append(m.get("body", b""))
            if not m.get("more_body"):
                break

    it = iter(chunks)

    async def receive() -> dict[str, Any]:
        c = next(it)
        return {"type": "http.request", "body": c, "more_body": c != chunks[-1]}

    async def send(m: dict[str, Any]) -> None:
        sent.append(m)

    mw = BodyLimitMiddleware(app, evidence_limit=10, default_limit=100)
    asyncio.run(mw({"type": "http", "path": path, "headers": headers}, receive, send))
    return sent, b"".join(got) if got else None


def test_oversized_content_length_is_refused_before_the_app_reads_anything() -> None:
    sent, body = _run_limit([(b"content-length", b"11")], [b"x" * 11],
                            "/v1/challenges/ab/evidence")
    assert sent[0]["status"] == 413 and body is None
    sent, body = _run_limit([(b"content-length", b"11")], [b"x" * 11], "/v1/devices")
    assert sent == [] and body == b"x" * 11


def test_streamed_body_over_the_limit_is_answered_413_before_delivery() -> None:
    # The middleware answers 413 itself (raising into the application let FastAPI turn it
    # into a 400 on JSON routes); the application gets a disconnect, never the extra bytes.
    sent, body = _run_limit([], [b"x" * 6, b"x" * 6, b""], "/v1/challenges/ab/evidence")
    assert sent[0]["status"] == 413 and len(sent) == 2
    assert body == b"x" * 6


def test_settings_from_environment_and_yaml_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "devattest.yaml"
    cfg.write_text("challenge_ttl_seconds: 30\nmax_evidence_bytes: 4096\n")
    monkeypatch.setenv("DEVATTEST_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("DEVATTEST_MAX_EVIDENCE_BYTES", "8192")
    s = Settings(data_dir=tmp_path)
    assert s.challenge_ttl_seconds == 30          # from the file
    assert s.max_evidence_bytes == 8192           # the environment wins over the file
    assert s.effective_database_url.endswith("/devattest.db")
    assert s.to_env()["DEVATTEST_CHALLENGE_TTL_SECONDS"] == "30"


def test_generated_signing_key_is_private_and_signs_verifiable_ears(tmp_path: Path) -> None:
    signer = FileKeySigner.from_file(tmp_path / "k.pem", create=True)
    assert (tmp_path / "k.pem").stat().st_mode & 0o077 == 0
    again = FileKeySigner.from_file(tmp_path / "k.pem")
    assert again.kid == signer.kid
    result = contraindicated_result(NonceReplayed("x"), evidence=b"e", media_type="m",
                                    expected_nonce=b"n" * 32, now=time.time())
    jwt = signer.sign(result)
    key = public_key_from_jwk(signer.jwks()["keys"][0])
    assert verify_ear_jwt(jwt, key, now=int(time.time())).status.value == "contraindicated"
    assert "d" not in signer.jwks()["keys"][0]


def test_provisioning_media_types_and_bad_documents() -> None:
    assert base_media_type("Application/JSON; charset=utf-8") == "application/json"
    with pytest.raises(UnsupportedMedia):
        parse_document("trust-anchors", "application/x-rego", b"x", name="n", now=NOW)
    with pytest.raises(Unprocessable) as exc:
        parse_document("trust-anchors", "application/json", b'{"keys": [{}]}', name="n",
                       now=NOW)
    assert exc.value.error_code == ProvisioningSchemaError.code
    with pytest.raises(Unprocessable):
        parse_document("policies", "application/json", json.dumps(
            {"any_of": [{"unsafe_no_op": True}]}).encode(), name="n", now=NOW)
    ok = parse_document("policies", "application/json", b'{"default": true}', name="n",
                        now=NOW)
    assert ok.policy is not None


def test_webhook_signature_binds_timestamp_and_body() -> None:
    sig = signature("secret-secret-secret", 100, b"{}")
    assert verify_signature("secret-secret-secret", 100, b"{}", sig, now=100)
    assert not verify_signature("secret-secret-secret", 101, b"{}", sig, now=100)
    assert not verify_signature("secret-secret-secret", 100, b"{ }", sig, now=100)
