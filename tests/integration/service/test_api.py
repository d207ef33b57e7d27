"""The service API against a real uvicorn server, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import HTTPServer
from typing import Any

import pytest

from devattest.ear import public_key_from_jwk, verify_ear_jwt
from devattest.service.services.webhooks import verify_signature
from tests._vectors import VECTORS
from tests.integration.service._sim import MEDIA_TYPE, Receiver
from tests.integration.service.conftest import Live

CORIMS = VECTORS / "veraison-services-psa-iot" / "corim"


def test_challenge_and_evidence_round_trip_gives_a_signed_affirming_ear(live: Live) -> None:
    cid, nonce = live.challenge("dev-a", size=48)
    assert len(nonce) == 48
    token = live.devices["dev-a"].token(nonce)
    r = live.submit(cid, token)
    assert r.status_code == 200, r.text
    body = r.json()
    jwks = live.client().get("/.well-known/devattest/keys").json()
    key = public_key_from_jwk(jwks["keys"][0])
    result = verify_ear_jwt(body["ear"], key, now=int(time.time()))
    assert result.status.value == "affirming", body["result"]
    assert body["result"]["ear_status"] == "affirming"
    # history and the passport
    hist = live.client("relying-party").get("/v1/attestations",
                                            params={"device_id": "dev-a", "limit": 1}).json()
    entry = hist["items"][0]
    assert entry["id"] == body["attestation_id"]
    assert entry["evidence_sha256"] == hashlib.sha256(token).hexdigest()
    assert entry["outcome"] == "appraised" and entry["status"] == "affirming"
    passport = live.client("device-a").get("/v1/devices/dev-a/result")
    assert passport.status_code == 200 and passport.json()["ear"] == body["ear"]
    device = live.client("relying-party").get("/v1/devices/dev-a").json()
    assert device["status"] == "affirming"
    assert device["latest_attestation_id"] == body["attestation_id"]


def test_rejects_replayed_evidence_with_409_and_records_it(live: Live) -> None:
    cid, nonce = live.challenge("dev-a")
    token = live.devices["dev-a"].token(nonce)
    first = live.submit(cid, token)
    assert first.status_code == 200
    again = live.submit(cid, token)
    assert again.status_code == 409
    err = again.json()
    assert err["error"]["code"] == "nonce_replayed"
    assert err["ear"] and err["attestation_id"] > first.json()["attestation_id"]
    row = live.client("relying-party").get(f"/v1/attestations/{err['attestation_id']}").json()
    assert row["status"] == "contraindicated" and row["outcome"] == "nonce_replayed"
    # the replay does not become the device's latest result
    passport = live.client("relying-party").get("/v1/devices/dev-a/result").json()
    assert passport["attestation_id"] == first.json()["attestation_id"]


def test_evidence_with_another_nonce_is_contraindicated(live: Live) -> None:
    cid, _ = live.challenge("dev-a")
    r = live.submit(cid, live.devices["dev-a"].token(b"\x01" * 32))
    assert r.status_code == 200
    assert "nonce_mismatch" in json.dumps(r.json()["result"])
    assert r.json()["result"]["ear_status"] == "contraindicated"


def test_rejects_evidence_from_another_device_bound_by_instance_id(live: Live) -> None:
    admin = live.client("admin")
    iid = live.devices["dev-b"].instance_id.hex()
    assert admin.patch("/v1/devices/dev-b", json={"instance_id": iid}).status_code == 200
    cid, nonce = live.challenge("dev-b")
    # dev-a's (genuine, trusted) key signs Evidence for dev-b's challenge: a relay.
    r = live.submit(cid, live.devices["dev-a"].token(nonce))
    assert r.status_code == 200 and r.json()["result"]["ear_status"] == "contraindicated"
    cid, nonce = live.challenge("dev-b")
    ok = live.submit(cid, live.devices["dev-b"].token(nonce))
    assert ok.json()["result"]["ear_status"] == "affirming"


def test_device_token_acts_only_for_its_own_device(live: Live) -> None:
    cid, nonce = live.challenge("dev-a", who="device-a")
    assert live.submit(cid, live.devices["dev-a"].token(nonce), who="device-a").status_code == 200
    dev = live.client("device-a")
    assert dev.post("/v1/challenges", json={"device_id": "dev-b"}).status_code == 403
    cid_b, nonce_b = live.challenge("dev-b")
    assert live.submit(cid_b, live.devices["dev-a"].token(nonce_b),
                       who="device-a").status_code == 403
    assert dev.get("/v1/devices/dev-b/result").status_code == 403
    assert dev.get("/v1/trust-anchors").status_code == 403


def test_wrong_role_gets_403_and_no_token_401(live: Live) -> None:
    rp = live.client("relying-party")
    assert rp.post("/v1/trust-anchors", content=b"{}",
                   headers={"Content-Type": "application/json"}).status_code == 403
    assert rp.post("/v1/tokens", json={"role": "admin"}).status_code == 403
    assert live.client("provisioner").post("/v1/tokens", json={"role": "admin"}
                                           ).status_code == 403
    assert live.client().get("/v1/devices").status_code == 401
    r = live.client().get("/v1/devices", headers={"Authorization": "Bearer dat_nope"})
    assert r.status_code == 401


def test_unknown_media_type_is_415_before_appraisal(live: Live) -> None:
    cid, nonce = live.challenge("dev-a")
    token = live.devices["dev-a"].token(nonce)
    assert live.submit(cid, token, media_type="application/x-unknown").status_code == 415
    # nothing was consumed: the right media type still works
    assert live.submit(cid, token).status_code == 200


def test_oversized_evidence_is_413_before_parsing(live: Live) -> None:
    cid, _ = live.challenge("dev-a")
    big = b"\x00" * (64 * 1024 + 1)
    assert live.submit(cid, big).status_code == 413

    def chunks() -> Any:  # no Content-Length: streamed, refused while reading
        for _ in range(80):
            yield b"\x00" * 1024

    r = live.client("relying-party").post(f"/v1/challenges/{cid}/evidence", content=chunks(),
                                          headers={"Content-Type": MEDIA_TYPE})
    assert r.status_code == 413
    # the challenge was not consumed by either attempt
    hist = live.client("admin").get("/v1/attestations", params={"device_id": "dev-a"}).json()
    assert all(i["challenge_id"] != cid for i in hist["items"])


def test_provisioning_is_idempotent_versioned_and_deletable(live: Live) -> None:
    prov = live.client("provisioner")
    doc = json.dumps({"default": True}).encode()
    h = {"Content-Type": "application/json"}
    a = prov.post("/v1/policies", params={"name": "m9"}, content=doc, headers=h)
    b = prov.post("/v1/policies", params={"name": "m9"}, content=doc, headers=h)
    assert (a.status_code, b.status_code) == (201, 200)
    assert a.json()["version"] == b.json()["version"] == 1 and not b.json()["created"]
    c = prov.post("/v1/policies", params={"name": "m9"},
                  content=json.dumps({"all_of": [{"default": True}]}).encode(), headers=h)
    assert c.status_code == 201 and c.json()["version"] == 2
    assert [v["version"] for v in prov.get("/v1/policies/m9/versions").json()] == [2, 1]
    assert prov.get("/v1/policies/m9/versions/1/content").content == doc
    assert prov.delete("/v1/policies/m9").status_code == 204
    assert prov.get("/v1/policies/m9").status_code == 404
    rego = b"package devattest\n\ndecision := {\"allow\": true}\n"
    r = prov.post("/v1/policies", params={"name": "m-rego"}, content=rego,
                  headers={"Content-Type": "application/x-rego"})
    assert r.status_code == 201, r.text
    bad = prov.post("/v1/policies", params={"name": "x"},
                    content=json.dumps({"unsafe_no_op": True}).encode(), headers=h)
    assert bad.status_code == 422
    assert prov.delete("/v1/policies/m-rego").status_code == 204


def test_veraison_corims_valid_accepted_bad_refused_with_reasons(live: Live) -> None:
    prov = live.client("provisioner")
    h = {"Content-Type": "application/rim+cbor"}
    ok = prov.post("/v1/reference-values", content=(CORIMS / "corim-psa-valid.cbor").read_bytes(),
                   headers=h)
    assert ok.status_code in (200, 201), ok.text
    assert ok.json()["name"] == "00000000-0000-0000-065a-0000000000001"
    codes = set()
    for bad in sorted(CORIMS.glob("corim-psa-bad-*.cbor")):
        kind = "trust-anchors" if "-ta-" in bad.name or "instance" in bad.name else \
            "reference-values"
        r = prov.post(f"/v1/{kind}", content=bad.read_bytes(), headers=h)
        assert r.status_code == 422, (bad.name, r.text)
        codes.add(r.json()["error"]["message"])
    assert len(codes) == len(list(CORIMS.glob("corim-psa-bad-*.cbor")))
    assert prov.delete("/v1/reference-values/00000000-0000-0000-065a-0000000000001"
                       ).status_code == 204


def test_inventory_filters_and_pagination(live: Live) -> None:
    admin = live.client("admin")
    for i in range(5):
        r = admin.post("/v1/devices", json={"id": f"inv-{i}", "model": "inv-model",
                                            "owner": f"o{i % 2}"})
        assert r.status_code == 201
    assert admin.post("/v1/devices", json={"id": "inv-0"}).status_code == 409
    page1 = admin.get("/v1/devices", params={"model": "inv-model", "limit": 3}).json()
    page2 = admin.get("/v1/devices", params={"model": "inv-model", "limit": 3,
                                             "after": page1["next_after"]}).json()
    ids = [d["id"] for d in page1["items"] + page2["items"]]
    assert ids == [f"inv-{i}" for i in range(5)]
    assert len(admin.get("/v1/devices", params={"owner": "o1"}).json()["items"]) == 2
    assert "inv-model" in admin.get("/v1/devices/models").json()
    assert admin.patch("/v1/devices/inv-1", json={"lifecycle_state": "suspended"}
                       ).json()["lifecycle_state"] == "suspended"
    r = admin.post("/v1/challenges", json={"device_id": "inv-1"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "device_inactive"
    assert admin.delete("/v1/devices/inv-4").status_code == 204
    assert admin.get("/v1/devices/inv-4").status_code == 404


def test_history_pagination_by_cursor(live: Live) -> None:
    # Four entries of our own at least, whatever other tests on this worker recorded.
    for _ in range(4):
        cid, nonce = live.challenge("dev-a")
        live.submit(cid, live.devices["dev-a"].token(nonce))
    rp = live.client("relying-party")
    first = rp.get("/v1/attestations", params={"device_id": "dev-a", "limit": 2}).json()
    second = rp.get("/v1/attestations", params={"device_id": "dev-a", "limit": 2,
                                                "before": first["next_before"]}).json()
    ids = [i["id"] for i in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4




def test_webhook_on_status_change_is_hmac_signed_and_failures_dead_letter(live: Live) -> None:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rp = live.client("relying-party")
    try:
        hook = rp.post("/v1/webhooks", json={"url": f"http://127.0.0.1:{server.server_port}/h"}
                       ).json()
        dead = rp.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/unreachable"}).json()
        live.client("admin").post("/v1/devices", json={"id": "hooked", "model": "m1"})
        # none -> contraindicated (a token for another nonce) is a status change
        cid, _ = live.challenge("hooked")
        live.submit(cid, live.devices["dev-a"].token(b"\x02" * 32))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            letters = rp.get("/v1/webhooks/-/dead-letters").json()
            if Receiver.received and any(d["webhook_id"] == dead["id"] for d in letters):
                break
            time.sleep(0.1)
        headers, body = next((h, b) for h, b in Receiver.received
                             if b'"hooked"' in b)
        event = json.loads(body)
        assert event["device_id"] == "hooked" and event["status"] == "contraindicated"
        assert verify_signature(hook["secret"], int(headers["X-Devattest-Timestamp"]), body,
                                headers["X-Devattest-Signature"])
        assert not verify_signature("x" * 32, int(headers["X-Devattest-Timestamp"]), body,
                                    headers["X-Devattest-Signature"])
        letter = next(d for d in rp.get("/v1/webhooks/-/dead-letters").json()
                      if d["webhook_id"] == dead["id"])
        assert letter["attempts"] == 2 and letter["last_error"]
    finally:
        server.shutdown()
        rp.delete(f"/v1/webhooks/{hook['id']}")
        rp.delete(f"/v1/webhooks/{dead['id']}")


def test_tokens_are_admin_managed_and_revocable(live: Live) -> None:
    admin = live.client("admin")
    created = admin.post("/v1/tokens", json={"role": "relying-party", "label": "t"}).json()
    assert created["token"].startswith("dat_")
    listed = admin.get("/v1/tokens").json()
    assert all("token" not in t and "token_hash" not in t for t in listed)
    live.tokens["tmp"] = created["token"]
    assert live.client("tmp").get("/v1/devices").status_code == 200
    assert admin.delete(f"/v1/tokens/{created['id']}").status_code == 204
    assert live.client("tmp").get("/v1/devices").status_code == 401
    assert admin.post("/v1/tokens", json={"role": "device"}).status_code == 400


def test_operations_endpoints(live: Live) -> None:
    c = live.client()
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").json()["status"] == "ready"
    assert c.get("/metrics").status_code == 401  # not open by default (issue 13, defect 7)
    assert "devattest_http_requests_total" in live.client("admin").get("/metrics").text
    spec = c.get("/openapi.json").json()
    assert "/v1/challenges/{challenge_id}/evidence" in spec["paths"]
    assert live.client("admin").post("/v1/admin/retention").status_code == 200


@pytest.mark.parametrize("path", ["/v1/challenges/zz/evidence", "/v1/attestations/0"])
def test_malformed_path_parameters_are_422(live: Live, path: str) -> None:
    c = live.client("admin")
    r = c.post(path, content=b"x") if "evidence" in path else c.get(path)
    assert r.status_code == 422
