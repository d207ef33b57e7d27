"""The CPU side of Evidence appraisal in the service: the pure core
(``devattest.verifier.verify``) and EAR signing, with the service's material, signer, scheme
registry, limits and options. It holds no transaction of its own.

Both submission paths use it: :class:`~devattest.service.services.attestation.AttestationService`
for one submission (HTTP and single MQTT messages), and the lifecycle coordinator's batch path
(``LifecycleCoordinator.submit_evidence_batch``), which reads and locks a whole batch in one
transaction, calls :meth:`Appraiser.appraise` (or :meth:`Appraiser.refuse` for a replayed or
expired nonce) per submission, and writes the batch back set-based.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from devattest.errors import DeviceNotBound, NonceExpired, NonceReplayed, UnsupportedMediaType
from devattest.model import AttestationResult, DecodeLimits, Status, VerifyOptions
from devattest.schemes import SchemeRegistry
from devattest.service.metrics import Metrics
from devattest.service.problems import UnsupportedMedia
from devattest.service.services.material import MaterialCache
from devattest.service.signing import ResultSigner
from devattest.verifier import contraindicated_result, verify


@dataclass(frozen=True, slots=True)
class Appraisal:
    """One appraised (or refused) submission, signed."""

    result: AttestationResult
    ear: str
    #: ``appraised``, or the refusal code (``nonce_replayed``, ``nonce_expired``).
    outcome: str
    #: Device binding: the Instance ID (hex) this appraisal binds an unbound device to (its
    #: first affirming result with a key-bound identity), else None. Every submission path
    #: records it in the history row and sets the device's ``instance_id`` if still unset.
    bind_identity: str | None = None

    @property
    def status(self) -> str:
        """The result's trust tier (``affirming``, ``warning``, ``contraindicated``, ...)."""
        return self.result.status.value

    @property
    def reasons(self) -> list[dict[str, str]]:
        """The reasons as stored in history and sent to the device."""
        return [{"code": c, "message": m} for c, m in self.result.reasons]

    @property
    def ear_expires_at(self) -> datetime | None:
        """When the EAR expires (None for a refusal, as the service records it)."""
        if self.outcome != "appraised" or self.result.exp is None:
            return None
        return datetime.fromtimestamp(self.result.exp, UTC)


class Appraiser:
    """Appraisal and signing of consumed-nonce Evidence (single and batch paths).

    Args:
        material: the service's provisioned-material cache.
        signer: the EAR signing key.
        registry: evidence schemes.
        limits: decoding limits.
        options: verification options.
        result_ttl: seconds until a result's ``exp``.
        challenge_ttl: lifetime of a challenge issued by the batch event path.
        metrics: the service's metrics (appraisals and challenges are counted as the
            service counts them), or None.
        require_binding: refuse Evidence for a device without a bound Instance ID
            (``Settings.require_device_binding``) instead of binding it on first affirming.
    """

    def __init__(self, *, material: MaterialCache, signer: ResultSigner,
                 registry: SchemeRegistry, limits: DecodeLimits, options: VerifyOptions,
                 result_ttl: int, challenge_ttl: timedelta,
                 metrics: Metrics | None = None, require_binding: bool = False) -> None:
        self._material = material
        self._signer = signer
        self._registry = registry
        self._limits = limits
        self._options = options
        self._result_ttl = result_ttl
        self.challenge_ttl = challenge_ttl
        self._metrics = metrics
        self._require_binding = require_binding

    @classmethod
    def from_context(cls, ctx: Any) -> Appraiser:
        """The appraiser over a service :class:`~devattest.service.context.AppContext`
        (the same material cache, signer and registry; limits, options and TTLs from its
        settings, as ``build_context`` derives them for the service)."""
        s = ctx.settings
        return cls(material=ctx.material, signer=ctx.signer, registry=ctx.registry,
                   limits=DecodeLimits(max_token_size=s.max_evidence_bytes),
                   options=VerifyOptions(allow_unprotected_alg=s.allow_unprotected_alg),
                   result_ttl=s.result_ttl_seconds,
                   challenge_ttl=timedelta(seconds=s.challenge_ttl_seconds),
                   metrics=ctx.metrics, require_binding=s.require_device_binding)

    def check_media_type(self, media_type: str) -> None:
        """Refuse a media type without an evidence scheme (before anything is consumed).

        Raises:
            UnsupportedMedia: no scheme for it (the service's error, same code and text).
        """
        try:
            self._registry.for_media_type(media_type)
        except UnsupportedMediaType:
            raise UnsupportedMedia(
                f"no evidence scheme for {media_type!r}; supported: "
                f"{', '.join(self._registry.media_types)}") from None

    def appraise(self, evidence: bytes, *, media_type: str, nonce: bytes, generation: int,
                 instance_id: str | None, model: str, now: datetime) -> Appraisal:
        """Appraise Evidence whose nonce was consumed, with the material of ``generation``
        (read in the caller's transaction), and sign the EAR.

        Raises:
            StoreError: the material had to be reloaded and the database failed.
        """
        if instance_id is None and self._require_binding:
            # Binding is required at registration: no key is trusted for an unbound device.
            err = DeviceNotBound("the device has no bound Instance ID and the Verifier "
                                 "requires binding at registration", step="2.5")
            refused = contraindicated_result(err, evidence=evidence, media_type=media_type,
                                             expected_nonce=nonce, now=now,
                                             result_ttl=self._result_ttl)
            if self._metrics is not None:
                self._metrics.appraisals.labels(refused.status.value, "appraised").inc()
            return Appraisal(refused, self._signer.sign(refused), "appraised")
        material = self._material.for_generation(generation, now=now)
        # The pure core (steps 1-7 of devattest.verifier.core). A device bound to an
        # Instance ID accepts only Evidence signed by the key bound to it (step 2.5): its
        # registered raw key, or a certified key that implies it.
        result = verify(evidence, media_type=media_type, expected_nonce=nonce,
                        trust_anchors=material.trust_anchors,
                        reference_values=material.reference_values,
                        policy=material.policy_for(model), now=now, registry=self._registry,
                        limits=self._limits, options=self._options,
                        result_ttl=self._result_ttl,
                        expected_identity=(bytes.fromhex(instance_id)
                                           if instance_id is not None else None))
        if self._metrics is not None:
            self._metrics.appraisals.labels(result.status.value, "appraised").inc()
        # Device binding: an unbound device is bound to the identity of its first affirming
        # attestation; from then on step 2.5 refuses Evidence from any other identity (a
        # relay through another trusted key, RFC 9334 section 12.1).
        bind = None
        if instance_id is None and result.status is Status.AFFIRMING \
                and result.attested_identity is not None:
            bind = result.attested_identity.hex()
        return Appraisal(result, self._signer.sign(result), "appraised", bind)

    def refuse(self, evidence: bytes, *, media_type: str, replayed: bool,
               expected_nonce: bytes, now: datetime) -> Appraisal:
        """The signed contraindicated result of Evidence whose nonce was already used
        (``replayed``) or expired."""
        err = (NonceReplayed("the challenge's nonce was already used", step="4") if replayed
               else NonceExpired("the challenge expired before the Evidence arrived",
                                 step="4"))
        result = contraindicated_result(err, evidence=evidence, media_type=media_type,
                                        expected_nonce=expected_nonce or b"\0", now=now,
                                        result_ttl=self._result_ttl)
        if self._metrics is not None:
            self._metrics.appraisals.labels(result.status.value, "nonce_rejected").inc()
        return Appraisal(result, self._signer.sign(result), err.code)

    def challenge_issued(self, count: int = 1) -> None:
        """Count challenges issued by the batch path."""
        if self._metrics is not None and count:
            self._metrics.challenges.inc(count)


#: The name the transport layer has used for the batch path.
BatchAppraiser = Appraiser

__all__ = ["Appraisal", "Appraiser", "BatchAppraiser"]
