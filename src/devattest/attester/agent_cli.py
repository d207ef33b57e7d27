"""``devattest agent``: the device agent as a command (the integrator mounts ``app``).

* ``devattest agent run``: connect, report ``boot``, answer challenges until stopped;
* ``devattest agent event KIND``: report one event, wait for its result, exit 0 when the
  result is affirming, 1 for warning, 2 for contraindicated or no result, 3 for usage errors.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from devattest._documents import loads_strict_yaml
from devattest.errors import DevattestError

app = typer.Typer(help="Run the device agent: report lifecycle events, answer challenges.",
                  no_args_is_help=True, add_completion=False)
console = Console()
err_console = Console(stderr=True)


def _agent(device_id: str, mqtt: str, backend: Path, device: Path, username: str | None,
           password: str | None, ca_file: str | None, cert_file: str | None,
           key_file: str | None) -> tuple[Any, Any]:
    from devattest.attester.agent import DeviceAgent, MqttLink, psa_evidence_builder
    from devattest.attester.backends import open_secure_element
    from devattest.attester.claims import measure_device
    from devattest.transport.mqtt import MqttSettings

    se = open_secure_element(loads_strict_yaml(backend.read_text()))
    state = measure_device(loads_strict_yaml(device.read_text()), base=device.parent)
    settings = MqttSettings.from_url(mqtt, ca_file=ca_file, cert_file=cert_file,
                                     key_file=key_file)
    if username is not None:
        settings = settings.with_credentials(username, password)
    link = MqttLink(settings, client_id=device_id)
    agent = link.add(DeviceAgent(device_id, evidence=psa_evidence_builder(state, se)))
    return link, agent


_Mqtt = Annotated[str, typer.Option(help="Broker URL: mqtt://host:1883 or mqtts://host")]
_Backend = Annotated[Path, typer.Option(help="Secure-element config (YAML: backend: tpm2|"
                                        "pkcs11|unsafe_software and its parameters).")]
_Device = Annotated[Path, typer.Option(help="Device description (firmware images, state).")]
_User = Annotated[str | None, typer.Option(envvar="DEVATTEST_MQTT_USERNAME")]
_Pass = Annotated[str | None, typer.Option(envvar="DEVATTEST_MQTT_PASSWORD")]
_Opt = Annotated[str | None, typer.Option()]


@app.command("run")
def run_command(device_id: Annotated[str, typer.Option(help="This device's id.")],
                mqtt: _Mqtt, backend: _Backend, device: _Device, username: _User = None,
                password: _Pass = None, ca_file: _Opt = None, cert_file: _Opt = None,
                key_file: _Opt = None) -> None:
    """Report boot, then answer challenges (reconnecting with backoff) until stopped."""
    try:
        link, agent = _agent(device_id, mqtt, backend, device, username, password, ca_file,
                             cert_file, key_file)
        link.start(wait=0)
    except (DevattestError, OSError) as exc:
        err_console.print(f"[bold red]error[/]: "
                          f"{exc.diagnostics() if isinstance(exc, DevattestError) else exc}")
        raise typer.Exit(3) from None
    agent.report("boot")
    console.print(f"agent {device_id} on {mqtt}; Ctrl-C stops")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        link.stop()


@app.command("event")
def event_command(kind: Annotated[str, typer.Argument(help="boot, firmware_update, ...")],
                  device_id: Annotated[str, typer.Option(help="This device's id.")],
                  mqtt: _Mqtt, backend: _Backend, device: _Device,
                  firmware_version: _Opt = None, owner: _Opt = None,
                  timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 60.0,
                  username: _User = None, password: _Pass = None, ca_file: _Opt = None,
                  cert_file: _Opt = None, key_file: _Opt = None) -> None:
    """Report one lifecycle event and wait for the Attestation Result it leads to."""
    try:
        link, agent = _agent(device_id, mqtt, backend, device, username, password, ca_file,
                             cert_file, key_file)
        link.start(wait=timeout)
    except (DevattestError, OSError) as exc:
        err_console.print(f"[bold red]error[/]: "
                          f"{exc.diagnostics() if isinstance(exc, DevattestError) else exc}")
        raise typer.Exit(3) from None
    details = {k: v for k, v in (("firmware_version", firmware_version), ("owner", owner)) if v}
    try:
        agent.report(kind, **details)
        settled = agent.wait_settled(timeout)
    finally:
        link.stop()
    status = agent.stats.last_status
    console.print(f"{device_id}: {kind} -> {status if settled else 'no result'}")
    raise typer.Exit({"affirming": 0, "warning": 1}.get(status or "", 2) if settled else 2)
