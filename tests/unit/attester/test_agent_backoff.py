"""Resends back off exponentially with jitter, so a fleet that lost its Verifier does not
return as a synchronised flood (the 100,000-device wave snowballed with fixed intervals)."""

from __future__ import annotations

from devattest.attester.agent import _due, _OutEvidence


def entry(attempts: int, sent_at: float = 100.0) -> _OutEvidence:
    return _OutEvidence(challenge_id="c", payload=b"", seq=1, sent_at=sent_at,
                        attempts=attempts)


def test_first_resend_waits_about_the_interval() -> None:
    assert not _due(entry(0), 100.0 + 0.74, 1.0)
    assert _due(entry(0), 100.0 + 1.25, 1.0)


def test_each_resend_waits_twice_as_long() -> None:
    assert not _due(entry(3), 100.0 + 5.9, 1.0)   # 8 s x [0.75, 1.25)
    assert _due(entry(3), 100.0 + 10.0, 1.0)


def test_backoff_is_capped() -> None:
    assert not _due(entry(20), 100.0 + 23.9, 1.0)  # capped at 32 s x [0.75, 1.25)
    assert _due(entry(20), 100.0 + 40.0, 1.0)


def test_reconnect_resends_everything() -> None:
    assert _due(entry(20), 100.0, 0.0)


def test_a_message_the_broker_acknowledged_waits_ten_times_as_long() -> None:
    acked = entry(0)
    acked.acked = lambda: True
    assert not _due(acked, 100.0 + 7.4, 1.0)  # 10 s x [0.75, 1.25)
    assert _due(acked, 100.0 + 12.5, 1.0)
    assert _due(acked, 100.0, 0.0)  # a reconnect still sends it again
    in_flight = entry(0)  # not acknowledged yet: the connection is delivering it
    in_flight.acked = lambda: False
    assert not _due(in_flight, 100.0 + 1000.0, 1.0)
    assert _due(in_flight, 100.0, 0.0)  # a reconnect sends it again


def test_a_queued_wave_does_not_make_every_device_resend_into_the_queue() -> None:
    # 1,000 devices whose events the broker accepted (or, for ten, are still in flight) but
    # the Verifier has not answered yet (its queue outlasts the resend interval): nothing is
    # sent again at the interval. This stopped a resend storm (365,000 resent messages in a
    # 100,000-device wave).
    from devattest.attester.agent import DeviceAgent

    class Broker:
        def __init__(self) -> None:
            self.sent = 0

        def publish(self, name: str, payload: bytes) -> object:
            self.sent += 1
            accepted = not name.startswith("devattest/v1/lost-")
            return lambda: accepted

    broker = Broker()
    agents = [DeviceAgent(f"{'lost' if i % 100 == 0 else 'dev'}-{i}",
                          evidence=lambda n: (b"e", "application/psa-attestation-token"))
              for i in range(1000)]
    for a in agents:
        a.attach(broker)  # type: ignore[arg-type]
        a.report("firmware_update")
    assert broker.sent == 1000
    import time

    for a in agents:  # as if the interval had passed
        for ev in a._events.values():
            ev.sent_at = time.monotonic() - 2.0
    # Acknowledged ones wait ten times the interval; those in flight are the connection's.
    assert sum(a.resend(older_than=1.0) for a in agents) == 0
    for a in agents:
        for ev in a._events.values():
            ev.sent_at = time.monotonic() - 13.0
    assert sum(a.resend(older_than=1.0) for a in agents) == 990
    assert sum(a.resend(older_than=0.0) for a in agents) == 1000  # a reconnect: all


def test_after_a_reconnect_an_acknowledgement_no_longer_delays_the_resend() -> None:
    # A broker that restarted without its state acknowledges what is sent again, but the
    # Verifier may not be subscribed yet: those resends keep the plain interval.
    from devattest.attester.agent import DeviceAgent

    class Broker:
        def publish(self, name: str, payload: bytes) -> object:
            return lambda: True

    agent = DeviceAgent("dev-1", evidence=lambda n: (b"e", "application/psa-attestation-token"))
    agent.attach(Broker())  # type: ignore[arg-type]
    agent.report("boot")
    import time

    assert agent.resend(older_than=0) == 1  # the reconnect
    for ev in agent._events.values():
        ev.sent_at = time.monotonic() - 2.0
    assert agent.resend(older_than=1.0) == 1


def test_the_acknowledgement_probe_of_a_message_paho_could_not_send_yet_never_raises(
) -> None:
    import paho.mqtt.client as mqtt

    from devattest.attester.agent import _published_probe

    info = mqtt.MQTTMessageInfo(1)
    info.rc = mqtt.MQTT_ERR_NO_CONN  # published while disconnected: paho raises on asking
    probe = _published_probe(info)
    assert probe() is False
    info.rc = mqtt.MQTT_ERR_SUCCESS
    info._set_as_published()
    assert probe() is True
