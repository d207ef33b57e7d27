"""The ``devattest`` command line: the one place that turns errors into exit codes.

Exit codes of ``devattest verify``: 0 affirming, 1 warning, 2 contraindicated (or none),
3 usage or input-file error.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from devattest.errors import DevattestError

EXIT_AFFIRMING = 0
EXIT_WARNING = 1
EXIT_CONTRAINDICATED = 2
EXIT_USAGE = 3

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="devattest",
    help="Device attestation for IoT fleets: create, inspect and verify Evidence; run the "
    "embedded PKI, the Verifier service and the fleet demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Map devattest errors, invalid settings and unreadable inputs to exit code 3 with a
    clear message (one line for a setting: its name and the values it accepts)."""
    if getattr(func, "_devattest_handled", False):
        return func

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except ValidationError as exc:
            from devattest.cli._settings_errors import describe_validation_error

            err_console.print(f"[bold red]error[/]: {describe_validation_error(exc)}",
                              soft_wrap=True, highlight=False)
            raise typer.Exit(EXIT_USAGE) from None
        except DevattestError as exc:
            err_console.print(f"[bold red]error[/]: {exc.diagnostics()}")
            raise typer.Exit(EXIT_USAGE) from None
        except (OSError, ValueError) as exc:
            err_console.print(f"[bold red]error[/]: {exc}")
            raise typer.Exit(EXIT_USAGE) from None

    wrapper._devattest_handled = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            console.print(f"devattest {version('devattest')}", highlight=False)
        except PackageNotFoundError:  # pragma: no cover - a source tree, not installed
            console.print("devattest (not installed)")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_version, help="Print the version and exit.")
    ] = False,
) -> None:
    """Device attestation for IoT fleets."""


def _handled(sub: typer.Typer) -> None:
    """Route every command of a mounted sub-application (and its groups) through
    :func:`handle_errors`, the CLI's one error-handling place."""
    for command in sub.registered_commands:
        if command.callback is not None:
            command.callback = handle_errors(command.callback)
    for group in sub.registered_groups:
        if group.typer_instance is not None:
            _handled(group.typer_instance)


def _mount(module: str, name: str, help_text: str) -> None:
    """Mount a sub-application if its module is present."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - only while a part is being built
        if exc.name and exc.name.startswith("devattest"):
            return
        raise
    sub = getattr(mod, "app", None)
    if sub is not None:
        _handled(sub)
        app.add_typer(sub, name=name, help=help_text)


def main() -> None:  # pragma: no cover - console-script entry
    app()


# Sub-commands register themselves on import.
from devattest.cli import _demo, _token, _verify  # noqa: E402,F401

_mount("devattest.cli._pki", "pki", "Manufacturer and owner CAs, certificates and CRLs.")
_mount("devattest.cli._device", "device", "Provision, onboard, transfer and revoke devices.")
_mount("devattest.cli._attester", "attester", "Run the Attester: collect claims, sign Evidence.")
_mount("devattest.service.cli", "service", "Run and administer the Verifier service.")
_mount("devattest.attester.agent_cli", "agent", "Run the device agent (events, challenges).")


def _mount_transport() -> None:
    """``devattest simulate`` and ``devattest mqtt``."""
    try:
        from devattest.transport import cli as transport_cli
    except ImportError:  # pragma: no cover - only while a part is being built
        return
    _handled(transport_cli.simulate_app)
    _handled(transport_cli.mqtt_app)
    app.add_typer(transport_cli.simulate_app, name="simulate",
                  help="Simulate a fleet through lifecycle waves, with adversaries.")
    app.add_typer(transport_cli.mqtt_app, name="mqtt",
                  help="Bridge MQTT devices to the Verifier service.")


_mount_transport()


def _mount_service_shortcuts() -> None:
    """``devattest serve`` and ``devattest admin ...`` at the top level, as documented."""
    try:
        from devattest.service import cli as service_cli
    except ImportError:  # pragma: no cover - only while a part is being built
        return
    app.command("serve", help="Run the Verifier service (uvicorn).")(
        handle_errors(service_cli.serve))
    _handled(service_cli.admin_app)
    app.add_typer(service_cli.admin_app, name="admin", help="Administer the Verifier service.")


_mount_service_shortcuts()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
