"""Webhook subscriptions, their delivery queue, and the dead letters."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from devattest.store.models import Webhook, WebhookDeadLetter, WebhookDelivery


class WebhookRepository:
    """Subscriptions and a leased delivery queue that several replicas can share."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def create(self, *, url: str, secret: str, now: datetime) -> Webhook:
        """Add a subscription."""
        hook = Webhook(id=secrets.token_hex(8), url=url, secret=secret, active=True,
                       created_at=now)
        self._s.add(hook)
        self._s.flush()
        return hook

    def get(self, hook_id: str) -> Webhook | None:
        """A subscription by id."""
        return self._s.get(Webhook, hook_id)

    def list_hooks(self) -> Sequence[Webhook]:
        """Every subscription."""
        return self._s.scalars(select(Webhook).order_by(Webhook.created_at)).all()

    def delete(self, hook_id: str) -> bool:
        """Remove a subscription and its pending deliveries."""
        hook = self._s.get(Webhook, hook_id)
        if hook is None:
            return False
        self._s.delete(hook)
        return True

    def enqueue(self, *, event: str, payload: str, now: datetime) -> int:
        """Queue ``payload`` for every active subscription; returns how many deliveries."""
        hooks = self._s.scalars(select(Webhook.id).where(Webhook.active.is_(True))).all()
        for hook_id in hooks:
            self._s.add(WebhookDelivery(webhook_id=hook_id, event=event, payload=payload,
                                        state="pending", attempts=0, next_attempt_at=now,
                                        lease_until=None, last_error=None, created_at=now,
                                        delivered_at=None))
        return len(hooks)

    def claim_due(self, *, now: datetime, lease: timedelta, limit: int = 20
                  ) -> list[tuple[WebhookDelivery, Webhook]]:
        """Lease due deliveries to this worker (other replicas skip leased rows).

        On PostgreSQL the candidate rows are selected ``FOR UPDATE SKIP LOCKED``; on SQLite
        the write transaction is exclusive. A worker that dies loses its lease when it
        expires, and the delivery is retried.
        """
        q = (select(WebhookDelivery.id)
             .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now,
                    or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now))
             .order_by(WebhookDelivery.id).limit(limit))
        if self._s.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        ids = list(self._s.scalars(q))
        if not ids:
            return []
        self._s.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(ids))
                        .values(lease_until=now + lease)
                        .execution_options(synchronize_session=False))
        rows = self._s.execute(select(WebhookDelivery, Webhook)
                               .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                               .where(WebhookDelivery.id.in_(ids))
                               .order_by(WebhookDelivery.id)).all()
        return [(d, h) for d, h in rows]

    def mark_delivered(self, delivery_id: int, *, now: datetime) -> None:
        """Record a successful delivery."""
        d = self._s.get(WebhookDelivery, delivery_id)
        if d is not None:
            d.state, d.delivered_at, d.lease_until = "delivered", now, None
            d.attempts += 1

    def mark_failed(self, delivery_id: int, *, error: str, now: datetime,
                    max_attempts: int, backoff: timedelta) -> bool:
        """Record a failed attempt; schedule a retry with exponential backoff, or move the
        delivery to the dead letters once ``max_attempts`` is reached.

        Returns:
            True if the delivery is now dead.
        """
        d = self._s.get(WebhookDelivery, delivery_id)
        if d is None:
            return False
        d.attempts += 1
        d.last_error = error[:2000]
        d.lease_until = None
        if d.attempts >= max_attempts:
            d.state = "dead"
            hook = self._s.get(Webhook, d.webhook_id)
            self._s.add(WebhookDeadLetter(delivery_id=d.id, webhook_id=d.webhook_id,
                                          url=hook.url if hook else "", event=d.event,
                                          payload=d.payload, attempts=d.attempts,
                                          last_error=d.last_error, created_at=now))
            return True
        d.next_attempt_at = now + backoff * (2 ** (d.attempts - 1))
        return False

    def deliveries(self, *, webhook_id: str | None = None, limit: int = 100
                   ) -> Sequence[WebhookDelivery]:
        """Recent deliveries, newest first."""
        q = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
        if webhook_id is not None:
            q = q.where(WebhookDelivery.webhook_id == webhook_id)
        return self._s.scalars(q).all()

    def dead_letters(self, *, limit: int = 100) -> Sequence[WebhookDeadLetter]:
        """Dead letters, newest first."""
        return self._s.scalars(select(WebhookDeadLetter)
                               .order_by(WebhookDeadLetter.id.desc()).limit(limit)).all()
