"""The shared-table stand-ins the MQTT module installs into paho decode and build exactly
what paho's own classes do: every reason code of every packet type, every property."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devattest.transport import mqtt as m

PACKET_TYPES = range(PacketTypes.CONNECT, PacketTypes.AUTH + 1)


def _outcome(make: type[ReasonCode], *args: object, **kw: object) -> tuple[str, object]:
    try:
        rc = make(*args, **kw)  # type: ignore[arg-type]
        return "ok", (rc.value, rc.getName(), rc.packetType)
    except Exception as exc:
        return type(exc).__name__, None


def test_reason_codes_by_name_and_by_identifier_match_paho_for_every_packet_type() -> None:
    names = {n for entry in ReasonCode.names.values() for n in entry} | {"Success", "Nope"}
    for t in PACKET_TYPES:
        for name in sorted(names):
            assert _outcome(m._SharedNamesReasonCode, t, name) == _outcome(ReasonCode, t, name), \
                (t, name)
        for ident in [*ReasonCode.names, 1, 255]:
            assert _outcome(m._SharedNamesReasonCode, t, identifier=ident) == _outcome(
                ReasonCode, t, identifier=ident), (t, ident)


def test_installed_into_paho_decoders() -> None:
    from paho.mqtt import _packet

    assert getattr(_packet, "ReasonCode") is m._SharedNamesReasonCode  # noqa: B009
    assert getattr(_packet, "Properties") is m._SharedTableProperties  # noqa: B009


@pytest.mark.parametrize("packet_type", [PacketTypes.PUBLISH, PacketTypes.PUBACK,
                                         PacketTypes.CONNACK, PacketTypes.SUBACK])
def test_properties_decode_like_paho(packet_type: int) -> None:
    props = Properties(packet_type)  # type: ignore[no-untyped-call]
    if packet_type == PacketTypes.PUBLISH:
        props.ContentType = "application/json"
        props.PayloadFormatIndicator = 1
        props.MessageExpiryInterval = 30
        props.ResponseTopic = "devattest/v1/x/result"
        props.CorrelationData = b"\x00\x01"
    if packet_type == PacketTypes.CONNACK:
        props.MaximumPacketSize = 1 << 20
        props.AssignedClientIdentifier = "c-1"
    props.UserProperty = [("a", "1"), ("b", "2")] if packet_type != PacketTypes.CONNACK \
        else ("a", "1")
    if packet_type in (PacketTypes.PUBACK, PacketTypes.SUBACK):
        props.ReasonString = "why"
    packed = props.pack()  # type: ignore[no-untyped-call]
    theirs = Properties(packet_type)  # type: ignore[no-untyped-call]
    theirs.unpack(packed)  # type: ignore[no-untyped-call]
    ours = m._SharedTableProperties(packet_type)
    ours.unpack(packed)  # type: ignore[no-untyped-call]
    assert ours.json() == theirs.json()  # type: ignore[no-untyped-call]
    assert ours.json()  # type: ignore[no-untyped-call]
