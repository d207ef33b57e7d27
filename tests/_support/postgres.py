"""PostgreSQL for integration tests.

Uses the local server at 127.0.0.1:5432 (trust auth, user ``postgres``) when it answers;
otherwise starts a private cluster with Debian's ``initdb`` and ``pg_ctl`` on a free port in a
temporary directory. Every test session gets freshly created, uniquely named databases that
are dropped at the end.

Fixtures:
    postgres_server: the server (session scope).
    make_postgres_database: a factory returning the URL of a new empty database.
    postgres_url: one fresh database for the session.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest


@dataclass
class PostgresServer:
    """A reachable server, and the databases this session created on it."""

    host: str
    port: int
    user: str = "postgres"
    created: list[str] = field(default_factory=list)

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(host=self.host, port=self.port, user=self.user,
                               dbname="postgres", autocommit=True, connect_timeout=5)

    def create_database(self) -> str:
        """Create a uniquely named database and return its SQLAlchemy URL."""
        name = f"devattest_test_{os.getpid()}_{secrets.token_hex(4)}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{name}"

    def drop_all(self) -> None:
        """Drop every database this session created."""
        with self._admin() as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


def _local_server() -> PostgresServer | None:
    server = PostgresServer("127.0.0.1", 5432)
    try:
        with server._admin() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return None
    return server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"PostgreSQL is not reachable and {name} is not installed")
    return path


@contextlib.contextmanager
def _private_cluster() -> Iterator[PostgresServer]:
    """initdb + pg_ctl in a temporary directory (as user ``postgres`` when run as root,
    because PostgreSQL refuses to run as root)."""
    tmp = Path(tempfile.mkdtemp(prefix="devattest-pg-"))
    data = tmp / "data"
    port = _free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(tmp, user="postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*prefix, _pg_bin("initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "--no-sync", "-E", "UTF8"], check=True,
                   capture_output=True)
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
    subprocess.run([*prefix, _pg_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l",
                    str(tmp / "log"), "-w", "start"], check=True, capture_output=True)
    try:
        yield PostgresServer("127.0.0.1", port)
    finally:
        subprocess.run([*prefix, _pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], check=False, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The local PostgreSQL if reachable, else a private cluster."""
    local = None if os.environ.get("DEVATTEST_TEST_PRIVATE_PG") else _local_server()
    if local is not None:
        try:
            yield local
        finally:
            local.drop_all()
        return
    with _private_cluster() as server:
        try:
            yield server
        finally:
            server.drop_all()


@pytest.fixture(scope="session")
def make_postgres_database(postgres_server: PostgresServer) -> Callable[[], str]:
    """A factory: each call creates a new empty database and returns its URL."""
    return postgres_server.create_database


@pytest.fixture(scope="session")
def postgres_url(make_postgres_database: Callable[[], str]) -> str:
    """One fresh database for the test session."""
    return make_postgres_database()
