"""Service benchmark: full challenge + Evidence round trips per second, closed loop.

A separate load-generator process runs ``--concurrency`` clients, each looping: POST a
challenge, sign a PSA token (P-256) carrying its nonce, POST the Evidence. Every round trip
is timed (p50, p99). Configurations: SQLite and PostgreSQL, 1 and 2 uvicorn workers. The raw
``cryptography`` P-256 verify rate is measured in the same run for scale.

    .venv/bin/python benchmarks/bench_service.py [--duration 8] [--concurrency 16]
        [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devattest.schemes.psa import MEDIA_TYPE_PSA, create_psa_token, psa_instance_id
from devattest.store import DeviceRepository, TokenRepository, open_store

IMPL = bytes(range(32))


def _claims(key: ec.EllipticCurvePrivateKey, nonce: bytes) -> dict[str, object]:
    iid = psa_instance_id(key.public_key())
    return {"profile_id": "tag:psacertified.org,2023:psa#tfm", "client_id": 1,
            "security_lifecycle": "sl_secured", "implementation_id": IMPL,
            "boot_seed": bytes(32), "instance_id": iid, "challenge": nonce,
            "sw_components": [{"sw_component_type": "BL", "measurement_value": b"\xaa" * 32,
                               "signer_id": b"\xcc" * 32}]}


def raw_verify_rate(seconds: float = 1.0) -> float:
    """cryptography P-256 ECDSA verifications per second, one core."""
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key()
    data = b"x" * 200
    sig = key.sign(data, ec.ECDSA(hashes.SHA256()))
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        pub.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        n += 1
    return n / seconds


def _load(base: str, token: str, keys_pem: list[bytes], concurrency: int, duration: float,
          out: mp.Queue) -> None:  # type: ignore[type-arg]
    keys = [serialization.load_pem_private_key(p, password=None) for p in keys_pem]

    async def main() -> tuple[list[float], int, int]:
        lat: list[float] = []
        errors = 0
        non_affirming = 0
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as c:
            end = time.perf_counter() + duration

            async def worker(i: int) -> None:
                nonlocal errors, non_affirming
                k = 0
                while time.perf_counter() < end:
                    dev = (i + k * concurrency) % len(keys)
                    k += 1
                    t0 = time.perf_counter()
                    r = await c.post("/v1/challenges", json={"device_id": f"bench-{dev}"})
                    if r.status_code != 201:
                        errors += 1
                        continue
                    ch = r.json()
                    nonce = _b64d(ch["nonce"])
                    ev = create_psa_token(_claims(keys[dev], nonce), keys[dev])  # type: ignore[arg-type]
                    r = await c.post(f"/v1/challenges/{ch['id']}/evidence", content=ev,
                                     headers={"Content-Type": MEDIA_TYPE_PSA})
                    if r.status_code != 200:
                        errors += 1
                        continue
                    if r.json()["result"]["ear_status"] != "affirming":
                        non_affirming += 1
                    lat.append(time.perf_counter() - t0)

            await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return lat, errors, non_affirming

    out.put(asyncio.run(main()))


def _b64d(s: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_config(db: str, workers: int, args: argparse.Namespace,
               keys: list[ec.EllipticCurvePrivateKey]) -> dict[str, float | int | str]:
    tmp = Path(tempfile.mkdtemp(prefix="devattest-bench-"))
    dropdb = None
    if db == "sqlite":
        url = f"sqlite:///{tmp / 'devattest.db'}"
    else:
        name = f"devattest_bench_{secrets.token_hex(4)}"
        with psycopg.connect(args.pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = args.pg_url.rsplit("/", 1)[0] + "/" + name
        dropdb = name
    now = datetime.now(UTC)
    store = open_store(url)
    with store.write() as s:
        for i in range(len(keys)):
            DeviceRepository(s).create(device_id=f"bench-{i}", now=now)
        token = TokenRepository(s).create(role="admin", now=now)[1]
    store.dispose()
    port = _free_port()
    env = {**os.environ, "DEVATTEST_ACCESS_LOG": "false", "DEVATTEST_LOG_LEVEL": "WARNING",
           "DEVATTEST_RETENTION_INTERVAL_SECONDS": "0", "DEVATTEST_AUTH_CACHE_SECONDS": "5"}
    proc = subprocess.Popen([sys.executable, "-m", "devattest.service.cli", "serve", "--port",
                             str(port), "--workers", str(workers), "--data-dir", str(tmp),
                             "--db-url", url], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        import json

        doc = {"format": "devattest.trust-anchors/v1", "keys": [
            {"public_key": k.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
             "instance_id": psa_instance_id(k.public_key()).hex(),  # type: ignore[union-attr]
             "label": f"bench-{i}"} for i, k in enumerate(keys)]}
        httpx.post(base + "/v1/trust-anchors", content=json.dumps(doc).encode(),
                   headers={"Authorization": f"Bearer {token}",
                            "Content-Type": "application/json"}).raise_for_status()
        pems = [k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()) for k in keys]
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        # warm-up, then the measured run
        for duration in (1.0, args.duration):
            p = ctx.Process(target=_load, args=(base, token, pems, args.concurrency, duration,
                                                q))
            p.start()
            lat, errors, non_aff = q.get()
            p.join()
        lat.sort()
        return {"db": db, "workers": workers, "round_trips_per_s": len(lat) / args.duration,
                "p50_ms": statistics.median(lat) * 1000,
                "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000, "errors": errors,
                "non_affirming": non_aff, "n": len(lat)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        if dropdb:
            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dropdb}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--devices", type=int, default=64)
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    args = ap.parse_args()
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(args.devices)]
    print(f"raw cryptography P-256 verify: {raw_verify_rate():,.0f}/s (one core)")
    print(f"{os.cpu_count()} CPUs; closed loop, {args.concurrency} clients, "
          f"{args.duration:.0f} s per configuration")
    print("| database | workers | round trips/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for db in ("sqlite", "postgresql"):
        if args.only and db != args.only:
            continue
        for workers in (1, 2):
            r = run_config(db, workers, args, keys)
            print(f"| {r['db']} | {r['workers']} | {r['round_trips_per_s']:,.0f} | "
                  f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |", flush=True)


if __name__ == "__main__":
    main()
