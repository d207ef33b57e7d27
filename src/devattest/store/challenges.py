"""Challenges: nonces bound to a device, consumed atomically exactly once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from devattest.store.models import Challenge

ALLOWED_NONCE_SIZES = (32, 48, 64)


class ConsumeOutcome(StrEnum):
    """Why a consumption attempt succeeded or failed."""

    CONSUMED = "consumed"
    REPLAYED = "nonce_replayed"
    EXPIRED = "nonce_expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Consumption:
    """The result of :meth:`ChallengeRepository.consume`."""

    outcome: ConsumeOutcome
    #: The nonce, when consumed (the expected nonce for appraisal).
    nonce: bytes | None = None


class ChallengeRepository:
    """Issue and consume challenges."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def issue(self, *, device_id: str, now: datetime, ttl: timedelta, size: int = 32
              ) -> Challenge:
        """A fresh challenge with a ``size``-byte nonce from :func:`secrets.token_bytes`.

        Raises:
            ValueError: the size is not 32, 48 or 64.
        """
        if size not in ALLOWED_NONCE_SIZES:
            raise ValueError(f"nonce size must be one of {ALLOWED_NONCE_SIZES}")
        challenge = Challenge(id=secrets.token_hex(16), device_id=device_id,
                              nonce=secrets.token_bytes(size), created_at=now,
                              expires_at=now + ttl, consumed_at=None)
        self._s.add(challenge)
        self._s.flush()
        return challenge

    def get(self, challenge_id: str) -> Challenge | None:
        """A challenge by id."""
        return self._s.get(Challenge, challenge_id)

    def consume(self, challenge_id: str, *, now: datetime) -> Consumption:
        """Consume the challenge's nonce exactly once, atomically.

        One statement does it: ``UPDATE challenges SET consumed_at = :now WHERE id = :id AND
        consumed_at IS NULL AND expires_at > :now RETURNING nonce``. On PostgreSQL a
        concurrent second UPDATE waits for the first's row lock, then re-checks the WHERE
        clause against the committed row and matches nothing; on SQLite the write
        transaction is exclusive. Either way exactly one caller gets the nonce.
        """
        nonce = self._s.execute(
            update(Challenge)
            .where(Challenge.id == challenge_id, Challenge.consumed_at.is_(None),
                   Challenge.expires_at > now)
            .values(consumed_at=now)
            .returning(Challenge.nonce)
            .execution_options(synchronize_session=False)).scalar_one_or_none()
        if nonce is not None:
            return Consumption(ConsumeOutcome.CONSUMED, nonce)
        row = self._s.execute(select(Challenge.consumed_at, Challenge.expires_at)
                              .where(Challenge.id == challenge_id)).first()
        if row is None:
            return Consumption(ConsumeOutcome.UNKNOWN)
        if row.consumed_at is not None:
            return Consumption(ConsumeOutcome.REPLAYED)
        return Consumption(ConsumeOutcome.EXPIRED)

    def prune(self, *, expired_before: datetime) -> int:
        """Delete challenges that expired before the given time; returns how many.

        A deleted challenge cannot be replayed either: its id is simply unknown.
        """
        result = self._s.execute(delete(Challenge).where(Challenge.expires_at < expired_before)
                                 .execution_options(synchronize_session=False))
        return int(getattr(result, "rowcount", 0) or 0)
