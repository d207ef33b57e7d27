"""The challenge-and-evidence hot path on PostgreSQL, on the event loop (psycopg async).

:mod:`devattest.store.hotpath` serves every database through SQLAlchemy in a worker thread:
each attestation then costs a thread hand-off per request and five round trips
(``INSERT`` challenge; ``SELECT ... FOR UPDATE``, consume, record, ``COMMIT``). On
PostgreSQL the service's fast lane uses this module instead for the ordinary case, and the
thread-pool path for everything else. An attestation here is **two statements, each one
round trip in autocommit, each its own transaction**:

1. *Issue* (:meth:`AsyncPgHotPath.issue`): ``INSERT`` the challenge for an active device and
   return, in the same statement, what its appraisal needs (the device's bound Instance ID,
   model and status, and the provisioning generation).
2. *Record* (:meth:`AsyncPgHotPath.record_appraised`), after the caller appraised the
   Evidence with the pure core and signed the EAR: one statement that, in one transaction,
   locks the device row (``FOR UPDATE``: Evidence for one device is still serialised across
   replicas), checks every assumption the appraisal was made under (the device is active,
   still bound to the same Instance ID and model, still has the status being recorded, so
   no webhook is due; the provisioning generation is the one whose material was used),
   consumes the nonce (``consumed_at IS NULL AND expires_at > now``), appends the history
   row and points the device at it. If any assumption fails, it changes nothing and returns
   no row: the caller then runs the general path (:mod:`devattest.store.hotpath` in a
   thread), which locks, re-reads, appraises again and records whatever is true now (a
   replay, an expiry, a status change with its webhooks, new material).

Appraising before the lock is sound because everything the appraisal reads is immutable or
re-checked under the lock: the nonce never changes once issued, the Evidence is the
request's, and the material's generation, the device's binding and model are compared in
the recording statement. The nonce consumption and the history row still commit together:
a crash keeps both or neither.

:meth:`AsyncPgHotPath.target` reads a challenge issued by another worker or replica (the
issuing process keeps what *issue* returned, so the usual round trip needs no read).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from sqlalchemy.engine import make_url

from devattest.errors import StoreError
from devattest.store import _engine
from devattest.store.hotpath import Issue, IssueOutcome

# The statements are constant text (no formatting): the inactive states are those of
# hotpath.INACTIVE_STATES (tests/integration/service/test_async_hotpath.py holds them equal).

# 1. Issue: one INSERT ... SELECT over the active device, returning what appraisal needs.
_ISSUE = """
WITH d AS (
  SELECT id, instance_id, model, status FROM devices
  WHERE id = %(device)s AND lifecycle_state NOT IN ('suspended', 'decommissioned')),
ins AS (
  INSERT INTO challenges (id, device_id, nonce, created_at, expires_at)
  SELECT %(id)s, d.id, %(nonce)s, %(now)s, %(exp)s FROM d
  RETURNING device_id)
SELECT d.instance_id, d.model, d.status, (SELECT generation FROM config_generation WHERE id = 1)
FROM d JOIN ins ON ins.device_id = d.id
"""

_DEVICE_STATE = "SELECT lifecycle_state FROM devices WHERE id = %(device)s"

_TARGET = """
SELECT c.device_id, c.nonce, c.expires_at, c.consumed_at, d.instance_id, d.model, d.status,
       d.lifecycle_state, (SELECT generation FROM config_generation WHERE id = 1)
FROM challenges c JOIN devices d ON d.id = c.device_id
WHERE c.id = %(id)s
"""

# 2. Record: lock, re-check every assumption, consume, append, point the device at it.
_RECORD = """
WITH dev AS (
  SELECT id FROM devices
  WHERE id = %(device)s AND lifecycle_state NOT IN ('suspended', 'decommissioned')
    AND instance_id IS NOT DISTINCT FROM %(instance_id)s AND model = %(model)s
    AND status = %(status)s
  FOR UPDATE),
ok AS (
  SELECT 1 FROM dev WHERE (SELECT generation FROM config_generation WHERE id = 1) = %(generation)s),
c AS (
  UPDATE challenges SET consumed_at = %(now)s
  WHERE id = %(challenge)s AND device_id = %(device)s AND consumed_at IS NULL
    AND expires_at > %(now)s AND EXISTS (SELECT 1 FROM ok)
  RETURNING id),
a AS (
  INSERT INTO attestations (device_id, challenge_id, outcome, status, media_type,
                            evidence_sha256, reasons, ear, ear_expires_at, created_at)
  SELECT %(device)s, c.id, 'appraised', %(status)s, %(media_type)s, %(digest)s,
         %(reasons)s::json, %(ear)s, %(ear_exp)s, %(now)s
  FROM c
  RETURNING id)
UPDATE devices SET latest_attestation_id = a.id, updated_at = %(now)s
FROM a WHERE devices.id = %(device)s
RETURNING a.id
"""


@dataclass(frozen=True, slots=True)
class IssuedTarget:
    """A challenge with what its appraisal needs, as issued or as read back."""

    challenge_id: str
    device_id: str
    nonce: bytes
    expires_at: datetime
    instance_id: str | None
    model: str
    #: The device's status when this was read (the recording statement re-checks it).
    status: str
    #: The provisioning generation when this was read.
    generation: int
    lifecycle_state: str = "active"
    consumed: bool = False


async def _close_quietly(conn: psycopg.AsyncConnection[Any] | None) -> None:
    if conn is None:
        return
    with contextlib.suppress(Exception):  # already abandoning it
        await conn.close()


def libpq_url(sqlalchemy_url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (``postgresql+psycopg://``) as a libpq one."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


class AsyncPgHotPath:
    """The two hot statements over a small pool of autocommit psycopg async connections
    (at most ``size``, opened on first use, on the running event loop).

    Args:
        url: the store's database URL (SQLAlchemy form).
        size: most connections held at once; callers beyond it wait for one.
    """

    def __init__(self, url: str, *, size: int = 8) -> None:
        self._conninfo = libpq_url(url)
        self._size = size
        #: Idle connections with the time each was returned (most recent last).
        self._idle: list[tuple[psycopg.AsyncConnection[Any], float]] = []
        self._open = 0
        self._available: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        loop = asyncio.get_running_loop()
        if self._available is None or loop is not self._loop:
            # First use, or a new event loop (connections belong to the loop they were
            # opened on): start afresh.
            self._loop = loop
            self._available = asyncio.Condition()
            self._idle, self._open = [], 0
        async with self._available:
            while not self._idle and self._open >= self._size:
                await self._available.wait()
            conn, idle_since = self._idle.pop() if self._idle else (None, 0.0)
            if conn is None:
                self._open += 1
        try:
            if conn is not None and time.monotonic() - idle_since > _engine.IDLE_PING_SECONDS:
                # As the synchronous pool: a connection idle for a while may have been
                # closed by the server (restart, idle timeout); ping it, replace a dead one.
                try:
                    await conn.execute("SELECT 1")
                except psycopg.Error:
                    await conn.close()
                    conn = None
            if conn is None:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            await self._release(None)
            raise StoreError(f"database error: {type(exc).__name__}") from exc
        except BaseException:
            # Cancelled while connecting or pinging: the slot is given back.
            await _close_quietly(conn)
            await self._release(None)
            raise
        try:
            yield conn
        except psycopg.Error as exc:
            # A failed statement in autocommit leaves no transaction open; a broken
            # connection is closed and not returned to the pool.
            if conn.closed or conn.broken:
                await conn.close()
                await self._release(None)
                conn = None
            raise StoreError(f"database error: {type(exc).__name__}") from exc
        except BaseException:
            # Cancelled (or failed) in the middle of a statement: the connection's protocol
            # state is unknown, so it is closed, never handed to the next request.
            await _close_quietly(conn)
            await self._release(None)
            conn = None
            raise
        finally:
            if conn is not None:
                await self._release(conn)

    async def _release(self, conn: psycopg.AsyncConnection[Any] | None) -> None:
        assert self._available is not None
        async with self._available:
            if conn is None:
                self._open -= 1
            else:
                self._idle.append((conn, time.monotonic()))
            self._available.notify()

    async def close(self) -> None:
        """Close every idle connection (the pool can be used again afterwards)."""
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        for conn, _ in idle:
            await conn.close()

    async def issue(self, *, challenge_id: str, device_id: str, nonce: bytes, now: datetime,
                    expires_at: datetime) -> IssuedTarget | Issue:
        """Statement 1: insert a challenge for an active device.

        Returns:
            The issued challenge with what its appraisal needs, or an :class:`Issue` saying
            why none was issued (no such device, or an inactive one).

        Raises:
            StoreError: the database failed.
        """
        async with self._connection() as conn:
            cur = await conn.execute(_ISSUE, {"id": challenge_id, "device": device_id,
                                              "nonce": nonce, "now": now,
                                              "exp": expires_at})
            row = await cur.fetchone()
            if row is None:
                cur = await conn.execute(_DEVICE_STATE, {"device": device_id})
                state = await cur.fetchone()
        if row is not None:
            return IssuedTarget(challenge_id=challenge_id, device_id=device_id, nonce=nonce,
                                expires_at=expires_at, instance_id=row[0], model=row[1],
                                status=row[2], generation=int(row[3] or 0))
        if state is None:
            return Issue(IssueOutcome.NO_DEVICE)
        return Issue(IssueOutcome.INACTIVE, state[0])

    async def target(self, challenge_id: str) -> IssuedTarget | None:
        """A challenge and its device as they are now (no lock); None if unknown.

        Raises:
            StoreError: the database failed.
        """
        async with self._connection() as conn:
            cur = await conn.execute(_TARGET, {"id": challenge_id})
            row = await cur.fetchone()
        if row is None:
            return None
        return IssuedTarget(challenge_id=challenge_id, device_id=row[0], nonce=bytes(row[1]),
                            expires_at=row[2], consumed=row[3] is not None,
                            instance_id=row[4], model=row[5], status=row[6],
                            lifecycle_state=row[7], generation=int(row[8] or 0))

    async def record_appraised(self, target: IssuedTarget, *, generation: int, status: str,
                               media_type: str, evidence_sha256: str, reasons: list[Any],
                               ear: str, ear_expires_at: datetime | None,
                               now: datetime) -> int | None:
        """Statement 2: consume the nonce and record an appraisal made with the material of
        ``generation``, if every assumption still holds (see the module docstring).

        Returns:
            The history id, or None when nothing was written (the caller takes the general
            path).

        Raises:
            StoreError: the database failed.
        """
        params = {"device": target.device_id, "instance_id": target.instance_id,
                  "model": target.model, "status": status, "generation": generation,
                  "challenge": target.challenge_id, "now": now,
                  "media_type": media_type[:200], "digest": evidence_sha256,
                  "reasons": orjson.dumps(reasons).decode(), "ear": ear,
                  "ear_exp": ear_expires_at}
        async with self._connection() as conn:
            cur = await conn.execute(_RECORD, params)
            row = await cur.fetchone()
        return None if row is None else int(row[0])


__all__ = ["AsyncPgHotPath", "IssuedTarget", "libpq_url"]
