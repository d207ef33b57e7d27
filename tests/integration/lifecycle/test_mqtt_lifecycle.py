"""Lifecycle-driven attestation over a real, private Mosquitto: events lead to challenges,
Evidence, results and posture changes; broker restarts, duplicate deliveries and missed
deadlines are survived; the simulator's own check holds at small N."""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from devattest.lifecycle import LifecycleState, Posture
from devattest.lifecycle.scenario import Adversary, Scenario
from devattest.store import AttestationRepository, HistoryFilter
from devattest.transport.broker import EmbeddedMosquitto
from devattest.transport.mqtt import (
    MqttSettings,
    b64d,
    evidence_message,
    loads,
    topic,
)
from devattest.transport.simulator import FleetRun, _builder, fleet, simulate

pytestmark = pytest.mark.integration

WAIT = 30.0


class Watcher:
    """A relying party on the broker: collects messages on some topics."""

    def __init__(self, url: str, *filters: str) -> None:
        s = MqttSettings.from_url(url)
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._ready = threading.Event()
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)

        def on_connect(c: mqtt.Client, *_: Any) -> None:
            c.subscribe([(f, 1) for f in filters])

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = lambda _c, _u, m: self.messages.put(
            (m.topic, loads(bytes(m.payload))))
        self.client.connect(s.host, s.port)
        self.client.loop_start()
        assert self._ready.wait(WAIT)

    def next(self, topic_name: str, *, timeout: float = WAIT,
             where: Any = lambda m: True) -> dict[str, Any]:
        """The first unconsumed message on ``topic_name`` matching ``where`` (messages on
        other topics are kept for later calls)."""
        stop = threading.Event()
        timer = threading.Timer(timeout, stop.set)
        timer.start()
        try:
            while True:
                for i, (t, m) in enumerate(self.seen):
                    if t == topic_name and where(m):
                        del self.seen[i]
                        return m
                if stop.is_set():
                    break
                try:
                    self.seen.append(self.messages.get(timeout=0.2))
                except queue.Empty:
                    continue
        finally:
            timer.cancel()
        raise AssertionError(f"no message on {topic_name} within {timeout}s")

    def publish(self, name: str, payload: bytes) -> None:
        self.client.publish(name, payload, qos=1).wait_for_publish(WAIT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def small_fleet(mosquitto: EmbeddedMosquitto, tmp_path: Path) -> Iterator[FleetRun]:
    """Four honest devices and a device that ignores challenges, on a private broker."""
    scenario = Scenario(name="test", devices=5, adversaries=(Adversary.IGNORES_CHALLENGES,),
                        deadline_seconds=60, waves=())
    with fleet(scenario, workdir=tmp_path, mqtt_url=mosquitto.url, transport="mqtt") as run:
        yield run


def _honest(run: FleetRun) -> list[Any]:
    return [d for d in run.devices if d.role == "honest"]


def test_update_event_leads_to_challenge_evidence_result_and_posture_change(
        small_fleet: FleetRun, mosquitto: EmbeddedMosquitto) -> None:
    run = small_fleet
    dev = _honest(run)[0]
    watcher = Watcher(mosquitto.url, topic(dev.device_id, "challenge"),
                      topic(dev.device_id, "result"), topic(dev.device_id, "status"))
    try:
        assert run.coordinator.posture(dev.device_id, now=run.clock()).posture \
            is Posture.UNKNOWN
        dev.agent.report("firmware_update", firmware_version="1.1")
        challenge = watcher.next(topic(dev.device_id, "challenge"))
        assert len(b64d(challenge["nonce"], what="nonce")) == 32
        result = watcher.next(topic(dev.device_id, "result"))
        assert result["challenge_id"] == challenge["challenge_id"]
        assert result["status"] == "affirming"
        assert result["ear"].count(".") == 2  # a signed EAR (JWT)
        status = watcher.next(topic(dev.device_id, "status"),
                              where=lambda m: m["posture"] == "trusted")
        assert status["previous_posture"] in ("unknown", "warning")
        assert dev.agent.wait_settled(WAIT)
    finally:
        watcher.close()
    record = run.coordinator.device(dev.device_id)
    assert record is not None and record.firmware_version == "1.1" and not record.pending
    assert run.coordinator.posture(dev.device_id, now=run.clock()).posture is Posture.TRUSTED


@pytest.mark.parametrize("sign_threads", [2, 0], ids=["signing-threads", "network-thread"])
def test_broker_restart_mid_wave_every_device_ends_with_a_result(
        mosquitto: EmbeddedMosquitto, tmp_path: Path, sign_threads: int) -> None:
    scenario = Scenario(name="restart", devices=24, adversaries=(), deadline_seconds=120,
                        waves=())
    with fleet(scenario, workdir=tmp_path, mqtt_url=mosquitto.url, transport="mqtt",
               devices_per_link=6, sign_threads=sign_threads) as run:
        for dev in run.devices:
            dev.agent.report("firmware_update", firmware_version="1.1")
        mosquitto.restart()  # mid-wave: some Evidence and results are in flight
        for dev in run.devices:
            assert dev.agent.wait_settled(60), f"{dev.device_id} never got its result"
        assert all(link.connects >= 2 for link in run.links)  # every link reconnected
        postures = {p.device_id: p.posture for _, p in run.coordinator.fleet(now=run.clock())}
        assert set(postures.values()) == {Posture.TRUSTED}
        with run.coordinator.store.read() as s:
            history = AttestationRepository(s).search(HistoryFilter(), limit=10_000)
        # Redelivered Evidence never became a second appraisal or a replay rejection.
        assert all(h.outcome == "appraised" for h in history)
        per_challenge = [h.challenge_id for h in history]
        assert len(per_challenge) == len(set(per_challenge))


def test_duplicate_evidence_delivery_does_not_count_twice_nor_consume_a_second_nonce(
        small_fleet: FleetRun, mosquitto: EmbeddedMosquitto) -> None:
    run = small_fleet
    dev = _honest(run)[1]
    dev.agent.answer_challenges = False  # the test plays the device's Evidence by hand
    watcher = Watcher(mosquitto.url, topic(dev.device_id, "challenge"),
                      topic(dev.device_id, "result"))
    try:
        dev.agent.report("boot")
        challenge = watcher.next(topic(dev.device_id, "challenge"))
        evidence, media_type = _builder(dev)(b64d(challenge["nonce"], what="nonce"))
        payload = evidence_message(challenge["challenge_id"], evidence, media_type)
        watcher.publish(topic(dev.device_id, "evidence"), payload)
        first = watcher.next(topic(dev.device_id, "result"))
        watcher.publish(topic(dev.device_id, "evidence"), payload)  # QoS 1 redelivery
        second = watcher.next(topic(dev.device_id, "result"))
    finally:
        watcher.close()
    assert first["status"] == second["status"] == "affirming"
    assert second["duplicate"] is True
    assert second["attestation_id"] == first["attestation_id"]
    with run.coordinator.store.read() as s:
        history = AttestationRepository(s).search(HistoryFilter(device_id=dev.device_id))
    assert [h.outcome for h in history] == ["appraised"]  # no nonce_replayed entry


def test_device_that_misses_its_deadline_becomes_overdue(
        small_fleet: FleetRun, mosquitto: EmbeddedMosquitto) -> None:
    run = small_fleet
    silent = next(d for d in run.devices if d.role == Adversary.IGNORES_CHALLENGES)
    watcher = Watcher(mosquitto.url, topic(silent.device_id, "challenge"),
                      topic(silent.device_id, "status"))
    try:
        silent.agent.report("firmware_update", firmware_version="1.1")
        watcher.next(topic(silent.device_id, "challenge"))  # challenged, never answers
        assert run.coordinator.posture(silent.device_id, now=run.clock()).posture \
            is not Posture.OVERDUE
        run.clock.advance(timedelta(seconds=61))
        changes = run.coordinator.sweep_overdue(now=run.clock())
        assert [c.device_id for c in changes] == [silent.device_id]
        status = watcher.next(topic(silent.device_id, "status"),
                              where=lambda m: m["posture"] == "overdue")
    finally:
        watcher.close()
    assert "no evidence after firmware_update" in status["reason"]
    # A second sweep publishes nothing new.
    assert run.coordinator.sweep_overdue(now=run.clock()) == ()


def test_untrusted_result_quarantines_through_the_hook_and_release_restores(
        small_fleet: FleetRun) -> None:
    run = small_fleet
    dev = _honest(run)[2]
    dev.state = dataclasses.replace(dev.state, security_lifecycle=0x5000)  # debug opened
    dev.agent.report("config_change", setting="debug")
    assert dev.agent.wait_settled(WAIT)
    record = run.coordinator.device(dev.device_id)
    assert record is not None and record.state is LifecycleState.QUARANTINED
    run.coordinator.release(dev.device_id, now=run.clock())
    assert run.coordinator.device(dev.device_id).state is LifecycleState.ONBOARDED


def test_simulator_check_at_small_n_has_no_false_accepts_or_rejects(
        mosquitto: EmbeddedMosquitto, tmp_path: Path) -> None:
    run = simulate(Scenario(name="check", devices=16, deadline_seconds=60), workdir=tmp_path,
                   mqtt_url=mosquitto.url, transport="mqtt")
    assert run.report is not None
    assert run.report.false_accepts == ()
    assert run.report.false_rejects == ()
    caught = {v.role for v in run.report.verdicts if v.adversary}
    assert caught == {a.value for a in Adversary}


def test_acl_broker_with_passwords_keeps_devices_on_their_own_topics(
        mosquitto_with_passwords: EmbeddedMosquitto) -> None:
    url = mosquitto_with_passwords.url
    got: queue.Queue[str] = queue.Queue()
    service = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    service.username_pw_set("service", "service-secret")
    ready = threading.Event()
    service.on_connect = lambda c, *_: c.subscribe("devattest/v1/+/evidence", qos=1)
    service.on_subscribe = lambda *_: ready.set()
    service.on_message = lambda _c, _u, m: got.put(m.topic)
    s = MqttSettings.from_url(url)
    service.connect(s.host, s.port)
    service.loop_start()
    assert ready.wait(WAIT)
    dev = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    dev.username_pw_set("dev-1", "dev-1-secret")
    dev.connect(s.host, s.port)
    dev.loop_start()
    try:
        dev.publish(topic("dev-2", "evidence"), b"{}", qos=1).wait_for_publish(WAIT)
        dev.publish(topic("dev-1", "evidence"), b"{}", qos=1).wait_for_publish(WAIT)
        assert got.get(timeout=WAIT) == topic("dev-1", "evidence")
        with pytest.raises(queue.Empty):
            got.get(timeout=0.5)  # the spoofed topic never reached the Verifier
        intruder = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        intruder.username_pw_set("dev-1", "wrong")
        rc: queue.Queue[Any] = queue.Queue()
        intruder.on_connect = lambda _c, _u, _f, reason, _p: rc.put(reason)
        intruder.connect(s.host, s.port)
        intruder.loop_start()
        assert rc.get(timeout=WAIT).is_failure
        intruder.loop_stop()
    finally:
        dev.loop_stop()
        service.loop_stop()


def test_agent_queues_events_while_offline_and_delivers_them_on_reconnect(
        small_fleet: FleetRun, mosquitto: EmbeddedMosquitto) -> None:
    run = small_fleet
    devs = _honest(run)[:2]
    mosquitto.stop()
    for dev in devs:
        dev.agent.report("reprovision")  # the broker is down: queued in the outbox
        assert dev.agent.outstanding == 1
    mosquitto.start()
    for dev in devs:
        assert dev.agent.wait_settled(60)
        assert dev.agent.stats.last_status == "affirming"
    record = run.coordinator.device(devs[0].device_id)
    assert record is not None and record.state is LifecycleState.PROVISIONED


def test_publishes_queued_behind_a_full_inflight_window_are_all_delivered(
        mosquitto: EmbeddedMosquitto) -> None:
    from devattest.transport.mqtt import connect_async, make_client

    settings = MqttSettings.from_url(mosquitto.url)
    name = topic("dev-window", "result")
    watcher = Watcher(mosquitto.url, name)
    client = make_client(settings, client_id="window-test")
    client.max_inflight_messages_set(2)  # most of the 40 wait for a slot
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    try:
        connect_async(client, settings)
        assert connected.wait(WAIT)
        infos = [client.publish(name, b'{"n": %d}' % i, qos=1) for i in range(40)]
        infos[-1].wait_for_publish(10)  # sent in order: the last one goes out last
        assert all(info.is_published() for info in infos)  # every queued one was sent
        got = sorted(watcher.next(name)["n"] for _ in range(40))
        assert got == list(range(40))
    finally:
        client.disconnect()
        client.loop_stop()
        watcher.close()


def test_starting_a_running_embedded_broker_again_leaves_no_second_process() -> None:
    with EmbeddedMosquitto() as broker:
        proc = broker._proc
        assert broker.start() is broker and broker._proc is proc
    assert proc is not None and proc.poll() is not None  # closed with the context
