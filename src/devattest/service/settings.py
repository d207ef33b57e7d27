"""Service configuration: environment variables ``DEVATTEST_*``, then files named by
``DEVATTEST_<NAME>_FILE`` variables (secrets: container secrets, systemd credentials), then an
optional YAML or TOML file named by ``DEVATTEST_CONFIG_FILE``, then the defaults (earlier
wins)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from devattest.errors import ConfigurationError

#: A ``DEVATTEST_<NAME>_FILE`` secret is read up to this size; a larger file is refused.
MAX_SECRET_FILE_BYTES = 64 * 1024


class Settings(BaseSettings):
    """Everything the service reads at start-up. Build one per application."""

    model_config = SettingsConfigDict(env_prefix="DEVATTEST_", extra="forbid")

    #: Where the SQLite database and a generated result-signing key live.
    data_dir: Path = Path("devattest-data")
    #: SQLAlchemy URL; ``postgresql://user@host/db`` selects psycopg 3. Default: SQLite
    #: ``<data_dir>/devattest.db``.
    database_url: str | None = None
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=20, ge=0, le=200)
    #: PostgreSQL: connections per worker for the challenge and Evidence routes on the
    #: event loop (docs/service.md); 0 runs those routes in the thread pool instead.
    db_event_loop_pool_size: int = Field(default=8, ge=0, le=200)

    #: Lifetime of a challenge nonce, in seconds.
    challenge_ttl_seconds: int = Field(default=120, ge=1, le=3600)
    #: Lifetime of an EAR (``exp - iat``), in seconds.
    result_ttl_seconds: int = Field(default=3600, ge=1)
    #: Evidence bodies above this are refused with 413 before parsing.
    max_evidence_bytes: int = Field(default=64 * 1024, ge=256, le=16 * 1024 * 1024)
    #: TPM quote Evidence carries a measured-boot event log, and bare-metal logs exceed
    #: 64 KiB: the TPM scheme refuses logs over this, and TPM Evidence
    #: (``application/vnd.devattest.tpm-quote+cbor``) may be this plus 64 KiB, whatever
    #: ``max_evidence_bytes`` says.
    tpm_max_eventlog_bytes: int = Field(default=1024 * 1024, ge=1024, le=16 * 1024 * 1024)
    #: Every other request body (JSON, CoRIM, Rego) is limited to this.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    #: Accept a COSE alg from the unprotected header (legacy TF-M tokens); reported in results.
    allow_unprotected_alg: bool = False
    #: Device binding (docs/service.md): a device registered without an Instance ID is bound
    #: to the identity of its first affirming attestation. When True, binding is required at
    #: registration instead: Evidence for a device without a bound Instance ID is refused
    #: (contraindicated, ``device_not_bound``).
    require_device_binding: bool = False

    #: PEM file with the EAR signing key (EC P-256/384/521 or Ed25519). When neither this nor
    #: PKCS#11 is configured, a P-256 key is generated in ``<data_dir>/ear-signing-key.pem``.
    signing_key_file: Path | None = None
    #: PKCS#11 module, token label, PIN and key label for an EAR signing key in an HSM.
    signing_key_pkcs11_module: str | None = None
    signing_key_pkcs11_token: str | None = None
    signing_key_pkcs11_pin: str | None = Field(default=None, repr=False)
    signing_key_pkcs11_label: str = "devattest-ear"
    #: Generate the PKCS#11 key pair (P-256, non-extractable) when the token has none with
    #: this label. Off by default: a mistyped label must not silently mint a new key.
    #: ``serve`` generates it once, before starting the workers.
    signing_key_pkcs11_create: bool = False
    #: The ``kid`` of the signing key (default: its RFC 7638 thumbprint).
    signing_kid: str | None = None

    #: Device client-certificate authentication (the server must run with TLS and
    #: ``ssl_ca_certs``; see docs/service.md). The certificate's subject CN is the device ID.
    mtls_device_auth: bool = False
    #: The device CA bundle the TLS layer verifies client certificates against (``serve
    #: --tls-client-ca`` sets it); needed to check the signatures of ``mtls_client_crl``.
    mtls_client_ca: Path | None = None
    #: PEM (one or more) or DER CRLs of the device CAs, re-read when the file changes. When
    #: set, a client certificate whose issuer has no current CRL here is refused.
    mtls_client_crl: Path | None = None

    #: PEM file of the public keys and/or certificates whose keys may sign CoRIMs. A signed
    #: CoRIM is accepted only when one of them verifies its signature.
    corim_signer_keys_file: Path | None = None
    #: Refuse unsigned CoRIMs (a signed, verified CoRIM is then the only CoRIM accepted).
    require_signed_corim: bool = False

    #: Seconds a successful bearer-token look-up is cached in-process (0: none). Revocation
    #: takes effect after at most this long.
    auth_cache_seconds: float = Field(default=2.0, ge=0, le=300)

    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_backoff_seconds: float = Field(default=2.0, gt=0)
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    #: Run the webhook delivery worker in this process.
    webhook_worker: bool = True
    #: Networks (CIDR) webhooks may target although they are not globally routable
    #: (loopback, private, link-local ...); by default none (server-side request forgery).
    webhook_allowed_networks: list[str] = Field(default_factory=list)

    retention_max_age_days: float | None = Field(default=90, gt=0)
    retention_max_rows_per_device: int | None = Field(default=10_000, ge=1)
    #: How often the retention job runs, in seconds (0 disables it).
    retention_interval_seconds: float = Field(default=3600, ge=0)

    #: Serve the operator dashboard at ``/dashboard`` (docs/dashboard.md).
    dashboard: bool = True

    #: Seconds a client has to send a whole request head, and a whole body once the head is
    #: in; a slower client is disconnected (``devattest.service.http``; issue 13, defect 7).
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)

    #: ``/metrics`` (issue 13, defect 7): by default it needs a bearer token, this one
    #: (for the Prometheus scrape config's ``authorization.credentials_file``) or an admin
    #: API token. ``metrics_public`` opens it to anyone who reaches the port (only behind a
    #: proxy or on a network that only the monitoring system reaches).
    metrics_token: str | None = Field(default=None, repr=False)
    metrics_public: bool = False

    log_level: str = "INFO"
    #: Log one JSON line per request.
    access_log: bool = True

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, v: str | None) -> str | None:
        if v is not None and len(v) < 16:
            raise ValueError("metrics_token must be at least 16 characters")
        return v

    @field_validator("log_level")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for net in v:
            ipaddress.ip_network(net, strict=False)  # ValueError -> a validation error
        return v

    def make_data_dir(self) -> Path:
        """Create the data directory owner-only (0700) if it does not exist (it holds the
        database and the EAR signing key); an existing one keeps its mode."""
        if not self.data_dir.exists():
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.data_dir.chmod(0o700)  # mkdir's mode is filtered by the umask
        return self.data_dir

    @property
    def tpm_max_evidence_bytes(self) -> int:
        """The body limit for TPM quote Evidence: its event-log limit plus the rest."""
        from devattest.schemes.tpm.scheme import EVIDENCE_OVERHEAD_BYTES

        return max(self.max_evidence_bytes,
                   self.tpm_max_eventlog_bytes + EVIDENCE_OVERHEAD_BYTES)

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'devattest.db').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings, env_settings, SecretFileSettingsSource(settings_cls)]
        config_file = os.environ.get("DEVATTEST_CONFIG_FILE")
        if config_file:
            path = Path(config_file)
            if path.suffix == ".toml":
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            else:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    def to_env(self) -> dict[str, str]:
        """These settings as ``DEVATTEST_*`` variables (to hand to worker processes)."""
        out: dict[str, str] = {}
        for name, value in self.model_dump(exclude_none=True).items():
            out[f"DEVATTEST_{name.upper()}"] = _env_value(value)
        return out


class SecretFileSettingsSource(PydanticBaseSettingsSource):
    """``DEVATTEST_<NAME>_FILE=/path``: the setting ``<name>`` is that file's content, without
    its trailing newline (the ``*_FILE`` convention of container images, for compose and
    Kubernetes secrets and systemd's ``LoadCredential=``), so that a password in
    ``database_url`` or a PKCS#11 PIN never sits in the environment or a unit file.

    Raises:
        ConfigurationError: both ``DEVATTEST_<NAME>`` and ``DEVATTEST_<NAME>_FILE`` are set,
            or the file is missing, unreadable, larger than ``MAX_SECRET_FILE_BYTES`` or
            not UTF-8.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # pragma: no cover - __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            variable = f"DEVATTEST_{name.upper()}"
            path = os.environ.get(f"{variable}_FILE")
            if path is None:
                continue
            if variable in os.environ:
                raise ConfigurationError(f"{variable} and {variable}_FILE are both set: "
                                         "set one of them")
            values[name] = read_secret_file(f"{variable}_FILE", Path(path))
        return values


def read_secret_file(variable: str, path: Path) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"{variable}: cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise ConfigurationError(
            f"{variable}: {path} is larger than {MAX_SECRET_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{variable}: {path} is not UTF-8 text") from None
    return text.removesuffix("\n").removesuffix("\r")


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
