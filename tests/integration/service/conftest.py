"""Fixtures for the store and service tests: a migrated store on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devattest.store import Store, open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: SQLite in a temp dir, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'devattest.db'}"
    make: Callable[[], str] = request.getfixturevalue("make_postgres_database")
    return make()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated store."""
    s = open_store(db_url)
    try:
        yield s
    finally:
        s.dispose()
