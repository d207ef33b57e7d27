"""``devattest service``: ``serve`` (uvicorn) and ``admin create-token``.

Mounted by the main CLI as ``devattest service``; runnable alone as
``python -m devattest.service.cli``.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from devattest.service.settings import Settings

app = typer.Typer(help="Run and administer the Verifier service.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
admin_app = typer.Typer(help="Administer the service.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")

DataDir = Annotated[Path | None, typer.Option(help="Data directory (SQLite DB, generated key).")]
DbUrl = Annotated[str | None, typer.Option("--db-url", help="Database URL (default: SQLite "
                                           "in the data directory; postgresql://... for PG).")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="YAML or TOML settings file.")]


def _settings(data_dir: Path | None, db_url: str | None, config: Path | None) -> Settings:
    """Settings from the options, exported to the environment so uvicorn workers (separate
    processes) build the same Settings."""
    if config is not None:
        os.environ["DEVATTEST_CONFIG_FILE"] = str(config.resolve())
    if data_dir is not None:
        os.environ["DEVATTEST_DATA_DIR"] = str(data_dir.resolve())
    if db_url is not None:
        os.environ["DEVATTEST_DATABASE_URL"] = db_url
    return Settings()


def _admin_count(settings: Settings) -> int:
    from devattest.store import TokenRepository, open_store

    store = open_store(settings.effective_database_url)
    try:
        with store.read() as s:
            return TokenRepository(s).count_live("admin")
    finally:
        store.dispose()


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, max=64, help="uvicorn worker processes.")] = 1,
    data_dir: DataDir = None, db_url: DbUrl = None, config: ConfigFile = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Server certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Server private key (PEM).")] = None,
    tls_client_ca: Annotated[Path | None, typer.Option(
        help="CA bundle for device client certificates (enables mTLS device auth).")] = None,
    tls_client_crl: Annotated[Path | None, typer.Option(
        help="CRLs of the device CAs (PEM/DER; re-read when the file changes).")] = None,
) -> None:
    """Run the Verifier service (migrates the database to head first)."""
    import ssl

    import uvicorn

    from devattest.service.jsonlog import log_config

    if (tls_key is not None or tls_client_ca is not None) and tls_cert is None:
        raise typer.BadParameter("--tls-key and --tls-client-ca need --tls-cert")
    if tls_client_crl is not None and tls_client_ca is None:
        raise typer.BadParameter("--tls-client-crl needs --tls-client-ca")
    if tls_client_ca is not None:
        os.environ["DEVATTEST_MTLS_DEVICE_AUTH"] = "true"
        os.environ["DEVATTEST_MTLS_CLIENT_CA"] = str(tls_client_ca.resolve())
    if tls_client_crl is not None:
        os.environ["DEVATTEST_MTLS_CLIENT_CRL"] = str(tls_client_crl.resolve())
    settings = _settings(data_dir, db_url, config)
    settings.make_data_dir()
    if settings.signing_key_pkcs11_module and settings.signing_key_pkcs11_create:
        # Generate the token key once, here, so that workers starting together do not each
        # generate one under the same label.
        from devattest.service.context import load_signer
        from devattest.service.signing import Pkcs11Signer

        signer = load_signer(settings)
        if isinstance(signer, Pkcs11Signer):
            signer.close()
    if _admin_count(settings) == 0:
        typer.echo("No admin token exists: nothing is open by default. Create the first one "
                   "with:\n  devattest service admin create-token --role admin"
                   + (f" --data-dir {settings.data_dir}" if not settings.database_url
                      else " --db-url <the same URL>"), err=True)
    if workers > 1:
        prom = settings.data_dir / "prometheus-multiproc"
        shutil.rmtree(prom, ignore_errors=True)
        prom.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
    from devattest.service.http import BoundedHttpToolsProtocol

    tls: dict[str, object] = {}
    # httptools with head and body timeouts and a head size bound (docs/service.md).
    http: object = BoundedHttpToolsProtocol
    if tls_cert is not None:
        from devattest.service.tls import TlsHttpToolsProtocol

        tls = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key) if tls_key else None}
        if tls_client_ca is not None:
            tls |= {"ssl_ca_certs": str(tls_client_ca), "ssl_cert_reqs": ssl.CERT_OPTIONAL}
        http = TlsHttpToolsProtocol
    uvicorn.run("devattest.service.app:create_app_from_env", factory=True, host=host,
                port=port, workers=workers, log_config=log_config(settings.log_level),
                access_log=False, loop="uvloop", http=http,  # type: ignore[arg-type]
                timeout_graceful_shutdown=5, timeout_keep_alive=5,
                **tls)  # type: ignore[arg-type]


@admin_app.command("migrate")
def migrate_database(
    data_dir: DataDir = None, db_url: DbUrl = None, config: ConfigFile = None,
    wait: Annotated[float, typer.Option(
        min=0, max=3600, help="Seconds to wait for the database to answer first.")] = 0,
) -> None:
    """Migrate the database to the newest schema (alembic upgrade head) and exit: the
    one-shot step of a deployment, before the Verifier replicas and bridges start."""
    import time

    from devattest.errors import DevattestError
    from devattest.store import create_store_engine, current_revision, head_revision, migrate

    try:
        settings = _settings(data_dir, db_url, config)
        if not settings.database_url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_store_engine(settings.effective_database_url)
    except DevattestError as exc:
        typer.echo(f"error: {exc.diagnostics()}", err=True)
        raise typer.Exit(3) from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                migrate(engine)
                break
            except DevattestError as exc:
                if time.monotonic() >= deadline:
                    typer.echo(f"error: {exc.diagnostics()}", err=True)
                    raise typer.Exit(1) from None
                time.sleep(1)
        revision = current_revision(engine)
    finally:
        engine.dispose()
    typer.echo(f"database at schema {revision} (head {head_revision()})")


@admin_app.command("create-token")
def create_token(
    role: Annotated[str, typer.Option(help="admin, provisioner, relying-party or device.")],
    device_id: Annotated[str | None, typer.Option(help="For --role device.")] = None,
    label: Annotated[str, typer.Option(help="A note for the token list.")] = "",
    data_dir: DataDir = None, db_url: DbUrl = None, config: ConfigFile = None,
) -> None:
    """Create an API token directly in the database and print it (once)."""
    from devattest.store import DeviceRepository, TokenRepository, open_store

    settings = _settings(data_dir, db_url, config)
    settings.make_data_dir()
    store = open_store(settings.effective_database_url)
    try:
        with store.write() as s:
            if device_id is not None and DeviceRepository(s).get(device_id) is None:
                typer.echo(f"error: no device {device_id!r}", err=True)
                raise typer.Exit(3)
            try:
                record, plaintext = TokenRepository(s).create(
                    role=role, device_id=device_id, label=label, now=datetime.now(UTC))
            except ValueError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(3) from None
            token_id = record.id
    finally:
        store.dispose()
    typer.echo(plaintext)
    typer.echo(f"token id {token_id}, role {role}: store it now, it is not shown again",
               err=True)


@admin_app.command("rebind-device")
def rebind_device(
    device_id: Annotated[str, typer.Argument(help="The device to rebind.")],
    instance_id: Annotated[str | None, typer.Option(
        help="Hex Instance ID its Evidence must come from from now on.")] = None,
    unbind: Annotated[bool, typer.Option(
        "--unbind", help="Unbind it: its next affirming attestation binds it again.")] = False,
    data_dir: DataDir = None, db_url: DbUrl = None, config: ConfigFile = None,
) -> None:
    """Rebind a device (device binding; the same as POST /v1/devices/{id}/binding)."""
    from devattest.service.problems import ApiError
    from devattest.service.services.inventory import InventoryService
    from devattest.store import open_store

    if (instance_id is None) == (not unbind):
        typer.echo("error: give exactly one of --instance-id or --unbind", err=True)
        raise typer.Exit(3)
    settings = _settings(data_dir, db_url, config)
    store = open_store(settings.effective_database_url)
    try:
        device = InventoryService(store).rebind_device(device_id, instance_id=instance_id,
                                                       now=datetime.now(UTC))
        bound = device.instance_id
    except ApiError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(3) from None
    finally:
        store.dispose()
    typer.echo(f"device {device_id} bound to {bound}" if bound
               else f"device {device_id} unbound: its next affirming attestation binds it")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
