"""Dashboard benchmark: every page against a 100,000-device fleet on PostgreSQL.

Seeds a fresh database with COPY: 100,000 devices (5% without a lifecycle record, as if
attested over HTTP only), their lifecycle records with a realistic posture mix, three
lifecycle events and three attestation results per device spread over the last 24 hours
(the latest with an EAR carrying annotated claims), a day of posture samples, Reference
Values for every model and a CA Trust Anchor. Then it starts the real service (uvicorn, one
worker), logs in through the form, and times each page over HTTP: the client-observed time
and the server-side time (the ``Server-Timing`` header the dashboard sets). Fleet aggregates
are measured uncached (``DEVATTEST_DASHBOARD_CACHE_SECONDS=0``); the fleet page is also
measured with the default 5-second cache.

Goal: every page under 300 ms (p95), server side.

    .venv/bin/python benchmarks/bench_dashboard.py [--devices 100000] [--requests 40]
        [--pg-url postgresql://postgres@127.0.0.1:5432/postgres] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devattest.store import TokenRepository, open_store

MODELS = [f"model-{c}" for c in "abcdefgh"]
OWNERS = [f"owner-{i:02d}" for i in range(50)]
VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.0.1", "2.1.0"]
SIGNER = b"\xa5" * 32
# Posture mix per 1,000 devices: trusted, warning, untrusted, overdue, unknown.
MIX = [("trusted", 880), ("warning", 40), ("untrusted", 30), ("overdue", 20), ("unknown", 30)]
STATUS_OF = {"trusted": "affirming", "warning": "warning", "untrusted": "contraindicated",
             "overdue": "affirming", "unknown": "none"}


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def impl_id(model: str) -> bytes:
    return hashlib.sha256(f"implementation:{model}".encode()).digest()


def golden(model: str, comp: str, version: str) -> bytes:
    return hashlib.sha256(f"{model}/{comp}/{version}".encode()).digest()


def fake_ear(model: str, version: str, status: str, iat: int) -> str:
    """A JWT-shaped EAR with annotated PSA claims (the dashboard reads, never re-verifies,
    its own stored EARs; the signature bytes are not checked here)."""
    bl = golden(model, "BL", version) if status != "contraindicated" else \
        hashlib.sha256(b"tampered").digest()
    payload = {
        "eat_profile": "tag:ietf.org,2026:rats/ear#03", "iat": iat, "ear_status": status,
        "ear_verifier_id": {"developer": "bench", "build": "bench"},
        "submods": {"psa": {"ear_status": status, "ear_devattest": {"annotated-evidence": {
            "profile": "tag:psacertified.org,2023:psa#tfm", "claims": {
                "profile": "tag:psacertified.org,2023:psa#tfm",
                "implementation_id": _b64(impl_id(model)), "client_id": 1,
                "security_lifecycle": 12288,
                "software_components": [
                    {"measurement_type": "BL", "measurement_value": _b64(bl),
                     "signer_id": _b64(SIGNER)},
                    {"measurement_type": "PRoT",
                     "measurement_value": _b64(golden(model, "PRoT", version)),
                     "signer_id": _b64(SIGNER)}]}}}}}}
    head = _b64(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    return f"{head}.{_b64(json.dumps(payload).encode())}.{_b64(b'x' * 64)}"


def posture_of(i: int) -> str:
    r = (i * 7919) % 1000
    for p, n in MIX:
        if r < n:
            return p
        r -= n
    return "trusted"


def seed(url: str, n: int) -> dict[str, Any]:
    """Migrate and COPY the fleet in; returns what the timings need."""
    store = open_store(url)
    now = datetime.now(UTC)
    with store.write() as s:
        admin = TokenRepository(s).create(role="admin", now=now)[1]
        rp = TokenRepository(s).create(role="relying-party", now=now)[1]
    store.dispose()
    pg = url.replace("postgresql+psycopg://", "postgresql://")
    started = time.perf_counter()
    counts: dict[str, int] = {}
    with psycopg.connect(pg) as conn, conn.cursor() as cur:
        att_id = 0
        with cur.copy("COPY devices (id, model, owner, lifecycle_state, instance_id, status, "
                      "latest_attestation_id, created_at, updated_at) FROM STDIN") as cp:
            for i in range(n):
                p = posture_of(i)
                status = STATUS_OF[p]
                latest = None if status == "none" else i * 3 + 3
                cp.write_row((f"dev-{i:06d}", MODELS[i % len(MODELS)],
                              OWNERS[(i // 7) % len(OWNERS)],
                              "suspended" if p == "untrusted" else "active", None, status,
                              latest, now - timedelta(days=30), now))
        counts["devices"] = n
        with cur.copy("COPY device_lifecycle (device_id, state, state_reason, "
                      "firmware_version, latest_status, latest_at, latest_requested_at, "
                      "latest_reasons, latest_challenge_id, next_deadline, posture, "
                      "posture_reason, updated_at) FROM STDIN") as cp:
            k = 0
            for i in range(n):
                if i % 20 == 0:
                    continue  # no lifecycle record: attested over HTTP only
                p = posture_of(i)
                status = STATUS_OF[p]
                at = now - timedelta(seconds=(i * 37) % 86_000)
                reason = {
                    "trusted": "affirming result 12min ago",
                    "warning": "attestation due after firmware_update within 4min; last "
                               "result affirming",
                    "untrusted": "quarantined: last attestation failed: component 'BL': "
                                 "measurement is not a Reference Value",
                    "overdue": "no evidence after firmware_update: deadline passed 3min ago",
                    "unknown": "never attested"}[p]
                deadline = now + timedelta(minutes=4) if p == "warning" else (
                    now - timedelta(minutes=3) if p == "overdue" else None)
                reasons = json.dumps([["unknown_measurement", "component 'BL': measurement "
                                       "is not a Reference Value"]]
                                     if p == "untrusted" else [])
                cp.write_row((f"dev-{i:06d}", "quarantined" if p == "untrusted" else
                              "onboarded", "", VERSIONS[(i // 3) % len(VERSIONS)],
                              None if status == "none" else status,
                              None if status == "none" else at,
                              None if status == "none" else at, reasons, None, deadline, p,
                              reason, at))
                k += 1
        counts["device_lifecycle"] = k
        with cur.copy("COPY lifecycle_events (event_id, device_id, kind, details, source, at, "
                      "deadline, satisfied_at, satisfied_by_challenge) FROM STDIN") as cp:
            k = 0
            for i in range(n):
                if i % 20 == 0:
                    continue
                for j, kind in enumerate(("boot", "firmware_update", "ownership_transfer")):
                    at = now - timedelta(hours=20 - 6 * j, seconds=i % 3600)
                    pending = posture_of(i) in ("warning", "overdue") and j == 2
                    dl = at + timedelta(minutes=5)
                    cp.write_row((f"e{i}-{j}", f"dev-{i:06d}", kind,
                                  json.dumps({"firmware_version": VERSIONS[j]}), "device", at,
                                  dl, None if pending else at + timedelta(seconds=2), None))
                    k += 1
        counts["lifecycle_events"] = k
        with cur.copy("COPY attestations (id, device_id, challenge_id, outcome, status, "
                      "media_type, evidence_sha256, reasons, ear, ear_expires_at, created_at) "
                      "FROM STDIN") as cp:
            for i in range(n):
                p = posture_of(i)
                if STATUS_OF[p] == "none":
                    continue
                model, version = MODELS[i % len(MODELS)], VERSIONS[(i // 3) % len(VERSIONS)]
                for j in range(3):
                    att_id = i * 3 + j + 1
                    last = j == 2
                    status = STATUS_OF[p] if last else "affirming"
                    at = now - timedelta(seconds=(86_400 * (2 - j) // 3) + (i * 13) % 28_000)
                    reasons = json.dumps([{"code": "unknown_measurement",
                                           "message": "component 'BL': measurement is not a "
                                                      "Reference Value"}]
                                         if status == "contraindicated" else [])
                    cp.write_row((att_id, f"dev-{i:06d}", secrets.token_hex(16), "appraised",
                                  status, "application/psa-attestation-token",
                                  hashlib.sha256(f"{i}/{j}".encode()).hexdigest(), reasons,
                                  fake_ear(model, version, status, int(at.timestamp()))
                                  if last else None, at + timedelta(hours=1), at))
            counts["attestations"] = att_id
        cur.execute("SELECT setval(pg_get_serial_sequence('attestations', 'id'), %s)",
                    (att_id + 1,))
        with cur.copy("COPY fleet_posture_samples (at, trusted, warning, untrusted, overdue, "
                      "unknown) FROM STDIN") as cp:
            base = now.replace(second=0, microsecond=0)
            for m in range(24 * 60):
                drift = (m % 90) * 10
                cp.write_row((base - timedelta(minutes=m), 88_000 - drift, 4_000 + drift,
                              3_000, 2_000, 3_000))
        conn.commit()
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    seeded = time.perf_counter() - started
    return {"admin": admin, "rp": rp, "seconds": seeded, "counts": counts}


def provision(base: str, token: str) -> None:
    """Reference Values for every model and one CA Trust Anchor, through the API."""
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    classes = [{"implementation_id": impl_id(m).hex(), "source": f"releases of {m}",
                "components": [{"measurement_type": c, "signer_ids": [SIGNER.hex()],
                                "measurement_values": [golden(m, c, v).hex()
                                                       for v in VERSIONS]}
                               for c in ("BL", "PRoT")]} for m in MODELS]
    r = httpx.post(f"{base}/v1/reference-values?name=releases", headers=h, timeout=30,
                   content=json.dumps({"format": "devattest.reference-values/v1",
                                       "classes": classes}))
    r.raise_for_status()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench Device CA")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    r = httpx.post(f"{base}/v1/trust-anchors?name=device-ca", headers=h, timeout=30,
                   content=json.dumps({"format": "devattest.trust-anchors/v1",
                                       "certificates": [{"certificate": pem,
                                                         "manufacturer": "ACME"}]}))
    r.raise_for_status()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(url: str, tmp: Path, cache: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "DEVATTEST_ACCESS_LOG": "false", "DEVATTEST_LOG_LEVEL": "WARNING",
           "DEVATTEST_RETENTION_INTERVAL_SECONDS": "0", "DEVATTEST_WEBHOOK_WORKER": "false",
           "DEVATTEST_DASHBOARD_CACHE_SECONDS": cache,
           "DEVATTEST_DASHBOARD_SAMPLE_SECONDS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "devattest.service.cli", "serve", "--port",
                             str(port), "--workers", "1", "--data-dir", str(tmp),
                             "--db-url", url], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("the service did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def logged_in(base: str, token: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=30)
    r = c.get("/dashboard/login")
    m = re.search(r'name="login_csrf" value="([^"]+)"', r.text)
    assert m is not None
    r = c.post("/dashboard/login", data={"token": token, "login_csrf": m.group(1),
                                         "next": "/dashboard/"})
    assert r.status_code == 303, r.text
    return c


def time_page(c: httpx.Client, path: str, n: int) -> dict[str, float]:
    for _ in range(3):
        c.get(path).raise_for_status()
    client, server = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        r = c.get(path)
        client.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        m = re.search(r"dur=([0-9.]+)", r.headers.get("server-timing", ""))
        server.append(float(m.group(1)) if m else float("nan"))

    def pct(xs: list[float], q: float) -> float:
        return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 \
            else xs[0]

    return {"server_p50": statistics.median(server), "server_p95": pct(server, 95),
            "client_p50": statistics.median(client), "client_p95": pct(client, 95),
            "bytes": len(r.content)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    args = ap.parse_args()

    load0 = os.getloadavg()[0]
    name = f"devattest_dash_bench_{secrets.token_hex(4)}"
    with psycopg.connect(args.pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = "postgresql+psycopg://" + args.pg_url.split("://", 1)[1].rsplit("/", 1)[0] + \
        "/" + name
    tmp = Path(tempfile.mkdtemp(prefix="devattest-dash-bench-"))
    try:
        seeded = seed(url, args.devices)
        print(f"seeded {seeded['counts']} in {seeded['seconds']:.1f} s (COPY + VACUUM ANALYZE)")
        n = args.devices
        mid = f"dev-{n // 2:06d}"
        bad = next(i for i in range(1, n) if posture_of(i) == "untrusted" and i % 20)
        detail = f"dev-{bad:06d}"
        pages = [
            ("fleet (uncached aggregates)", "/dashboard/"),
            ("needs attention: untrusted", "/dashboard/attention?posture=untrusted"),
            ("needs attention: untrusted, deep page",
             f"/dashboard/attention?posture=untrusted&after={mid}"),
            ("needs attention: overdue", "/dashboard/attention?posture=overdue"),
            ("needs attention: warning", "/dashboard/attention?posture=warning"),
            ("devices", "/dashboard/devices"),
            ("devices, deep page", f"/dashboard/devices?after={mid}"),
            ("devices by model, deep page", f"/dashboard/devices?model=model-c&after={mid}"),
            ("devices by firmware", "/dashboard/devices?firmware_version=2.0.1"),
            ("devices by posture: unknown", "/dashboard/devices?posture=unknown"),
            ("device detail (untrusted)", f"/dashboard/devices/{detail}"),
            ("live page", "/dashboard/live"),
            ("live fragment (htmx poll)", "/dashboard/live/fragment"),
            ("reference values", "/dashboard/provisioning/reference-values"),
            ("trust anchors", "/dashboard/provisioning/trust-anchors"),
            ("policies", "/dashboard/provisioning/policies"),
        ]
        results: list[tuple[str, dict[str, float]]] = []
        proc, base = start_service(url, tmp, cache="0")
        try:
            provision(base, seeded["admin"])
            c = logged_in(base, seeded["rp"])
            for label, path in pages:
                results.append((label, time_page(c, path, args.requests)))
        finally:
            stop(proc)
        proc, base = start_service(url, tmp, cache="5")
        try:
            c = logged_in(base, seeded["rp"])
            results.append(("fleet (default 5 s cache)", time_page(c, "/dashboard/",
                                                                   args.requests)))
        finally:
            stop(proc)
        print(f"\n{n:,} devices, PostgreSQL, 1 uvicorn worker, {args.requests} sequential "
              "requests per page (after 3 warm-up), relying-party session; ms")
        print("| page | server p50 | server p95 | client p50 | client p95 | KiB | < 300 ms |")
        print("|---|---:|---:|---:|---:|---:|:---:|")
        worst = 0.0
        for label, r in results:
            worst = max(worst, r["server_p95"], r["client_p95"])
            ok = "yes" if max(r["server_p95"], r["client_p95"]) < 300 else "NO"
            print(f"| {label} | {r['server_p50']:.1f} | {r['server_p95']:.1f} | "
                  f"{r['client_p50']:.1f} | {r['client_p95']:.1f} | {r['bytes'] / 1024:.0f} "
                  f"| {ok} |")
        print(f"\nworst p95: {worst:.1f} ms (goal < 300 ms); load average at the end "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (at the start {load0:.1f})")
    finally:
        if not args.keep:
            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            print(f"kept database {url}")


if __name__ == "__main__":
    main()
