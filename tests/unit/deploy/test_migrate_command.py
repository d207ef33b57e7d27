"""``devattest admin migrate``: the one-shot schema step of a deployment (compose's migrate
service, the devattest-migrate systemd unit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from devattest.cli.main import app
from devattest.store import create_store_engine, current_revision, head_revision


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI exports --db-url and --data-dir to the environment (for uvicorn's workers):
    # set then delete, so that monkeypatch restores each variable after the test.
    for base in ("DEVATTEST_DATABASE_URL", "DEVATTEST_DATA_DIR", "DEVATTEST_CONFIG_FILE"):
        for name in (base, f"{base}_FILE"):
            monkeypatch.setenv(name, "")
            monkeypatch.delenv(name)


def test_admin_migrate_brings_an_empty_database_to_head_and_exits(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["admin", "migrate", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    engine = create_store_engine(f"sqlite:///{tmp_path / 'devattest.db'}")
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    assert f"schema {head_revision()}" in result.output
    # a second run (a restarted one-shot) is a no-op
    again = CliRunner().invoke(app, ["admin", "migrate", "--data-dir", str(tmp_path)])
    assert again.exit_code == 0, again.output


def test_admin_migrate_gives_up_on_an_unreachable_database_with_one_clear_line() -> None:
    result = CliRunner().invoke(app, ["admin", "migrate", "--db-url",
                                      "postgresql://nobody@127.0.0.1:1/devattest",
                                      "--wait", "1"])
    assert result.exit_code == 1
    assert "migration failed" in result.output
    assert "Traceback" not in result.output


def test_admin_migrate_with_an_unreadable_secret_file_says_so_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVATTEST_DATABASE_URL_FILE", str(tmp_path / "absent"))
    result = CliRunner().invoke(app, ["admin", "migrate", "--data-dir", str(tmp_path)])
    assert result.exit_code == 3
    assert "DEVATTEST_DATABASE_URL_FILE: cannot read" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
