"""The ``devattest`` command line: the one place that turns errors into exit codes.

Exit codes of ``devattest verify``: 0 affirming, 1 warning, 2 contraindicated (or none),
3 usage or input-file error.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
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
    """Map devattest errors and unreadable inputs to exit code 3 with a clear message."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except DevattestError as exc:
            err_console.print(f"[bold red]error[/]: {exc.diagnostics()}")
            raise typer.Exit(EXIT_USAGE) from None
        except (OSError, ValueError) as exc:
            err_console.print(f"[bold red]error[/]: {exc}")
            raise typer.Exit(EXIT_USAGE) from None

    return wrapper  # type: ignore[return-value]


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
    app.command("serve", help="Run the Verifier service (uvicorn).")(service_cli.serve)
    app.add_typer(service_cli.admin_app, name="admin", help="Administer the Verifier service.")


_mount_service_shortcuts()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
