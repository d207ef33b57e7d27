"""Challenge-response (RFC 9334 background-check model): issue a nonce bound to a device,
then appraise the Evidence that carries it, exactly once.

Submission, in order:

1. The challenge exists (404) and the caller may act for its device (403).
2. The media type has an evidence scheme (415), checked before any appraisal.
3. One write transaction: lock the device row (``SELECT ... FOR UPDATE``: Evidence for one
   device is serialised, across replicas); consume the nonce atomically; appraise with the
   pure core; sign the EAR; append the history entry; update the device; queue webhooks on
   a status change; commit. A failed consumption (replayed, expired, or lost to a
   concurrent submission) is recorded as a signed contraindicated result and answered 409.

Because the nonce consumption and the history entry commit together, a crash leaves either
both or neither: no accepted attestation can be missing from history, and a nonce whose
result was returned can never be used again.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from devattest.ear import result_to_claims
from devattest.errors import NonceExpired, NonceReplayed, UnsupportedMediaType
from devattest.model import AttestationResult, DecodeLimits, VerifyOptions
from devattest.schemes import SchemeRegistry
from devattest.service.auth import Principal
from devattest.service.metrics import Metrics
from devattest.service.problems import Conflict, NotFound, UnsupportedMedia
from devattest.service.services.material import MaterialCache
from devattest.service.signing import ResultSigner
from devattest.store import (
    AttestationRepository,
    ChallengeRepository,
    ConsumeOutcome,
    DeviceRepository,
    Store,
    WebhookRepository,
)
from devattest.store.models import Challenge
from devattest.verifier import contraindicated_result, verify

#: Devices in these lifecycle states get no challenges.
_INACTIVE = frozenset({"suspended", "decommissioned"})


@dataclass(frozen=True, slots=True)
class Submission:
    """An appraised submission: the history id, the result and its EAR."""

    attestation_id: int
    result: AttestationResult
    ear: str


class AttestationService:
    """Issues challenges and appraises Evidence."""

    def __init__(self, store: Store, *, material: MaterialCache, signer: ResultSigner,
                 registry: SchemeRegistry, metrics: Metrics, challenge_ttl: timedelta,
                 result_ttl: int, limits: DecodeLimits, options: VerifyOptions) -> None:
        self._store = store
        self._material = material
        self._signer = signer
        self._registry = registry
        self._metrics = metrics
        self._ttl = challenge_ttl
        self._result_ttl = result_ttl
        self._limits = limits
        self._options = options

    def issue_challenge(self, principal: Principal, *, device_id: str, nonce_size: int,
                        now: datetime) -> Challenge:
        """A new challenge for ``device_id``.

        Raises:
            Forbidden: the caller may not act for this device.
            NotFound: no such device.
            Conflict: the device is suspended or decommissioned.
        """
        principal.require_device_access(device_id, "relying-party")
        with self._store.write() as s:
            device = DeviceRepository(s).get(device_id)
            if device is None:
                raise NotFound(f"no device {device_id!r}")
            if device.lifecycle_state in _INACTIVE:
                raise Conflict(f"device {device_id!r} is {device.lifecycle_state}",
                               code="device_inactive")
            ch = ChallengeRepository(s).issue(device_id=device_id, now=now, ttl=self._ttl,
                                              size=nonce_size)
        self._metrics.challenges.inc()
        return ch

    def check_submission(self, principal: Principal, *, challenge_id: str,
                         media_type: str) -> str:
        """Steps 1-2, before the body is appraised: returns the challenge's device ID.

        Raises:
            NotFound: no such challenge.
            Forbidden: the caller may not act for the challenge's device.
            UnsupportedMedia: no evidence scheme for the media type.
        """
        with self._store.read() as s:
            ch = ChallengeRepository(s).get(challenge_id)
            device_id = None if ch is None else ch.device_id
        if device_id is None:
            raise NotFound(f"no challenge {challenge_id!r}")
        principal.require_device_access(device_id, "relying-party")
        try:
            self._registry.for_media_type(media_type)
        except UnsupportedMediaType:
            raise UnsupportedMedia(
                f"no evidence scheme for {media_type!r}; supported: "
                f"{', '.join(self._registry.media_types)}") from None
        return device_id

    def submit(self, *, challenge_id: str, device_id: str, evidence: bytes, media_type: str,
               now: datetime) -> Submission:
        """Step 3: consume the nonce and appraise, in one transaction.

        Raises:
            NotFound: the device was deleted meanwhile.
            Conflict: the nonce was already consumed or expired (the attempt is recorded).
        """
        material = self._material.get(now=now)
        digest = hashlib.sha256(evidence).hexdigest()
        rejected: Submission | None = None
        started = time.perf_counter()
        with self._store.write() as s:
            devices = DeviceRepository(s)
            device = devices.lock(device_id)
            if device is None:
                raise NotFound(f"no device {device_id!r}")
            consumed = ChallengeRepository(s).consume(challenge_id, now=now)
            history = AttestationRepository(s)
            if consumed.outcome is ConsumeOutcome.UNKNOWN:
                raise NotFound(f"no challenge {challenge_id!r}")
            if consumed.outcome is not ConsumeOutcome.CONSUMED:
                ch = ChallengeRepository(s).get(challenge_id)
                err = (NonceExpired("the challenge expired before the Evidence arrived",
                                    step="4")
                       if consumed.outcome is ConsumeOutcome.EXPIRED else
                       NonceReplayed("the challenge's nonce was already used", step="4"))
                result = contraindicated_result(
                    err, evidence=evidence, media_type=media_type,
                    expected_nonce=ch.nonce if ch is not None else b"\0", now=now,
                    result_ttl=self._result_ttl)
                ear = self._signer.sign(result)
                row = history.add(device_id=device_id, challenge_id=challenge_id,
                                  outcome=err.code, status=result.status.value,
                                  media_type=media_type, evidence_sha256=digest,
                                  reasons=_reasons(result), ear=ear, ear_expires_at=None,
                                  now=now)
                rejected = Submission(row.id, result, ear)
            else:
                assert consumed.nonce is not None
                # The pure core (steps 1-7 of devattest.verifier.core).
                result = verify(
                    evidence, media_type=media_type, expected_nonce=consumed.nonce,
                    trust_anchors=material.anchors_for(device.instance_id),
                    reference_values=material.reference_values,
                    policy=material.policy_for(device.model), now=now,
                    registry=self._registry, limits=self._limits, options=self._options,
                    result_ttl=self._result_ttl)
                ear = self._signer.sign(result)
                row = history.add(device_id=device_id, challenge_id=challenge_id,
                                  outcome="appraised", status=result.status.value,
                                  media_type=media_type, evidence_sha256=digest,
                                  reasons=_reasons(result), ear=ear,
                                  ear_expires_at=_expiry(result), now=now)
                previous = device.status
                device.status = result.status.value
                device.latest_attestation_id = row.id
                device.updated_at = now
                if previous != device.status:
                    WebhookRepository(s).enqueue(
                        event="device.status_changed", now=now,
                        payload=_event(device_id, previous, device.status, row.id, now))
                accepted = Submission(row.id, result, ear)
        self._metrics.appraisal_seconds.observe(time.perf_counter() - started)
        if rejected is not None:
            self._metrics.appraisals.labels(rejected.result.status.value,
                                            "nonce_rejected").inc()
            raise Conflict(rejected.result.reasons[0][1], code=rejected.result.reasons[0][0],
                           extra={"attestation_id": rejected.attestation_id,
                                  "ear": rejected.ear,
                                  "result": result_to_claims(rejected.result)})
        self._metrics.appraisals.labels(accepted.result.status.value, "appraised").inc()
        return accepted


def _reasons(result: AttestationResult) -> list[Any]:
    return [{"code": c, "message": m} for c, m in result.reasons]


def _expiry(result: AttestationResult) -> datetime | None:
    return None if result.exp is None else datetime.fromtimestamp(result.exp, UTC)


def _event(device_id: str, previous: str, status: str, attestation_id: int,
           now: datetime) -> str:
    return json.dumps({"event": "device.status_changed", "device_id": device_id,
                       "previous_status": previous, "status": status,
                       "attestation_id": attestation_id, "at": now.isoformat()},
                      separators=(",", ":"), sort_keys=True)
