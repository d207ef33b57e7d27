"""Service configuration: environment variables ``DEVATTEST_*``, then an optional YAML or
TOML file named by ``DEVATTEST_CONFIG_FILE``, then the defaults (earlier wins)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)


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
    #: Every other request body (JSON, CoRIM, Rego) is limited to this.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    #: Accept a COSE alg from the unprotected header (legacy TF-M tokens); reported in results.
    allow_unprotected_alg: bool = False

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

    log_level: str = "INFO"
    #: Log one JSON line per request.
    access_log: bool = True

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
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
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


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
