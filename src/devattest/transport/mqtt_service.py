"""The Verifier's MQTT bridge: subscribes to lifecycle events and Evidence, publishes
challenges, results and posture changes. It only moves messages; the
:class:`~devattest.transport.coordinator.LifecycleCoordinator` (over the service layer)
decides everything.

* Subscriptions are MQTT 5 shared subscriptions (``$share/devattest/...``): every replica
  joins the same group and the broker hands each message to one of them.
* QoS 1 with manual acknowledgements: a message is acknowledged only after it was
  processed (committed); a replica that dies before that gets it redelivered to another
  one, and the coordinator's receipts make the redelivery harmless.
* Work runs on a small thread pool, never on paho's network thread. A worker takes every
  message waiting (up to ``batch_size``) and, when the coordinator has an appraiser, hands
  the events and the Evidence to its batch paths: one write transaction per kind and batch.
  The batch's messages are acknowledged after that commit; a store failure leaves all of
  them unacknowledged (redelivered).
* A sweeper re-assesses devices whose attestation deadline passed and publishes them as
  overdue.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from devattest.errors import DevattestError, StoreError, TransportError
from devattest.transport.coordinator import (
    EvidenceItem,
    IssuedChallenge,
    LifecycleCoordinator,
    PostureChange,
)
from devattest.transport.mqtt import (
    MqttSettings,
    challenge_message,
    connect_async,
    dumps,
    json_properties,
    loads,
    make_client,
    parse_evidence_message,
    parse_topic,
    subscription,
    topic,
)

_log = logging.getLogger("devattest.transport.mqtt")


@dataclass(frozen=True, slots=True)
class _Local:
    topic: str
    payload: bytes
    mid: int = 0
    qos: int = 0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MqttVerifierBridge:
    """One Verifier replica on MQTT.

    Args:
        coordinator: the lifecycle coordinator (service layer underneath).
        settings: broker URL, credentials, TLS, share group.
        workers: threads processing messages.
        clock: the time source (tests pass a fake one).
        sweep_interval: seconds between overdue sweeps (0: no sweeper).
        client_id: the MQTT client id (stable per replica, so its session survives).
        batch_size: most messages a worker processes in one batch.
    """

    def __init__(self, coordinator: LifecycleCoordinator, settings: MqttSettings, *,
                 workers: int = 4, clock: Callable[[], datetime] = _utcnow,
                 sweep_interval: float = 1.0, client_id: str | None = None,
                 publisher: Callable[[str, bytes, bool], None] | None = None,
                 batch_size: int = 64) -> None:
        self.coordinator = coordinator
        self.batch_size = max(1, batch_size)
        self.settings = settings
        self.clock = clock
        self.client_id = client_id or f"devattest-verifier-{secrets.token_hex(4)}"
        #: ``publisher`` replaces the broker (in-process transport): no MQTT client then.
        self._publisher = publisher
        self._client = make_client(settings, client_id=self.client_id)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._work: queue.Queue[mqtt.MQTTMessage | _Local | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._worker, name=f"mqtt-worker-{i}",
                                          daemon=True) for i in range(workers)]
        self._sweep_interval = sweep_interval
        self._stop = threading.Event()
        self._connected = threading.Event()
        self.processed = 0
        #: Batches run by the batch paths, and the messages in them (for tuning).
        self.batches = 0
        self.batched_messages = 0
        coordinator.add_listener(self.publish_status)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, *, wait: float = 10.0) -> MqttVerifierBridge:
        """Connect (in the background, reconnecting with backoff) and start the workers.

        Raises:
            TransportError: not connected within ``wait`` seconds.
        """
        for t in self._threads:
            t.start()
        if self._sweep_interval > 0:
            threading.Thread(target=self._sweeper, name="mqtt-sweeper", daemon=True).start()
        if self._publisher is not None:
            self._connected.set()
            return self
        connect_async(self._client, self.settings)
        if wait and not self._connected.wait(wait):
            raise TransportError(f"no connection to {self.settings.url} within {wait}s")
        return self

    def stop(self) -> None:
        """Disconnect and stop the workers."""
        self._stop.set()
        for _ in self._threads:
            self._work.put(None)
        if self._publisher is None:
            self._client.disconnect()
            self._client.loop_stop()
        for t in self._threads:
            t.join(timeout=5)

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return self._connected.is_set()

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: Any,
                    _props: Any) -> None:
        if getattr(reason, "is_failure", False):
            _log.warning("MQTT connection refused: %s", reason)
            return
        group = self.settings.share_group if self.settings.mqtt5 else None
        client.subscribe([(subscription("events", share_group=group), 1),
                          (subscription("evidence", share_group=group), 1)])
        self._connected.set()
        _log.info("verifier bridge connected to %s", self.settings.url)

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: Any,
                       _props: Any) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            _log.warning("verifier bridge disconnected (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        self._work.put(msg)

    # -- processing --------------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            msg = self._work.get()
            if msg is None:
                return
            batch = [msg]
            stop = False
            while len(batch) < self.batch_size:
                try:
                    more = self._work.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            if len(batch) == 1 or self.coordinator.appraiser is None:
                for m in batch:
                    self._process_one(m)
            else:
                self._process_batch(batch)
            if stop:
                return

    def _process_one(self, msg: mqtt.MQTTMessage | _Local) -> None:
        try:
            self.handle(msg.topic, bytes(msg.payload))
        except StoreError:
            # Not acknowledged: the broker redelivers it after a reconnect.
            _log.exception("store failure on %s; leaving it unacknowledged", msg.topic)
            return
        except Exception:
            _log.exception("failed to process %s", msg.topic)
        self._ack(msg)

    def _ack(self, msg: mqtt.MQTTMessage | _Local) -> None:
        if isinstance(msg, _Local):
            return
        try:
            self._client.ack(msg.mid, msg.qos)
        except Exception:  # the connection dropped meanwhile: redelivery will follow
            _log.debug("ack of %s failed", msg.mid)

    def _process_batch(self, batch: list[mqtt.MQTTMessage | _Local]) -> None:
        """Events, then Evidence, each kind in one coordinator batch (one transaction);
        anything else one at a time. Acknowledged after the commit."""
        now = self.clock()
        events: list[tuple[mqtt.MQTTMessage | _Local, str, Any]] = []
        evidence: list[tuple[mqtt.MQTTMessage | _Local, EvidenceItem]] = []
        for msg in batch:
            parsed = parse_topic(msg.topic)
            payload = bytes(msg.payload)
            try:
                if parsed is not None and parsed[1] == "events":
                    events.append((msg, parsed[0], loads(payload)))
                    continue
                if parsed is not None and parsed[1] == "evidence":
                    challenge_id, body, media_type = parse_evidence_message(payload)
                    evidence.append((msg, EvidenceItem(parsed[0], challenge_id, body,
                                                       media_type)))
                    continue
            except (TransportError, ValueError):
                pass  # malformed: the one-at-a-time path answers or logs it
            self._process_one(msg)
        if events:
            self._run_batch([m for m, _, _ in events], lambda: self._events_batch(events, now))
        if evidence:
            self._run_batch([m for m, _ in evidence],
                            lambda: self._evidence_batch(evidence, now))

    def _run_batch(self, msgs: list[mqtt.MQTTMessage | _Local],
                   run: Callable[[], None]) -> None:
        self.batches += 1
        self.batched_messages += len(msgs)
        try:
            run()
        except StoreError:
            _log.exception("store failure on a batch of %d; leaving it unacknowledged",
                           len(msgs))
            return
        except Exception:
            # A bug must not take the whole batch down: process its messages one at a time.
            _log.exception("batch of %d failed; processing it message by message", len(msgs))
            for m in msgs:
                self._process_one(m)
            return
        for m in msgs:
            self._ack(m)

    def _events_batch(self, events: list[tuple[mqtt.MQTTMessage | _Local, str, Any]],
                      now: datetime) -> None:
        outcomes = self.coordinator.report_events([(d, m) for _, d, m in events], now=now)
        for (_, device_id, _), outcome in zip(events, outcomes, strict=True):
            if isinstance(outcome, DevattestError):
                _log.info("event from %s refused: %s", device_id, outcome.diagnostics())
            elif outcome.challenge is not None:
                self.publish_challenge(outcome.challenge)
        self.processed += len(events)

    def _evidence_batch(self, evidence: list[tuple[mqtt.MQTTMessage | _Local, EvidenceItem]],
                        now: datetime) -> None:
        outcomes = self.coordinator.submit_evidence_batch([i for _, i in evidence], now=now)
        for outcome in outcomes:
            if outcome.message is not None:
                self._publish(topic(outcome.device_id, "result"), outcome.message)
        self.processed += len(evidence)

    def handle(self, topic_name: str, payload: bytes) -> None:
        """Process one message (public for tests and in-process transports).

        Raises:
            StoreError: the database failed (the message should be redelivered).
        """
        parsed = parse_topic(topic_name)
        if parsed is None:
            _log.info("ignoring message on %s", topic_name)
            return
        device_id, kind = parsed
        now = self.clock()
        if kind == "events":
            self._handle_event(device_id, payload, now)
        elif kind == "evidence":
            self._handle_evidence(device_id, payload, now)
        self.processed += 1

    def _handle_event(self, device_id: str, payload: bytes, now: datetime) -> None:
        try:
            outcome = self.coordinator.report_event(device_id, loads(payload), now=now)
        except StoreError:
            raise
        except DevattestError as exc:
            _log.info("event from %s refused: %s", device_id, exc.diagnostics())
            return
        if outcome.challenge is not None:
            self.publish_challenge(outcome.challenge)

    def _handle_evidence(self, device_id: str, payload: bytes, now: datetime) -> None:
        try:
            challenge_id, evidence, media_type = parse_evidence_message(payload)
        except TransportError as exc:
            self._publish(topic(device_id, "result"),
                          {"device_id": device_id,
                           "error": {"code": "malformed_message", "message": exc.message}})
            return
        outcome = self.coordinator.submit_evidence(device_id, challenge_id=challenge_id,
                                                   evidence=evidence, media_type=media_type,
                                                   now=now)
        if outcome.message is not None:
            self._publish(topic(device_id, "result"), outcome.message)

    def _sweeper(self) -> None:
        while not self._stop.wait(self._sweep_interval):
            try:
                self.coordinator.sweep_overdue(now=self.clock())
            except Exception:
                _log.exception("overdue sweep failed")

    # -- publishing --------------------------------------------------------------------------
    def _publish_raw(self, name: str, payload: bytes, *, retain: bool = False) -> None:
        if self._publisher is not None:
            self._publisher(name, payload, retain)
            return
        self._client.publish(name, payload, qos=1, retain=retain,
                             properties=json_properties(self.settings))

    def _publish(self, name: str, message: dict[str, Any], *, retain: bool = False) -> None:
        self._publish_raw(name, dumps(message), retain=retain)

    def submit(self, topic_name: str, payload: bytes) -> None:
        """Queue a message for the workers, as if it came from the broker (in-process)."""
        self._work.put(_Local(topic_name, payload))

    def publish_challenge(self, ch: IssuedChallenge) -> None:
        """Send a challenge to its device."""
        self._publish_raw(topic(ch.device_id, "challenge"),
                          challenge_message(ch.challenge_id, ch.nonce, ch.expires_at,
                                            ch.event_id))

    def publish_status(self, change: PostureChange) -> None:
        """Publish a posture change on ``.../status`` (retained: the latest is always there)."""
        self._publish(topic(change.device_id, "status"), change.as_message(), retain=True)

    def request_attestation(self, device_id: str) -> IssuedChallenge | None:
        """Issue and publish a challenge now (an operator or a timer asks)."""
        ch = self.coordinator.request_attestation(device_id, now=self.clock())
        if ch is not None:
            self.publish_challenge(ch)
        return ch
