"""Challenge-response (RFC 9334 background-check model): issue a nonce bound to a device,
then appraise the Evidence that carries it, exactly once.

Issuing a challenge is one INSERT. Submission is one write transaction
(:class:`~devattest.store.hotpath.HotPath`, SQLAlchemy Core, no ORM), in order:

1. The challenge exists (404) and the caller may act for its device (403): one SELECT that
   also locks the device row (``FOR UPDATE``: Evidence for one device is serialised, across
   replicas) and reads the provisioning generation (cached material is rebuilt only when
   it changed).
2. The media type has an evidence scheme (415), checked before anything is consumed.
3. Consume the nonce atomically (``UPDATE ... WHERE consumed_at IS NULL AND expires_at >
   now RETURNING nonce``); appraise with the pure core; sign the EAR; append the history
   entry and update the device (one statement on PostgreSQL); queue webhooks on a status
   change; commit. A failed consumption (replayed, expired, or lost to a concurrent
   submission) is recorded as a signed contraindicated result and answered 409.

Because the nonce consumption and the history entry commit together, a crash leaves either
both or neither: no accepted attestation can be missing from history, and a nonce whose
result was returned can never be used again.

On PostgreSQL the service's fast lane calls :meth:`AttestationService.issue_challenge_async`
and :meth:`AttestationService.submit_evidence_async` on the event loop instead: the same
checks in the same order, with the ordinary case in two autocommit statements
(:mod:`devattest.store.async_hotpath`: issue; then, after appraising, lock + re-check +
consume + record in one statement). Whenever that statement's assumptions do not hold (a
replay, an expiry, a status change that owes webhooks, new material, a suspended device),
it writes nothing and the submission takes the general path above, in a worker thread.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.concurrency import run_in_threadpool

from devattest.ear import result_to_claims
from devattest.model import AttestationResult, DecodeLimits, VerifyOptions
from devattest.schemes import SchemeRegistry
from devattest.service.auth import Principal
from devattest.service.metrics import Metrics
from devattest.service.problems import Conflict, NotFound
from devattest.service.services.appraiser import Appraiser
from devattest.service.services.material import MaterialCache
from devattest.service.signing import ResultSigner
from devattest.store import ALLOWED_NONCE_SIZES, ConsumeOutcome, Store
from devattest.store.async_hotpath import AsyncPgHotPath, IssuedTarget
from devattest.store.hotpath import INACTIVE_STATES, HotPath, IssueOutcome, webhook_event
from devattest.store.models import Challenge


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
                 result_ttl: int, limits: DecodeLimits, options: VerifyOptions,
                 async_pool_size: int = 8, require_binding: bool = False) -> None:
        self._store = store
        self._hot = HotPath(store)
        self._metrics = metrics
        self._ttl = challenge_ttl
        self._material = material
        #: PostgreSQL: the event-loop path (see the module docstring); None on SQLite.
        self._async: AsyncPgHotPath | None = (
            AsyncPgHotPath(store.engine.url.render_as_string(hide_password=False),
                           size=async_pool_size)
            if store.dialect == "postgresql" and async_pool_size > 0 else None)
        #: Challenges this process issued on the event-loop path, until answered or
        #: evicted: the usual submission then needs no read.
        self._issued: dict[str, IssuedTarget] = {}
        # Appraisal and EAR signing (shared with the MQTT batch path); metrics are counted
        # here, per submission path, not by the appraiser.
        self._appraiser = Appraiser(material=material, signer=signer, registry=registry,
                                    limits=limits, options=options, result_ttl=result_ttl,
                                    challenge_ttl=challenge_ttl,
                                    require_binding=require_binding)

    def issue_challenge(self, principal: Principal, *, device_id: str, nonce_size: int,
                        now: datetime) -> Challenge:
        """A new challenge for ``device_id`` (one INSERT).

        Raises:
            Forbidden: the caller may not act for this device.
            NotFound: no such device.
            Conflict: the device is suspended or decommissioned.
            ValueError: the nonce size is not 32, 48 or 64.
        """
        ch = self._new_challenge(principal, device_id=device_id, nonce_size=nonce_size,
                                 now=now)
        issued = self._hot.issue(challenge_id=ch.id, device_id=device_id, nonce=ch.nonce,
                                 now=now, expires_at=ch.expires_at)
        if issued.outcome is IssueOutcome.NO_DEVICE:
            raise NotFound(f"no device {device_id!r}")
        if issued.outcome is IssueOutcome.INACTIVE:
            raise Conflict(f"device {device_id!r} is {issued.lifecycle_state}",
                           code="device_inactive")
        self._metrics.challenges.inc()
        return ch

    def _new_challenge(self, principal: Principal, *, device_id: str, nonce_size: int,
                       now: datetime) -> Challenge:
        """The caller may act for the device and the size is allowed: a fresh challenge
        (128-bit id, nonce from the OS CSPRNG), not yet stored."""
        principal.require_device_access(device_id, "relying-party")
        if nonce_size not in ALLOWED_NONCE_SIZES:
            raise ValueError(f"nonce size must be one of {ALLOWED_NONCE_SIZES}")
        return Challenge(id=secrets.token_hex(16), device_id=device_id,
                         nonce=secrets.token_bytes(nonce_size), created_at=now,
                         expires_at=now + self._ttl, consumed_at=None)

    def check_submission(self, principal: Principal, *, challenge_id: str,
                         media_type: str) -> str:
        """Steps 1-2, before the body is appraised: returns the challenge's device ID.

        :meth:`submit_evidence` repeats these checks inside its transaction; this is for
        callers that must refuse before reading (or acknowledging) the Evidence.

        Raises:
            NotFound: no such challenge.
            Forbidden: the caller may not act for the challenge's device.
            UnsupportedMedia: no evidence scheme for the media type.
        """
        device_id = self._hot.challenge_device(challenge_id)
        if device_id is None:
            raise NotFound(f"no challenge {challenge_id!r}")
        principal.require_device_access(device_id, "relying-party")
        self._check_media_type(media_type)
        return device_id

    def submit(self, *, challenge_id: str, device_id: str, evidence: bytes, media_type: str,
               now: datetime) -> Submission:
        """Step 3 for a caller that already ran :meth:`check_submission`: consume the nonce
        and appraise, in one transaction.

        Raises:
            NotFound: the challenge or its device is gone, or the challenge was issued to
                another device than ``device_id``.
            Conflict: the nonce was already consumed or expired (the attempt is recorded).
        """
        return self._submit(None, challenge_id=challenge_id, device_id=device_id,
                            evidence=evidence, media_type=media_type, now=now)

    def submit_evidence(self, principal: Principal, *, challenge_id: str, evidence: bytes,
                        media_type: str, now: datetime) -> Submission:
        """Steps 1-3 in one transaction: the challenge exists (404), the caller may act for
        its device (403), the media type has a scheme (415; nothing is consumed), then the
        nonce is consumed and the Evidence appraised.

        Raises:
            NotFound: no such challenge.
            Forbidden: the caller may not act for the challenge's device.
            UnsupportedMedia: no evidence scheme for the media type.
            Conflict: the nonce was already consumed or expired (the attempt is recorded).
        """
        return self._submit(principal, challenge_id=challenge_id, device_id=None,
                            evidence=evidence, media_type=media_type, now=now)

    @property
    def has_async_path(self) -> bool:
        """Whether :meth:`issue_challenge_async` and :meth:`submit_evidence_async` run on the
        event loop (PostgreSQL) rather than delegating to a worker thread."""
        return self._async is not None

    async def close_async(self) -> None:
        """Close the event-loop path's connections (at shutdown)."""
        if self._async is not None:
            await self._async.close()

    async def issue_challenge_async(self, principal: Principal, *, device_id: str,
                                    nonce_size: int, now: datetime) -> Challenge:
        """:meth:`issue_challenge` on the event loop (PostgreSQL: one statement, which also
        returns what the appraisal will need); elsewhere in a worker thread.

        Raises:
            Forbidden: the caller may not act for this device.
            NotFound: no such device.
            Conflict: the device is suspended or decommissioned.
            ValueError: the nonce size is not 32, 48 or 64.
            StoreError: the database failed.
        """
        if self._async is None:
            return await run_in_threadpool(
                lambda: self.issue_challenge(principal, device_id=device_id,
                                             nonce_size=nonce_size, now=now))
        ch = self._new_challenge(principal, device_id=device_id, nonce_size=nonce_size,
                                 now=now)
        issued = await self._async.issue(challenge_id=ch.id, device_id=device_id,
                                         nonce=ch.nonce, now=now, expires_at=ch.expires_at)
        if not isinstance(issued, IssuedTarget):
            if issued.outcome is IssueOutcome.NO_DEVICE:
                raise NotFound(f"no device {device_id!r}")
            raise Conflict(f"device {device_id!r} is {issued.lifecycle_state}",
                           code="device_inactive")
        if len(self._issued) >= _ISSUED_KEPT:
            # The oldest entry goes (its submission will read the challenge back).
            del self._issued[next(iter(self._issued))]
        self._issued[ch.id] = issued
        self._metrics.challenges.inc()
        return ch

    async def submit_evidence_async(self, principal: Principal, *, challenge_id: str,
                                    evidence: bytes, media_type: str,
                                    now: datetime) -> Submission:
        """:meth:`submit_evidence` with the ordinary case on the event loop (PostgreSQL):
        the same checks in the same order, the appraisal before the lock, and one statement
        that re-checks under the lock, consumes and records. Anything else takes
        :meth:`submit_evidence` in a worker thread (see the module docstring).

        Raises:
            NotFound: no such challenge.
            Forbidden: the caller may not act for the challenge's device.
            UnsupportedMedia: no evidence scheme for the media type.
            Conflict: the nonce was already consumed or expired (the attempt is recorded),
                or the device is inactive.
            StoreError: the database failed.
        """
        def general() -> Submission:
            return self.submit_evidence(principal, challenge_id=challenge_id,
                                        evidence=evidence, media_type=media_type, now=now)

        if self._async is None:
            return await run_in_threadpool(general)
        target = self._issued.pop(challenge_id, None)
        if target is None:
            target = await self._async.target(challenge_id)
            if target is None:
                raise NotFound(f"no challenge {challenge_id!r}")
        # 1. The caller may act for the challenge's device; 2. a scheme for the media type,
        # both before anything is consumed (as in _submit).
        principal.require_device_access(target.device_id, "relying-party")
        self._check_media_type(media_type)
        material = self._material.cached
        if (material is None or material.generation != target.generation or target.consumed
                or target.expires_at <= now or target.lifecycle_state in INACTIVE_STATES):
            # Refusals, and material to (re)load, are for the general path.
            return await run_in_threadpool(general)
        started = time.perf_counter()
        # 3. Appraise with the pure core and sign, before the lock (module docstring).
        appraised = self._appraiser.appraise(
            evidence, media_type=media_type, nonce=target.nonce,
            generation=material.generation, instance_id=target.instance_id,
            model=target.model, now=now)
        result = appraised.result
        status = result.status.value
        if status != target.status or appraised.bind_identity is not None:
            # A status change owes webhooks, and a first binding is recorded with the
            # device's identity: both by the general path, under its lock.
            return await run_in_threadpool(general)
        attestation_id = await self._async.record_appraised(
            target, generation=material.generation, status=status, media_type=media_type,
            evidence_sha256=hashlib.sha256(evidence).hexdigest(), reasons=appraised.reasons,
            ear=appraised.ear, ear_expires_at=appraised.ear_expires_at, now=now)
        if attestation_id is None:
            return await run_in_threadpool(general)
        self._metrics.appraisal_seconds.observe(time.perf_counter() - started)
        self._metrics.appraisals.labels(status, "appraised").inc()
        return Submission(attestation_id, result, appraised.ear)

    def _check_media_type(self, media_type: str) -> None:
        self._appraiser.check_media_type(media_type)

    def _submit(self, principal: Principal | None, *, challenge_id: str,
                device_id: str | None, evidence: bytes, media_type: str,
                now: datetime) -> Submission:
        digest = hashlib.sha256(evidence).hexdigest()
        started = time.perf_counter()
        rejected = False
        with self._hot.submission(challenge_id, now=now) as tx:
            # 1. The challenge and its device (locked: one submission per device at a time).
            target = tx.target()
            if target is None or (device_id is not None and target.device_id != device_id):
                raise NotFound(f"no challenge {challenge_id!r}")
            if principal is not None:
                principal.require_device_access(target.device_id, "relying-party")
                # 2. A scheme for the media type, before anything is consumed.
                self._check_media_type(media_type)
            # A challenge issued before the device was suspended or decommissioned is void:
            # no challenge is issued to such a device, so none may be answered either.
            if target.lifecycle_state in INACTIVE_STATES:
                raise Conflict(f"device {target.device_id!r} is {target.lifecycle_state}",
                               code="device_inactive")
            # 3. Consume the nonce, exactly once.
            consumed = tx.consume()
            if consumed.outcome is ConsumeOutcome.UNKNOWN:
                raise NotFound(f"no challenge {challenge_id!r}")
            if consumed.outcome is not ConsumeOutcome.CONSUMED:
                refused = self._appraiser.refuse(
                    evidence, media_type=media_type,
                    replayed=consumed.outcome is not ConsumeOutcome.EXPIRED,
                    expected_nonce=consumed.nonce or b"\0", now=now)
                result, ear = refused.result, refused.ear
                attestation_id = tx.record(
                    device_id=target.device_id, outcome=refused.outcome,
                    status=result.status.value,
                    media_type=media_type, evidence_sha256=digest, reasons=refused.reasons,
                    ear=ear, ear_expires_at=refused.ear_expires_at, update_device=False)
                rejected = True
            else:
                assert consumed.nonce is not None
                appraised = self._appraiser.appraise(
                    evidence, media_type=media_type, nonce=consumed.nonce,
                    generation=target.generation, instance_id=target.instance_id,
                    model=target.model, now=now)
                result, ear = appraised.result, appraised.ear
                status = result.status.value
                attestation_id = tx.record(
                    device_id=target.device_id, outcome="appraised", status=status,
                    media_type=media_type, evidence_sha256=digest, reasons=appraised.reasons,
                    ear=ear, ear_expires_at=appraised.ear_expires_at, update_device=True,
                    bound_identity=appraised.bind_identity)
                if target.status != status:
                    tx.enqueue_webhooks(event="device.status_changed", payload=webhook_event(
                        target.device_id, target.status, status, attestation_id, now))
        self._metrics.appraisal_seconds.observe(time.perf_counter() - started)
        if rejected:
            self._metrics.appraisals.labels(result.status.value, "nonce_rejected").inc()
            raise Conflict(result.reasons[0][1], code=result.reasons[0][0],
                           extra={"attestation_id": attestation_id, "ear": ear,
                                  "result": result_to_claims(result)})
        self._metrics.appraisals.labels(result.status.value, "appraised").inc()
        return Submission(attestation_id, result, ear)


#: Challenges kept per process for the event-loop path (about 200 bytes each).
_ISSUED_KEPT = 65_536

