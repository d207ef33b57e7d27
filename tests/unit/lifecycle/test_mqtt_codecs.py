"""The MQTT topic scheme, settings and message codecs (no broker needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devattest.errors import ConfigurationError, TransportError
from devattest.transport.mqtt import (
    MAX_PAYLOAD,
    MqttSettings,
    challenge_message,
    evidence_message,
    loads,
    parse_evidence_message,
    parse_topic,
    subscription,
    topic,
)


def test_topic_scheme_round_trips() -> None:
    assert topic("dev-1", "evidence") == "devattest/v1/dev-1/evidence"
    assert parse_topic("devattest/v1/dev-1/evidence") == ("dev-1", "evidence")
    assert subscription("evidence", share_group="devattest") == \
        "$share/devattest/devattest/v1/+/evidence"


@pytest.mark.parametrize("device_id", ["", "a/b", "+", "#", "x" * 129, "dev\x00"])
def test_rejects_device_ids_that_would_escape_their_topic(device_id: str) -> None:
    with pytest.raises(ValueError):
        topic(device_id, "evidence")


@pytest.mark.parametrize("name", ["devattest/v2/d/evidence", "devattest/v1/d/evidence/x",
                                  "devattest/v1/d/secrets", "other/v1/d/evidence"])
def test_ignores_foreign_topics(name: str) -> None:
    assert parse_topic(name) is None


def test_settings_from_url_take_credentials_out_and_pick_tls_port() -> None:
    s = MqttSettings.from_url("mqtts://verifier:p%40ss@broker.example")
    assert (s.host, s.port, s.tls) == ("broker.example", 8883, True)
    assert (s.username, s.password) == ("verifier", "p@ss")
    assert "p@ss" not in s.url and "p@ss" not in repr(s)
    plain = MqttSettings.from_url("mqtt://127.0.0.1:1999")
    assert (plain.port, plain.tls) == (1999, False)
    with pytest.raises(ConfigurationError):
        MqttSettings.from_url("http://broker")


def test_evidence_message_round_trips() -> None:
    payload = evidence_message("c1", b"\x00\xffevidence", "application/psa-attestation-token")
    assert parse_evidence_message(payload) == ("c1", b"\x00\xffevidence",
                                               "application/psa-attestation-token")
    assert b"c1" in challenge_message("c1", b"n" * 32, datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("payload", [
    b"not json", b"[]", b'{"challenge_id": 5, "media_type": "x", "evidence": ""}',
    b'{"challenge_id": "c", "media_type": "x", "evidence": "***"}',
    b'{"challenge_id": "c", "evidence": "AA=="}',
    b'{"challenge_id": "' + b"c" * 65 + b'", "media_type": "x", "evidence": "AA=="}',
])
def test_rejects_malformed_evidence_messages(payload: bytes) -> None:
    with pytest.raises(TransportError):
        parse_evidence_message(payload)


def test_rejects_oversized_payloads_before_parsing() -> None:
    with pytest.raises(TransportError):
        loads(b" " * (MAX_PAYLOAD + 1))


def test_shared_publish_properties_pack_like_pahos_and_decode_the_same() -> None:
    from paho.mqtt import _packet
    from paho.mqtt.enums import MQTTProtocolVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from devattest.transport.mqtt import json_properties

    shared = json_properties(MqttSettings())
    assert shared is json_properties(MqttSettings())  # built once
    assert json_properties(MqttSettings(protocol="3.1.1")) is None
    fresh = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    fresh.ContentType = "application/json"
    fresh.PayloadFormatIndicator = 1
    assert shared is not None and shared.pack() == fresh.pack()
    # A PUBLISH as the broker sends it: topic, packet id, properties, payload.
    name = b"devattest/v1/dev-1/result"
    body = len(name).to_bytes(2, "big") + name + (7).to_bytes(2, "big") + fresh.pack() + b"{}"
    got = _packet.decode_publish(0x32, body, MQTTProtocolVersion.MQTTv5)
    assert (got.topic, got.mid, got.payload, got.qos) == (name, 7, b"{}", 1)
    assert got.properties.ContentType == "application/json"
    assert got.properties.PayloadFormatIndicator == 1
    assert not hasattr(got.properties, "ResponseTopic")
    again = _packet.decode_publish(0x32, body[:len(name) + 4] + b"\x00{}",
                                   MQTTProtocolVersion.MQTTv5)
    assert again.properties.isEmpty() and again.payload == b"{}"
