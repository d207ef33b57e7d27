"""MQTT plumbing shared by the Verifier side and the device agent: settings (broker URL,
TLS, username/password or client certificate), the topic scheme and message codecs.

Topic scheme (``docs/mqtt.md``), all QoS 1::

    devattest/v1/{device_id}/events     device -> verifier   lifecycle events
    devattest/v1/{device_id}/challenge  verifier -> device   nonce to attest with
    devattest/v1/{device_id}/evidence   device -> verifier   signed Evidence for a challenge
    devattest/v1/{device_id}/result     verifier -> device   the Attestation Result (EAR)
    devattest/v1/{device_id}/status     verifier -> RPs      posture changes (retained)

The Verifier subscribes with MQTT 5 shared subscriptions
(``$share/devattest/devattest/v1/+/evidence``) so that replicas share the load.

This module holds no verification logic and imports nothing from the service layer (the
device agent uses it too).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.matcher import MQTTMatcher
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devattest.errors import ConfigurationError, MalformedMessage, TransportError
from devattest.model._json import compact_json
from devattest.model.text import has_control_characters

PREFIX = "devattest/v1"
KINDS = ("events", "challenge", "evidence", "result", "status")
#: Largest accepted payload of any devattest message (Evidence is base64 in JSON).
MAX_PAYLOAD = 256 * 1024
#: Where the Verifier publishes the messages it refused (``docs/mqtt.md``): operators
#: subscribe to it; devices never see it.
DEAD_LETTER_TOPIC = f"{PREFIX}/dead-letters"
_DEVICE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")


@dataclass(frozen=True)
class MqttSettings:
    """How to reach the broker.

    ``url`` is ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://...`` (TLS, port 8883
    by default). TLS verifies the broker against ``ca_file`` (or the system store); a client
    certificate (``cert_file``/``key_file``) authenticates this client. ``tls_insecure`` is
    for tests only.
    """

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    #: ``5`` (default: shared subscriptions, session expiry) or ``3.1.1``.
    protocol: str = "5"
    keepalive: int = 30
    #: Seconds the broker keeps a disconnected client's session (MQTT 5).
    session_expiry: int = 3600
    #: The shared-subscription group of the Verifier replicas (None: plain subscriptions).
    share_group: str | None = "devattest"
    reconnect_min_delay: int = 1
    reconnect_max_delay: int = 30

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> MqttSettings:
        """Settings from a URL (credentials in the URL are taken out of it).

        Raises:
            ConfigurationError: not an ``mqtt://`` or ``mqtts://`` URL.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
            raise ConfigurationError(f"not an MQTT URL: {url!r} (mqtt://host:port)")
        kw: dict[str, Any] = {}
        if parts.username:
            kw["username"] = unquote(parts.username)
        if parts.password:
            kw["password"] = unquote(parts.password)
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        clean = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
        return cls(url=clean, **{**kw, **overrides})

    @property
    def tls(self) -> bool:
        """Whether the connection uses TLS."""
        return urlsplit(self.url).scheme in ("mqtts", "ssl")

    @property
    def host(self) -> str:
        """The broker host."""
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        """The broker port (1883, or 8883 with TLS, by default)."""
        return urlsplit(self.url).port or (8883 if self.tls else 1883)

    @property
    def mqtt5(self) -> bool:
        """Whether MQTT 5 is used."""
        return self.protocol == "5"

    def with_credentials(self, username: str | None, password: str | None) -> MqttSettings:
        """A copy with other credentials."""
        return replace(self, username=username, password=password)


#: Bytes asked of the socket per read (paho asks for one byte, then the remaining-length
#: bytes one at a time, then the body: three system calls or more per packet).
_READ_SIZE = 65536
#: Whether paho's internals are the ones the overrides below were written against (2.x).
_PAHO_LAYOUT = all(hasattr(mqtt.Client, name) for name in (
    "_sock_recv", "_packet_queue", "_call_socket_register_write", "loop_read",
    "_packet_write"))


#: The most bytes of queued packets joined into one write.
_WRITE_SIZE = 256 * 1024
_PUBACK = int(PacketTypes.PUBACK) << 4
_PUBLISH = int(PacketTypes.PUBLISH) << 4
_DISCONNECT = int(PacketTypes.DISCONNECT) << 4
#: The byte paho writes to its socket pair to wake its network thread out of ``select``.
_WAKE = getattr(mqtt, "sockpair_data", b"0")


def _plain(packet: Mapping[str, Any]) -> bool:
    """Whether paho does nothing when this queued packet has been sent."""
    command = packet["command"] & 0xF0
    return command != _DISCONNECT and not (command == _PUBLISH and packet["qos"] == 0)


def _flush(run: list[Any], out: list[Any]) -> None:
    """Move ``run`` to ``out``: as it is when one packet, else as one joined write."""
    if len(run) == 1:
        out.append(run[0])
    elif run:
        joined = b"".join(p["packet"][p["pos"]:] if p["pos"] else p["packet"] for p in run)
        out.append({"command": _PUBACK, "mid": 0, "qos": 1, "pos": 0,
                    "to_process": len(joined), "packet": joined, "info": None})
    run.clear()


class _Client(mqtt.Client):
    """paho's client, minus a scan per acknowledgement and most of its system calls.

    - After every PUBACK paho walks its whole table of unacknowledged messages looking for
      one queued behind the in-flight window (``_update_inflight``), even when none is
      queued: with hundreds of publishes outstanding (a Verifier replica in a fleet wave)
      that walk was most of its network thread. A message is queued only if the table
      holds more QoS 1/2 messages than are in flight, so the walk is skipped when it cannot
      find anything; otherwise paho's own runs.
    - paho reads a packet with a system call per header byte and one for the body. Reads
      here fill a buffer of up to 64 KiB at once and hand paho its bytes from it, and the
      read loop goes on while the buffer holds bytes (the socket cannot wake ``select``
      for bytes already read out of it).
    - paho writes each queued packet with its own system call; queued packets whose
      sending completes nothing in paho are joined into one write (up to 256 KiB).
    - A packet queued from the network thread itself (a device answering a challenge in
      its message callback) needs no wake-up byte through paho's socket pair (a system
      call here and one in the loop): the loop checks for pending output before it waits.
      A packet queued from another thread writes the wake-up byte only when the queue was
      empty: a Verifier worker publishing a batch's challenges and results, or a gateway
      reporting many devices' events, wakes the network thread once per run, not per packet.
    """

    _rsock: Any = None
    _rbuf: bytes = b""
    _rpos: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue_lock = threading.Lock()
        if _PAHO_LAYOUT and type(getattr(self, "_on_message_filtered", None)) is MQTTMatcher:
            self._on_message_filtered = _Matcher()  # type: ignore[no-untyped-call]

    def _sock_recv(self, bufsize: int) -> bytes:
        if not _PAHO_LAYOUT:  # pragma: no cover - another paho layout
            return super()._sock_recv(bufsize)
        sock = self._sock
        if sock is not self._rsock:
            # A new connection: nothing read from the previous one may be handed out.
            self._rsock, self._rbuf, self._rpos = sock, b"", 0
        buf, pos = self._rbuf, self._rpos
        if pos >= len(buf):
            buf = super()._sock_recv(_READ_SIZE)  # BlockingIOError when nothing is there
            if not buf:
                self._rbuf, self._rpos = b"", 0
                return buf  # the peer closed the connection
            pos = 0
        end = min(pos + bufsize, len(buf))
        self._rbuf, self._rpos = buf, end
        return buf[pos:end]

    def _buffered(self) -> bool:
        return self._rsock is not None and self._rsock is self._sock and \
            self._rpos < len(self._rbuf)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        # paho stops after as many packets as it has messages in flight; what is left in the
        # buffer would otherwise wait for the next byte on the socket (or the keepalive).
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._buffered():
            rc = super().loop_read(max_packets)
        return rc

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: Any = None) -> MQTTErrorCode:
        thread = getattr(self, "_thread", None)
        if not _PAHO_LAYOUT or thread is None:
            return super()._packet_queue(command, packet, mid, qos, info)
        entry: Any = {"command": command, "mid": mid, "qos": qos, "pos": 0,
                      "to_process": len(packet), "packet": packet, "info": info}
        if thread is threading.current_thread():
            self._out_packet.append(entry)
        else:
            # Another thread (a Verifier worker, an application publishing): the network
            # thread may be asleep in select and needs a wake-up byte, but only once per run
            # of packets. Its loop sends everything queued before it sleeps again (it drains
            # the queue, and selects for writing while anything is left), so a packet
            # appended behind one still queued goes out with it. The check and the append
            # are one step between producers; the network thread only takes packets out.
            with self._queue_lock:
                self._out_packet.append(entry)
                wake = len(self._out_packet) == 1
            if wake and self._sockpairW is not None:
                with contextlib.suppress(BlockingIOError):  # full of wake-ups already
                    self._sockpairW.send(_WAKE)
        self._call_socket_register_write()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _packet_write(self) -> MQTTErrorCode:
        # paho sends each queued packet with its own system call. Runs of packets whose
        # sending completes nothing in paho (everything but a QoS 0 PUBLISH, which calls
        # on_publish, and DISCONNECT) are joined into one write each, in order; paho sends
        # the joined bytes as one packet, resuming a partial write as it does for any.
        queue = self._out_packet
        if _PAHO_LAYOUT and len(queue) > 1:
            merged: list[Any] = []
            run: list[Any] = []
            size = 0
            # Only this (network) thread takes from the queue; others append at its end,
            # after the packets taken here, which go back in front of them in order.
            for _ in range(len(queue)):
                packet = queue.popleft()
                if _plain(packet) and size < _WRITE_SIZE:
                    run.append(packet)
                    size += packet["to_process"]
                    continue
                _flush(run, merged)
                size = 0
                if _plain(packet):
                    run.append(packet)
                    size = packet["to_process"]
                else:
                    merged.append(packet)
            _flush(run, merged)
            queue.extendleft(reversed(merged))
        return super()._packet_write()

    def _update_inflight(self) -> MQTTErrorCode:
        try:
            nothing_queued = len(self._out_messages) <= self._inflight_messages
        except AttributeError:  # another paho layout: its own walk
            nothing_queued = False
        if nothing_queued:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._update_inflight()


class _Matcher(MQTTMatcher):
    """paho's topic-filter trie for ``message_callback_add``, which it searches for every
    received message: with no filter added (devattest uses one ``on_message``), the search
    of the empty trie is skipped."""

    def iter_match(self, topic: str) -> Iterator[Any]:
        if not self._root._children:
            return iter(())
        return super().iter_match(topic)  # type: ignore[no-untyped-call, no-any-return]


_CONDITION_LOCK = threading.Lock()


class _MessageInfo(mqtt.MQTTMessageInfo):
    """paho's :class:`MQTTMessageInfo` with its condition variable made on first use: paho
    makes one for every message sent and every message received, and only a caller that
    waits for the publish (or asks whether it happened) needs it. Installed into
    ``paho.mqtt.client`` by :func:`_install_lazy_message_info`."""

    __slots__ = ("_lazy_condition",)

    def __init__(self, mid: int) -> None:
        self.mid = mid
        self._published = False
        self._lazy_condition: threading.Condition | None = None
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        self._iterpos = 0

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        cond = self._lazy_condition
        if cond is None:
            with _CONDITION_LOCK:  # the network thread and a waiting caller: one condition
                cond = self._lazy_condition
                if cond is None:
                    cond = self._lazy_condition = threading.Condition()
        return cond


def _install_lazy_message_info() -> None:
    """Make paho build :class:`_MessageInfo` (profiled: a simulated device's link spent a
    tenth of its time making condition variables), only when paho's class has the layout
    this was written against."""
    base = mqtt.MQTTMessageInfo
    if set(getattr(base, "__slots__", ())) == {"_condition", "_iterpos", "_published", "mid",
                                               "rc"}:
        mqtt.MQTTMessageInfo = _MessageInfo  # type: ignore[misc]


_install_lazy_message_info()


def make_client(settings: MqttSettings, *, client_id: str, persistent: bool = True
                ) -> mqtt.Client:
    """A configured paho client (not yet connected): protocol, credentials, TLS,
    reconnect backoff and manual acknowledgements.

    Raises:
        ConfigurationError: a TLS file cannot be loaded.
    """
    proto = MQTTProtocolVersion.MQTTv5 if settings.mqtt5 else MQTTProtocolVersion.MQTTv311
    kw: dict[str, Any] = {}
    if not settings.mqtt5:
        kw["clean_session"] = not persistent
    client = _Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=proto,
                     manual_ack=True, **kw)
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        try:
            client.tls_set(ca_certs=settings.ca_file, certfile=settings.cert_file,
                           keyfile=settings.key_file, cert_reqs=ssl.CERT_REQUIRED,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigurationError(f"MQTT TLS configuration: {exc}") from exc
        if settings.tls_insecure:
            client.tls_insecure_set(True)
    client.reconnect_delay_set(settings.reconnect_min_delay, settings.reconnect_max_delay)
    # A window as large as MQTT allows (packet identifiers are 16 bits): a Verifier replica
    # publishes a burst of challenges and results per batch, and with a smaller window paho
    # queues the rest and walks that queue after every PUBACK (in a 100,000-device wave
    # this thread went from 0.15 to 0.08 ms per device with the larger window).
    client.max_inflight_messages_set(65535)
    client.max_queued_messages_set(0)
    return client


def connect_async(client: mqtt.Client, settings: MqttSettings, *, persistent: bool = True
                  ) -> None:
    """Start connecting in the background (``loop_start`` keeps reconnecting with backoff).

    Raises:
        TransportError: the connection cannot even be attempted.
    """
    kw: dict[str, Any] = {}
    if settings.mqtt5:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = settings.session_expiry if persistent else 0
        kw["properties"] = props
        kw["clean_start"] = not persistent
    try:
        client.connect_async(settings.host, settings.port, keepalive=settings.keepalive, **kw)
    except (OSError, ValueError) as exc:
        raise TransportError(f"cannot connect to {settings.url}: {exc}") from exc
    client.loop_start()


class _PackedProperties(Properties):
    """PUBLISH properties packed once: paho packs a message's properties on every publish
    (and building a :class:`Properties` costs more than the rest of a small publish)."""

    def __init__(self, packet_type: int) -> None:
        super().__init__(packet_type)  # type: ignore[no-untyped-call]
        object.__setattr__(self, "_packed", None)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, "_packed", None)  # packed again after a change
        super().__setattr__(name, value)  # type: ignore[no-untyped-call]

    def pack(self) -> bytes:
        packed: bytes | None = self.__dict__.get("_packed")
        if packed is None:
            packed = super().pack()  # type: ignore[no-untyped-call]
            object.__setattr__(self, "_packed", packed)
        return packed


_TABLES = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
_PRIVATE = frozenset(("packetType", "types", "names", "properties"))


class _SharedTableProperties(Properties):
    """paho's :class:`Properties` for received packets, sharing the property tables that
    paho rebuilds (about thirty lists and two dicts) for every received PUBLISH, PUBACK and
    SUBACK; the tables are never modified, so the behaviour is paho's own. Installed into
    ``paho.mqtt._packet`` by :func:`_install_shared_table_properties`."""

    def __init__(self, packet_type: int) -> None:
        d = self.__dict__
        d["packetType"] = packet_type
        d["types"] = _TABLES.types
        d["names"] = _TABLES.names
        d["properties"] = _TABLES.properties

    def clear(self) -> None:
        for name in [n for n in self.__dict__ if n not in _PRIVATE]:
            delattr(self, name)

    def getNameFromIdent(self, identifier: int) -> str | None:  # noqa: N802 - paho's name
        # paho walks every property name for each property it decodes.
        return _NAME_OF_IDENT.get(identifier)

    def unpack(self, buffer: bytes | bytearray) -> tuple[Properties, int]:
        # Every devattest message carries the same two properties (content type, payload
        # format), and paho decoded them anew each time, copying the rest of the packet
        # (the payload) at every step: the largest cost of receiving a message. A property
        # block already decoded once is applied from a small cache, values and all; blocks
        # holding anything mutable (user properties) are always decoded.
        first = buffer[0] if buffer else 0
        # A one-byte length: every block worth caching.
        raw = bytes(buffer[:first + 1]) if first < 0x80 else None
        if raw is not None:
            hit = _DECODED.get(raw)
            if hit is not None:
                self.clear()
                self.__dict__.update(hit)
                return self, len(raw)
        out: tuple[Properties, int] = super().unpack(buffer)  # type: ignore[no-untyped-call]
        if raw is not None and len(_DECODED) < _DECODED_MAX:
            values = {k: v for k, v in self.__dict__.items() if k not in _PRIVATE}
            if all(type(v) in (str, int, bytes) for v in values.values()):
                _DECODED[raw] = values
        return out


#: Property blocks decoded before -> their attribute values (immutable ones only).
_DECODED: dict[bytes, dict[str, Any]] = {}
#: Distinct blocks cached at most (a peer sending ever-new blocks cannot grow it further).
_DECODED_MAX = 256


#: Property identifier -> name (paho's ``names`` maps name -> identifier, one to one).
_NAME_OF_IDENT: dict[int, str] = {ident: name for name, ident in _TABLES.names.items()} \
    if len(set(_TABLES.names.values())) == len(_TABLES.names) else {}


class _SharedNamesReasonCode(ReasonCode):
    """paho's :class:`ReasonCode` without a copy of the table of every reason code's names
    per instance (paho makes one for every PUBACK sent and received) and without a walk of
    that table for the common success code. Values and errors are paho's own. Installed by
    :func:`_install_shared_table_properties`."""

    def __init__(self, packetType: int, aName: str = "Success",  # noqa: N803 - paho's names
                 identifier: int = -1) -> None:
        self.names = _REASON_NAMES
        self.packetType = packetType
        if identifier != -1:
            self.value = identifier
            self.getName()  # paho's check that the code exists for the packet type
            return
        name = aName
        if packetType == PacketTypes.DISCONNECT and name == "Success":
            name = "Normal disconnection"
        if name == "Success" and packetType in _SUCCESS_TYPES:
            self.value = 0
        else:
            self.set(name)


_REASON_NAMES = ReasonCode.names
#: The packet types whose "Success" is code 0 (paho's getId, precomputed).
_SUCCESS_TYPES = frozenset(_REASON_NAMES.get(0, {}).get("Success", ()))


def _install_shared_table_properties() -> None:
    """Make paho's packet decoder build :class:`_SharedTableProperties` (profiled: building
    the tables was a third of a Verifier replica's network-thread time in a fleet wave).
    Only when paho's decoder module is the one this was written against."""
    try:
        from paho.mqtt import _packet
    except ImportError:  # another paho layout: keep its own class
        return
    if getattr(_packet, "Properties", None) is Properties and \
            {"types", "names", "properties"} <= set(vars(_TABLES)) and _NAME_OF_IDENT:
        setattr(_packet, "Properties", _SharedTableProperties)  # noqa: B010
    if getattr(_packet, "ReasonCode", None) is ReasonCode and \
            getattr(mqtt, "ReasonCode", None) is ReasonCode and _SUCCESS_TYPES:
        setattr(_packet, "ReasonCode", _SharedNamesReasonCode)  # noqa: B010
        setattr(mqtt, "ReasonCode", _SharedNamesReasonCode)  # noqa: B010


_install_shared_table_properties()


def _json_publish_properties() -> Properties:
    props = _PackedProperties(PacketTypes.PUBLISH)
    props.ContentType = "application/json"
    props.PayloadFormatIndicator = 1
    props.pack()
    return props


#: Shared by every publish (paho only reads them).
_JSON_PROPERTIES = _json_publish_properties()


def json_properties(settings: MqttSettings) -> Properties | None:
    """MQTT 5 PUBLISH properties saying the payload is JSON (None on MQTT 3.1.1); one
    shared, pre-packed object (callers must not modify it)."""
    if not settings.mqtt5:
        return None
    return _JSON_PROPERTIES


# -- topics ----------------------------------------------------------------------------------
def check_device_id(device_id: str) -> str:
    """A device id usable in a topic level (no ``/``, ``+``, ``#``; 1-128 characters).

    Raises:
        ValueError: it is not.
    """
    if not _DEVICE_ID.fullmatch(device_id):
        raise ValueError(f"device id {device_id!r} cannot be used in an MQTT topic")
    return device_id


def topic(device_id: str, kind: str) -> str:
    """``devattest/v1/{device_id}/{kind}``.

    Raises:
        ValueError: unknown kind or unusable device id.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown topic kind {kind!r}")
    return f"{PREFIX}/{check_device_id(device_id)}/{kind}"


def subscription(kind: str, *, share_group: str | None = None, device_id: str = "+") -> str:
    """The filter for ``kind`` (all devices by default), shared when a group is given."""
    base = f"{PREFIX}/{device_id}/{kind}"
    return f"$share/{share_group}/{base}" if share_group else base


def parse_topic(name: str) -> tuple[str, str] | None:
    """``(device_id, kind)`` of a devattest topic, or None."""
    parts = name.split("/")
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != PREFIX or parts[3] not in KINDS:
        return None
    if not _DEVICE_ID.fullmatch(parts[2]):
        return None
    return parts[2], parts[3]


# -- codecs ----------------------------------------------------------------------------------
def dumps(obj: Mapping[str, Any]) -> bytes:
    """Compact JSON, keys sorted."""
    return compact_json(obj, sort_keys=True)


def loads(payload: bytes) -> dict[str, Any]:
    """A JSON object from an untrusted payload.

    Parsed by orjson, which bounds nesting (1,024 levels: deeper input is an error, never a
    ``RecursionError``), accepts only UTF-8 without lone surrogates, refuses ``NaN`` and
    ``Infinity`` and reads integers beyond 64 bits as floats (no unbounded integer reaches
    the service). Every failure is a :class:`MalformedMessage` with its ``reason``.

    Raises:
        MalformedMessage: too large, not UTF-8 JSON, nested too deeply, or not an object.
    """
    if len(payload) > MAX_PAYLOAD:
        raise MalformedMessage(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}",
                               reason="too_large")
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        text = str(exc)
        reason = "too_deep" if "depth" in text else \
            "not_utf8" if "UTF-8" in text or "surrogate" in text else "not_json"
        raise MalformedMessage(f"payload is not JSON ({text[:120]})", reason=reason) from None
    except TypeError:  # not bytes-like (a programming error upstream, refused all the same)
        raise MalformedMessage("payload is not bytes", reason="not_json") from None
    if type(obj) is not dict:
        raise MalformedMessage("payload is not a JSON object", reason="not_object")
    return obj


def _short_text(value: Any, *, what: str, limit: int) -> str:
    """A non-empty string of at most ``limit`` characters without control characters.

    Raises:
        MalformedMessage: it is not.
    """
    if type(value) is not str or not 0 < len(value) <= limit:
        raise MalformedMessage(f"{what} must be a string of 1-{limit} characters",
                               reason="bad_field")
    if has_control_characters(value):
        raise MalformedMessage(f"{what} holds a control character", reason="control_character")
    return value


def b64e(data: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(data).decode()


def b64d(text: Any, *, what: str) -> bytes:
    """Bytes from (standard or URL-safe) base64 text.

    Raises:
        MalformedMessage: not base64 text (a :class:`TransportError`).
    """
    if not isinstance(text, str):
        raise MalformedMessage(f"{what} must be base64 text", reason="bad_field")
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/")
                                + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise MalformedMessage(f"{what} is not base64", reason="bad_field") from None


def challenge_message(challenge_id: str, nonce: bytes, expires_at: datetime,
                      event_id: str | None = None) -> bytes:
    """The payload of ``.../challenge``."""
    msg: dict[str, Any] = {"challenge_id": challenge_id, "nonce": b64e(nonce),
                           "expires_at": expires_at.isoformat()}
    if event_id:
        msg["event_id"] = event_id
    return dumps(msg)


def evidence_message(challenge_id: str, evidence: bytes, media_type: str) -> bytes:
    """The payload of ``.../evidence``."""
    return dumps({"challenge_id": challenge_id, "media_type": media_type,
                  "evidence": b64e(evidence)})


def parse_evidence_message(payload: bytes) -> tuple[str, bytes, str]:
    """``(challenge_id, evidence, media_type)`` from an untrusted ``.../evidence`` payload.

    Raises:
        MalformedMessage: malformed (a :class:`TransportError`).
    """
    msg = loads(payload)
    cid = _short_text(msg.get("challenge_id"), what="challenge_id", limit=64)
    mt = _short_text(msg.get("media_type"), what="media_type", limit=200)
    return cid, b64d(msg.get("evidence"), what="evidence"), mt


def parse_event_message(payload: bytes) -> dict[str, Any]:
    """The message of an untrusted ``.../events`` payload, its fields' types checked:
    ``event_id`` (optional) and ``kind`` short strings, ``details`` an object, and no
    control character in any of them, nor in a detail's key or string value. The rules of
    the event itself (known kind, how many details, how long) are the lifecycle's.

    Raises:
        MalformedMessage: malformed (a :class:`TransportError`).
    """
    msg = loads(payload)
    event_id = msg.get("event_id")
    if event_id is not None:
        _short_text(event_id, what="event_id", limit=100)
    _short_text(msg.get("kind"), what="kind", limit=64)
    details = msg.get("details")
    if details is not None:
        if type(details) is not dict:
            raise MalformedMessage("details must be an object", reason="bad_field")
        for key, value in details.items():
            if has_control_characters(key) or \
                    (type(value) is str and has_control_characters(value)):
                raise MalformedMessage("a detail holds a control character",
                                       reason="control_character")
    return msg


def event_message(kind: str, *, event_id: str, details: Mapping[str, Any] | None = None
                  ) -> bytes:
    """The payload of ``.../events``."""
    return dumps({"event_id": event_id, "kind": kind, "details": dict(details or {})})
