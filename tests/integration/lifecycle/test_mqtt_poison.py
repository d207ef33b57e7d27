"""Issue 13, defect 1: a device could stop the MQTT bridge. Deeply nested JSON (and other
hostile payloads) raised out of the batch path and killed the worker thread; the message was
never acknowledged and was redelivered after a restart, killing the workers again.

Now a message that cannot be parsed is refused alone: acknowledged, dead-lettered with its
reason (the dead-letter topic, ``bridge.dead_letters``, the
``devattest_mqtt_dead_letters_total`` metric), and honest devices keep being answered. A
worker thread that dies anyway is restarted and counted."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from devattest.lifecycle.scenario import Scenario
from devattest.transport.broker import EmbeddedMosquitto
from devattest.transport.mqtt import DEAD_LETTER_TOPIC, MqttSettings, event_message, topic
from devattest.transport.simulator import FleetRun, fleet
from tests._support.poison import POISON

pytestmark = pytest.mark.integration

WAIT = 60.0


def _metric(run: FleetRun, name: str, **labels: str) -> float:
    value = run.bridge.metrics.registry.get_sample_value(name, labels or None)
    return value or 0.0


def _alive_workers(run: FleetRun) -> int:
    return sum(1 for t in threading.enumerate()
               if t.name.startswith("mqtt-worker-") and t.is_alive())


def _wait_for(check: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def inprocess_fleet(tmp_path: Path) -> Iterator[FleetRun]:
    """Eight honest devices, the bridge in this process (batches of up to 64)."""
    scenario = Scenario(name="poison", devices=8, adversaries=(), deadline_seconds=120,
                        waves=())
    with fleet(scenario, workdir=tmp_path, transport="inprocess", workers=2) as run:
        yield run


def test_every_kind_of_poison_message_is_dead_lettered_and_workers_survive(
        inprocess_fleet: FleetRun) -> None:
    run = inprocess_fleet
    workers = _alive_workers(run)
    victim = run.devices[0].device_id
    for p in POISON:  # queued together: the workers take them in batches
        run.bridge.submit(topic(victim, p.kind), p.payload)
    for dev in run.devices:
        dev.agent.report("firmware_update", firmware_version="1.1")
    for p in POISON:
        run.bridge.submit(topic(victim, p.kind), p.payload)
    for dev in run.devices:
        assert dev.agent.wait_settled(WAIT), f"{dev.device_id} never got its result"
        assert dev.agent.stats.last_status == "affirming"
    assert _wait_for(lambda: len(run.bridge.dead_letters) == 2 * len(POISON))
    got = Counter(d.reason for d in run.bridge.dead_letters)
    assert got == Counter(p.reason for p in POISON for _ in range(2))
    for reason, n in got.items():
        assert _metric(run, "devattest_mqtt_dead_letters_total", reason=reason) == n
    assert _alive_workers(run) == workers
    assert run.bridge.worker_restarts == 0


def test_message_on_a_device_topic_with_control_characters_is_dead_lettered(
        inprocess_fleet: FleetRun) -> None:
    run = inprocess_fleet
    for name in ("devattest/v1/dev\x00a/events", "devattest/v1/dev\x01a/evidence"):
        run.bridge.submit(name, event_message("boot", event_id="e"))
    assert _wait_for(lambda: len(run.bridge.dead_letters) == 2)
    assert {d.reason for d in run.bridge.dead_letters} == {"bad_topic"}


def test_deeply_nested_json_event_cannot_kill_bridge_worker(
        inprocess_fleet: FleetRun) -> None:
    run = inprocess_fleet
    workers = _alive_workers(run)
    deep = b"[" * 120_000 + b"]" * 120_000
    honest = run.devices[1]
    for _ in range(50):  # more than enough to kill every worker before the fix
        run.bridge.submit(topic(honest.device_id, "events"), deep)
    honest.agent.report("boot")
    assert honest.agent.wait_settled(WAIT)
    assert _wait_for(lambda: len(run.bridge.dead_letters) == 50)
    assert {d.reason for d in run.bridge.dead_letters} == {"too_deep"}
    assert _alive_workers(run) == workers


def test_message_whose_processing_fails_unexpectedly_is_dead_lettered_alone(
        inprocess_fleet: FleetRun, monkeypatch: pytest.MonkeyPatch) -> None:
    run = inprocess_fleet
    target, honest = run.devices[2], run.devices[3]
    real_one, real_many = run.coordinator.report_event, run.coordinator.report_events

    def one(device_id: str, message: Any, **kw: Any) -> Any:
        if device_id == target.device_id:
            raise RuntimeError("a bug in event processing")
        return real_one(device_id, message, **kw)

    def many(items: Any, **kw: Any) -> Any:
        if any(d == target.device_id for d, _ in items):
            raise RuntimeError("a bug in event processing")
        return real_many(items, **kw)

    monkeypatch.setattr(run.coordinator, "report_event", one)
    monkeypatch.setattr(run.coordinator, "report_events", many)
    run.bridge.submit(topic(target.device_id, "events"),
                      event_message("boot", event_id="bug-1"))
    honest.agent.report("boot")
    assert honest.agent.wait_settled(WAIT)
    assert _wait_for(lambda: len(run.bridge.dead_letters) == 1)
    assert run.bridge.dead_letters[0].reason == "unexpected"
    assert "RuntimeError" in run.bridge.dead_letters[0].message


class _WorkerKiller(BaseException):
    """Not an Exception: nothing in the bridge catches it, so the worker thread ends."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_worker_that_dies_anyway_is_restarted_and_counted(
        inprocess_fleet: FleetRun, monkeypatch: pytest.MonkeyPatch) -> None:
    run = inprocess_fleet
    workers = _alive_workers(run)
    killed = threading.Event()
    real_one, real_many = run.coordinator.report_event, run.coordinator.report_events

    def one(device_id: str, message: Any, **kw: Any) -> Any:
        if message.get("event_id") == "kill" and not killed.is_set():
            killed.set()
            raise _WorkerKiller
        return real_one(device_id, message, **kw)

    def many(items: Any, **kw: Any) -> Any:
        if any(m.get("event_id") == "kill" for _, m in items) and not killed.is_set():
            killed.set()
            raise _WorkerKiller
        return real_many(items, **kw)

    monkeypatch.setattr(run.coordinator, "report_event", one)
    monkeypatch.setattr(run.coordinator, "report_events", many)
    run.bridge.submit(topic(run.devices[4].device_id, "events"),
                      event_message("boot", event_id="kill"))
    assert killed.wait(WAIT)
    assert _wait_for(lambda: run.bridge.worker_restarts == 1)
    assert _metric(run, "devattest_mqtt_worker_restarts_total") == 1
    assert _wait_for(lambda: _alive_workers(run) == workers)
    for dev in run.devices[5:]:
        dev.agent.report("boot")
    for dev in run.devices[5:]:
        assert dev.agent.wait_settled(WAIT)


# -- a real broker -----------------------------------------------------------------------------
def _publisher(url: str) -> mqtt.Client:
    s = MqttSettings.from_url(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="mallory",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect(s.host, s.port)
    client.loop_start()
    return client


def _dead_letter_watcher(url: str) -> tuple[mqtt.Client, queue.Queue[bytes]]:
    s = MqttSettings.from_url(url)
    got: queue.Queue[bytes] = queue.Queue()
    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.on_connect = lambda c, *_: c.subscribe(DEAD_LETTER_TOPIC, qos=1)
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = lambda _c, _u, m: got.put(bytes(m.payload))
    client.connect(s.host, s.port)
    client.loop_start()
    assert ready.wait(WAIT)
    return client, got


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_thousand_poison_messages_in_a_wave_every_honest_device_gets_its_result(
        mosquitto: EmbeddedMosquitto, tmp_path: Path, request: pytest.FixtureRequest,
        db: str) -> None:
    db_url = request.getfixturevalue("make_postgres_database")() if db == "postgresql" \
        else None
    scenario = Scenario(name="poison-wave", devices=40, adversaries=(), deadline_seconds=300,
                        waves=())
    n_poison = 1000
    with fleet(scenario, workdir=tmp_path, db_url=db_url, mqtt_url=mosquitto.url,
               transport="mqtt", workers=4, devices_per_link=20) as run:
        workers = _alive_workers(run)
        watcher, letters = _dead_letter_watcher(mosquitto.url)
        mallory = _publisher(mosquitto.url)
        try:
            kinds = itertools.cycle(POISON)
            honest = iter(run.devices)
            infos = []
            for i in range(n_poison):
                p = next(kinds)
                # Events on the honest devices' own topics; Evidence on others' (an error
                # answer on a device's result topic would be taken for its result).
                device_id = run.devices[i % len(run.devices)].device_id \
                    if p.kind == "events" else f"mallory-{i % 7}"
                infos.append(mallory.publish(topic(device_id, p.kind), p.payload, qos=1))
                if i % 25 == 0:
                    dev = next(honest, None)
                    if dev is not None:
                        dev.agent.report("firmware_update", firmware_version="1.1")
            for info in infos:
                info.wait_for_publish(WAIT)
            for dev in run.devices:
                assert dev.agent.wait_settled(WAIT), f"{dev.device_id} never got its result"
                assert dev.agent.stats.last_status == "affirming", dev.device_id
            assert _wait_for(lambda: len(run.bridge.dead_letters) == n_poison)
            expected = Counter(next(k).reason for k in [itertools.cycle(POISON)] * n_poison)
            assert Counter(d.reason for d in run.bridge.dead_letters) == expected
            assert sum(_metric(run, "devattest_mqtt_dead_letters_total", reason=r)
                       for r in expected) == n_poison
            published = [letters.get(timeout=WAIT) for _ in range(n_poison)]
            assert all(b'"reason"' in m for m in published)
            assert _alive_workers(run) == workers
            assert run.bridge.worker_restarts == 0
        finally:
            mallory.disconnect()
            mallory.loop_stop()
            watcher.disconnect()
            watcher.loop_stop()


def test_control_characters_in_event_id_or_details_are_refused_by_the_coordinator(
        inprocess_fleet: FleetRun) -> None:
    # In-process callers reach the coordinator without the MQTT codec: the same check there.
    from devattest.errors import MalformedLifecycleEvent

    run = inprocess_fleet
    dev = run.devices[6].device_id
    hostile = [{"event_id": "a\x00b", "kind": "boot"},
               {"event_id": "ok-1", "kind": "boot", "details": {"v": "1\x00"}},
               {"event_id": "ok-2", "kind": "boot", "details": {"k\x1b": "1"}}]
    for message in hostile:
        with pytest.raises(MalformedLifecycleEvent, match="control character"):
            run.coordinator.report_event(dev, message, now=run.clock())
    outcomes = run.coordinator.report_events([(dev, m) for m in hostile], now=run.clock())
    assert all(isinstance(o, MalformedLifecycleEvent) for o in outcomes)
