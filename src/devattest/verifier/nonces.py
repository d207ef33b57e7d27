"""An in-memory, single-use nonce book for in-process Verifiers (the CLI, the demo, SDKs).

The service keeps nonces in its store instead (atomic consumption across replicas). Time is
passed in; randomness comes from :mod:`secrets`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from devattest.errors import NonceExpired, NonceMismatch, NonceReplayed

ALLOWED_NONCE_SIZES = (32, 48, 64)


@dataclass(slots=True)
class _Entry:
    expires_at: int
    consumed: bool = False


class NonceBook:
    """Issues nonces and consumes each exactly once, before it expires."""

    def __init__(self, *, ttl: int = 120, max_entries: int = 100_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[bytes, _Entry] = {}

    def issue(self, *, now: int, size: int = 32) -> bytes:
        """A fresh random nonce of ``size`` bytes (32, 48 or 64), valid for ``ttl`` seconds."""
        if size not in ALLOWED_NONCE_SIZES:
            raise ValueError(f"nonce size must be one of {ALLOWED_NONCE_SIZES}")
        if len(self._entries) >= self._max:
            self.prune(now=now)
        nonce = secrets.token_bytes(size)
        self._entries[nonce] = _Entry(expires_at=now + self._ttl)
        return nonce

    def consume(self, nonce: bytes, *, now: int) -> bytes:
        """Mark ``nonce`` used and return it as the expected nonce for appraisal.

        Raises:
            NonceMismatch: this book never issued the nonce.
            NonceReplayed: the nonce was already consumed.
            NonceExpired: the nonce expired.
        """
        entry = self._entries.get(nonce)
        if entry is None:
            raise NonceMismatch("the nonce was not issued by this Verifier", step="4")
        if entry.consumed:
            raise NonceReplayed("the nonce was already used: replayed Evidence", step="4")
        entry.consumed = True
        if now > entry.expires_at:
            raise NonceExpired("the nonce expired before the Evidence arrived", step="4")
        return nonce

    def prune(self, *, now: int) -> None:
        """Forget expired nonces (a consumed, expired nonce can no longer be replayed anyway
        because an unknown nonce is refused)."""
        self._entries = {n: e for n, e in self._entries.items() if e.expires_at >= now}
