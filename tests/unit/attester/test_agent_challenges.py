"""A device answers each challenge once, even when the challenge arrives again while its
Evidence is still being signed (a redelivery, or the open challenge sent again for a
repeated event): a second answer would spend the nonce on the first one and earn the
second a replay verdict."""

from __future__ import annotations

import threading

import pytest

from devattest.attester.agent import DeviceAgent
from devattest.transport.mqtt import b64e, dumps


class _Link:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, name: str, payload: bytes) -> None:
        self.sent.append((name, payload))


def test_a_challenge_delivered_twice_while_being_signed_is_answered_once() -> None:
    started, release = threading.Event(), threading.Event()
    built: list[bytes] = []

    def slow_secure_element(nonce: bytes) -> tuple[bytes, str]:
        built.append(nonce)
        started.set()
        assert release.wait(10)
        return b"evidence", "application/psa-attestation-token"

    agent = DeviceAgent("dev-1", evidence=slow_secure_element)
    link = _Link()
    agent.attach(link)  # type: ignore[arg-type]
    challenge = dumps({"challenge_id": "c1", "nonce": b64e(bytes(32))})
    first = threading.Thread(target=agent.on_challenge, args=(challenge,))
    first.start()
    assert started.wait(10)
    agent.on_challenge(challenge)  # arrives again while the first answer is being signed
    release.set()
    first.join(10)
    agent.on_challenge(challenge)  # and once more after it was sent
    assert len(built) == 1
    assert [name for name, _ in link.sent] == ["devattest/v1/dev-1/evidence"]
    assert agent.stats.challenges == 3 and agent.stats.evidence_sent == 1


def test_a_challenge_whose_signing_failed_can_be_answered_when_it_comes_again() -> None:
    calls: list[int] = []

    def flaky(nonce: bytes) -> tuple[bytes, str]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("secure element busy")
        return b"evidence", "application/psa-attestation-token"

    agent = DeviceAgent("dev-2", evidence=flaky)
    link = _Link()
    agent.attach(link)  # type: ignore[arg-type]
    challenge = dumps({"challenge_id": "c2", "nonce": b64e(bytes(32))})
    with pytest.raises(RuntimeError):
        agent.on_challenge(challenge)
    agent.on_challenge(challenge)
    assert len(calls) == 2 and len(link.sent) == 1


def test_a_reconnect_to_a_broker_that_kept_the_session_does_not_resend_the_outbox() -> None:
    # A link that drops and comes back to a broker that kept its session: the broker still
    # holds what it acknowledged and paho resends what was in flight, so the agents' whole
    # outbox going out again would only repeat every waiting device's messages. A broker
    # that lost the session (restarted without persistence) gets everything again.
    from paho.mqtt.client import ConnectFlags
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    from devattest.attester.agent import MqttLink
    from devattest.transport.mqtt import MqttSettings

    class Client:
        def subscribe(self, subs: object) -> None:
            pass

    link = MqttLink(MqttSettings.from_url("mqtt://127.0.0.1:1"), workers=0)
    sent = _Link()
    agents = [link.add(DeviceAgent(f"dev-{i}", evidence=lambda n: (b"e", "t")))
              for i in range(3)]
    for a in agents:
        a.attach(sent)  # type: ignore[arg-type]
        a.report("boot")
    assert len(sent.sent) == 3
    ok = ReasonCode(PacketTypes.CONNACK, "Success")
    link._on_connect(Client(), None, ConnectFlags(session_present=True), ok, None)  # type: ignore[arg-type]
    assert len(sent.sent) == 6  # the first connection sends the outbox whatever the flag
    link._on_connect(Client(), None, ConnectFlags(session_present=True), ok, None)  # type: ignore[arg-type]
    assert len(sent.sent) == 6  # session kept: nothing again
    link._on_connect(Client(), None, ConnectFlags(session_present=False), ok, None)  # type: ignore[arg-type]
    assert len(sent.sent) == 9  # session lost: everything again
