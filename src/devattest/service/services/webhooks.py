"""Relying-party notifications: webhooks on device status changes.

Each delivery is a POST of the event JSON with

* ``X-Devattest-Event``: the event name;
* ``X-Devattest-Delivery``: the delivery id (receivers de-duplicate on it: delivery is
  at-least-once);
* ``X-Devattest-Timestamp``: POSIX seconds;
* ``X-Devattest-Signature``: ``sha256=`` + hex HMAC-SHA256 over ``<timestamp>.<body>`` with
  the subscription's secret (receivers check it in constant time and reject old timestamps).

A background worker leases due deliveries (replicas share the queue), retries failures with
exponential backoff, and after ``max_attempts`` moves them to the dead letters.

Destinations (server-side request forgery): a relying party names the URL, and the
Verifier, inside the operator's network, sends the request. So a webhook may only target
globally routable addresses, unless the operator lists a network in
``webhook_allowed_networks``: loopback, private, link-local (cloud metadata at
169.254.169.254), shared, reserved and multicast addresses are refused when the webhook is
created and again at every delivery, after resolving the name. An IPv6 address that carries an
IPv4 address (IPv4-mapped or -compatible, NAT64 ``64:ff9b::/96``, 6to4, Teredo) is refused
when the IPv4 address is, and the NAT64 local-use prefix ``64:ff9b:1::/48`` always is (unless
allowed). The request then goes to
the address that was checked (the name is kept for ``Host`` and TLS), so a DNS answer that
changes between the check and the connection (rebinding) cannot redirect it. Redirects are
never followed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

from devattest.errors import StoreError
from devattest.service.metrics import Metrics
from devattest.service.problems import BadRequest, NotFound
from devattest.service.services._background import BackgroundThread
from devattest.store import Store, WebhookRepository
from devattest.store.models import Webhook, WebhookDeadLetter, WebhookDelivery

_log = logging.getLogger("devattest.service.webhooks")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Devattest-Signature`` value."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


#: How far a receiver accepts ``X-Devattest-Timestamp`` from its own clock, in seconds.
DEFAULT_TOLERANCE = 300

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def verify_signature(secret: str, timestamp: int, body: bytes, header: str, *,
                     now: float | None = None, tolerance: int = DEFAULT_TOLERANCE) -> bool:
    """For receivers (and tests): the signature header is right (constant-time) and the
    timestamp within ``tolerance`` seconds of ``now`` (default: this machine's clock), so a
    captured delivery cannot be replayed to the receiver later."""
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


class DestinationRefused(Exception):
    """A webhook URL that names, or resolves to, an address webhooks may not target."""


def parse_networks(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    """CIDR strings as networks.

    Raises:
        ValueError: a value is not an IP network.
    """
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


#: NAT64 well-known prefix (RFC 6052 section 2.1): the IPv4 address is the last 32 bits.
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
#: NAT64 local-use prefix (RFC 8215): a network's own translator, never a global target.
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
#: IPv4-compatible IPv6 addresses (RFC 4291 section 2.5.5.1, deprecated): ``::a.b.c.d``.
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, which a translator or tunnel may deliver
    to: IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), NAT64
    (``64:ff9b::a.b.c.d``, RFC 6052), 6to4 (``2002:AABB:CCDD::``, RFC 3056) and Teredo
    (``2001::/32``, RFC 4380: the server and the client address)."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _NAT64_WELL_KNOWN or ip in _IPV4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def _allowed_address(ip: IPAddress, allowed: Sequence[IPNetwork]) -> bool:
    if any(ip in net for net in allowed):
        return True
    return ip.is_global and not ip.is_multicast


def _permitted(ip: IPAddress, allowed: Sequence[IPNetwork]) -> bool:
    """Whether a webhook may target ``ip``: the address and every IPv4 address embedded in
    it (an IPv6 form of 127.0.0.1 or 169.254.169.254 reaches the same host through a
    translator or tunnel) must be globally routable or in an allowed network."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _allowed_address(ip, allowed)
    if ip.ipv4_mapped is not None:  # an IPv4 address written as IPv6: checked as IPv4
        return _allowed_address(ip.ipv4_mapped, allowed)
    if ip in _NAT64_LOCAL_USE and not any(ip in net for net in allowed):
        return False
    return _allowed_address(ip, allowed) and \
        all(_allowed_address(v4, allowed) for v4 in embedded_ipv4(ip))


def resolve_destination(url: str, allowed: Sequence[IPNetwork]) -> tuple[SplitResult, str]:
    """Check a webhook URL and pick the address to connect to.

    Returns:
        The parsed URL and one permitted address of its host (every address the name
        resolves to must be permitted, or an attacker's name could alternate between them).

    Raises:
        DestinationRefused: not http(s), no host, unresolvable, or an address webhooks may
            not target (see the module docstring).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused("a webhook URL is http(s)://host/...")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DestinationRefused("the webhook URL has a bad port") from None
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise DestinationRefused(f"the webhook host {host!r} does not resolve") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
                     for info in infos]
    if not addresses:
        raise DestinationRefused(f"the webhook host {host!r} does not resolve")
    for ip in addresses:
        if not _permitted(ip, allowed):
            raise DestinationRefused(
                f"webhooks may not target {ip} (not globally routable; an operator may "
                "allow a network with webhook_allowed_networks)")
    return parts, str(addresses[0])


def _pinned(parts: SplitResult, address: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """The URL with the checked address in place of the name, the ``Host`` header, and the
    TLS server name (httpx ``sni_hostname``) to keep certificate checks on the name."""
    host = parts.hostname or ""
    literal = f"[{address}]" if ":" in address else address
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return url, {"Host": host_header}, extensions


class WebhookService:
    """Subscriptions."""

    def __init__(self, store: Store, *, allowed_networks: Sequence[IPNetwork] = ()) -> None:
        self._store = store
        self._allowed = tuple(allowed_networks)

    def create(self, *, url: str, secret: str | None, now: datetime) -> Webhook:
        """Raises: BadRequest (not an http(s) URL, a destination webhooks may not target,
        or a short secret)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadRequest("a webhook URL is http(s)://host/...", code="bad_url")
        try:
            resolve_destination(url, self._allowed)
        except DestinationRefused as exc:
            raise BadRequest(str(exc), code="webhook_destination_refused") from None
        if secret is not None and len(secret) < 16:
            raise BadRequest("a webhook secret has at least 16 characters", code="bad_secret")
        with self._store.write() as s:
            return WebhookRepository(s).create(url=url, secret=secret or secrets.token_hex(32),
                                               now=now)

    def list(self) -> Sequence[Webhook]:
        """Every subscription."""
        with self._store.read() as s:
            return WebhookRepository(s).list_hooks()

    def delete(self, hook_id: str) -> None:
        """Raises: NotFound."""
        with self._store.write() as s:
            if not WebhookRepository(s).delete(hook_id):
                raise NotFound(f"no webhook {hook_id!r}")

    def deliveries(self, hook_id: str) -> Sequence[WebhookDelivery]:
        """Recent deliveries of one subscription."""
        with self._store.read() as s:
            return WebhookRepository(s).deliveries(webhook_id=hook_id)

    def dead_letters(self) -> Sequence[WebhookDeadLetter]:
        """Deliveries that exhausted their retries."""
        with self._store.read() as s:
            return WebhookRepository(s).dead_letters()


class WebhookWorker(BackgroundThread):
    """A background thread delivering due webhooks."""

    def __init__(self, store: Store, metrics: Metrics, *, max_attempts: int, backoff: float,
                 timeout: float, poll: float,
                 allowed_networks: Sequence[IPNetwork] = ()) -> None:
        super().__init__("devattest-webhooks")
        self._store = store
        self._allowed = tuple(allowed_networks)
        self._metrics = metrics
        self._max = max_attempts
        self._backoff = timedelta(seconds=backoff)
        self._timeout = timeout
        self._poll = poll

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
            while not self._stop.is_set():
                try:
                    n = self.run_once(client)
                except StoreError:
                    _log.exception("webhook worker: store error")
                    n = 0
                if n == 0:
                    self._stop.wait(self._poll)

    def run_once(self, client: httpx.Client, *, now: datetime | None = None) -> int:
        """Deliver what is due now; returns how many deliveries were attempted."""
        now = now or datetime.now(UTC)
        lease = timedelta(seconds=self._timeout * 2 + 5)
        with self._store.write() as s:
            batch = [(d.id, d.event, d.payload, h.url, h.secret)
                     for d, h in WebhookRepository(s).claim_due(now=now, lease=lease)]
        for delivery_id, event, payload, url, secret in batch:
            body = payload.encode()
            ts = int(now.timestamp())
            error: str | None = None
            try:
                # Checked again at every delivery (the name may resolve elsewhere now), and
                # the request goes to the address that was checked.
                target, host_headers, extensions = _pinned(
                    *resolve_destination(url, self._allowed))
                resp = client.post(target, content=body, extensions=extensions, headers={
                    **host_headers,
                    "Content-Type": "application/json", "X-Devattest-Event": event,
                    "X-Devattest-Delivery": str(delivery_id), "X-Devattest-Timestamp": str(ts),
                    "X-Devattest-Signature": signature(secret, ts, body)})
                if not 200 <= resp.status_code < 300:
                    error = f"HTTP {resp.status_code}"
            except DestinationRefused as exc:
                error = f"destination refused: {exc}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            done = datetime.now(UTC)
            with self._store.write() as s:
                repo = WebhookRepository(s)
                if error is None:
                    repo.mark_delivered(delivery_id, now=done)
                    self._metrics.webhooks.labels("delivered").inc()
                else:
                    dead = repo.mark_failed(delivery_id, error=error, now=done,
                                            max_attempts=self._max, backoff=self._backoff)
                    self._metrics.webhooks.labels("dead" if dead else "failed").inc()
                    _log.warning("webhook delivery failed", extra={
                        "delivery_id": delivery_id, "url": url, "error": error,
                        "dead_letter": dead})
        return len(batch)
