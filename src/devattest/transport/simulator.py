"""The fleet simulator: N devices live through lifecycle waves over MQTT (or an in-process
bus) against the real Verifier service, with adversaries among them; then every device's
posture is checked (zero false accepts, zero false rejects).

Devices use ``unsafe_software`` keys (for large N) and, for a chosen few, real SoftHSM2 and
swtpm secure elements when those are installed. The Verifier side is the service's
attestation layer (:func:`devattest.service.context.build_context`) under the lifecycle
coordinator, on SQLite by default or PostgreSQL by URL.

Simulated time: the Verifier's clock is real time plus an offset the simulator moves forward
at the end (to let deadlines pass without waiting).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from devattest.attester.agent import DeviceAgent, MqttLink
from devattest.attester.claims import DeviceState, measure_device, psa_claims
from devattest.attester.evidence import PSA_MEDIA_TYPE, instance_id_of
from devattest.errors import DevattestError
from devattest.lifecycle import (
    Dimension,
    EventKind,
    LifecycleRules,
    LifecycleState,
    Posture,
    aggregate,
)
from devattest.lifecycle.scenario import (
    Adversary,
    CheckReport,
    Scenario,
    Verdict,
    Wave,
    check,
    parse_scenario,
)
from devattest.schemes.psa import create_psa_token
from devattest.service.services.appraiser import BatchAppraiser
from devattest.transport.coordinator import LifecycleCoordinator, quarantine_when_untrusted
from devattest.transport.mqtt import MqttSettings, parse_topic
from devattest.transport.mqtt_service import MqttVerifierBridge

_log = logging.getLogger("devattest.simulator")

SIGNER_ID = hashlib.sha256(b"acme firmware signing key").digest()
LIFECYCLE_SECURED = 0x3000
POSTURE_STYLE = {Posture.TRUSTED: "green", Posture.WARNING: "yellow",
                 Posture.UNTRUSTED: "bold red", Posture.OVERDUE: "magenta",
                 Posture.UNKNOWN: "dim"}


class SimClock:
    """Real time plus an offset (the simulator jumps forward to let deadlines pass)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward."""
        self.offset += delta


# -- firmware catalog and reference values --------------------------------------------------
def implementation_id(model: str) -> bytes:
    """The PSA implementation ID of a model (32 bytes)."""
    return hashlib.sha256(f"implementation:{model}".encode()).digest()


def measurement(model: str, component: str, version: str) -> bytes:
    """The golden measurement of one firmware component version."""
    return hashlib.sha256(f"{model}/{component}/{version}".encode()).digest()


def security_version(scenario: Scenario, version: str) -> int:
    """Security version: 1 for the vulnerable release, 2+ for the supported ones."""
    if version == scenario.vulnerable_firmware:
        return 1
    try:
        return 2 + scenario.firmware_versions.index(version)
    except ValueError:
        return 2


def device_state(model: str, version: str, scenario: Scenario, *, debug: bool = False,
                 tampered: bool = False) -> DeviceState:
    """The measured state of a device running ``version`` of its model's firmware."""
    svn = security_version(scenario, version)
    bl = hashlib.sha256(b"tampered bootloader").digest() if tampered else \
        measurement(model, "BL", version)
    return measure_device({
        "implementation_id": implementation_id(model).hex(), "hardware_model": model,
        "security_lifecycle": "secured", "debug": "enabled" if debug else "disabled",
        "boot_count": 1,
        "firmware": [
            {"type": "BL", "measurement": bl.hex(), "version": version,
             "security_version": svn, "signer_id": SIGNER_ID.hex()},
            {"type": "PRoT", "measurement": measurement(model, "PRoT", version).hex(),
             "version": version, "security_version": svn, "signer_id": SIGNER_ID.hex()},
        ]})


def reference_values_document(scenario: Scenario) -> dict[str, Any]:
    """Reference Values (devattest JSON) for every model: the released firmware versions
    (the vulnerable one included, refused by the minimum version: a rollback) and the
    secured lifecycle only (debug states are refused)."""
    released = [*scenario.firmware_versions, scenario.vulnerable_firmware]
    classes = []
    for model in scenario.models:
        classes.append({
            "implementation_id": implementation_id(model).hex(),
            "components": [
                {"measurement_type": comp,
                 "measurement_values": sorted(measurement(model, comp, v).hex()
                                              for v in released),
                 "signer_ids": [SIGNER_ID.hex()], "min_version": scenario.initial_firmware}
                for comp in ("BL", "PRoT")],
            "allowed_lifecycles": list(range(LIFECYCLE_SECURED, LIFECYCLE_SECURED + 0x100)),
            "source": f"simulated release catalog for {model}"})
    return {"format": "devattest.reference-values/v1", "classes": classes}


# -- devices ---------------------------------------------------------------------------------
@dataclass
class SimDevice:
    """One simulated device."""

    device_id: str
    model: str
    owner: str
    role: str  # "honest" or an Adversary value
    se: Any
    backend: str
    firmware_version: str
    debug: bool = False
    tampered: bool = False
    state: DeviceState | None = None
    agent: DeviceAgent | None = None
    #: The key an adversary signs with instead of its own (cloned key).
    signing_key: Any = None
    #: The Instance ID an adversary claims instead of its own (evidence for another ID).
    claimed_instance_id: bytes | None = None
    captured: bytes | None = None
    took_bad_update: bool = False
    results: list[dict[str, Any]] = field(default_factory=list)


#: Signature sizes (raw r||s) of the COSE algorithms a template can be made for.
_SIGNATURE_SIZES = {-7: 64, -35: 96, -36: 132}


class _RecordingSigner:
    """Keeps what it is asked to sign (the Sig_structure) and answers with zeros of the
    algorithm's signature size: a template's signature is cut off and never sent, so the
    secure element is not asked for it (each token from the template is signed by it)."""

    def __init__(self, se: Any) -> None:
        self.alg = se.alg
        self.signed: list[bytes] = []

    def sign(self, data: bytes) -> bytes:
        self.signed.append(data)
        return bytes(_SIGNATURE_SIZES.get(self.alg, 0))


@dataclass(frozen=True, slots=True)
class _TokenTemplate:
    """A device's PSA token with the nonce left out: the claims, headers and CBOR framing do
    not change from one challenge to the next, only the nonce and the signature do. Each
    token is still signed by the device's secure element over its own Sig_structure
    (RFC 9052 section 4.4), which carries the nonce."""

    state: DeviceState
    key: Any
    instance_id: bytes
    tbs: tuple[bytes, bytes]
    token: tuple[bytes, bytes]
    signature_size: int

    @classmethod
    def build(cls, state: DeviceState, key: Any, instance_id: bytes, size: int
              ) -> _TokenTemplate | None:
        """The template for nonces of ``size`` bytes (None if the token cannot be split at
        the nonce: then every token is built in full)."""
        placeholder = os.urandom(size)
        signer = _RecordingSigner(key)
        # One boot seed per template, as a device keeps its boot seed until it reboots
        # (a state without one otherwise gets a fresh one per token).
        booted = state if state.boot_seed is not None else \
            replace(state, boot_seed=os.urandom(32))
        token = create_psa_token(psa_claims(booted, nonce=placeholder, instance_id=instance_id),
                                 signer)
        if len(signer.signed) != 1:
            return None
        tbs = signer.signed[0]
        parts_tbs, parts_token = tbs.split(placeholder), token.split(placeholder)
        if len(parts_tbs) != 2 or len(parts_token) != 2:
            return None
        # The signature is the last element of the COSE_Sign1 array (a fixed-size bstr).
        size_sig = _SIGNATURE_SIZES.get(key.alg, 0)
        if not size_sig or len(parts_token[1]) <= size_sig:
            return None
        return cls(state, key, instance_id, (parts_tbs[0], parts_tbs[1]),
                   (parts_token[0], parts_token[1][:-size_sig]), size_sig)

    def sign(self, nonce: bytes) -> bytes | None:
        """The token over ``nonce``, signed now (None if the signature has another size)."""
        sig = bytes(self.key.sign(self.tbs[0] + nonce + self.tbs[1]))
        if len(sig) != self.signature_size:
            return None
        return self.token[0] + nonce + self.token[1] + sig


def _builder(dev: SimDevice) -> Callable[[bytes], tuple[bytes, str]]:
    templates: dict[int, _TokenTemplate | None] = {}
    own: list[tuple[Any, bytes]] = []  # the signing key and its Instance ID, hashed once

    def build(nonce: bytes) -> tuple[bytes, str]:
        assert dev.state is not None
        key = dev.signing_key or dev.se
        if not own or own[0][0] is not key:
            own[:] = [(key, instance_id_of(key))]
        iid = dev.claimed_instance_id or own[0][1]
        t = templates.get(len(nonce))
        if t is None or t.state is not dev.state or t.key is not key or t.instance_id != iid:
            t = templates[len(nonce)] = _TokenTemplate.build(dev.state, key, iid, len(nonce))
        token = t.sign(nonce) if t is not None else None
        if token is None:
            token = create_psa_token(psa_claims(dev.state, nonce=nonce, instance_id=iid), key)
        return token, PSA_MEDIA_TYPE
    return build


def _replayer(dev: SimDevice) -> Callable[[str, bytes, str], tuple[bytes, str]]:
    def tamper(_challenge_id: str, evidence: bytes, media_type: str) -> tuple[bytes, str]:
        if dev.captured is None:
            dev.captured = evidence  # the first answer is honest; later ones replay it
            return evidence, media_type
        return dev.captured, media_type
    return tamper


class _HardwarePool:
    """Real secure elements for a few devices, when installed; closed at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._stack = contextlib.ExitStack()
        self.notes: list[str] = []

    def softhsm(self, label: str) -> Any | None:
        try:
            from devattest.attester.backends import open_secure_element
            from devattest.attester.backends.simulated import SoftHsm, softhsm_available

            if not softhsm_available():
                self.notes.append("SoftHSM2 not installed: those devices use unsafe_software")
                return None
            if os.environ.get("SOFTHSM2_CONF"):
                hsm_dir = Path(os.environ["SOFTHSM2_CONF"]).parent
                self.notes.append("SoftHSM2 already initialised in this process: using unsafe"
                                  "_software instead (run `devattest simulate` on its own)")
                del hsm_dir
                return None
            hsm = SoftHsm(self.workdir / "sim-softhsm")
            os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
            token = hsm.init_token(label, pin="4711")
            return open_secure_element(token.config(key_label="attestation"))
        except (DevattestError, RuntimeError, OSError) as exc:
            self.notes.append(f"SoftHSM2 unavailable ({exc}): using unsafe_software")
            return None

    def swtpm(self) -> Any | None:
        try:
            from devattest.attester.backends import open_secure_element
            from devattest.attester.backends.simulated import Swtpm, swtpm_available

            if not swtpm_available():
                self.notes.append("swtpm not installed: those devices use unsafe_software")
                return None
            state_dir = self.workdir / f"sim-swtpm-{time.time_ns()}"
            state_dir.mkdir(parents=True)
            tpm = self._stack.enter_context(Swtpm(state_dir))
            return open_secure_element({"backend": "tpm2", "tcti": tpm.tcti, "create": True})
        except (DevattestError, RuntimeError, OSError, ImportError) as exc:
            self.notes.append(f"swtpm unavailable ({exc}): using unsafe_software")
            return None

    def close(self) -> None:
        self._stack.close()


def build_fleet(scenario: Scenario, hardware: _HardwarePool | None) -> list[SimDevice]:
    """The devices: adversaries first (one per kind), then the hardware-backed ones, then
    honest ``unsafe_software`` devices."""
    from devattest.attester.backends.unsafe_software import UnsafeSoftwareKey

    devices: list[SimDevice] = []
    n = scenario.devices
    roles: list[str] = [a.value for a in scenario.adversaries]
    roles += ["honest"] * (n - len(roles))
    hw_slots = (["softhsm"] * scenario.softhsm + ["swtpm"] * scenario.swtpm)
    for i, role in enumerate(roles):
        model = scenario.models[i % len(scenario.models)]
        owner = scenario.owners[0]
        se, backend = None, "unsafe_software"
        if role == "honest" and hw_slots and hardware is not None:
            kind = hw_slots.pop(0)
            se = hardware.softhsm(f"sim-{i}") if kind == "softhsm" else hardware.swtpm()
            if se is not None:
                backend = kind
        if se is None:
            se = UnsafeSoftwareKey.generate()
        dev = SimDevice(device_id=f"dev-{i:05d}", model=model, owner=owner, role=role, se=se,
                        backend=backend, firmware_version=scenario.initial_firmware,
                        debug=role == Adversary.DEBUG_ENABLED)
        dev.state = device_state(model, dev.firmware_version, scenario, debug=dev.debug)
        devices.append(dev)
    honest = [d for d in devices if d.role == "honest"]
    victim = honest[0] if honest else devices[0]
    for dev in devices:
        if dev.role == Adversary.CLONED_KEY:
            dev.signing_key = victim.se  # a copy of the victim's key in a second device
        elif dev.role == Adversary.WRONG_DEVICE_ID:
            dev.claimed_instance_id = instance_id_of(victim.se)
    return devices


# -- transports ------------------------------------------------------------------------------
class InProcessBus:
    """A broker stand-in for runs without Mosquitto: routes messages between the agents and
    the Verifier bridge in this process, asynchronously (like a broker would)."""

    def __init__(self) -> None:
        self.bridge: MqttVerifierBridge | None = None
        self.agents: dict[str, DeviceAgent] = {}
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="bus")

    def publish(self, name: str, payload: bytes) -> None:
        """A device publishes."""
        parsed = parse_topic(name)
        if parsed is None or self.bridge is None:
            return
        self.bridge.submit(name, payload)

    def verifier_publish(self, name: str, payload: bytes, _retain: bool) -> None:
        """The Verifier publishes."""
        parsed = parse_topic(name)
        agent = self.agents.get(parsed[0]) if parsed else None
        if parsed is None or agent is None:
            return
        if parsed[1] == "challenge":
            self._pool.submit(agent.on_challenge, payload)
        elif parsed[1] == "result":
            self._pool.submit(agent.on_result, payload)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class FleetRun:
    """Everything one simulation owns."""

    scenario: Scenario
    devices: list[SimDevice]
    coordinator: LifecycleCoordinator
    bridge: MqttVerifierBridge
    clock: SimClock
    links: list[Any]
    transport: str
    report: CheckReport | None = None
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def verifier_stack(*, data_dir: Path, db_url: str | None, rules: LifecycleRules,
                   quarantine: bool = True, batch: bool = True
                   ) -> Iterator[tuple[Any, LifecycleCoordinator]]:
    """The service context (store migrated) and a lifecycle coordinator over it (with the
    batch paths unless ``batch`` is false)."""
    from devattest.service.context import build_context
    from devattest.service.settings import Settings
    from devattest.store import migrate

    settings = Settings(data_dir=data_dir, database_url=db_url, webhook_worker=False,
                        challenge_ttl_seconds=max(120, int(rules.default_deadline
                                                           .total_seconds()) * 2))
    ctx = build_context(settings)
    migrate(ctx.store.engine)
    coordinator = LifecycleCoordinator(
        ctx.store, ctx.attestation, rules=rules,
        quarantine_hooks=[quarantine_when_untrusted] if quarantine else [],
        appraiser=BatchAppraiser.from_context(ctx) if batch else None)
    try:
        yield ctx, coordinator
    finally:
        ctx.store.dispose()


def provision(ctx: Any, coordinator: LifecycleCoordinator, scenario: Scenario,
              devices: list[SimDevice], *, now: datetime) -> None:
    """Reference Values, the fleet's Appraisal Policy, one Trust Anchor per device (its raw
    key, by Instance ID) and the inventory."""
    import json

    from cryptography.hazmat.primitives import serialization

    keys = []
    for dev in devices:
        pem = dev.se.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        keys.append({"instance_id": instance_id_of(dev.se).hex(), "public_key": pem.decode(),
                     "label": dev.device_id,
                     "hardware_backed": bool(dev.se.properties.hardware_backed)})
    # One document per 10,000 keys: a provisioned document is at most 4 MiB.
    base = f"fleet-{scenario.name}"[:50].replace(" ", "-")
    for i in range(0, len(keys), 10_000):
        ctx.provisioning.submit("trust-anchors", name=base if i == 0 else f"{base}-{i // 10_000}",
                                media_type="application/json",
                                content=json.dumps({"format": "devattest.trust-anchors/v1",
                                                    "keys": keys[i:i + 10_000]}).encode(),
                                now=now)
    ctx.provisioning.submit("reference-values", name="fleet-releases",
                            media_type="application/json",
                            content=json.dumps(reference_values_document(scenario)).encode(),
                            now=now)
    # Fail closed on firmware the release catalog does not know (a bare unknown measurement
    # is only a warning under the default policy).
    ctx.provisioning.submit("policies", name="default", media_type="application/json",
                            content=json.dumps({"all_of": [
                                {"default": True}, {"require_reference_values": True}]}
                            ).encode(), now=now)
    coordinator.register_many([
        {"device_id": dev.device_id, "model": dev.model, "owner": dev.owner,
         "instance_id": instance_id_of(dev.se).hex(), "firmware_version": dev.firmware_version}
        for dev in devices], now=now)


# -- running waves ---------------------------------------------------------------------------
def _participants(run: FleetRun, wave: Wave, index: int) -> list[SimDevice]:
    if wave.target == "bad_update":
        return [d for d in run.devices if d.took_bad_update]
    honest = [d for d in run.devices if d.role == "honest"]
    adversaries = [d for d in run.devices if d.role != "honest"]
    if wave.fraction >= 1.0:
        chosen = honest
    else:
        # Deterministic, different per wave: every k-th honest device from an offset.
        k = max(1, round(1 / wave.fraction))
        chosen = [d for j, d in enumerate(honest) if (j + index) % k == 0] or honest[:1]
        if wave.bad:
            return chosen
    return chosen + adversaries


def _apply_wave(run: FleetRun, dev: SimDevice, wave: Wave) -> tuple[str, dict[str, Any]]:
    sc = run.scenario
    kind, details = wave.event.value, {}
    version = wave.firmware_version
    if wave.event is EventKind.FIRMWARE_UPDATE and dev.role == Adversary.ROLLBACK_VULNERABLE:
        kind, version = EventKind.FIRMWARE_ROLLBACK.value, sc.vulnerable_firmware
    if version is not None and wave.event in (EventKind.FIRMWARE_UPDATE,
                                              EventKind.FIRMWARE_ROLLBACK):
        dev.firmware_version = version
        details["firmware_version"] = version
        dev.tampered = dev.role == Adversary.TAMPERED_FIRMWARE
        dev.took_bad_update = wave.bad
        dev.state = device_state(dev.model, version, sc, debug=dev.debug,
                                 tampered=dev.tampered or wave.bad)
    if wave.owner is not None and wave.event is EventKind.OWNERSHIP_TRANSFER:
        dev.owner = wave.owner
        details["owner"] = wave.owner
    return kind, details


def run_waves(run: FleetRun, *, console: Console | None = None, wave_timeout: float = 60.0
              ) -> None:
    """Run every wave: each participant reports the event, the Verifier challenges, the
    device answers; the wave ends when every answering participant has its result."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, disable=console is None,
                        transient=False)
    with progress:
        for index, wave in enumerate(run.scenario.waves):
            devs = _participants(run, wave, index)
            if wave.release:
                for d in devs:
                    run.coordinator.release(d.device_id, now=run.clock())
            # Quarantined devices get no challenges until released: nothing to wait for.
            waiting = [d for d in devs if d.role != Adversary.IGNORES_CHALLENGES
                       and _accepts_challenges(run, d)]
            task = progress.add_task(f"{wave.name} ({len(devs)} devices)", total=len(waiting))
            done: set[str] = set()
            lock = threading.Lock()

            def settled(dev: SimDevice, _msg: dict[str, Any], task_id: Any = task,
                        done_set: set[str] = done, guard: threading.Lock = lock) -> None:
                with guard:
                    if dev.device_id in done_set:
                        return
                    done_set.add(dev.device_id)
                progress.advance(task_id)

            for d in devs:
                kind, details = _apply_wave(run, d, wave)
                assert d.agent is not None
                d.agent.report(kind, **details)
            deadline = time.monotonic() + wave_timeout
            for d in waiting:
                assert d.agent is not None
                left = max(0.1, deadline - time.monotonic())
                if d.agent.wait_settled(left):
                    settled(d, {})
            missing = [d.device_id for d in waiting if d.device_id not in done]
            if missing:
                run.notes.append(f"wave {wave.name!r}: no result for {len(missing)} devices "
                                 f"within {wave_timeout:.0f}s: {missing[:5]}")


def _accepts_challenges(run: FleetRun, dev: SimDevice) -> bool:
    record = run.coordinator.device(dev.device_id)
    return record is not None and record.state in (LifecycleState.PROVISIONED,
                                                   LifecycleState.ONBOARDED)


def judge(run: FleetRun) -> CheckReport:
    """Let every deadline pass, sweep for overdue devices and check the final postures."""
    run.clock.advance(timedelta(seconds=run.scenario.deadline_seconds + 1))
    run.coordinator.sweep_overdue(now=run.clock(), limit=1_000_000)
    roles = {d.device_id: d.role for d in run.devices}
    verdicts = [Verdict(p.device_id, roles.get(p.device_id, "honest"), p.posture, p.reason)
                for _, p in run.coordinator.fleet(now=run.clock())]
    return check(verdicts)


def posture_tables(run: FleetRun) -> list[Table]:
    """The fleet posture: by model, firmware version and owner, then the adversaries."""
    pairs = run.coordinator.fleet(now=run.clock())
    tables = []
    for dim in (Dimension.MODEL, Dimension.FIRMWARE_VERSION, Dimension.OWNER):
        t = Table(title=f"fleet posture by {dim.value.replace('_', ' ')}")
        t.add_column(dim.value.replace("_", " "))
        t.add_column("devices", justify="right")
        for p in Posture:
            t.add_column(p.value, justify="right", style=POSTURE_STYLE[p])
        for g in aggregate(pairs, by=dim):
            t.add_row(g.key or "-", str(g.total), *(str(g.count(p) or "") for p in Posture))
        tables.append(t)
    by_id = {d.device_id: d for d in run.devices}
    t = Table(title="adversaries and hardware-backed devices")
    for col in ("device", "role", "secure element", "posture", "reason"):
        t.add_column(col, overflow="fold")
    for dev, posture in pairs:
        sim = by_id.get(dev.device_id)
        if sim is None or (sim.role == "honest" and sim.backend == "unsafe_software"
                           and not sim.took_bad_update):
            continue
        role = sim.role + (" (took the bad update)" if sim.took_bad_update else "")
        t.add_row(dev.device_id, role, sim.backend,
                  f"[{POSTURE_STYLE[posture.posture]}]{posture.posture.value}[/]",
                  posture.reason)
    tables.append(t)
    return tables


@contextlib.contextmanager
def fleet(scenario: Scenario, *, workdir: Path, db_url: str | None = None,
          mqtt_url: str | None = None, transport: str = "auto", workers: int = 4,
          devices_per_link: int = 200, sign_threads: int = 2) -> Iterator[FleetRun]:
    """Provision the fleet, start the Verifier and the agents; stop everything on exit.

    ``transport``: ``mqtt`` (``mqtt_url``, or a private Mosquitto), ``inprocess``, or
    ``auto`` (MQTT when a URL is given or Mosquitto is installed). ``sign_threads``: each
    device connection's signing threads (0: its network thread signs).
    """
    from devattest.transport.broker import EmbeddedMosquitto, mosquitto_binary

    logging.getLogger("devattest.unsafe").setLevel(logging.ERROR)
    rules = LifecycleRules(default_deadline=timedelta(seconds=scenario.deadline_seconds))
    clock = SimClock()
    hardware = _HardwarePool(workdir)
    with contextlib.ExitStack() as stack:
        stack.callback(hardware.close)
        devices = build_fleet(scenario, hardware)
        ctx, coordinator = stack.enter_context(verifier_stack(
            data_dir=workdir / "verifier", db_url=db_url, rules=rules))
        provision(ctx, coordinator, scenario, devices, now=clock())
        if transport == "auto":
            transport = "mqtt" if mqtt_url or mosquitto_binary() else "inprocess"
        links: list[Any] = []
        if transport == "mqtt":
            if mqtt_url is None:
                broker = stack.enter_context(EmbeddedMosquitto())
                mqtt_url = broker.url
            settings = MqttSettings.from_url(mqtt_url)
            bridge = MqttVerifierBridge(coordinator, settings, workers=workers, clock=clock,
                                        sweep_interval=0, metrics=ctx.metrics)
            bridge.start()
            stack.callback(bridge.stop)
            for i in range(0, len(devices), devices_per_link):
                link = MqttLink(settings, retry_interval=5.0, workers=sign_threads)
                for dev in devices[i:i + devices_per_link]:
                    dev.agent = link.add(_agent(dev))
                link.start()
                stack.callback(link.stop)
                links.append(link)
        else:
            bus = InProcessBus()
            bridge = MqttVerifierBridge(coordinator, MqttSettings(), workers=workers,
                                        clock=clock, sweep_interval=0,
                                        publisher=bus.verifier_publish, metrics=ctx.metrics)
            bus.bridge = bridge
            bridge.start()
            stack.callback(bridge.stop)
            stack.callback(bus.close)
            for dev in devices:
                dev.agent = _agent(dev)
                dev.agent.attach(bus)
                bus.agents[dev.device_id] = dev.agent
            links.append(bus)
        run = FleetRun(scenario, devices, coordinator, bridge, clock, links, transport,
                       notes=hardware.notes)
        yield run


def _agent(dev: SimDevice) -> DeviceAgent:
    agent = DeviceAgent(dev.device_id, evidence=_builder(dev),
                        answer_challenges=dev.role != Adversary.IGNORES_CHALLENGES,
                        on_result=dev.results.append)
    if dev.role == Adversary.REPLAYED_EVIDENCE:
        agent.tamper = _replayer(dev)
    return agent


def simulate(scenario: Scenario, *, workdir: Path, db_url: str | None = None,
             mqtt_url: str | None = None, transport: str = "auto",
             console: Console | None = None) -> FleetRun:
    """Run a scenario end to end and return the run with its check report."""
    with fleet(scenario, workdir=workdir, db_url=db_url, mqtt_url=mqtt_url,
               transport=transport) as run:
        run_waves(run, console=console)
        run.report = judge(run)
        if console is not None:
            for table in posture_tables(run):
                console.print(table)
            for note in run.notes:
                console.print(f"[yellow]note[/]: {note}")
            print_check(run.report, console)
    return run


def print_check(report: CheckReport, console: Console) -> None:
    """Print the simulator's own check."""
    adversaries = sum(1 for v in report.verdicts if v.adversary)
    honest = len(report.verdicts) - adversaries
    console.print(
        f"check: {adversaries - len(report.false_accepts)}/{adversaries} adversaries caught, "
        f"{honest - len(report.false_rejects)}/{honest} honest devices trusted -> "
        + ("[bold green]OK[/]" if report.ok else "[bold red]FAILED[/]"))
    for v in (*report.false_accepts, *report.false_rejects):
        console.print(f"  [red]{v.device_id}[/] ({v.role}): {v.posture.value}: {v.reason}")


def load_scenario(path: Path | None, **overrides: Any) -> Scenario:
    """A scenario from a YAML file (or the default), with overrides applied.

    Raises:
        ConfigurationError: the file is malformed.
        OSError: it cannot be read.
    """
    base = parse_scenario(yaml.safe_load(path.read_text()) or {}) if path else Scenario()
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def run_demo(db_url: str | None = None, mqtt_url: str | None = None, *,
             console: Console | None = None, workdir: Path | None = None,
             devices: int = 16) -> bool:
    """The fleet part of ``devattest demo``: a small fleet on embedded defaults (SQLite in a
    data directory; a private Mosquitto if installed, else the in-process bus), a lifecycle
    scenario with every adversary, and the fleet posture. Returns whether the check passed.

    With ``db_url`` / ``mqtt_url`` it runs against that database and broker instead.
    """
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="devattest-fleet-") as tmp:
        base = Path(workdir) / "fleet" if workdir is not None else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        scenario = Scenario(name="demo", devices=devices, softhsm=1, swtpm=1,
                            deadline_seconds=60)
        console.rule(f"fleet lifecycle: {devices} devices, {len(scenario.adversaries)} "
                     "adversaries")
        run = simulate(scenario, workdir=base, db_url=db_url, mqtt_url=mqtt_url,
                       console=console)
    return bool(run.report and run.report.ok)
