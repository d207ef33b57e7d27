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
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx

from devattest.errors import StoreError
from devattest.service.metrics import Metrics
from devattest.service.problems import BadRequest, NotFound
from devattest.store import Store, WebhookRepository
from devattest.store.models import Webhook, WebhookDeadLetter, WebhookDelivery

_log = logging.getLogger("devattest.service.webhooks")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Devattest-Signature`` value."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: int, body: bytes, header: str) -> bool:
    """For receivers (and tests): constant-time check of the signature header."""
    return hmac.compare_digest(signature(secret, timestamp, body), header)


class WebhookService:
    """Subscriptions."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(self, *, url: str, secret: str | None, now: datetime) -> Webhook:
        """Raises: BadRequest (not an http(s) URL, or a short secret)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadRequest("a webhook URL is http(s)://host/...", code="bad_url")
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


class WebhookWorker:
    """A background thread delivering due webhooks."""

    def __init__(self, store: Store, metrics: Metrics, *, max_attempts: int, backoff: float,
                 timeout: float, poll: float) -> None:
        self._store = store
        self._metrics = metrics
        self._max = max_attempts
        self._backoff = timedelta(seconds=backoff)
        self._timeout = timeout
        self._poll = poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._run, name="devattest-webhooks",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

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
                resp = client.post(url, content=body, headers={
                    "Content-Type": "application/json", "X-Devattest-Event": event,
                    "X-Devattest-Delivery": str(delivery_id), "X-Devattest-Timestamp": str(ts),
                    "X-Devattest-Signature": signature(secret, ts, body)})
                if not 200 <= resp.status_code < 300:
                    error = f"HTTP {resp.status_code}"
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
