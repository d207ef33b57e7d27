"""The MQTT client's buffered reads and its network-thread publishes, on a real, private
Mosquitto: nothing read ahead is held back, large messages arrive whole, a reconnect never
hands out bytes of the previous connection, and replies sent from a message callback go
out without a wake-up byte."""

from __future__ import annotations

import os
import threading
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from devattest.transport.broker import EmbeddedMosquitto
from devattest.transport.mqtt import MqttSettings, _Client, connect_async, make_client, topic

pytestmark = pytest.mark.integration

WAIT = 20.0


class _Collector:
    def __init__(self, expected: int) -> None:
        self.payloads: list[bytes] = []
        self.expected = expected
        self.done = threading.Event()
        self.lock = threading.Lock()

    def on_message(self, client: Any, _u: Any, msg: Any) -> None:
        with self.lock:
            self.payloads.append(bytes(msg.payload))
            if len(self.payloads) >= self.expected:
                self.done.set()
        if msg.qos:
            client.ack(msg.mid, msg.qos)


def _subscriber(broker: EmbeddedMosquitto, name: str, collector: _Collector, *,
                qos: int) -> mqtt.Client:
    settings = MqttSettings.from_url(broker.url)
    client = make_client(settings, client_id=f"sub-{name}", persistent=False)
    subscribed = threading.Event()
    client.on_connect = lambda c, *_: c.subscribe(name, qos=qos)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = collector.on_message
    connect_async(client, settings, persistent=False)
    assert subscribed.wait(WAIT)
    return client


def _publisher(broker: EmbeddedMosquitto) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def _stop(*clients: mqtt.Client) -> None:
    for c in clients:
        c.disconnect()
        c.loop_stop()


def test_packets_read_ahead_are_delivered_without_waiting_for_more_bytes(
        mosquitto: EmbeddedMosquitto) -> None:
    # With QoS 0 nothing is in flight, so paho's read loop stops after one packet per
    # wake-up; the rest of a burst sits in the client's buffer, where select() cannot see
    # it. Unless the loop drains the buffer, the tail of the burst waits for the keepalive.
    name = topic("dev-burst", "result")
    got = _Collector(200)
    sub = _subscriber(mosquitto, name, got, qos=0)
    pub = _publisher(mosquitto)
    try:
        for i in range(200):
            pub.publish(name, b"%d" % i, qos=0)
        assert got.done.wait(WAIT), f"{len(got.payloads)} of 200 delivered"
        assert sorted(int(p) for p in got.payloads) == list(range(200))
    finally:
        _stop(pub, sub)


def test_messages_larger_than_one_read_arrive_whole_and_in_order(
        mosquitto: EmbeddedMosquitto) -> None:
    name = topic("dev-large", "evidence")
    sizes = [1, 200_000, 3, 65_536, 65_535, 131_072, 7]
    payloads = [os.urandom(n) for n in sizes]
    got = _Collector(len(payloads))
    sub = _subscriber(mosquitto, name, got, qos=1)
    pub = _publisher(mosquitto)
    try:
        for p in payloads:
            pub.publish(name, p, qos=1)
        assert got.done.wait(WAIT)
        assert got.payloads == payloads
    finally:
        _stop(pub, sub)


def test_a_reply_published_from_the_message_callback_goes_out(
        mosquitto: EmbeddedMosquitto) -> None:
    # A device answers its challenge inside paho's callback, on the network thread; the
    # reply is queued without a wake-up byte and must still be sent, every time.
    requests, replies = topic("dev-echo", "challenge"), topic("dev-echo", "evidence")
    echoed = _Collector(50)
    watcher = _subscriber(mosquitto, replies, echoed, qos=1)
    settings = MqttSettings.from_url(mosquitto.url)
    device = make_client(settings, client_id="echo-device", persistent=False)
    subscribed = threading.Event()

    def on_message(client: Any, _u: Any, msg: Any) -> None:
        assert threading.current_thread() is client._thread
        client.publish(replies, b"re:" + bytes(msg.payload), qos=1)
        client.ack(msg.mid, msg.qos)

    device.on_connect = lambda c, *_: c.subscribe(requests, qos=1)
    device.on_subscribe = lambda *_: subscribed.set()
    device.on_message = on_message
    connect_async(device, settings, persistent=False)
    assert subscribed.wait(WAIT)
    pub = _publisher(mosquitto)
    try:
        for i in range(50):
            pub.publish(requests, b"%d" % i, qos=1).wait_for_publish(WAIT)
        assert echoed.done.wait(WAIT), f"{len(echoed.payloads)} of 50 replies"
        assert sorted(echoed.payloads) == sorted(b"re:%d" % i for i in range(50))
    finally:
        _stop(pub, device, watcher)


class _Socket:
    """Bytes a connection would deliver (the buffering logic alone, no network)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def recv(self, n: int) -> bytes:
        if not self.data:
            raise BlockingIOError
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk

    def close(self) -> None:
        self.data = b""


def test_bytes_read_from_a_previous_connection_are_never_handed_out_after_a_reconnect(
) -> None:
    # A connection dropped mid-packet leaves bytes in the buffer; the next connection's
    # first packet must be read from the new socket, or a stale (possibly attacker-timed)
    # fragment would be spliced into it.
    client = _Client(CallbackAPIVersion.VERSION2, client_id="buffer-test")
    client._sock = _Socket(b"\x30\x05stale")  # type: ignore[assignment]
    assert client._sock_recv(1) == b"\x30"
    client._sock = _Socket(b"\x40\x02\x00\x01")  # type: ignore[assignment]
    assert client._sock_recv(1) == b"\x40"
    assert client._sock_recv(1) == b"\x02"
    assert client._sock_recv(10) == b"\x00\x01"
    with pytest.raises(BlockingIOError):
        client._sock_recv(1)


def test_per_topic_callbacks_still_receive_their_messages(mosquitto: EmbeddedMosquitto) -> None:
    # The client skips paho's search of the topic-filter trie while it is empty; a filter
    # added with message_callback_add must still be found.
    name = topic("dev-filtered", "status")
    filtered, general = _Collector(3), _Collector(1)
    settings = MqttSettings.from_url(mosquitto.url)
    client = make_client(settings, client_id="filtered", persistent=False)
    subscribed = threading.Event()
    client.message_callback_add("devattest/v1/+/status", filtered.on_message)
    client.on_message = general.on_message
    client.on_connect = lambda c, *_: c.subscribe([(name, 1), (topic("dev-other", "status"), 1)])
    client.on_subscribe = lambda *_: subscribed.set()
    connect_async(client, settings, persistent=False)
    assert subscribed.wait(WAIT)
    pub = _publisher(mosquitto)
    try:
        for i in range(3):
            pub.publish(name, b"%d" % i, qos=1)
        assert filtered.done.wait(WAIT)
        assert general.payloads == []
        info = pub.publish(topic("dev-other", "result"), b"x", qos=1)
        info.wait_for_publish(WAIT)
        assert info.is_published()
    finally:
        _stop(pub, client)


class _WriteSocket:
    """Records what is sent; accepts at most ``limit`` bytes per call (partial writes)."""

    def __init__(self, limit: int = 1 << 30) -> None:
        self.sent: list[bytes] = []
        self.limit = limit

    def send(self, data: bytes) -> int:
        chunk = bytes(data[:self.limit])
        self.sent.append(chunk)
        return len(chunk)

    def close(self) -> None:
        pass


def _queued(command: int, data: bytes, *, qos: int = 1, info: Any = None) -> dict[str, Any]:
    return {"command": command, "mid": 1, "qos": qos, "pos": 0, "to_process": len(data),
            "packet": data, "info": info}


def test_queued_packets_go_out_in_one_write_in_order_and_qos0_publishes_still_complete(
) -> None:
    from paho.mqtt.client import MQTTMessageInfo

    client = _Client(CallbackAPIVersion.VERSION2, client_id="write-test")
    sock = _WriteSocket()
    client._sock = sock  # type: ignore[assignment]
    info = MQTTMessageInfo(7)
    published: list[int] = []
    client.on_publish = lambda _c, _u, mid, *_: published.append(mid)
    for packet in (_queued(0x32, b"P1"), _queued(0x40, b"A1"), _queued(0x32, b"P2"),
                   _queued(0x30, b"Q0", qos=0, info=info), _queued(0x32, b"P3"),
                   _queued(0x40, b"A2")):
        client._out_packet.append(packet)  # type: ignore[arg-type]
    client._packet_write()
    # The QoS 0 publish is written on its own, so that paho reports it as published.
    assert sock.sent == [b"P1A1P2", b"Q0", b"P3A2"]
    assert info.is_published() and published == [1]
    assert not client._out_packet


def test_a_joined_write_the_socket_takes_in_part_is_resumed_where_it_stopped() -> None:
    client = _Client(CallbackAPIVersion.VERSION2, client_id="partial-test")
    sock = _WriteSocket(limit=3)
    client._sock = sock  # type: ignore[assignment]
    for data in (b"abcd", b"efgh", b"ij"):
        client._out_packet.append(_queued(0x32, data))  # type: ignore[arg-type]
    client._packet_write()
    assert b"".join(sock.sent) == b"abcdefghij"
    assert not client._out_packet


class _WakeCounter:
    """Stands in for paho's wake-up socket: counts the bytes written to it."""

    def __init__(self) -> None:
        self.sent = 0

    def send(self, data: bytes) -> int:
        self.sent += 1
        return len(data)

    def close(self) -> None:
        pass


def test_a_burst_queued_from_another_thread_wakes_the_network_thread_once_per_run() -> None:
    # A Verifier worker publishing a batch's challenges and results, or a gateway reporting
    # a fleet's events, wrote one wake-up byte (a system call here, a select wake-up and a
    # read there) per packet. One byte per run of packets is enough: the network thread
    # drains the queue before it sleeps again.
    client = _Client(CallbackAPIVersion.VERSION2, client_id="wake-test")
    wake = _WakeCounter()
    client._sockpairW = wake  # type: ignore[assignment]
    client._thread = threading.Thread(target=lambda: None)  # not this thread
    for i in range(100):
        client._packet_queue(0x32, b"P%d" % i, i + 1, 1)
    assert wake.sent == 1 and len(client._out_packet) == 100
    client._out_packet.clear()  # the network thread took everything out
    client._packet_queue(0x32, b"next", 101, 1)
    assert wake.sent == 2
    # From the network thread itself no byte is needed at all.
    client._thread = threading.current_thread()
    client._out_packet.clear()
    client._packet_queue(0x32, b"own", 102, 1)
    assert wake.sent == 2 and len(client._out_packet) == 1


def test_concurrent_publishers_on_other_threads_never_strand_a_packet(
        mosquitto: EmbeddedMosquitto) -> None:
    # With a wake-up byte only for the first packet of a run, a packet appended while the
    # network thread drains must still go out with that run. The network thread here waits
    # in select for up to a minute (paho's own loop wakes every second, which would hide a
    # stranded packet), so every round being confirmed within 5 s shows none waits.
    name = topic("dev-concurrent", "result")
    threads, rounds, per_round = 4, 20, 25
    total = threads * rounds * per_round
    got = _Collector(total)
    sub = _subscriber(mosquitto, name, got, qos=1)
    pub = make_client(MqttSettings.from_url(mosquitto.url), client_id="concurrent-pub",
                      persistent=False)
    connected = threading.Event()
    pub.on_connect = lambda *_: connected.set()
    pub.connect_async("127.0.0.1", mosquitto.port, keepalive=120)
    # paho's network thread, with a long select timeout.
    pub._thread_main = lambda: pub.loop_forever(  # type: ignore[method-assign]
        timeout=60.0, retry_first_connection=True)
    pub.loop_start()
    assert connected.wait(WAIT)
    late: list[str] = []

    def publisher(t: int) -> None:
        for r in range(rounds):
            infos = [pub.publish(name, b"%d-%d-%d" % (t, r, i), qos=1)
                     for i in range(per_round)]
            for info in infos:
                info.wait_for_publish(5.0)
                if not info.is_published():
                    late.append(f"thread {t} round {r} mid {info.mid}")
                    return
    workers = [threading.Thread(target=publisher, args=(t,)) for t in range(threads)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join(WAIT * 3)
        assert not late, late[:5]
        assert got.done.wait(WAIT), f"{len(got.payloads)} of {total} delivered"
        assert len(set(got.payloads)) == total
    finally:
        _stop(pub, sub)
