"""Service benchmark: full challenge + Evidence round trips per second, closed loop.

Load-generator processes (separate from the service) each run ``--concurrency`` clients on
one asyncio (uvloop) event loop. Each client keeps one HTTP/1.1 keep-alive connection and
loops: POST a challenge, sign a PSA token (P-256) carrying its nonce, POST the Evidence.
The client is deliberately lean (a minimal HTTP/1.1 client over asyncio streams, device
tokens created up front, PSA tokens signed from a pre-encoded template with pre-loaded keys)
so that it leaves the machine to the service; its CPU share is reported.

Every round trip is timed (p50, p99) and every answer checked (201, then 200 with an
``affirming`` result). Configurations: SQLite and PostgreSQL, 1 and 2 uvicorn workers. The
raw ``cryptography`` P-256 verify rate is measured in the same run, for scale.

    .venv/bin/python benchmarks/bench_service.py [--duration 8] [--concurrency 16]
        [--clients 1] [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cbor2
import httpx
import orjson
import psycopg
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from devattest.schemes.psa import MEDIA_TYPE_PSA, create_psa_token, psa_instance_id
from devattest.store import DeviceRepository, TokenRepository, open_store

IMPL = bytes(range(32))
_PLACEHOLDER = b"\x5a\xa5" * 16


def _claims(key: ec.EllipticCurvePrivateKey, nonce: bytes) -> dict[str, object]:
    iid = psa_instance_id(key.public_key())
    return {"profile_id": "tag:psacertified.org,2023:psa#tfm", "client_id": 1,
            "security_lifecycle": "sl_secured", "implementation_id": IMPL,
            "boot_seed": bytes(32), "instance_id": iid, "challenge": nonce,
            "sw_components": [{"sw_component_type": "BL", "measurement_value": b"\xaa" * 32,
                               "signer_id": b"\xcc" * 32}]}


class FastPsaSigner:
    """Signs PSA tokens for one key from a template made once by ``create_psa_token``: only
    the 32-byte nonce changes, so each token is one substitution, one CBOR Sig_structure and
    one ECDSA signature (RFC 9052 section 4.4)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        tagged = cbor2.loads(create_psa_token(_claims(key, _PLACEHOLDER), key))
        self._protected, self._unprotected, payload, _ = tagged.value
        self._head, sep, self._tail = payload.partition(_PLACEHOLDER)
        assert sep and _PLACEHOLDER not in self._tail

    def sign(self, nonce: bytes) -> bytes:
        assert len(nonce) == len(_PLACEHOLDER)
        payload = self._head + nonce + self._tail
        tbs = cbor2.dumps(["Signature1", self._protected, b"", payload])
        r, s = decode_dss_signature(self._key.sign(tbs, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return cbor2.dumps(cbor2.CBORTag(18, [self._protected, self._unprotected, payload, sig]))


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


class _Conn:
    """One HTTP/1.1 keep-alive connection (requests with Content-Length, responses with
    Content-Length: what uvicorn sends for these JSON answers)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None

    async def post(self, path: str, headers: bytes, body: bytes) -> tuple[int, bytes]:
        if self.w is None:
            self.r, self.w = await asyncio.open_connection(self.host, self.port)
        assert self.r is not None
        self.w.write(b"POST %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n%s" % (
            path.encode(), self.host.encode(), headers, len(body), body))
        head = await self.r.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        data = await self.r.readexactly(length) if length else b""
        if b"connection: close" in head.lower():
            self.w.close()
            self.w = None
        return status, data


def _load(host: str, port: int, tokens: list[str], keys_pem: list[bytes], first: int,
          concurrency: int, duration: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    import uvloop

    keys = [serialization.load_pem_private_key(p, password=None) for p in keys_pem]
    signers = [FastPsaSigner(k) for k in keys]  # type: ignore[arg-type]
    auth = [b"Authorization: Bearer %s\r\n" % t.encode() for t in tokens]
    json_ct = b"Content-Type: application/json\r\n"
    psa_ct = b"Content-Type: %s\r\n" % MEDIA_TYPE_PSA.encode()

    async def main() -> tuple[list[float], int, int, float]:
        lat: list[float] = []
        errors = 0
        non_affirming = 0
        end = time.perf_counter() + duration

        async def worker(i: int) -> None:
            nonlocal errors, non_affirming
            conn = _Conn(host, port)
            k = 0
            while time.perf_counter() < end:
                dev = (first + i + k * concurrency) % len(keys)
                k += 1
                t0 = time.perf_counter()
                status, data = await conn.post(
                    "/v1/challenges", auth[dev] + json_ct,
                    b'{"device_id":"bench-%d"}' % dev)
                if status != 201:
                    errors += 1
                    continue
                ch = orjson.loads(data)
                nonce = base64.urlsafe_b64decode(ch["nonce"] + "=" * (-len(ch["nonce"]) % 4))
                ev = signers[dev].sign(nonce)
                status, data = await conn.post(f"/v1/challenges/{ch['id']}/evidence",
                                               auth[dev] + psa_ct, ev)
                if status != 200:
                    errors += 1
                    continue
                if orjson.loads(data)["result"]["ear_status"] != "affirming":
                    non_affirming += 1
                lat.append(time.perf_counter() - t0)

        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        return lat, errors, non_affirming, cpu

    out.put(uvloop.run(main()))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) of every live process in a process group."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    vals = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


@contextmanager
def running_service(db: str, workers: int, args: argparse.Namespace,
                    keys: list[ec.EllipticCurvePrivateKey]
                    ) -> Iterator[tuple[subprocess.Popen[bytes], int, list[str]]]:
    """A fresh database with one device (and device token) per key, a ``devattest service
    serve`` process group on a free port, the keys provisioned as Trust Anchors and the
    devices' software as Reference Values."""
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
        tokens = []
        for i in range(len(keys)):
            DeviceRepository(s).create(device_id=f"bench-{i}", now=now)
            tokens.append(TokenRepository(s).create(role="device", device_id=f"bench-{i}",
                                                    now=now)[1])
        admin = TokenRepository(s).create(role="admin", now=now)[1]
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
        doc = {"format": "devattest.trust-anchors/v1", "keys": [
            {"public_key": k.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
             "instance_id": psa_instance_id(k.public_key()).hex(),
             "label": f"bench-{i}"} for i, k in enumerate(keys)]}
        httpx.post(base + "/v1/trust-anchors", content=json.dumps(doc).encode(),
                   headers={"Authorization": f"Bearer {admin}",
                            "Content-Type": "application/json"}).raise_for_status()
        # The devices' software as Reference Values: without them nothing is affirmed
        # (docs/ear.md, software_not_appraised).
        refvals = {"format": "devattest.reference-values/v1", "classes": [{
            "implementation_id": IMPL.hex(),
            "components": [{"measurement_type": "BL", "measurement_values": ["aa" * 32],
                            "signer_ids": ["cc" * 32]}]}]}
        httpx.post(base + "/v1/reference-values", content=json.dumps(refvals).encode(),
                   headers={"Authorization": f"Bearer {admin}",
                            "Content-Type": "application/json"}).raise_for_status()
        yield proc, port, tokens
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        if dropdb:
            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dropdb}" WITH (FORCE)')


def measure(proc: subprocess.Popen[bytes], port: int, tokens: list[str],
            keys: list[ec.EllipticCurvePrivateKey], args: argparse.Namespace
            ) -> dict[str, Any]:
    """A warm-up, then the measured closed-loop run against a running service."""
    pems = [k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()) for k in keys]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    per = max(1, args.concurrency // args.clients)
    for duration in (1.5, args.duration):
        procs = [ctx.Process(target=_load, args=("127.0.0.1", port, tokens, pems, c * per,
                                                 per, duration, q))
                 for c in range(args.clients)]
        for p in procs:
            p.start()
        time.sleep(0.3)  # let the clients import and load keys before measuring CPU
        srv0, m0 = _group_cpu(proc.pid), _machine_busy()
        parts = [q.get(timeout=duration + 120) for _ in procs]
        srv1, m1 = _group_cpu(proc.pid), _machine_busy()
        for p in procs:
            p.join()
    lat = sorted(x for part in parts for x in part[0])
    cap = args.duration * (os.cpu_count() or 1)
    return {"round_trips_per_s": len(lat) / args.duration,
            "p50_ms": statistics.median(lat) * 1000,
            "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
            "errors": sum(part[1] for part in parts),
            "non_affirming": sum(part[2] for part in parts), "n": len(lat),
            "client_cpu": sum(part[3] for part in parts) / cap,
            "server_cpu": (srv1 - srv0) / cap,
            "machine_busy": (m1[0] - m0[0]) / max(1, m1[1] - m0[1]),
            "server_cpu_ms_per_rt": (srv1 - srv0) / max(1, len(lat)) * 1000}


def run_config(db: str, workers: int, args: argparse.Namespace,
               keys: list[ec.EllipticCurvePrivateKey]) -> dict[str, Any]:
    """One configuration: start the service, measure, stop."""
    with running_service(db, workers, args, keys) as (proc, port, tokens):
        return {"db": db, "workers": workers, **measure(proc, port, tokens, keys, args)}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=16, help="clients in all")
    ap.add_argument("--clients", type=int, default=1, help="load-generator processes")
    ap.add_argument("--devices", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    args = ap.parse_args()
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(args.devices)]
    print(f"raw cryptography P-256 verify: {raw_verify_rate():,.0f}/s (one core)")
    print(f"{os.cpu_count()} CPUs; closed loop, {args.concurrency} clients in "
          f"{args.clients} process(es), {args.duration:.0f} s per configuration; CPU shares "
          "are of the whole machine during the measured run")
    print("| database | workers | round trips/s | p50 ms | p99 ms | errors | server CPU "
          "| server CPU ms/round trip | client CPU | machine busy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for db in ("sqlite", "postgresql"):
        if args.only and db != args.only:
            continue
        for workers in args.workers:
            r = run_config(db, workers, args, keys)
            errs = r["errors"] + r["non_affirming"]
            print(f"| {r['db']} | {r['workers']} | {r['round_trips_per_s']:,.0f} | "
                  f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {errs} | "
                  f"{r['server_cpu']:.0%} | {r['server_cpu_ms_per_rt']:.2f} | "
                  f"{r['client_cpu']:.0%} | {r['machine_busy']:.0%} |", flush=True)


if __name__ == "__main__":
    main()
