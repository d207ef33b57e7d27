"""Check that a deployment file's devattest command line is one the CLI accepts."""

from __future__ import annotations

from typer.testing import CliRunner

from devattest.cli.main import app


def assert_devattest_accepts(args: list[str]) -> None:
    """``devattest ARGS --help`` succeeds: every sub-command and option exists."""
    # --help after the options: typer parses them (an unknown one fails) and stops there
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"devattest {' '.join(args)}: {result.output}"
