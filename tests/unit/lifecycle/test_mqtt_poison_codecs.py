"""Issue 13, defect 1: every kind of hostile payload a device can publish on its events or
Evidence topic is a typed :class:`MalformedMessage` with its reason, never another
exception (a ``RecursionError`` from deep JSON used to kill the bridge's workers)."""

from __future__ import annotations

import pytest

from devattest.errors import MalformedMessage, TransportError
from devattest.transport.mqtt import (
    event_message,
    evidence_message,
    parse_event_message,
    parse_evidence_message,
    parse_topic,
)
from tests._support.poison import POISON, Poison


@pytest.mark.parametrize("poison", POISON, ids=[p.name for p in POISON])
def test_hostile_payload_is_refused_as_a_typed_malformed_message(poison: Poison) -> None:
    parse = parse_event_message if poison.kind == "events" else parse_evidence_message
    with pytest.raises(MalformedMessage) as caught:
        parse(poison.payload)
    assert caught.value.reason == poison.reason, caught.value.diagnostics()
    assert isinstance(caught.value, TransportError)
    assert len(caught.value.diagnostics()) < 300


def test_deeply_nested_json_event_is_refused_before_recursion() -> None:
    with pytest.raises(MalformedMessage, match="depth") as caught:
        parse_event_message(b"[" * 100_000 + b"]" * 100_000)
    assert caught.value.reason == "too_deep"


def test_honest_messages_still_parse() -> None:
    msg = parse_event_message(event_message("firmware_update", event_id="e-1",
                                            details={"firmware_version": "1.1", "n": 3}))
    assert msg == {"event_id": "e-1", "kind": "firmware_update",
                   "details": {"firmware_version": "1.1", "n": 3}}
    assert parse_evidence_message(evidence_message("c-1", b"\x01\x02", "application/eat")) \
        == ("c-1", b"\x01\x02", "application/eat")


def test_integer_beyond_64_bits_never_reaches_the_service_as_an_unbounded_int() -> None:
    msg = parse_event_message(b'{"kind": "boot", "details": {"n": 123456789012345678901234}}')
    assert isinstance(msg["details"]["n"], float)


@pytest.mark.parametrize("segment", ["dev\x00a", "dev\x01a", "dev\u0085a", "dev a", "d\ud800"])
def test_device_id_topic_segment_with_control_characters_is_not_a_device_topic(
        segment: str) -> None:
    assert parse_topic(f"devattest/v1/{segment}/events") is None
