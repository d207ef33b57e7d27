"""Fixtures for lifecycle tests: a migrated store on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devattest.store import Store, open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def lc_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store on SQLite (temp dir) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'devattest.db'}"
    else:
        make: Callable[[], str] = request.getfixturevalue("make_postgres_database")
        url = make()
    s = open_store(url)
    try:
        yield s
    finally:
        s.dispose()
