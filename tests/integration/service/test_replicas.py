"""Several replicas on one PostgreSQL, and crash safety (kill -9 under load)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.integration.service._sim import (
    MEDIA_TYPE,
    PsaDevice,
    ServiceProcess,
    add_device,
    b64url_decode,
    ensure_signing_key,
    make_token,
    trust_anchors_json,
)


def _provision(base: str, admin: str, devices: list[PsaDevice]) -> None:
    r = httpx.post(f"{base}/v1/trust-anchors", params={"name": "fleet"},
                   content=trust_anchors_json(devices),
                   headers={"Authorization": f"Bearer {admin}",
                            "Content-Type": "application/json"})
    assert r.status_code in (200, 201), r.text


def test_replicas_accept_concurrent_duplicate_evidence_exactly_once(
        tmp_path: Path, make_postgres_database: Callable[[], str]) -> None:
    url = make_postgres_database()
    ensure_signing_key(tmp_path)
    add_device(url, "dev-r")
    admin = make_token(url, "admin")
    device = PsaDevice("dev-r")
    replicas = [ServiceProcess(tmp_path, url).start(), ServiceProcess(tmp_path, url).start()]
    try:
        _provision(replicas[0].url, admin, [device])
        auth = {"Authorization": f"Bearer {admin}"}
        ch = httpx.post(f"{replicas[1].url}/v1/challenges", json={"device_id": "dev-r"},
                        headers=auth).json()
        evidence = device.token(b64url_decode(ch["nonce"]))
        clients = [httpx.Client(base_url=r.url, headers=auth, timeout=60,
                                limits=httpx.Limits(max_connections=32)) for r in replicas]

        def submit(i: int) -> int:
            r = clients[i % 2].post(f"/v1/challenges/{ch['id']}/evidence", content=evidence,
                                    headers={"Content-Type": MEDIA_TYPE})
            return r.status_code

        with ThreadPoolExecutor(48) as pool:
            codes = Counter(pool.map(submit, range(1000)))
        assert codes == {200: 1, 409: 999}, codes
        # every attempt is in the history: one appraisal, 999 recorded replays
        outcomes: Counter[str] = Counter()
        before = None
        while True:
            params: dict[str, str | int] = {"device_id": "dev-r", "limit": 500}
            if before is not None:
                params["before"] = before
            page = clients[0].get("/v1/attestations", params=params).json()
            outcomes.update(i["outcome"] for i in page["items"])
            if page["next_before"] is None:
                break
            before = page["next_before"]
        assert outcomes == {"appraised": 1, "nonce_replayed": 999}
        for c in clients:
            c.close()
    finally:
        for r in replicas:
            r.stop()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill9_under_load_loses_no_accepted_attestation_and_reuses_no_nonce(
        tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'devattest.db'}"
    else:
        url = request.getfixturevalue("make_postgres_database")()
    ensure_signing_key(tmp_path)
    devices = [PsaDevice(f"dev-{i}") for i in range(8)]
    for d in devices:
        add_device(url, d.device_id)
    admin = make_token(url, "admin")
    svc = ServiceProcess(tmp_path, url, workers=2).start()
    auth = {"Authorization": f"Bearer {admin}"}
    _provision(svc.url, admin, devices)

    accepted: dict[str, int] = {}      # challenge id -> attestation id (200 seen)
    evidence: dict[str, bytes] = {}    # every challenge whose Evidence was sent
    lock = threading.Lock()
    stop = threading.Event()

    def load(d: PsaDevice) -> None:
        with httpx.Client(base_url=svc.url, headers=auth, timeout=5) as c:
            while not stop.is_set():
                try:
                    ch = c.post("/v1/challenges", json={"device_id": d.device_id}).json()
                    token = d.token(b64url_decode(ch["nonce"]))
                    with lock:
                        evidence[ch["id"]] = token
                    r = c.post(f"/v1/challenges/{ch['id']}/evidence", content=token,
                               headers={"Content-Type": MEDIA_TYPE})
                except (httpx.HTTPError, KeyError, ValueError):
                    return  # the server died under us
                if r.status_code == 200:
                    with lock:
                        accepted[ch["id"]] = r.json()["attestation_id"]

    threads = [threading.Thread(target=load, args=(d,)) for d in devices]
    for t in threads:
        t.start()
    # let some load through, then kill -9 the master and both workers mid-flight
    deadline = threading.Event()
    while len(accepted) < 100 and not deadline.wait(0.05):
        pass
    svc.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert len(accepted) >= 100

    svc = ServiceProcess(tmp_path, url, port=svc.port).start()
    try:
        with httpx.Client(base_url=svc.url, headers=auth, timeout=30) as c:
            # no accepted attestation is missing from history
            for cid, att_id in accepted.items():
                row = c.get(f"/v1/attestations/{att_id}")
                assert row.status_code == 200, (cid, att_id)
                assert row.json()["challenge_id"] == cid
                assert row.json()["outcome"] == "appraised"
            # no nonce can be used twice: accepted ones are refused; one in flight at the
            # crash is accepted at most once (if its transaction never committed)
            for cid, token in evidence.items():
                codes = [c.post(f"/v1/challenges/{cid}/evidence", content=token,
                                headers={"Content-Type": MEDIA_TYPE}).status_code
                         for _ in range(2)]
                if cid in accepted:
                    assert codes == [409, 409], cid
                else:
                    assert codes in ([409, 409], [200, 409]), (cid, codes)
            # and the history holds exactly one appraisal per consumed nonce
            per_challenge: Counter[str] = Counter()
            before = None
            while True:
                params: dict[str, str | int] = {"limit": 500, "outcome": "appraised"}
                if before is not None:
                    params["before"] = before
                page = c.get("/v1/attestations", params=params).json()
                per_challenge.update(i["challenge_id"] for i in page["items"])
                if page["next_before"] is None:
                    break
                before = page["next_before"]
            assert max(per_challenge.values()) == 1
            assert set(accepted) <= set(per_challenge)
    finally:
        svc.stop()

