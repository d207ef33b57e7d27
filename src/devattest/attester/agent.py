"""The device agent: runs on the device next to its secure element, reports lifecycle
events over MQTT and answers the Verifier's challenges with Evidence signed in the secure
element.

Delivery is at-least-once and every message is idempotent on the Verifier side, so the
agent simply repeats what is not yet confirmed:

* an event stays in the outbox until a result arrives for a challenge received after it
  (the Verifier re-challenges for a repeated event that is still pending, and ignores it
  otherwise);
* Evidence stays in the outbox until its result arrives (a repeated submission gets the
  stored result back and never consumes a second nonce);
* while offline, events queue (bounded); on reconnect, and every ``retry_interval`` seconds,
  the outbox is sent again. paho reconnects with exponential backoff.

One :class:`MqttLink` carries one device (its own MQTT session, client id = device id) or,
for simulators and gateways, many devices over one connection.

The attester never imports the verifier, the service, the store or the policy layer.
"""

from __future__ import annotations

import collections
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import paho.mqtt.client as mqtt

from devattest.errors import TransportError
from devattest.transport.mqtt import (
    MqttSettings,
    b64d,
    connect_async,
    event_message,
    evidence_message,
    json_properties,
    loads,
    make_client,
    parse_topic,
    topic,
)

_log = logging.getLogger("devattest.attester.agent")

#: Asks whether the broker has acknowledged a message (MQTT ``PUBACK``).
Acknowledged = Callable[[], bool]


class Link(Protocol):
    """What carries an agent's messages (an MQTT connection, or an in-process bus)."""

    def publish(self, name: str, payload: bytes) -> Acknowledged | None:
        """Send; return a probe of the broker's acknowledgement (None: no such thing)."""
        ...


#: Builds Evidence for a nonce: returns ``(evidence, media_type)``. Signs in the secure
#: element.
EvidenceBuilder = Callable[[bytes], tuple[bytes, str]]


@dataclass
class _OutEvent:
    event_id: str
    kind: str
    details: dict[str, Any]
    seq: int
    sent_at: float = 0.0
    #: Resends so far (each waits twice as long as the previous, with jitter).
    attempts: int = 0
    acked: Acknowledged | None = None
    #: False once the message was sent again after a reconnect (see _due).
    ack_trusted: bool = True


@dataclass
class _OutEvidence:
    challenge_id: str
    payload: bytes
    seq: int
    sent_at: float = 0.0
    attempts: int = 0
    acked: Acknowledged | None = None
    ack_trusted: bool = True


#: The longest wait between two resends of one message, in multiples of ``older_than``.
_MAX_BACKOFF_FACTOR = 32
#: How much longer a message the broker has acknowledged waits before it is sent again.
ACKED_RESEND_FACTOR = 10


def _due(entry: _OutEvent | _OutEvidence, now: float, older_than: float) -> bool:
    """Exponential backoff with jitter per message: a fleet that lost its Verifier does not
    come back as a synchronised flood of resends (each resend waits ``older_than`` * 2^n,
    capped, times a random factor in [0.75, 1.25)).

    On a link that reports the broker's acknowledgement (QoS 1 ``PUBACK``), while the
    connection that carried the message lasts: a message not yet acknowledged is in flight
    and the connection delivers it (a reconnect sends everything again), so the timer does
    not resend it; one acknowledged is the broker's to deliver to the Verifier's persistent
    session, so its answer is usually only slow (a wave that queues), and it is sent again
    after :data:`ACKED_RESEND_FACTOR` times as long, against a broker that dropped it.
    Resending by the plain interval fed the queues the messages waited in: a 100,000-device
    wave whose backlog outlasted the interval resent 365,000 messages (and, with the devices'
    own connections behind on reading their acknowledgements, 190,000 even when
    acknowledged messages waited longer). What was sent again after a reconnect keeps the
    plain interval: a broker that restarted without its state acknowledges messages that the
    Verifier, not yet subscribed again, never receives."""
    if older_than <= 0:
        return True
    factor: int = min(2 ** entry.attempts, _MAX_BACKOFF_FACTOR)
    if entry.ack_trusted and entry.acked is not None:
        if not entry.acked():
            return False
        factor *= ACKED_RESEND_FACTOR
    jitter = 0.75 + 0.5 * _rng.random()
    waited: float = now - entry.sent_at
    return waited >= older_than * factor * jitter


_rng = random.SystemRandom()


@dataclass
class AgentStats:
    """Counters, for tests and the simulator."""

    challenges: int = 0
    evidence_sent: int = 0
    results: int = 0
    resent: int = 0
    dropped_events: int = 0
    last_status: str | None = None
    results_by_challenge: dict[str, dict[str, Any]] = field(default_factory=dict)


class DeviceAgent:
    """One device's agent logic (transport-independent; a link carries its messages).

    Args:
        device_id: the device's id (its topics are ``devattest/v1/{device_id}/...``).
        evidence: builds signed Evidence for a nonce (see :func:`psa_evidence_builder`).
        max_queue: events kept while offline; the oldest are dropped beyond it.
        answer_challenges: False makes a device that ignores challenges (simulator).
        on_result: called with every result message.
    """

    def __init__(self, device_id: str, *, evidence: EvidenceBuilder, max_queue: int = 1000,
                 answer_challenges: bool = True,
                 on_result: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.device_id = device_id
        self._evidence = evidence
        self._max_queue = max_queue
        self.answer_challenges = answer_challenges
        self._on_result = on_result
        self._lock = threading.Lock()
        self._events: collections.OrderedDict[str, _OutEvent] = collections.OrderedDict()
        self._evidence_out: dict[str, _OutEvidence] = {}
        #: Challenges whose Evidence is being built (a redelivery meanwhile is dropped).
        self._answering: set[str] = set()
        self._seq = 0
        self._link: Link | None = None
        self._result_cv = threading.Condition(self._lock)
        self.stats = AgentStats()
        #: Hook for simulators: transforms Evidence before it is sent (adversaries).
        self.tamper: Callable[[str, bytes, str], tuple[bytes, str]] | None = None

    def attach(self, link: Link) -> None:
        """Bind the agent to the link that carries its messages."""
        self._link = link

    # -- events ------------------------------------------------------------------------------
    def report(self, kind: str, *, event_id: str | None = None, **details: Any) -> str:
        """Report a lifecycle event (queued while offline). Returns its event id."""
        eid = event_id or secrets.token_hex(8)
        with self._lock:
            self._seq += 1
            self._events[eid] = _OutEvent(eid, kind, dict(details), self._seq)
            while len(self._events) > self._max_queue:
                self._events.popitem(last=False)
                self.stats.dropped_events += 1
        self._send_event(eid)
        return eid

    def _send_event(self, eid: str) -> None:
        with self._lock:
            ev = self._events.get(eid)
            if ev is None:
                return
            ev.sent_at = time.monotonic()
        if self._link is not None:
            ev.acked = self._link.publish(topic(self.device_id, "events"),
                                          event_message(ev.kind, event_id=ev.event_id,
                                                        details=ev.details))

    @property
    def outstanding(self) -> int:
        """Events and Evidence not yet confirmed by a result."""
        with self._lock:
            return len(self._events) + len(self._evidence_out)

    # -- challenges and results --------------------------------------------------------------
    def on_challenge(self, payload: bytes) -> None:
        """Answer a challenge: Evidence over its nonce, signed in the secure element."""
        try:
            msg = loads(payload)
            challenge_id = msg.get("challenge_id")
            if not isinstance(challenge_id, str):
                raise TransportError("challenge without an id")
            nonce = b64d(msg.get("nonce"), what="nonce")
        except TransportError as exc:
            _log.warning("%s: malformed challenge: %s", self.device_id, exc.message)
            return
        with self._lock:
            self.stats.challenges += 1
            if challenge_id in self._evidence_out or challenge_id in self._answering or \
                    challenge_id in self.stats.results_by_challenge:
                # A redelivered challenge (or one sent again for a repeated event): the
                # Evidence is already on its way. Answering twice would spend the nonce on
                # the first answer and earn the second a replay verdict.
                return
            seq = self._seq
            if not self.answer_challenges:
                return
            self._answering.add(challenge_id)
        try:
            evidence, media_type = self._evidence(nonce)
            if self.tamper is not None:
                evidence, media_type = self.tamper(challenge_id, evidence, media_type)
            out = _OutEvidence(challenge_id,
                               evidence_message(challenge_id, evidence, media_type),
                               seq, time.monotonic())
        except BaseException:
            with self._lock:
                self._answering.discard(challenge_id)
            raise
        with self._lock:
            self._answering.discard(challenge_id)
            self._evidence_out[challenge_id] = out
            self.stats.evidence_sent += 1
        if self._link is not None:
            out.acked = self._link.publish(topic(self.device_id, "evidence"), out.payload)

    def on_result(self, payload: bytes) -> None:
        """A result (or an error) for one of this device's challenges."""
        try:
            msg = loads(payload)
        except TransportError:
            return
        cid = msg.get("challenge_id")
        with self._lock:
            out = self._evidence_out.pop(cid, None) if isinstance(cid, str) else None
            if out is not None:
                for eid in [e.event_id for e in self._events.values() if e.seq <= out.seq]:
                    del self._events[eid]
            if isinstance(cid, str):
                self.stats.results_by_challenge[cid] = msg
            self.stats.results += 1
            self.stats.last_status = msg.get("status") or \
                (msg.get("error") or {}).get("code")
            self._result_cv.notify_all()
        if self._on_result is not None:
            self._on_result(msg)

    def wait_settled(self, timeout: float) -> bool:
        """Wait until every event and Evidence is confirmed by a result."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._events or self._evidence_out:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._result_cv.wait(left)
            return True

    def resend(self, *, older_than: float = 0.0) -> int:
        """Send again what is unconfirmed and due: older than ``older_than`` seconds, backed
        off exponentially (with jitter) per message; ``older_than=0`` sends everything (on
        reconnect)."""
        now = time.monotonic()
        with self._lock:
            due_events = [e for e in self._events.values() if _due(e, now, older_than)]
            evidence = [e for e in self._evidence_out.values() if _due(e, now, older_than)]
            if older_than > 0:
                for ev in due_events:
                    ev.attempts += 1
                for out in evidence:
                    out.attempts += 1
            else:  # a reconnect: the broker may have lost what it acknowledged before
                for ev in due_events:
                    ev.ack_trusted = False
                for out in evidence:
                    out.ack_trusted = False
            for e in evidence:
                e.sent_at = now
            events = [e.event_id for e in due_events]
            self.stats.resent += len(events) + len(evidence)
        for eid in events:
            self._send_event(eid)
        if self._link is not None:
            for e in evidence:
                e.acked = self._link.publish(topic(self.device_id, "evidence"), e.payload)
        return len(events) + len(evidence)


def _published_probe(info: mqtt.MQTTMessageInfo) -> Acknowledged:
    # paho raises on is_published() for a message it could not queue; such a message is
    # not in flight, which the caller handles by returning no probe at all.
    def acked() -> bool:
        try:
            return info.is_published()
        except (RuntimeError, ValueError):
            return False
    return acked


class MqttLink:
    """An MQTT connection carrying one or many device agents.

    With one agent the client id is the device id and the session is persistent, as on a
    real device. With many (a simulator or a gateway) it subscribes to each device's
    ``challenge`` and ``result`` topics over one connection.

    Args:
        settings: broker URL, credentials, TLS.
        client_id: defaults to the single agent's device id, else random.
        retry_interval: seconds after which unconfirmed messages are sent again.
        workers: threads that sign Evidence (signing never blocks the network thread);
            0 signs on the network thread (for fast software keys, as in a simulator: no
            hand-off per challenge).
    """

    def __init__(self, settings: MqttSettings, *, client_id: str | None = None,
                 retry_interval: float = 5.0, workers: int = 2) -> None:
        self.settings = settings
        self._agents: dict[str, DeviceAgent] = {}
        self._client_id = client_id
        self._retry = retry_interval
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="agent-sign") \
            if workers > 0 else None
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._stop = threading.Event()
        self.connects = 0

    def add(self, agent: DeviceAgent) -> DeviceAgent:
        """Carry ``agent`` on this link (before :meth:`start`)."""
        self._agents[agent.device_id] = agent
        agent.attach(self)
        return agent

    @property
    def agents(self) -> Mapping[str, DeviceAgent]:
        """The agents on this link, by device id."""
        return self._agents

    def start(self, *, wait: float = 10.0) -> MqttLink:
        """Connect (in the background, with backoff) and start the retry loop.

        Raises:
            TransportError: not connected within ``wait`` seconds (0: do not wait).
        """
        single = len(self._agents) == 1
        cid = self._client_id or (next(iter(self._agents)) if single
                                  else f"devattest-agents-{secrets.token_hex(4)}")
        self._client = make_client(self.settings, client_id=cid)
        # Each device has at most an event and an Evidence unconfirmed at once in a wave; a
        # window that holds them all keeps paho from queueing (and from walking its queue
        # after every PUBACK, which grew with the devices on the link).
        self._client.max_inflight_messages_set(min(65535, max(1000, 2 * len(self._agents))))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        connect_async(self._client, self.settings)
        threading.Thread(target=self._retry_loop, name="agent-retry", daemon=True).start()
        if wait and not self._connected.wait(wait):
            raise TransportError(f"no connection to {self.settings.url} within {wait}s")
        return self

    def stop(self) -> None:
        """Disconnect."""
        self._stop.set()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Wait for the connection."""
        return self._connected.wait(timeout)

    def publish(self, name: str, payload: bytes) -> Acknowledged | None:
        """Publish with QoS 1 (paho queues it while reconnecting; the agents resend what is
        never confirmed). Returns whether the broker has acknowledged it, as a probe."""
        if self._client is None:
            return None
        info = self._client.publish(name, payload, qos=1,
                                    properties=json_properties(self.settings))
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return None  # refused by paho (never queued): resent by the plain interval
        return _published_probe(info)

    def _on_connect(self, client: mqtt.Client, _ud: Any, flags: Any, reason: Any,
                    _props: Any) -> None:
        if getattr(reason, "is_failure", False):
            _log.warning("agent connection refused: %s", reason)
            return
        subs = []
        for device_id in self._agents:
            subs += [(topic(device_id, "challenge"), 1), (topic(device_id, "result"), 1)]
        for i in range(0, len(subs), 500):
            client.subscribe(subs[i:i + 500])
        reconnect = self.connects > 0
        self.connects += 1
        self._connected.set()
        if reconnect and getattr(flags, "session_present", False) is True:
            # The broker kept this session: what it acknowledged it still holds, and paho
            # sends again what was in flight or queued while offline. Sending the whole
            # outbox again would repeat every waiting device's messages into a queue.
            return
        # First connection, or a broker that lost the session (a restart without
        # persistence): everything unconfirmed goes out again (the Verifier de-duplicates).
        for agent in self._agents.values():
            agent.resend()

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, _reason: Any,
                       _props: Any) -> None:
        self._connected.clear()

    def _on_message(self, client: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        parsed = parse_topic(msg.topic)
        agent = self._agents.get(parsed[0]) if parsed else None
        if parsed is not None and agent is not None:
            payload = bytes(msg.payload)
            if parsed[1] == "challenge":
                if self._pool is None:
                    agent.on_challenge(payload)
                else:
                    self._pool.submit(agent.on_challenge, payload)
            elif parsed[1] == "result":
                agent.on_result(payload)
        client.ack(msg.mid, msg.qos)

    def _retry_loop(self) -> None:
        while not self._stop.wait(self._retry / 2):
            if self._connected.is_set():
                for agent in list(self._agents.values()):
                    agent.resend(older_than=self._retry)


def psa_evidence_builder(state: Any, se: Any, *, x5chain: tuple[bytes, ...] = ()
                         ) -> EvidenceBuilder:
    """Evidence as a PSA token over the nonce, signed in the secure element ``se``."""
    from devattest.attester.evidence import PSA_MEDIA_TYPE, attest_psa

    def build(nonce: bytes) -> tuple[bytes, str]:
        return attest_psa(state, se, nonce=nonce, x5chain=x5chain), PSA_MEDIA_TYPE

    return build
