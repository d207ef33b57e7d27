"""Engines, sessions and migrations for SQLite (default) and PostgreSQL (by URL).

SQLite runs in WAL mode with a busy timeout. Write transactions start with
``BEGIN IMMEDIATE`` so that two writers never deadlock on a lock upgrade (SQLite would fail
one of them at once, ignoring the busy timeout); read transactions start with a deferred
``BEGIN`` and never block writers under WAL.

PostgreSQL runs at READ COMMITTED. Correctness across replicas comes from row locks taken by
the repositories (``UPDATE ... WHERE consumed_at IS NULL RETURNING`` for nonces,
``SELECT ... FOR UPDATE`` on the device row for per-device serialisation), not from the
isolation level.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from devattest.errors import ConfigurationError, StoreError

_WRITE = "devattest_write"


def normalise_url(url: str) -> str:
    """Select the psycopg 3 driver for ``postgresql://`` URLs; leave others alone.

    Raises:
        ConfigurationError: the URL is neither SQLite nor PostgreSQL.
    """
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if u.drivername in ("sqlite", "sqlite+pysqlite"):
        return url
    raise ConfigurationError(f"unsupported database URL scheme {u.drivername!r}")


def create_private_file(path: Path) -> None:
    """Create the SQLite database file owner-only (0600) before SQLite opens it, in an
    owner-only (0700) directory when the directory is new. SQLite gives its ``-wal``,
    ``-shm`` and ``-journal`` files the database file's mode, so they are 0600 too. An
    existing file keeps the mode its operator gave it.

    Raises:
        ConfigurationError: if the file cannot be created.
    """
    if path.exists():
        return
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
            path.parent.chmod(0o700)  # mkdir's mode is filtered by the umask
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise ConfigurationError(f"cannot create the database file {path}: {exc}") from exc
    os.fchmod(fd, 0o600)
    os.close(fd)


def sqlite_url_for(data_dir: Path) -> str:
    """The default database: ``devattest.db`` in the data directory."""
    return f"sqlite:///{(data_dir / 'devattest.db').resolve()}"


def create_store_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20,
                        sqlite_busy_timeout_ms: int = 30_000) -> Engine:
    """An engine for ``url`` with the pragmas and transaction mode devattest relies on.

    Raises:
        ConfigurationError: unsupported URL, or an in-memory SQLite database.
    """
    url = normalise_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if not u.database or u.database == ":memory:":
            raise ConfigurationError("SQLite needs a file: WAL and several connections")
        create_private_file(Path(u.database))
        engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow,
                               connect_args={"timeout": sqlite_busy_timeout_ms / 1000,
                                             "check_same_thread": False})
        _install_sqlite_hooks(engine, sqlite_busy_timeout_ms)
        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow)
    _install_idle_ping(engine)
    return engine


#: A pooled PostgreSQL connection idle longer than this is pinged before use.
IDLE_PING_SECONDS = 1.0


def _install_idle_ping(engine: Engine) -> None:
    """Ping a pooled connection before use only if it sat idle for over a second.

    ``pool_pre_ping`` costs a round trip on every checkout (two per attestation). A
    connection in steady use needs none: a server restart shows up as a disconnect error on
    its next statement, SQLAlchemy then invalidates the pool, and that one request is
    answered 503. An idle connection (the likely stale one) is pinged; if the ping fails
    the pool discards it and checks out another (SQLAlchemy's pessimistic recipe).
    """
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["devattest_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("devattest_idle_since")
        if since is None or time.monotonic() - since <= IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError("stale pooled connection") from exc


def _install_sqlite_hooks(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below emit BEGIN itself (pysqlite's own implicit
        # BEGIN is deferred and cannot be made IMMEDIATE).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@dataclass
class Store:
    """An engine and its session factories. Build one per application (no singletons)."""

    engine: Engine

    def __post_init__(self) -> None:
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(self.engine.execution_options(**{_WRITE: True}),
                                    expire_on_commit=False)
        db = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        self._gate = _SqliteWriteGate(Path(db)) if db else None

    @contextmanager
    def write_gate(self) -> Iterator[None]:
        """Hold this around a write transaction: on SQLite, writers queue here (a thread
        lock, then an ``flock`` shared by the processes on the database) and wake as soon
        as the previous writer is done, instead of polling SQLite's lock with the busy
        handler's sleeps (1 to 100 ms each: the latency tail). No-op on PostgreSQL."""
        if self._gate is None:
            yield
        else:
            with self._gate:
                yield

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a write transaction, committed on success, rolled back on error.

        Raises:
            StoreError: the database failed (the original error is chained).
        """
        with self.write_gate(), self._writer() as session:
            try:
                with session.begin():
                    yield session
            except SQLAlchemyError as exc:
                raise StoreError(f"database error: {type(exc).__name__}") from exc

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (its transaction just ends: nothing was written). Objects
        stay usable after the block.

        Raises:
            StoreError: the database failed.
        """
        with self._reader() as session:
            try:
                with session.begin():
                    yield session
            except SQLAlchemyError as exc:
                raise StoreError(f"database error: {type(exc).__name__}") from exc

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


class _SqliteWriteGate:
    """One SQLite writer at a time: a re-entrant thread lock (a nested write in one thread
    goes on to SQLite's own lock, as before), then an exclusive ``flock`` on
    ``<database>.write-lock`` across processes (released by the kernel if a process dies)."""

    def __init__(self, database: Path) -> None:
        self._path = database.with_name(database.name + ".write-lock")
        self._lock = threading.RLock()
        self._fd: int | None = None
        self._depth = 0

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            if self._depth == 0:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._depth += 1
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()


def open_store(url: str, *, migrate_schema: bool = True, **engine_kwargs: Any) -> Store:
    """Create the engine, run migrations to head (unless told not to) and return a Store.

    Raises:
        ConfigurationError: unsupported URL.
        StoreError: the database is unreachable or a migration failed.
    """
    engine = create_store_engine(url, **engine_kwargs)
    if migrate_schema:
        migrate(engine)
    return Store(engine)


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "devattest.store:migrations")
    return cfg


def head_revision() -> str:
    """The newest migration's revision id."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Run ``alembic upgrade <revision>``, safely when several processes start at once.

    On PostgreSQL the migration holds a session advisory lock; on SQLite an exclusive file
    lock beside the database. The second process then finds the schema already at head.

    Raises:
        StoreError: the migration failed.
    """
    cfg = _alembic_config()
    try:
        if engine.dialect.name == "postgresql":
            key = int.from_bytes(hashlib.sha256(b"devattest-migrate").digest()[:8], "big",
                                 signed=True)
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                conn.commit()
                try:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, revision)
                    conn.commit()
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        else:
            db = engine.url.database
            assert db is not None
            lock_path = Path(db).with_name(Path(db).name + ".migrate-lock")
            fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    with engine.connect() as conn:
                        cfg.attributes["connection"] = conn
                        command.upgrade(cfg, revision)
                        conn.commit()
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
    except SQLAlchemyError as exc:
        raise StoreError(f"migration failed: {exc}") from exc
