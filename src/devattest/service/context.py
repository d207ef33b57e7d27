"""Everything one application instance owns, built by :func:`build_context` from Settings."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from datetime import datetime, timedelta

from devattest.errors import ConfigurationError
from devattest.model import DecodeLimits, VerifyOptions
from devattest.schemes import SchemeRegistry, default_registry
from devattest.service.auth import Authenticator
from devattest.service.metrics import Metrics
from devattest.service.services.attestation import AttestationService
from devattest.service.services.inventory import InventoryService
from devattest.service.services.material import MaterialCache
from devattest.service.services.provisioning import ProvisioningService, load_corim_signers
from devattest.service.services.retention import RetentionJob
from devattest.service.services.tokens import TokenService
from devattest.service.services.webhooks import (
    WebhookService,
    WebhookWorker,
    parse_networks,
)
from devattest.service.settings import Settings
from devattest.service.signing import FileKeySigner, Pkcs11Signer, ResultSigner
from devattest.service.tls import ClientRevocation
from devattest.store import RetentionPolicy, Store, create_store_engine


@dataclass
class AppContext:
    """The application's store, signer, services and background jobs."""

    settings: Settings
    store: Store
    metrics: Metrics
    registry: SchemeRegistry
    signer: ResultSigner
    auth: Authenticator
    material: MaterialCache
    attestation: AttestationService
    provisioning: ProvisioningService
    inventory: InventoryService
    tokens: TokenService
    webhooks: WebhookService
    retention_policy: RetentionPolicy
    webhook_worker: WebhookWorker | None = None
    retention_job: RetentionJob | None = None

    def settle(self, *, now: datetime) -> None:
        """Ready a long-running Verifier process once it has started: build the provisioned
        material (Trust Anchors, Reference Values, policies) now rather than on the first
        Evidence, then move everything start-up allocated out of the garbage collector's
        reach (:func:`gc.freeze`).

        A fleet's material is hundreds of thousands of long-lived objects; without the
        freeze every full collection walks them all again (perf: about 7 % of a replica's
        CPU in a 10,000-device wave, growing with the fleet). Frozen objects are still
        freed when their last reference goes; only cycles among them are never collected,
        and start-up makes none that die.

        Raises:
            StoreError: the database failed.
        """
        self.material.get(now=now)
        gc.collect()
        gc.freeze()


def load_signer(settings: Settings) -> ResultSigner:
    """The EAR signing key from PKCS#11, a PEM file, or a generated file in the data dir.

    Raises:
        ConfigurationError: the key cannot be loaded.
    """
    if settings.signing_key_pkcs11_module:
        return Pkcs11Signer(module=settings.signing_key_pkcs11_module,
                            token_label=settings.signing_key_pkcs11_token or "",
                            pin=settings.signing_key_pkcs11_pin or "",
                            key_label=settings.signing_key_pkcs11_label,
                            kid=settings.signing_kid,
                            create=settings.signing_key_pkcs11_create)
    if settings.signing_key_file is not None:
        return FileKeySigner.from_file(settings.signing_key_file, kid=settings.signing_kid)
    return FileKeySigner.from_file(settings.data_dir / "ear-signing-key.pem",
                                   kid=settings.signing_kid, create=True)


def load_revocation(settings: Settings) -> ClientRevocation | None:
    """The device client-certificate CRLs, when ``mtls_client_crl`` is set.

    Raises:
        ConfigurationError: a CRL without ``mtls_client_ca``, or unusable CRL or CA files.
    """
    if settings.mtls_client_crl is None:
        return None
    if settings.mtls_client_ca is None:
        raise ConfigurationError("mtls_client_crl needs mtls_client_ca (the CRLs' issuers)")
    return ClientRevocation(settings.mtls_client_crl, settings.mtls_client_ca)


def _registry(settings: Settings) -> SchemeRegistry:
    """The built-in evidence schemes (PSA, EAT, the EAT constrained profile, TPM quotes)."""
    return default_registry(tpm_max_eventlog_bytes=settings.tpm_max_eventlog_bytes)


def retention_policy(settings: Settings) -> RetentionPolicy:
    """The retention bounds from the settings."""
    age = settings.retention_max_age_days
    return RetentionPolicy(max_age=None if age is None else timedelta(days=age),
                           max_rows_per_device=settings.retention_max_rows_per_device)


def build_context(settings: Settings, *, registry: SchemeRegistry | None = None
                  ) -> AppContext:
    """Create the engine (not yet connected), the signer and the services.

    Raises:
        ConfigurationError: bad database URL or signing key.
    """
    settings.make_data_dir()
    store = Store(create_store_engine(settings.effective_database_url,
                                      pool_size=settings.db_pool_size,
                                      max_overflow=settings.db_max_overflow))
    metrics = Metrics()
    registry = registry if registry is not None else _registry(settings)
    signer = load_signer(settings)
    material = MaterialCache(store)
    attestation = AttestationService(
        store, material=material, signer=signer, registry=registry, metrics=metrics,
        challenge_ttl=timedelta(seconds=settings.challenge_ttl_seconds),
        result_ttl=settings.result_ttl_seconds,
        limits=DecodeLimits(max_token_size=settings.max_evidence_bytes),
        options=VerifyOptions(allow_unprotected_alg=settings.allow_unprotected_alg),
        async_pool_size=settings.db_event_loop_pool_size,
        require_binding=settings.require_device_binding)
    return AppContext(
        settings=settings, store=store, metrics=metrics, registry=registry, signer=signer,
        auth=Authenticator(store, cache_seconds=settings.auth_cache_seconds,
                           mtls_device_auth=settings.mtls_device_auth,
                           revocation=load_revocation(settings)),
        material=material, attestation=attestation,
        provisioning=ProvisioningService(
            store, require_signed_corim=settings.require_signed_corim,
            corim_signers=(load_corim_signers(settings.corim_signer_keys_file)
                           if settings.corim_signer_keys_file is not None else ())),
        inventory=InventoryService(store), tokens=TokenService(store),
        webhooks=WebhookService(store, allowed_networks=parse_networks(
            settings.webhook_allowed_networks)),
        retention_policy=retention_policy(settings))
