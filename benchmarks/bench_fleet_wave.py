"""Fleet-wide update wave over MQTT into the Verifier service on PostgreSQL.

N devices (``unsafe_software`` keys, multiplexed over a few MQTT connections) each report a
``firmware_update`` event at once; the Verifier replicas (separate processes, MQTT 5 shared
subscription, one PostgreSQL) challenge each device, appraise its PSA token and publish the
result. Reported: time from the first event until every device has its result, results/s,
and the ratio to the two-core raw P-256 verify limit (2 x the single-core
``cryptography`` ECDSA P-256 verify rate measured in the same run).

    .venv/bin/python benchmarks/bench_fleet_wave.py [--devices 10000] [--replicas 2]
        [--workers 2] [--batch 64] [--per-link 25000] [--device-procs 2] [--sign-threads 0]
        [--retry 60]
        [--pg-url postgresql://postgres@127.0.0.1:5432/postgres] [--mqtt mqtt://host:port]

It also prints the load average and the CPU seconds each process group used over the wave
(from ``/proc``: replicas, the simulated devices' processes, the wave database's
PostgreSQL backends, PostgreSQL's background processes, Mosquitto, the whole box), per
device, and each replica's CPU per thread.

``--batch N`` lets each Verifier worker take up to N waiting messages and process the events
and the Evidence among them in one transaction each (``--batch 1``: one message per
transaction, the path before batching).

Everything runs on this machine: the devices' signing and MQTT clients share the two cores
with the Verifier replicas, Mosquitto and PostgreSQL. The devices are spread over
``--device-procs`` forked processes (one Python process uses one core at most; a fleet in
one process held the wave back whenever the Verifier waited for Evidence).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec


def raw_verify_rate(seconds: float = 2.0) -> float:
    """Single-core ECDSA P-256 verifications per second (cryptography/OpenSSL)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key()
    msg = b"x" * 200
    sig = key.sign(msg, ec.ECDSA(hashes.SHA256()))
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(200):
            pub.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
        n += 200
    return n / (time.perf_counter() - t0)


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int, *, tid: int | None = None) -> float:
    """utime + stime of a process (all its threads) or of one of its threads, in seconds
    (0 if it is gone)."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _box_cpu_seconds() -> float:
    """CPU seconds spent on the whole box (all cores, not idle/iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / _TICK


def _postgres_pids(admin_url: str, db_url: str) -> tuple[list[int], list[int]]:
    """The backends connected to the wave's database, and PostgreSQL's own background
    processes (WAL writer, checkpointer, ...; they serve every database)."""
    import psycopg

    name = db_url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        backends = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))]
        background = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'")]
    return backends, background


class CpuMeter:
    """CPU seconds per process group over the wave (from ``/proc``)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.start = {p: _cpu_seconds(p) for pids in groups.values() for p in pids}
        self.box0 = _box_cpu_seconds()

    def report(self, devices: int, elapsed: float,
               more: dict[str, list[int]] | None = None) -> str:
        """Per group; ``more`` adds processes that started during the wave (counted whole)."""
        lines = []
        total = 0.0
        for g in {**self.groups, **(more or {})}:
            pids = set(self.groups.get(g, [])) | set((more or {}).get(g, []))
            used = sum(_cpu_seconds(p) - self.start.get(p, 0.0) for p in pids)
            total += used
            lines.append(f"  {g:<22} {used:7.1f} core-s  {1000 * used / devices:6.2f} ms/device")
        box = _box_cpu_seconds() - self.box0
        lines.append(f"  {'(all of the above)':<22} {total:7.1f} core-s  "
                     f"{1000 * total / devices:6.2f} ms/device")
        lines.append(f"  {'whole box':<22} {box:7.1f} core-s of {2 * elapsed:.1f} "
                     f"(other work: {box - total:.1f})")
        return "\n".join(lines)


def _fresh_database(admin_url: str) -> str:
    import psycopg

    name = f"devattest_wave_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def _drop_database(admin_url: str, url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


class _Shard:
    """A forked process carrying a slice of the simulated fleet (its own MQTT connections and
    signing): one Python process holds one core at most, so a fleet in a single process was
    the wave's bottleneck whenever the Verifier waited for Evidence. Forked after
    provisioning, it inherits the devices' keys."""

    def __init__(self, devices: list[Any], args: argparse.Namespace, settings: Any) -> None:
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._go, self._finish = ctx.Event(), ctx.Event()
        self._proc = ctx.Process(target=_shard_main,
                                 args=(devices, args, settings, child, self._go,
                                       self._finish), daemon=True)
        self._proc.start()
        self.pid = self._proc.pid

    def wait_ready(self, timeout: float) -> int:
        if not self._conn.poll(timeout):
            raise RuntimeError("a device process did not connect")
        ready = self._conn.recv()
        self.links = int(ready["links"])
        return self.links

    def go(self) -> None:
        self._go.set()

    def report(self) -> dict[str, Any]:
        return dict(self._conn.recv())

    def close(self) -> None:
        self._finish.set()
        self._proc.join(timeout=60)
        if self._proc.is_alive():
            self._proc.kill()


def _shard_main(devices: list[Any], args: argparse.Namespace, settings: Any, conn: Any,
                go: Any, finish: Any) -> None:
    from devattest.attester.agent import DeviceAgent, MqttLink
    from devattest.transport.simulator import _builder

    links: list[MqttLink] = []
    for i in range(0, len(devices), args.per_link):
        link = MqttLink(settings, retry_interval=args.retry, workers=args.sign_threads)
        for dev in devices[i:i + args.per_link]:
            dev.agent = link.add(DeviceAgent(dev.device_id, evidence=_builder(dev)))
        link.start(wait=60)
        links.append(link)
    # The simulated fleet (its agents, keys and templates) lives through the wave: kept out
    # of the collector's full passes, as the replicas' start-up heap is.
    gc.collect()
    gc.freeze()
    conn.send({"links": len(links)})
    go.wait()
    for dev in devices:
        dev.agent.report("firmware_update", firmware_version="1.1")
    sent_at = time.monotonic()
    deadline = sent_at + args.timeout
    missing = sum(not dev.agent.wait_settled(max(0.1, deadline - time.monotonic()))
                  for dev in devices)
    done_at = time.monotonic()
    statuses: dict[str, int] = {}
    for dev in devices:
        st = dev.agent.stats.last_status or "none"
        statuses[st] = statuses.get(st, 0) + 1
    conn.send({"sent_at": sent_at, "done_at": done_at, "missing": missing,
               "statuses": statuses,
               "resent": sum(dev.agent.stats.resent for dev in devices),
               "challenges": sum(dev.agent.stats.challenges for dev in devices),
               "reconnects": sum(link.connects for link in links) - len(links)})
    finish.wait()
    for link in links:
        link.stop()


def _start_shards(devices: list[Any], args: argparse.Namespace, settings: Any
                  ) -> list[_Shard]:
    n = max(1, min(args.device_procs, len(devices)))
    size = -(-len(devices) // n)
    shards = [_Shard(devices[i:i + size], args, settings)
              for i in range(0, len(devices), size)]
    for shard in shards:
        shard.wait_ready(120)
    return shards


def replica_main(args: argparse.Namespace) -> None:
    """One Verifier replica (a separate process)."""
    import logging
    import signal

    from devattest.lifecycle import LifecycleRules
    from devattest.service.context import build_context
    from devattest.service.services.appraiser import BatchAppraiser
    from devattest.service.settings import Settings
    from devattest.transport.coordinator import LifecycleCoordinator
    from devattest.transport.mqtt import MqttSettings
    from devattest.transport.mqtt_service import MqttVerifierBridge

    logging.basicConfig(level=logging.WARNING)
    # Blocked before any thread starts (threads inherit the mask), so that sigwait below
    # receives the benchmark's SIGTERM instead of the default action killing the process.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    ctx = build_context(Settings(data_dir=Path(args.data_dir), database_url=args.db,
                                 webhook_worker=False, db_pool_size=8,
                                 challenge_ttl_seconds=600))
    coordinator = LifecycleCoordinator(
        ctx.store, ctx.attestation,
        rules=LifecycleRules(default_deadline=timedelta(seconds=600)),
        appraiser=BatchAppraiser.from_context(ctx) if args.batch > 1 else None)
    bridge = MqttVerifierBridge(coordinator, MqttSettings.from_url(args.mqtt),
                                workers=args.workers, sweep_interval=0,
                                client_id=f"bench-replica-{os.getpid()}",
                                batch_size=max(1, args.batch)).start()
    # As `devattest mqtt bridge` does once started: the provisioned material (the Trust
    # Anchors of the whole fleet) is loaded before the wave, and the start-up heap frozen.
    from datetime import UTC, datetime
    ctx.settle(now=datetime.now(UTC))
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    per_thread: dict[str, float] = {}
    for t in threading.enumerate():
        name = t.name.split("-")[0] if t.name.startswith("Thread-") else \
            t.name.rstrip("0123456789").rstrip("-_")
        per_thread[name] = per_thread.get(name, 0.0) + _cpu_seconds(
            os.getpid(), tid=t.native_id)
    print(f"replica {os.getpid()} CPU by thread: " + ", ".join(
        f"{k} {v:.1f}s" for k, v in sorted(per_thread.items(), key=lambda kv: -kv[1])),
        file=sys.stderr)
    bridge.stop()
    print(f"replica {os.getpid()}: {bridge.batched_messages} messages in {bridge.batches} "
          f"batches ({bridge.batched_messages / max(1, bridge.batches):.1f} per batch)",
          file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2,
                    help="threads per replica (2: with batches of 64, more threads only "
                         "contend for the GIL)")
    ap.add_argument("--per-link", type=int, default=25_000,
                    help="devices per MQTT connection (a gateway's link)")
    ap.add_argument("--device-procs", type=int, default=2,
                    help="processes the simulated devices are spread over (forked)")
    ap.add_argument("--retry", type=float, default=60.0,
                    help="seconds before an agent first resends an unconfirmed message")
    ap.add_argument("--sign-threads", type=int, default=0,
                    help="signing threads per device connection (0: sign on its network "
                         "thread; software keys sign in ~0.05 ms)")
    ap.add_argument("--batch", type=int, default=64,
                    help="messages per Verifier batch (1: one message per transaction)")
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--mqtt", default=None, help="broker URL (default: a private Mosquitto)")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--keep-db", action="store_true", help="keep the wave's database")
    ap.add_argument("--replica", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.replica:
        replica_main(args)
        return

    import logging

    from devattest.lifecycle import LifecycleRules
    from devattest.lifecycle.scenario import Scenario
    from devattest.transport.broker import EmbeddedMosquitto
    from devattest.transport.mqtt import MqttSettings
    from devattest.transport.simulator import (
        build_fleet,
        device_state,
        provision,
        verifier_stack,
    )

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("devattest.unsafe").setLevel(logging.ERROR)
    raw = raw_verify_rate()
    print(f"raw cryptography P-256 verify: {raw:,.0f}/s on one core; two-core limit "
          f"{2 * raw:,.0f}/s")
    db = _fresh_database(args.pg_url)
    broker = None
    mqtt_url = args.mqtt
    if mqtt_url is None:
        broker = EmbeddedMosquitto().start()
        mqtt_url = broker.url
    procs: list[subprocess.Popen[str]] = []
    shards: list[_Shard] = []
    with tempfile.TemporaryDirectory(prefix="bench-wave-") as tmp:
        data_dir = Path(tmp) / "verifier"
        scenario = Scenario(name="wave", devices=args.devices, adversaries=(), waves=(),
                            deadline_seconds=600)
        t0 = time.perf_counter()
        devices = build_fleet(scenario, None)
        rules = LifecycleRules(default_deadline=timedelta(seconds=600))
        try:
            with verifier_stack(data_dir=data_dir, db_url=db, rules=rules,
                                quarantine=False) as (ctx, coordinator):
                from datetime import UTC, datetime

                provision(ctx, coordinator, scenario, devices, now=datetime.now(UTC))
            print(f"provisioned {len(devices)} devices in {time.perf_counter() - t0:.1f}s")
            for _ in range(args.replicas):
                p = subprocess.Popen(
                    [sys.executable, __file__, "--replica", "--db", db, "--mqtt", mqtt_url,
                     "--data-dir", str(data_dir), "--workers", str(args.workers),
                     "--batch", str(args.batch)],
                    stdout=subprocess.PIPE, text=True)
                procs.append(p)
            for p in procs:
                assert p.stdout is not None
                assert p.stdout.readline().strip() == "ready"
            for dev in devices:
                dev.firmware_version = "1.1"
                dev.state = device_state(dev.model, "1.1", scenario)
            shards = _start_shards(devices, args, MqttSettings.from_url(mqtt_url))
            print(f"{sum(s.links for s in shards)} MQTT connections up in {len(shards)} device "
                  f"processes; starting the wave")
            backends, background = _postgres_pids(args.pg_url, db)
            groups = {"replicas": [p.pid for p in procs],
                      "devices": [s.pid for s in shards] + [os.getpid()],
                      "postgres backends": backends, "postgres background": background}
            if broker is not None and broker._proc is not None:
                groups["mosquitto"] = [broker._proc.pid]
            meter = CpuMeter(groups)
            load0 = os.getloadavg()
            t_start = time.monotonic()
            for shard in shards:
                shard.go()
            reports = [shard.report() for shard in shards]
            elapsed = max(r["done_at"] for r in reports) - t_start
            sent = max(r["sent_at"] for r in reports) - t_start
            statuses: dict[str, int] = {}
            for r in reports:
                for k, v in r["statuses"].items():
                    statuses[k] = statuses.get(k, 0) + v
            missing = sum(r["missing"] for r in reports)
            done = len(devices) - missing
            rate = done / elapsed
            print(f"events published in {sent:.1f}s")
            print(f"challenges received {sum(r['challenges'] for r in reports)}, messages "
                  f"resent {sum(r['resent'] for r in reports)} (agents resend after "
                  f"{args.retry:.0f}s, backing off); device connections re-established "
                  f"{sum(r['reconnects'] for r in reports)} times")
            print(f"load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f} "
                  f"(1 min)")
            print("CPU over the wave:")
            backends, _ = _postgres_pids(args.pg_url, db)
            print(meter.report(len(devices), elapsed, {"postgres backends": backends}))
            print(f"{done}/{len(devices)} results in {elapsed:.1f}s -> {rate:,.0f} results/s; "
                  f"statuses {statuses}")
            print(f"ratio to the two-core raw verify limit: {rate / (2 * raw):.3f}")
            print(f"| {len(devices)} | {args.replicas} x {args.workers}, batch {args.batch} | "
                  f"{elapsed:.1f} | "
                  f"{rate:,.0f} | {2 * raw:,.0f} | {rate / (2 * raw):.3f} | {missing} |")
        finally:
            for shard in shards:
                shard.close()
            for p in procs:
                p.terminate()
                p.wait(timeout=30)
            if broker is not None:
                broker.close()
            if not args.keep_db:
                _drop_database(args.pg_url, db)


if __name__ == "__main__":
    main()
