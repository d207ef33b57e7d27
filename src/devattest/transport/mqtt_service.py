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
* No message can stop a worker (issue 13, defect 1). A message that cannot be parsed
  (too large, not UTF-8 JSON, nested too deeply, not an object, a field of the wrong type
  or holding control characters, a topic that is not a device's) is refused alone: it is
  acknowledged, never redelivered, and dead-lettered with its reason (published on
  ``devattest/v1/dead-letters``, kept in :attr:`MqttVerifierBridge.dead_letters` and
  counted in ``devattest_mqtt_dead_letters_total{reason}``). An unexpected error while
  processing a message dead-letters that message (reason ``unexpected``). A worker thread
  that dies anyway is restarted by a watchdog and counted in
  ``devattest_mqtt_worker_restarts_total``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import queue
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from devattest.errors import (
    DevattestError,
    MalformedLifecycleEvent,
    MalformedMessage,
    StoreError,
    TransportError,
)
from devattest.service.metrics import Metrics
from devattest.transport.coordinator import (
    EvidenceItem,
    IssuedChallenge,
    LifecycleCoordinator,
    PostureChange,
)
from devattest.transport.mqtt import (
    DEAD_LETTER_TOPIC,
    MqttSettings,
    challenge_message,
    connect_async,
    dumps,
    json_properties,
    make_client,
    parse_event_message,
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


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the bridge refused: acknowledged, never processed, never redelivered."""

    topic: str
    #: :attr:`MalformedMessage.reason` (or the error's code): a small fixed set.
    reason: str
    #: The error's diagnostics (bounded).
    message: str
    size: int
    sha256: str
    at: datetime

    def as_message(self, payload: bytes) -> dict[str, Any]:
        """The ``devattest/v1/dead-letters`` payload (with the first 256 bytes, base64)."""
        return {"topic": self.topic, "reason": self.reason, "message": self.message,
                "size": self.size, "sha256": self.sha256, "at": self.at.isoformat(),
                "payload_head": base64.b64encode(payload[:256]).decode()}


#: Dead letters kept in memory (the newest; the topic and the metric have them all).
DEAD_LETTERS_KEPT = 1000


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
        metrics: where dead letters and worker restarts are counted (the service's
            metrics; a registry of its own by default).
        watchdog_interval: seconds between checks that every worker thread is alive.
    """

    def __init__(self, coordinator: LifecycleCoordinator, settings: MqttSettings, *,
                 workers: int = 4, clock: Callable[[], datetime] = _utcnow,
                 sweep_interval: float = 1.0, client_id: str | None = None,
                 publisher: Callable[[str, bytes, bool], None] | None = None,
                 batch_size: int = 64, metrics: Metrics | None = None,
                 watchdog_interval: float = 1.0) -> None:
        self.coordinator = coordinator
        self.metrics = metrics if metrics is not None else Metrics()
        #: The newest refused messages (see :class:`DeadLetter`).
        self.dead_letters: deque[DeadLetter] = deque(maxlen=DEAD_LETTERS_KEPT)
        #: Worker threads the watchdog found dead and replaced.
        self.worker_restarts = 0
        self._watchdog_interval = watchdog_interval
        self._threads_lock = threading.Lock()
        self._settled = threading.local()
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
        self._threads = [self._new_worker(i) for i in range(workers)]
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
        if self._watchdog_interval > 0:
            threading.Thread(target=self._watchdog, name="mqtt-watchdog", daemon=True).start()
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
        with self._threads_lock:
            threads = list(self._threads)
        for _ in threads:
            self._work.put(None)
        if self._publisher is None:
            self._client.disconnect()
            self._client.loop_stop()
        for t in threads:
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
    def _new_worker(self, index: int) -> threading.Thread:
        return threading.Thread(target=self._worker, name=f"mqtt-worker-{index}", daemon=True)

    def _watchdog(self) -> None:
        """Replace worker threads that died (every message is guarded, so only an error
        that is not an :class:`Exception` ends one) and count them."""
        while not self._stop.wait(self._watchdog_interval):
            with self._threads_lock:
                for i, t in enumerate(self._threads):
                    if t.is_alive() or self._stop.is_set():
                        continue
                    _log.error("MQTT worker %s died; restarting it", t.name)
                    self._threads[i] = self._new_worker(i)
                    self._threads[i].start()
                    self.worker_restarts += 1
                    self.metrics.mqtt_worker_restarts.inc()

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
            settled: set[int] = set()
            self._settled.ids = settled
            try:
                if len(batch) == 1 or self.coordinator.appraiser is None:
                    for m in batch:
                        self._process_one(m)
                else:
                    self._process_batch(batch)
            except Exception as exc:
                # A bug outside the per-message guards: the batch's messages not yet
                # acknowledged are dead-lettered one by one; the worker goes on.
                _log.exception("MQTT batch of %d failed", len(batch))
                for m in batch:
                    if id(m) not in settled:
                        self._dead_letter(m, _unexpected(exc))
            if stop:
                return

    def _process_one(self, msg: mqtt.MQTTMessage | _Local) -> None:
        try:
            self.handle(msg.topic, bytes(msg.payload))
        except StoreError:
            # Not acknowledged: the broker redelivers it after a reconnect.
            _log.exception("store failure on %s; leaving it unacknowledged", msg.topic)
            self._settle_unacknowledged([msg])
            return
        except MalformedMessage as exc:
            self._dead_letter(msg, exc)
            return
        except Exception as exc:
            _log.exception("failed to process %s", msg.topic)
            self._dead_letter(msg, _unexpected(exc))
            return
        self._ack(msg)

    def _settle_unacknowledged(self, msgs: list[mqtt.MQTTMessage | _Local]) -> None:
        """Leave ``msgs`` to the broker's redelivery (a store failure): the worker's
        last-resort guard must not dead-letter them."""
        settled: set[int] | None = getattr(self._settled, "ids", None)
        if settled is not None:
            settled.update(id(m) for m in msgs)

    def _ack(self, msg: mqtt.MQTTMessage | _Local) -> None:
        settled: set[int] | None = getattr(self._settled, "ids", None)
        if settled is not None:
            settled.add(id(msg))
        if isinstance(msg, _Local):
            return
        try:
            self._client.ack(msg.mid, msg.qos)
        except Exception:  # the connection dropped meanwhile: redelivery will follow
            _log.debug("ack of %s failed", msg.mid)

    def _dead_letter(self, msg: mqtt.MQTTMessage | _Local, exc: DevattestError) -> None:
        """Refuse ``msg`` alone: acknowledge it (never redelivered), record it, count it
        and publish it on the dead-letter topic. Never raises."""
        self._ack(msg)
        try:
            payload = bytes(msg.payload)
            reason = getattr(exc, "reason", exc.code)
            letter = DeadLetter(topic=str(msg.topic)[:256], reason=reason,
                                message=exc.diagnostics()[:300], size=len(payload),
                                sha256=hashlib.sha256(payload).hexdigest(), at=self.clock())
            self.dead_letters.append(letter)
            self.metrics.mqtt_dead_letters.labels(reason).inc()
            _log.info("dead-lettered a message on %s: %s", letter.topic, letter.message)
            self._publish(DEAD_LETTER_TOPIC, letter.as_message(payload))
        except Exception:
            _log.exception("dead-lettering a message failed")

    def _process_batch(self, batch: list[mqtt.MQTTMessage | _Local]) -> None:
        """Events, then Evidence, each kind in one coordinator batch (one transaction);
        anything else one at a time. Acknowledged after the commit. A message that cannot
        be parsed is dead-lettered alone (a malformed Evidence message is also answered on
        its device's result topic)."""
        now = self.clock()
        events: list[tuple[mqtt.MQTTMessage | _Local, str, Any]] = []
        evidence: list[tuple[mqtt.MQTTMessage | _Local, EvidenceItem]] = []
        for msg in batch:
            parsed = None
            try:
                parsed = parse_topic(msg.topic)
                if parsed is None:
                    raise MalformedMessage("not a device's events or Evidence topic",
                                           reason="bad_topic")
                if parsed[1] == "events":
                    events.append((msg, parsed[0], parse_event_message(bytes(msg.payload))))
                    continue
                if parsed[1] == "evidence":
                    challenge_id, body, media_type = parse_evidence_message(
                        bytes(msg.payload))
                    evidence.append((msg, EvidenceItem(parsed[0], challenge_id, body,
                                                       media_type)))
                    continue
            except MalformedMessage as exc:
                if parsed is not None and parsed[1] == "evidence":
                    self._answer_malformed(parsed[0], exc)
                self._dead_letter(msg, exc)
                continue
            except Exception as exc:  # a parser bug: this message alone is refused
                _log.exception("parsing a message on %s failed", msg.topic)
                self._dead_letter(msg, _unexpected(exc))
                continue
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
            self._settle_unacknowledged(msgs)
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
        for (msg, device_id, _), outcome in zip(events, outcomes, strict=True):
            if isinstance(outcome, MalformedLifecycleEvent):
                self._dead_letter(msg, outcome)
            elif isinstance(outcome, DevattestError):
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
            MalformedMessage: the topic or the payload is malformed (dead-letter it).
            MalformedLifecycleEvent: the event is malformed (dead-letter it).
        """
        parsed = parse_topic(topic_name)
        if parsed is None:
            raise MalformedMessage("not a device's events or Evidence topic",
                                   reason="bad_topic")
        device_id, kind = parsed
        now = self.clock()
        if kind == "events":
            self._handle_event(device_id, payload, now)
        elif kind == "evidence":
            self._handle_evidence(device_id, payload, now)
        self.processed += 1

    def _handle_event(self, device_id: str, payload: bytes, now: datetime) -> None:
        message = parse_event_message(payload)
        try:
            outcome = self.coordinator.report_event(device_id, message, now=now)
        except (StoreError, MalformedLifecycleEvent):
            raise
        except DevattestError as exc:
            _log.info("event from %s refused: %s", device_id, exc.diagnostics())
            return
        if outcome.challenge is not None:
            self.publish_challenge(outcome.challenge)

    def _handle_evidence(self, device_id: str, payload: bytes, now: datetime) -> None:
        try:
            challenge_id, evidence, media_type = parse_evidence_message(payload)
        except MalformedMessage as exc:
            self._answer_malformed(device_id, exc)
            raise
        outcome = self.coordinator.submit_evidence(device_id, challenge_id=challenge_id,
                                                   evidence=evidence, media_type=media_type,
                                                   now=now)
        if outcome.message is not None:
            self._publish(topic(device_id, "result"), outcome.message)

    def _answer_malformed(self, device_id: str, exc: MalformedMessage) -> None:
        """Tell the device its Evidence message was refused (on its result topic)."""
        self._publish(topic(device_id, "result"),
                      {"device_id": device_id,
                       "error": {"code": exc.code, "reason": exc.reason,
                                 "message": exc.message}})

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


def _unexpected(exc: BaseException) -> MalformedMessage:
    """The dead-letter reason of a message whose processing failed unexpectedly."""
    return MalformedMessage(f"processing failed: {type(exc).__name__}", reason="unexpected")
