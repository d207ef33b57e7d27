"""Typer commands of the lifecycle/MQTT part, for the integrator to mount:

* ``simulate_app``: ``devattest simulate`` (the fleet simulator);
* ``mqtt_app``: ``devattest mqtt bridge`` (a Verifier replica on MQTT: the service's store
  and attestation layer, subscribed to events and Evidence).

Exit codes: 0 success (simulator: the check passed), 1 the simulator's check failed,
3 usage or configuration error.
"""

from __future__ import annotations

import signal
import tempfile
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from devattest.errors import ConfigurationError, DevattestError

console = Console()
err_console = Console(stderr=True)

simulate_app = typer.Typer(help="Simulate a fleet living through lifecycle waves.",
                           no_args_is_help=False, add_completion=False)
mqtt_app = typer.Typer(help="Run the Verifier on MQTT.", no_args_is_help=True,
                       add_completion=False)


def _fail(exc: DevattestError) -> typer.Exit:
    err_console.print(f"[bold red]error[/]: {exc.diagnostics()}")
    return typer.Exit(3)


@simulate_app.callback(invoke_without_command=True)
def simulate_command(
    devices: Annotated[int | None, typer.Option(help="Fleet size.")] = None,
    scenario: Annotated[Path | None, typer.Option(
        help="Scenario YAML (fleet, waves, adversaries; see docs/lifecycle.md).")] = None,
    mqtt: Annotated[str | None, typer.Option(
        help="Broker URL (default: a private Mosquitto if installed, else in-process).")
    ] = None,
    db: Annotated[str | None, typer.Option(help="Database URL (default: SQLite).")] = None,
    softhsm: Annotated[int | None, typer.Option(help="Devices on SoftHSM2 tokens.")] = None,
    swtpm: Annotated[int | None, typer.Option(help="Devices on swtpm.")] = None,
    transport: Annotated[str, typer.Option(help="auto, mqtt or inprocess.")] = "auto",
    data_dir: Annotated[Path | None, typer.Option(
        help="Keep the Verifier's data here (default: a temporary directory).")] = None,
) -> None:
    """Run a lifecycle scenario against the Verifier and check every device's posture."""
    from devattest.transport.simulator import load_scenario, simulate

    try:
        sc = load_scenario(scenario, devices=devices, softhsm=softhsm, swtpm=swtpm)
        with tempfile.TemporaryDirectory(prefix="devattest-sim-") as tmp:
            workdir = data_dir or Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            run = simulate(sc, workdir=workdir, db_url=db, mqtt_url=mqtt,
                           transport=transport, console=console)
    except DevattestError as exc:
        raise _fail(exc) from None
    except OSError as exc:
        err_console.print(f"[bold red]error[/]: {exc}")
        raise typer.Exit(3) from None
    if run.report is None or not run.report.ok:
        raise typer.Exit(1)


@mqtt_app.command("bridge")
def bridge_command(
    mqtt: Annotated[str, typer.Option(help="Broker URL: mqtt://host:1883 or mqtts://...")],
    username: Annotated[str | None, typer.Option(envvar="DEVATTEST_MQTT_USERNAME")] = None,
    password: Annotated[str | None, typer.Option(envvar="DEVATTEST_MQTT_PASSWORD")] = None,
    password_file: Annotated[Path | None, typer.Option(
        envvar="DEVATTEST_MQTT_PASSWORD_FILE",
        help="File holding the password (a container secret); not with --password.")] = None,
    ca_file: Annotated[str | None, typer.Option(help="CA bundle for the broker.")] = None,
    cert_file: Annotated[str | None, typer.Option(help="Client certificate (PEM).")] = None,
    key_file: Annotated[str | None, typer.Option(help="Client key (PEM).")] = None,
    workers: Annotated[int, typer.Option(help="Processing threads.")] = 4,
    deadline: Annotated[int, typer.Option(help="Seconds to attest after an event.")] = 300,
    client_id: Annotated[str | None, typer.Option(
        help="Stable MQTT client id of this replica.")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics (dead letters, worker restarts, appraisals) on this "
             "port (default: not served).")] = None,
    metrics_host: Annotated[str, typer.Option(
        help="Address the metrics port binds to.")] = "127.0.0.1",
) -> None:
    """Serve lifecycle events and Evidence from MQTT with the service's configuration
    (DEVATTEST_* environment: database, signing key, ...)."""
    from datetime import UTC, datetime, timedelta

    from devattest.lifecycle import LifecycleRules
    from devattest.service.context import build_context
    from devattest.service.services.appraiser import BatchAppraiser
    from devattest.service.settings import Settings, read_secret_file
    from devattest.store import migrate
    from devattest.transport.coordinator import LifecycleCoordinator, quarantine_when_untrusted
    from devattest.transport.mqtt import MqttSettings
    from devattest.transport.mqtt_service import MqttVerifierBridge

    try:
        if password_file is not None:
            if password is not None:
                raise ConfigurationError("give the MQTT password or a password file, not both")
            password = read_secret_file("DEVATTEST_MQTT_PASSWORD_FILE", password_file)
        ctx = build_context(Settings())
        migrate(ctx.store.engine)
        coordinator = LifecycleCoordinator(
            ctx.store, ctx.attestation,
            rules=LifecycleRules(default_deadline=timedelta(seconds=deadline)),
            quarantine_hooks=[quarantine_when_untrusted],
            appraiser=BatchAppraiser.from_context(ctx))
        settings = MqttSettings.from_url(mqtt, ca_file=ca_file, cert_file=cert_file,
                                         key_file=key_file)
        if username is not None:
            settings = settings.with_credentials(username, password)
        ctx.settle(now=datetime.now(UTC))
        bridge = MqttVerifierBridge(coordinator, settings, workers=workers,
                                    client_id=client_id, metrics=ctx.metrics).start()
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr=metrics_host, registry=ctx.metrics.registry)
    except DevattestError as exc:
        raise _fail(exc) from None
    except OSError as exc:
        err_console.print(f"[bold red]error[/]: metrics port: {exc}")
        raise typer.Exit(3) from None
    console.print(f"verifier bridge on {settings.url} (client {bridge.client_id}); Ctrl-C stops")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        bridge.stop()
        ctx.store.dispose()
