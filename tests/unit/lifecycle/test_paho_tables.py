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


def _publish_block(**values: object) -> bytes:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    return bytes(props.pack())  # type: ignore[no-untyped-call]


def _decoded(cls: type[Properties], data: bytes) -> tuple[object, int]:
    props = cls(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    _, used = props.unpack(data)  # type: ignore[no-untyped-call]
    return props.json(), used  # type: ignore[no-untyped-call]


def test_a_property_block_seen_before_decodes_from_the_cache_exactly_as_paho_decodes_it(
) -> None:
    payload = b'{"challenge_id": "c"}' * 40
    blocks = [_publish_block(ContentType="application/json", PayloadFormatIndicator=1),
              _publish_block(ContentType="text/plain"),
              _publish_block(ContentType="application/json", MessageExpiryInterval=30,
                             CorrelationData=b"\x00\x01"),
              _publish_block()]
    for block in blocks * 3:  # the first round fills the cache, the others read it
        data = block + payload
        assert _decoded(m._SharedTableProperties, data) == _decoded(Properties, data)
        assert _decoded(m._SharedTableProperties, data)[1] == len(block)
    assert all(b in m._DECODED for b in blocks)
    # A reused object (paho clears it before decoding) keeps nothing of the last block.
    ours = m._SharedTableProperties(PacketTypes.PUBLISH)
    ours.unpack(blocks[2] + payload)  # type: ignore[no-untyped-call]
    ours.unpack(blocks[1] + payload)  # type: ignore[no-untyped-call]
    assert not hasattr(ours, "CorrelationData") and ours.ContentType == "text/plain"


def test_user_properties_and_long_blocks_are_never_cached() -> None:
    with_users = _publish_block(ContentType="application/json",
                                UserProperty=[("k", "v"), ("k2", "v2")])
    long_block = _publish_block(ContentType="x" * 200)
    for block in (with_users, long_block):
        for _ in range(2):
            assert _decoded(m._SharedTableProperties, block) == _decoded(Properties, block)
        assert block not in m._DECODED
    # Decoded values are not shared between messages: a caller changing one list
    # cannot change the next message's properties.
    a = m._SharedTableProperties(PacketTypes.PUBLISH)
    a.unpack(with_users)  # type: ignore[no-untyped-call]
    a.UserProperty.append(("x", "y"))
    b = m._SharedTableProperties(PacketTypes.PUBLISH)
    b.unpack(with_users)  # type: ignore[no-untyped-call]
    assert b.UserProperty == [("k", "v"), ("k2", "v2")]


def test_the_cache_of_property_blocks_is_bounded() -> None:
    for i in range(m._DECODED_MAX + 50):
        block = _publish_block(ContentType=f"t/{i}")
        assert _decoded(m._SharedTableProperties, block) == _decoded(Properties, block)
    assert len(m._DECODED) <= m._DECODED_MAX
