"""The lifecycle coordinator: lifecycle events in, challenges out; Evidence in, results,
postures and status changes out. Transport-neutral: the MQTT bridge and the in-process
simulator both drive it.

It lives in ``transport`` because it composes the service layer
(:class:`~devattest.service.services.attestation.AttestationService` issues challenges and
appraises), the store (``lifecycle_repo``) and the pure lifecycle core, and only the
interface layer may import all three (import-linter layers contract). It holds no
verification logic: appraisal happens in the service, which calls the pure verifier.

Idempotency (MQTT QoS 1 is at-least-once):

* an event carries the device's own event id; a redelivered event is recognised and
  ignored (no second deadline, no second challenge);
* Evidence is keyed on (challenge id, SHA-256 of the Evidence): the first delivery claims an
  evidence receipt, and every redelivery gets the stored result back without reaching the
  service, so it never counts twice and never consumes a second nonce. A submission that was
  appraised before a crash (history holds it) is recognised the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from devattest.errors import (
    DevattestError,
    LifecycleError,
    MalformedLifecycleEvent,
    StoreError,
)
from devattest.lifecycle import (
    DEFAULT_RULES,
    AttestationDue,
    DeviceLifecycle,
    DevicePosture,
    EventKind,
    LifecycleEvent,
    LifecycleRules,
    LifecycleState,
    OperatorAction,
    ResultSummary,
    apply_action,
    apply_event,
    assess,
    parse_event,
    record_result,
)
from devattest.model._json import compact_json
from devattest.model.text import has_control_characters
from devattest.service.auth import Principal
from devattest.service.problems import ApiError, Conflict, NotFound
from devattest.service.services.appraiser import Appraisal, BatchAppraiser
from devattest.store import (
    AttestationRepository,
    DeviceFilter,
    DeviceRepository,
    HistoryFilter,
    LifecycleRepository,
    Store,
    WebhookRepository,
    receipt_key,
)
from devattest.store.batch_repo import BatchRepository, OpenChallenge
from devattest.store.hotpath import INACTIVE_STATES, webhook_event
from devattest.store.lifecycle_repo import (
    DeviceLifecycleRecord,
    LifecycleEventRecord,
    ReceiptState,
)
from devattest.store.models import Challenge, Device

_log = logging.getLogger("devattest.transport.coordinator")

#: The coordinator acts for devices as an internal relying party.
SERVICE_PRINCIPAL = Principal(role="relying-party", via="internal")

#: Lifecycle states mapped onto the inventory's ``devices.lifecycle_state``.
INVENTORY_STATE = {
    LifecycleState.MANUFACTURED: "provisioned",
    LifecycleState.PROVISIONED: "provisioned",
    LifecycleState.ONBOARDED: "active",
    LifecycleState.QUARANTINED: "suspended",
    LifecycleState.DECOMMISSIONED: "decommissioned",
}
_FROM_INVENTORY = {"provisioned": LifecycleState.PROVISIONED, "active": LifecycleState.ONBOARDED,
                   "suspended": LifecycleState.QUARANTINED,
                   "decommissioned": LifecycleState.DECOMMISSIONED}


class AttestationPort(Protocol):
    """What the coordinator needs from the attestation service."""

    def issue_challenge(self, principal: Principal, *, device_id: str, nonce_size: int,
                        now: datetime) -> Challenge: ...

    def check_submission(self, principal: Principal, *, challenge_id: str,
                         media_type: str) -> str: ...

    def submit(self, *, challenge_id: str, device_id: str, evidence: bytes, media_type: str,
               now: datetime) -> Any: ...


@dataclass(frozen=True, slots=True)
class PostureChange:
    """A device's posture or lifecycle state changed."""

    device_id: str
    previous: str
    posture: DevicePosture
    state: LifecycleState
    previous_state: LifecycleState

    def as_message(self) -> dict[str, Any]:
        """The JSON of the status message (MQTT ``.../status``, webhook body)."""
        return {"event": "device.posture_changed", "device_id": self.device_id,
                "previous_posture": self.previous, "posture": self.posture.posture.value,
                "reason": self.posture.reason, "state": self.state.value,
                "previous_state": self.previous_state.value, "stale": self.posture.stale,
                "codes": list(self.posture.codes), "at": self.posture.at.isoformat()}


@dataclass(frozen=True, slots=True)
class IssuedChallenge:
    """A challenge to send to a device."""

    device_id: str
    challenge_id: str
    nonce: bytes
    expires_at: datetime
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What reporting one event did."""

    device_id: str
    event_id: str
    duplicate: bool = False
    challenge: IssuedChallenge | None = None
    changes: tuple[PostureChange, ...] = ()


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    """One Evidence message for :meth:`LifecycleCoordinator.submit_evidence_batch`."""

    device_id: str
    challenge_id: str
    evidence: bytes
    media_type: str


@dataclass(frozen=True, slots=True)
class EvidenceOutcome:
    """What submitting one piece of Evidence did.

    ``message`` is the result message to publish (None when another worker is processing
    the same submission right now); ``duplicate`` is true for a redelivery.
    """

    device_id: str
    challenge_id: str
    message: dict[str, Any] | None
    duplicate: bool = False
    changes: tuple[PostureChange, ...] = ()


#: Decides whether a posture change quarantines the device: returns a reason, or None.
QuarantineHook = Callable[[PostureChange], str | None]


def quarantine_when_untrusted(change: PostureChange) -> str | None:
    """The default quarantine hook: a device whose attestation failed is quarantined."""
    if change.posture.posture.value == "untrusted" and change.state is not \
            LifecycleState.QUARANTINED and change.posture.codes:
        return change.posture.reason
    return None


def _valid_event_id(value: Any) -> bool:
    """A device's ``event_id``: 1-100 characters, no control character (issue 13)."""
    return isinstance(value, str) and 0 < len(value) <= 100 and \
        not has_control_characters(value)


def event_key(device_id: str, client_event_id: str) -> str:
    """The stored id of a device-reported event (unique per device and client id)."""
    return hashlib.sha256(f"{device_id}\0{client_event_id}".encode()).hexdigest()[:40]


class LifecycleCoordinator:
    """Events, challenges, Evidence, results and postures, over the service and the store.

    Args:
        store: the service's store (with the lifecycle tables).
        attestation: the attestation service (challenges and appraisal).
        rules: deadlines and result ages.
        nonce_size: challenge nonce size (32, 48 or 64).
        receipt_lease: how long a worker owns an Evidence receipt before another may take
            it over (a worker that died).
        quarantine_hooks: called on every posture change; a hook that returns a reason
            quarantines the device.
        listeners: called on every posture change after it is committed (the MQTT bridge
            publishes ``.../status``). Webhooks are queued in the same transaction.
        appraiser: enables the batch paths (:meth:`submit_evidence_batch`,
            :meth:`report_events`): many messages per transaction, appraised with the pure
            core. Without it those methods process one message at a time.
    """

    def __init__(self, store: Store, attestation: AttestationPort, *,
                 rules: LifecycleRules = DEFAULT_RULES, nonce_size: int = 32,
                 receipt_lease: timedelta = timedelta(seconds=30),
                 quarantine_hooks: Sequence[QuarantineHook] = (),
                 listeners: Sequence[Callable[[PostureChange], None]] = (),
                 appraiser: BatchAppraiser | None = None) -> None:
        self.store = store
        self.appraiser = appraiser
        self.attestation = attestation
        self.rules = rules
        self._nonce_size = nonce_size
        self._lease = receipt_lease
        self._hooks = list(quarantine_hooks)
        self._listeners = list(listeners)
        self._listener_lock = threading.Lock()

    def set_quarantine_hooks(self, hooks: Sequence[QuarantineHook]) -> None:
        """Replace the quarantine hooks (the first one that returns a reason wins)."""
        self._hooks = list(hooks)

    def add_listener(self, listener: Callable[[PostureChange], None]) -> None:
        """Also call ``listener`` on every posture change."""
        with self._listener_lock:
            self._listeners.append(listener)

    # -- inventory ---------------------------------------------------------------------------
    def register_device(self, device_id: str, *, now: datetime, model: str = "",
                        owner: str = "", instance_id: str | None = None,
                        firmware_version: str = "",
                        state: LifecycleState = LifecycleState.ONBOARDED) -> None:
        """Add a device to the inventory with its lifecycle record (idempotent: an existing
        device keeps its history; its facts are updated).

        Raises:
            StoreError: the database failed.
        """
        with self.store.write() as s:
            devices, repo = DeviceRepository(s), LifecycleRepository(s)
            device = devices.get(device_id)
            if device is None:
                devices.create(device_id=device_id, now=now, model=model, owner=owner,
                               lifecycle_state=INVENTORY_STATE[state], instance_id=instance_id)
            else:
                devices.update(device, now=now, model=model, owner=owner,
                               lifecycle_state=INVENTORY_STATE[state], instance_id=instance_id)
            rec = repo.get(device_id)
            if rec is None:
                repo.create(device_id=device_id, state=state.value, now=now,
                            firmware_version=firmware_version)
            else:
                rec.state = state.value
                rec.firmware_version = firmware_version
                rec.updated_at = now

    def register_many(self, devices: Sequence[Mapping[str, Any]], *, now: datetime,
                      batch: int = 500) -> None:
        """Add many new devices (``device_id``, ``model``, ``owner``, ``instance_id``,
        ``firmware_version``; state onboarded), ``batch`` per transaction. For fleet
        provisioning; the devices must not exist yet.

        Raises:
            StoreError: the database failed (e.g. a device already exists).
        """
        state = LifecycleState.ONBOARDED
        for i in range(0, len(devices), batch):
            with self.store.write() as s:
                devs, repo = DeviceRepository(s), LifecycleRepository(s)
                for d in devices[i:i + batch]:
                    devs.create(device_id=d["device_id"], now=now, model=d.get("model", ""),
                                owner=d.get("owner", ""), lifecycle_state=INVENTORY_STATE[state],
                                instance_id=d.get("instance_id"))
                    repo.create(device_id=d["device_id"], state=state.value, now=now,
                                firmware_version=d.get("firmware_version", ""))

    # -- loading and saving the pure record --------------------------------------------------
    def _load(self, s: Any, device_id: str, *, lock: bool
              ) -> tuple[Device, DeviceLifecycleRecord, DeviceLifecycle] | None:
        devices, repo = DeviceRepository(s), LifecycleRepository(s)
        device = devices.lock(device_id) if lock else devices.get(device_id)
        if device is None:
            return None
        rec = repo.get(device_id)
        if rec is None:
            rec = repo.create(device_id=device_id, now=device.updated_at,
                              state=_FROM_INVENTORY.get(device.lifecycle_state,
                                                        LifecycleState.PROVISIONED).value)
        return device, rec, _to_pure(device, rec, repo.pending_events(device_id))

    def _save(self, s: Any, device: Device, rec: DeviceLifecycleRecord,
              before: DeviceLifecycle, after: DeviceLifecycle, *, now: datetime,
              satisfied_by: str | None = None) -> PostureChange | None:
        repo = LifecycleRepository(s)
        gone = {d.event_id for d in before.pending} - {d.event_id for d in after.pending}
        repo.satisfy(device_id=device.id, event_ids=sorted(gone), challenge_id=satisfied_by,
                     now=now)
        if after.owner != device.owner or INVENTORY_STATE[after.state] != \
                device.lifecycle_state:
            DeviceRepository(s).update(device, now=now, owner=after.owner,
                                       lifecycle_state=INVENTORY_STATE[after.state])
        rec.state = after.state.value
        rec.state_reason = after.state_reason
        rec.firmware_version = after.firmware_version
        if after.latest is not None and after.latest != before.latest:
            rec.latest_status = after.latest.status
            rec.latest_at = after.latest.at
            rec.latest_requested_at = after.latest.requested_at
            rec.latest_reasons = [list(r) for r in after.latest.reasons]
            rec.latest_challenge_id = after.latest.challenge_id
        rec.next_deadline = min((d.deadline for d in after.pending), default=None)
        posture = assess(after, now=now, rules=self.rules)
        previous, previous_state = rec.posture, before.state
        rec.posture = posture.posture.value
        rec.posture_reason = posture.reason
        rec.updated_at = now
        if previous == posture.posture.value and previous_state is after.state:
            return None
        change = PostureChange(device.id, previous, posture, after.state, previous_state)
        WebhookRepository(s).enqueue(event="device.posture_changed", now=now,
                                     payload=_canonical(change.as_message()))
        return change

    def _after_commit(self, changes: Sequence[PostureChange], *, now: datetime,
                      hooks: bool = False) -> tuple[PostureChange, ...]:
        out = list(changes)
        # Quarantine hooks judge attestation results only (not an operator's release, which
        # would otherwise be undone at once while the last result is still the failed one).
        for change in changes if hooks else ():
            for hook in self._hooks:
                try:
                    reason = hook(change)
                except Exception:  # a relying party's hook must not break the pipeline
                    _log.exception("quarantine hook failed for %s", change.device_id)
                    continue
                if reason:
                    extra = self.quarantine(change.device_id, reason=reason, now=now,
                                            _notify=False)
                    if extra is not None:
                        out.append(extra)
                    break
        with self._listener_lock:
            listeners = list(self._listeners)
        for change in out:
            for listener in listeners:
                try:
                    listener(change)
                except Exception:
                    _log.exception("posture listener failed for %s", change.device_id)
        return tuple(out)

    # -- events ------------------------------------------------------------------------------
    def report_event(self, device_id: str, message: Mapping[str, Any], *, now: datetime,
                     source: str = "device") -> EventOutcome:
        """Record a lifecycle event reported by a device and issue the challenge it calls for.

        ``message`` is ``{"event_id": "...", "kind": "...", "details": {...}}`` (the
        device's ``event_id`` makes redelivery idempotent; one is made up when absent).

        Raises:
            MalformedLifecycleEvent: the message is malformed.
            LifecycleTransitionRefused: the device's state does not accept the event.
            LifecycleError: the device is not in the inventory.
            StoreError: the database failed.
        """
        client_id = message.get("event_id") if isinstance(message, Mapping) else None
        if client_id is not None and not _valid_event_id(client_id):
            raise MalformedLifecycleEvent("event_id must be a string of 1-100 characters "
                                          "without control characters")
        if client_id is None:
            client_id = f"{source}-{now.timestamp():.6f}-{id(message)}"
        eid = event_key(device_id, client_id)
        still_due = False
        reuse: OpenChallenge | None = None
        change: PostureChange | None = None
        event: LifecycleEvent | None = None
        with self.store.write() as s:
            loaded = self._load(s, device_id, lock=True)
            if loaded is None:
                raise LifecycleError(f"no device {device_id!r} in the inventory")
            device, rec, before = loaded
            repo = LifecycleRepository(s)
            seen = repo.find_event(eid)
            if seen is not None:
                still_due = seen.deadline is not None and seen.satisfied_at is None
                if still_due and device.lifecycle_state not in INACTIVE_STATES:
                    reuse = BatchRepository(s.connection()).outstanding_challenges(
                        [device_id], now=now).get(device_id)
            else:
                event = parse_event(message, device_id=device_id, event_id=eid,
                                    received_at=now)
                after = apply_event(before, event, rules=self.rules)
                due = after.pending[-1] if after.pending and \
                    after.pending[-1].event_id == eid else None
                repo.add_event(event_id=eid, device_id=device_id, kind=event.kind.value,
                               details={**event.details, "client_event_id": client_id},
                               at=now, deadline=due.deadline if due else None, source=source)
                change = self._save(s, device, rec, before, after, now=now)
        if event is None:
            # A repeated event: no second deadline. While it is still unanswered, the device
            # may have lost its challenge (a broker restart): it gets its open challenge
            # again, or a fresh one (see _challenge_again).
            again = None
            if reuse is not None:
                again = IssuedChallenge(device_id, reuse.challenge_id, reuse.nonce,
                                        reuse.expires_at, eid)
            elif still_due:
                again = self.request_attestation(device_id, now=now, event_id=eid)
            return EventOutcome(device_id, eid, duplicate=True, challenge=again)
        challenge = None
        if event.kind is not EventKind.DECOMMISSION:
            challenge = self.request_attestation(device_id, now=now, event_id=eid)
        changes = self._after_commit([change] if change else [], now=now)
        return EventOutcome(device_id, eid, challenge=challenge, changes=changes)

    def request_attestation(self, device_id: str, *, now: datetime,
                            event_id: str | None = None) -> IssuedChallenge | None:
        """Issue a challenge for ``device_id`` (None when the service refuses: the device
        is suspended/quarantined, decommissioned or unknown)."""
        try:
            ch = self.attestation.issue_challenge(SERVICE_PRINCIPAL, device_id=device_id,
                                                  nonce_size=self._nonce_size, now=now)
        except ApiError as exc:
            _log.info("no challenge for %s: %s", device_id, exc.message)
            return None
        return IssuedChallenge(device_id, ch.id, ch.nonce, ch.expires_at, event_id)

    # -- evidence ----------------------------------------------------------------------------
    def submit_evidence(self, device_id: str, *, challenge_id: str, evidence: bytes,
                        media_type: str, now: datetime) -> EvidenceOutcome:
        """Appraise Evidence for a challenge, exactly once per (challenge, Evidence).

        ``device_id`` is the device the Evidence arrived for (the MQTT topic); a challenge
        issued to another device is refused without consuming its nonce.

        Raises:
            StoreError: the database failed (the receipt is released so that a redelivery
                is processed again).
        """
        key = receipt_key(challenge_id, evidence)
        digest = hashlib.sha256(evidence).hexdigest()
        with self.store.write() as s:
            claim = LifecycleRepository(s).claim_receipt(
                key=key, challenge_id=challenge_id[:64], device_id=device_id[:128],
                evidence_sha256=digest, now=now, lease=self._lease)
        if claim.state is ReceiptState.DONE:
            return EvidenceOutcome(device_id, challenge_id,
                                   {**(claim.result or {}), "duplicate": True}, duplicate=True)
        if claim.state is ReceiptState.BUSY:
            return EvidenceOutcome(device_id, challenge_id, None, duplicate=True)
        try:
            message, summary = self._appraise(device_id, challenge_id, evidence, media_type,
                                              digest, now, recheck=claim.taken_over)
        except Exception:
            with self.store.write() as s:
                LifecycleRepository(s).release_receipt(key)
            raise
        changes: list[PostureChange] = []
        with self.store.write() as s:
            if summary is not None:
                loaded = self._load(s, device_id, lock=True)
                if loaded is not None:
                    device, rec, before = loaded
                    issued = _challenge_time(s, challenge_id)
                    if issued is not None:
                        summary = dataclasses.replace(summary, requested_at=issued)
                    after = record_result(before, summary)
                    change = self._save(s, device, rec, before, after, now=now,
                                        satisfied_by=challenge_id)
                    if change is not None:
                        changes.append(change)
                    message["posture"] = rec.posture
                    message["posture_reason"] = rec.posture_reason
            LifecycleRepository(s).complete_receipt(key=key, result=message, now=now)
        return EvidenceOutcome(device_id, challenge_id, message,
                               changes=self._after_commit(changes, now=now, hooks=True))

    def _appraise(self, device_id: str, challenge_id: str, evidence: bytes, media_type: str,
                  digest: str, now: datetime, *, recheck: bool
                  ) -> tuple[dict[str, Any], ResultSummary | None]:
        base: dict[str, Any] = {"challenge_id": challenge_id, "device_id": device_id}
        try:
            owner = self.attestation.check_submission(SERVICE_PRINCIPAL,
                                                      challenge_id=challenge_id,
                                                      media_type=media_type)
        except ApiError as exc:
            return {**base, "error": {"code": exc.error_code, "message": exc.message}}, None
        if owner != device_id:
            return {**base, "error": {"code": "challenge_for_another_device",
                                      "message": "the challenge was issued to another device"}
                    }, None
        # ``requested_at`` (when the challenge was issued) is filled in when the result is
        # recorded, in the same transaction; ``now`` is a placeholder.
        requested_at = now
        prior = None
        if recheck:
            with self.store.read() as s:
                prior = _already_appraised(s, device_id, challenge_id, digest)
        if prior is not None:
            # Appraised before a crash, receipt not completed: answer from history.
            reasons = tuple((r.get("code", ""), r.get("message", "")) for r in prior.reasons)
            return ({**base, "status": prior.status, "ear": prior.ear,
                     "attestation_id": prior.id,
                     "reasons": [{"code": c, "message": m} for c, m in reasons]},
                    ResultSummary(prior.status, at=prior.created_at, requested_at=requested_at,
                                  reasons=reasons, challenge_id=challenge_id))
        try:
            sub = self.attestation.submit(challenge_id=challenge_id, device_id=device_id,
                                          evidence=evidence, media_type=media_type, now=now)
        except Conflict as exc:
            # A replayed or expired nonce: recorded by the service as contraindicated.
            reasons = ((exc.error_code, exc.message),)
            return ({**base, "status": "contraindicated", "ear": exc.extra.get("ear"),
                     "attestation_id": exc.extra.get("attestation_id"),
                     "reasons": [{"code": exc.error_code, "message": exc.message}]},
                    ResultSummary("contraindicated", at=now, requested_at=requested_at,
                                  reasons=reasons, challenge_id=challenge_id))
        except ApiError as exc:
            return {**base, "error": {"code": exc.error_code, "message": exc.message}}, None
        result = sub.result
        reasons = tuple(result.reasons)
        return ({**base, "status": result.status.value, "ear": sub.ear,
                 "attestation_id": sub.attestation_id,
                 "reasons": [{"code": c, "message": m} for c, m in reasons]},
                ResultSummary(result.status.value, at=now, requested_at=requested_at,
                              reasons=reasons, challenge_id=challenge_id))

    # -- batches ----------------------------------------------------------------------------
    def submit_evidence_batch(self, items: Sequence[EvidenceItem], *, now: datetime
                              ) -> list[EvidenceOutcome]:
        """Appraise many Evidence messages in one write transaction (one outcome per item,
        in order), with the same guarantees as :meth:`submit_evidence`:

        1. claim every receipt (one multi-row ``INSERT ... ON CONFLICT DO NOTHING``): a
           redelivery whose receipt is done is answered from it (``duplicate``); one whose
           receipt another worker holds goes the one-at-a-time way after this batch; a
           repeat inside the batch gets the first one's answer;
        2. read every challenge with its device, the devices locked in id order; refuse an
           unknown challenge, an unsupported media type, or a challenge issued to another
           device, before anything is consumed;
        3. consume the nonces (one ``UPDATE ... RETURNING``); appraise each consumed one with
           the pure core and sign the EAR; a replayed or expired nonce gets the signed
           contraindicated result (recorded, as the service records it);
        4. append the history rows, set the devices' results, record the results in the
           lifecycle records, queue webhooks, complete the receipts: all in the same
           transaction, so a crash keeps all of it or none (the redelivery then starts over).

        Without an appraiser this is :meth:`submit_evidence` per item.

        Raises:
            StoreError: the database failed (nothing of the batch was committed).
        """
        if self.appraiser is None:
            return [self.submit_evidence(i.device_id, challenge_id=i.challenge_id,
                                         evidence=i.evidence, media_type=i.media_type, now=now)
                    for i in items]
        keys = [receipt_key(i.challenge_id, i.evidence) for i in items]
        digests = [hashlib.sha256(i.evidence).hexdigest() for i in items]
        first: dict[str, int] = {}
        for idx, k in enumerate(keys):
            first.setdefault(k, idx)
        messages: dict[int, dict[str, Any]] = {}
        done_before: set[int] = set()
        fallback: set[int] = set()
        changes: dict[int, PostureChange] = {}
        with self.store.write() as s:
            repo = BatchRepository(s.connection())
            unique = sorted(first.values())
            won = repo.claim_receipts(
                [{"key": keys[i], "challenge_id": items[i].challenge_id[:64],
                  "device_id": items[i].device_id[:128], "evidence_sha256": digests[i]}
                 for i in unique], now=now, lease_until=now + self._lease)
            held = [i for i in unique if keys[i] not in won]
            existing = repo.existing_receipts([keys[i] for i in held]) if held else {}
            for i in held:
                r = existing.get(keys[i])
                if r is not None and r.state == "done":
                    messages[i] = {**(r.result or {}), "duplicate": True}
                    done_before.add(i)
                else:  # held by a one-at-a-time worker (or its lease expired): that path
                    fallback.add(i)
            work = [i for i in unique if keys[i] in won]
            self._appraise_batch(repo, items, work, keys, digests, messages, changes, now=now)
        out: list[EvidenceOutcome] = []
        for idx, it in enumerate(items):
            src = first[keys[idx]]
            if src in fallback:
                out.append(self.submit_evidence(it.device_id, challenge_id=it.challenge_id,
                                                evidence=it.evidence,
                                                media_type=it.media_type, now=now))
            elif src != idx or src in done_before:
                out.append(EvidenceOutcome(it.device_id, it.challenge_id,
                                           {**messages[src], "duplicate": True},
                                           duplicate=True))
            else:
                change = changes.get(idx)
                published = self._after_commit([change], now=now, hooks=True) \
                    if change is not None else ()
                out.append(EvidenceOutcome(it.device_id, it.challenge_id, messages[idx],
                                           changes=published))
        return out

    def _appraise_batch(self, repo: BatchRepository, items: Sequence[EvidenceItem],
                        work: Sequence[int], keys: Sequence[str], digests: Sequence[str],
                        messages: dict[int, dict[str, Any]],
                        changes: dict[int, PostureChange], *, now: datetime) -> None:
        appraiser = self.appraiser
        assert appraiser is not None
        # 2. The challenges and their devices (locked), checked before anything is consumed.
        targets = repo.evidence_targets([items[i].challenge_id for i in work])
        valid: list[int] = []
        for i in work:
            it = items[i]
            base = {"challenge_id": it.challenge_id, "device_id": it.device_id}
            target = targets.get(it.challenge_id)
            try:
                if target is None:
                    raise NotFound(f"no challenge {it.challenge_id!r}")
                appraiser.check_media_type(it.media_type)
            except ApiError as exc:
                messages[i] = {**base, "error": {"code": exc.error_code,
                                                 "message": exc.message}}
                continue
            if target.device_id != it.device_id:
                messages[i] = {**base, "error": {
                    "code": "challenge_for_another_device",
                    "message": "the challenge was issued to another device"}}
                continue
            if target.lifecycle_state in INACTIVE_STATES:
                # As the HTTP path: a challenge issued before the device was suspended
                # (quarantined) or decommissioned is void; nothing is consumed.
                messages[i] = {**base, "error": {
                    "code": "device_inactive",
                    "message": f"device {target.device_id!r} is {target.lifecycle_state}"}}
                continue
            valid.append(i)
        # 3. Consume the nonces, exactly once each; appraise (pure core) and sign.
        consumed, refused = repo.consume_nonces([items[i].challenge_id for i in valid],
                                                now=now)
        used: set[str] = set()
        appraised: list[tuple[int, Appraisal]] = []
        # Device binding, in submission order as the single path would: once an item binds
        # an unbound device, the device's later items in this batch are held to that
        # identity (step 2.5), and only the first binding is recorded.
        bound: dict[str, str | None] = {}
        for i in valid:
            it = items[i]
            target = targets[it.challenge_id]
            nonce = consumed.get(it.challenge_id)
            if nonce is not None and it.challenge_id not in used:
                used.add(it.challenge_id)
                identity = bound.get(target.device_id, target.instance_id)
                a = appraiser.appraise(it.evidence, media_type=it.media_type, nonce=nonce,
                                       generation=target.generation,
                                       instance_id=identity, model=target.model,
                                       now=now)
                if a.bind_identity is not None:
                    bound[target.device_id] = a.bind_identity
            elif nonce is not None or it.challenge_id in refused:
                # A second submission for one challenge in this batch, or a nonce used or
                # expired before: recorded as a signed contraindicated result.
                replayed, expected = (True, nonce) if nonce is not None else \
                    refused[it.challenge_id]
                a = appraiser.refuse(it.evidence, media_type=it.media_type,
                                     replayed=replayed, expected_nonce=expected, now=now)
            else:  # the challenge vanished (pruned) since it was read
                messages[i] = {"challenge_id": it.challenge_id, "device_id": it.device_id,
                               "error": {"code": NotFound.code,
                                         "message": f"no challenge {it.challenge_id!r}"}}
                continue
            appraised.append((i, a))
        # 4. History, device results, lifecycle records and webhooks, set-based.
        ids = repo.insert_history([
            {"device_id": targets[items[i].challenge_id].device_id,
             "challenge_id": items[i].challenge_id, "outcome": a.outcome, "status": a.status,
             "media_type": items[i].media_type[:200], "evidence_sha256": digests[i],
             "reasons": a.reasons, "ear": a.ear, "ear_expires_at": a.ear_expires_at,
             "created_at": now, "bound_identity": a.bind_identity} for i, a in appraised])
        tracked = self._track(repo, {t.device_id: (t.model, t.owner, t.lifecycle_state)
                                     for t in (targets[items[i].challenge_id]
                                               for i, _ in appraised)}, now=now)
        status = {t.device_id: t.status for t in targets.values()}
        results: dict[str, tuple[str, str, int, str | None]] = {}
        hooks: list[tuple[str, str]] = []
        satisfied: list[tuple[str, str | None]] = []
        for (i, a), attestation_id in zip(appraised, ids, strict=True):
            it = items[i]
            target = targets[it.challenge_id]
            dev = target.device_id
            refusal = a.outcome != "appraised"
            reasons = a.reasons[:1] if refusal else a.reasons
            message: dict[str, Any] = {"challenge_id": it.challenge_id, "device_id": dev,
                                       "status": a.status, "ear": a.ear,
                                       "attestation_id": attestation_id, "reasons": reasons}
            if not refusal:
                if status[dev] != a.status:
                    hooks.append(("device.status_changed", webhook_event(
                        dev, status[dev], a.status, attestation_id, now)))
                status[dev] = a.status
                results[dev] = (dev, a.status, attestation_id, bound.get(dev))
            summary = ResultSummary(a.status, at=now, requested_at=target.issued_at,
                                    reasons=tuple((r["code"], r["message"]) for r in reasons),
                                    challenge_id=it.challenge_id)
            tr = tracked[dev]
            change = self._step(tr, record_result(tr.pure, summary), now=now,
                                satisfied_by=it.challenge_id, satisfied=satisfied)
            if change is not None:
                changes[i] = change
                hooks.append(("device.posture_changed", _canonical(change.as_message())))
            message["posture"] = tr.rec["posture"]
            message["posture_reason"] = tr.rec["posture_reason"]
            messages[i] = message
        with repo.pipelined():  # one round trip for the batch's writes
            repo.set_device_results(list(results.values()), now=now)
            self._write_tracked(repo, tracked, satisfied, now=now)
            repo.enqueue_webhooks(hooks, now=now)
            repo.complete_receipts([(keys[i], messages[i]) for i in work], now=now)

    def report_events(self, items: Sequence[tuple[str, Mapping[str, Any]]], *, now: datetime,
                      source: str = "device") -> list[EventOutcome | DevattestError]:
        """Record many lifecycle events and issue the challenges they call for, in one write
        transaction (one outcome per item, in order; a refused event's outcome is its error,
        as :meth:`report_event` would raise it). Same rules as :meth:`report_event`: a
        repeated event adds no second deadline and, while unanswered, gets a fresh
        challenge; a suspended or decommissioned device gets none.

        Without an appraiser this is :meth:`report_event` per item.

        Raises:
            StoreError: the database failed (nothing of the batch was committed).
        """
        out: list[EventOutcome | DevattestError | None] = [None] * len(items)
        if self.appraiser is None:
            for idx, (device_id, message) in enumerate(items):
                try:
                    out[idx] = self.report_event(device_id, message, now=now, source=source)
                except StoreError:
                    raise
                except DevattestError as exc:
                    out[idx] = exc
            return [o for o in out if o is not None]
        eids: list[tuple[str, str] | None] = []
        for idx, (device_id, message) in enumerate(items):
            client_id = message.get("event_id") if isinstance(message, Mapping) else None
            if client_id is not None and not _valid_event_id(client_id):
                out[idx] = MalformedLifecycleEvent("event_id must be a string of 1-100 "
                                                   "characters without control characters")
                eids.append(None)
                continue
            if client_id is None:
                client_id = f"{source}-{now.timestamp():.6f}-{id(message)}"
            eids.append((event_key(device_id, client_id), client_id))
        challenges: list[dict[str, Any]] = []
        issued: dict[int, IssuedChallenge | None] = {}
        changes: dict[int, PostureChange] = {}
        duplicate: set[int] = set()
        with self.store.write() as s:
            repo = BatchRepository(s.connection())
            wanted = sorted({items[i][0] for i, e in enumerate(eids) if e is not None})
            rows = repo.lock_devices(wanted)
            tracked = self._track(repo, {d: (r.model, r.owner, r.lifecycle_state)
                                         for d, r in rows.items()}, now=now)
            seen = repo.find_events([e[0] for e in eids if e is not None])
            recorded: dict[str, bool] = {}  # recorded in this batch -> still due
            repeated: list[tuple[int, _Tracked, str]] = []
            new_events: list[dict[str, Any]] = []
            satisfied: list[tuple[str, str | None]] = []
            hooks: list[tuple[str, str]] = []
            for idx, ((device_id, message), e) in enumerate(zip(items, eids, strict=True)):
                if e is None:
                    continue
                eid, client_id = e
                tr = tracked.get(device_id)
                if tr is None:
                    out[idx] = LifecycleError(f"no device {device_id!r} in the inventory")
                    continue
                if eid in seen or eid in recorded:
                    row = seen.get(eid)
                    still_due = recorded[eid] if row is None else \
                        (row.deadline is not None and row.satisfied_at is None)
                    # A repeated event: no second deadline; while still unanswered, the
                    # challenge again (it may have been lost in a broker restart), below.
                    if still_due:
                        repeated.append((idx, tr, eid))
                    duplicate.add(idx)
                    continue
                try:
                    event = parse_event(message, device_id=device_id, event_id=eid,
                                        received_at=now)
                    after = apply_event(tr.pure, event, rules=self.rules)
                except DevattestError as exc:
                    out[idx] = exc
                    continue
                due = after.pending[-1] if after.pending and \
                    after.pending[-1].event_id == eid else None
                new_events.append({"event_id": eid, "device_id": device_id,
                                   "kind": event.kind.value,
                                   "details": {**event.details, "client_event_id": client_id},
                                   "source": source, "at": now,
                                   "deadline": due.deadline if due else None})
                recorded[eid] = due is not None
                change = self._step(tr, after, now=now, satisfied_by=None, satisfied=satisfied)
                if change is not None:
                    changes[idx] = change
                    hooks.append(("device.posture_changed", _canonical(change.as_message())))
                issued[idx] = None if event.kind is EventKind.DECOMMISSION else \
                    self._batch_challenge(tr, eid, now, challenges)
            self._challenge_again(repo, repeated, issued, challenges, now=now)
            with repo.pipelined():  # one round trip for the batch's writes
                repo.add_events(new_events)
                self._write_tracked(repo, tracked, satisfied, now=now)
                repo.issue_challenges(challenges)
                repo.enqueue_webhooks(hooks, now=now)
        assert self.appraiser is not None
        self.appraiser.challenge_issued(len(challenges))
        for idx, e in enumerate(eids):
            if out[idx] is not None or e is None:
                continue
            change = changes.get(idx)
            published = self._after_commit([change], now=now) if change is not None else ()
            out[idx] = EventOutcome(items[idx][0], e[0], duplicate=idx in duplicate,
                                    challenge=issued.get(idx), changes=published)
        return [o for o in out if o is not None]

    def _challenge_again(self, repo: BatchRepository,
                         repeated: Sequence[tuple[int, _Tracked, str]],
                         issued: dict[int, IssuedChallenge | None],
                         rows: list[dict[str, Any]], *, now: datetime) -> None:
        """Answer repeated events that are still due with the device's open challenge: the
        one issued in this batch, else its newest unconsumed one with at least half of its
        lifetime left, else a fresh one. A device whose answer is slow to come back (a
        wave that outlasts its resend interval) repeats its event; answering every repeat
        with a new nonce had it sign, and the Verifier appraise, once per repeat."""
        if not repeated:
            return
        open_ = {r["device_id"]: OpenChallenge(r["id"], r["nonce"], r["expires_at"])
                 for r in rows}  # issued in this batch
        open_.update(repo.outstanding_challenges(
            [tr.device_id for _, tr, _ in repeated if tr.device_id not in open_], now=now))
        for idx, tr, eid in repeated:
            ch = open_.get(tr.device_id)
            if ch is None:
                fresh = issued[idx] = self._batch_challenge(tr, eid, now, rows)
                if fresh is not None:
                    open_[tr.device_id] = OpenChallenge(fresh.challenge_id, fresh.nonce,
                                                        fresh.expires_at)
            elif tr.inventory in INACTIVE_STATES:
                issued[idx] = None  # as _batch_challenge: a suspended device gets none
            else:
                issued[idx] = IssuedChallenge(tr.device_id, ch.challenge_id, ch.nonce,
                                              ch.expires_at, eid)

    def _batch_challenge(self, tr: _Tracked, event_id: str, now: datetime,
                         rows: list[dict[str, Any]]) -> IssuedChallenge | None:
        """A challenge for a tracked device (None when it is suspended or decommissioned:
        the service would refuse it too); its row is inserted with the batch."""
        assert self.appraiser is not None
        if tr.inventory in INACTIVE_STATES:
            _log.info("no challenge for %s: device %s", tr.device_id, tr.inventory)
            return None
        ch = IssuedChallenge(tr.device_id, secrets.token_hex(16),
                             secrets.token_bytes(self._nonce_size),
                             now + self.appraiser.challenge_ttl, event_id)
        rows.append({"id": ch.challenge_id, "device_id": ch.device_id, "nonce": ch.nonce,
                     "created_at": now, "expires_at": ch.expires_at})
        return ch

    def _track(self, repo: BatchRepository, devices: Mapping[str, tuple[str, str, str]], *,
               now: datetime) -> dict[str, _Tracked]:
        """The lifecycle of each (locked) device: ``device_id -> (model, owner, inventory
        state)``; a missing lifecycle record is created, as :meth:`_load` does."""
        ids = sorted(devices)
        recs = repo.lifecycle_records(ids)
        missing = [d for d in ids if d not in recs]
        for d in missing:
            recs[d] = {"state": _FROM_INVENTORY.get(devices[d][2],
                                                    LifecycleState.PROVISIONED).value,
                       "state_reason": "", "firmware_version": "", "latest_status": None,
                       "latest_at": None, "latest_requested_at": None, "latest_reasons": [],
                       "latest_challenge_id": None, "next_deadline": None,
                       "posture": "unknown", "posture_reason": "", "updated_at": now}
        repo.create_lifecycle_records([{"device_id": d, **recs[d]} for d in missing])
        pending = repo.pending_events(ids)
        out: dict[str, _Tracked] = {}
        for d in ids:
            model, owner, inventory = devices[d]
            out[d] = _Tracked(d, owner, inventory, recs[d],
                              _pure_of(d, model, owner, recs[d], pending.get(d, [])))
        return out

    def _step(self, tr: _Tracked, after: DeviceLifecycle, *, now: datetime,
              satisfied_by: str | None, satisfied: list[tuple[str, str | None]]
              ) -> PostureChange | None:
        """:meth:`_save` on a tracked device, in memory (written by :meth:`_write_tracked`)."""
        before = tr.pure
        gone = {d.event_id for d in before.pending} - {d.event_id for d in after.pending}
        satisfied.extend((e, satisfied_by) for e in sorted(gone))
        if after.owner != tr.owner or INVENTORY_STATE[after.state] != tr.inventory:
            tr.owner, tr.inventory = after.owner, INVENTORY_STATE[after.state]
            tr.facts_changed = True
        rec = tr.rec
        rec["state"] = after.state.value
        rec["state_reason"] = after.state_reason
        rec["firmware_version"] = after.firmware_version
        if after.latest is not None and after.latest != before.latest:
            rec["latest_status"] = after.latest.status
            rec["latest_at"] = after.latest.at
            rec["latest_requested_at"] = after.latest.requested_at
            rec["latest_reasons"] = [list(r) for r in after.latest.reasons]
            rec["latest_challenge_id"] = after.latest.challenge_id
        rec["next_deadline"] = min((d.deadline for d in after.pending), default=None)
        posture = assess(after, now=now, rules=self.rules)
        previous, previous_state = rec["posture"], before.state
        rec["posture"] = posture.posture.value
        rec["posture_reason"] = posture.reason
        rec["updated_at"] = now
        tr.pure = after
        tr.changed = True
        if previous == posture.posture.value and previous_state is after.state:
            return None
        return PostureChange(tr.device_id, previous, posture, after.state, previous_state)

    @staticmethod
    def _write_tracked(repo: BatchRepository, tracked: Mapping[str, _Tracked],
                       satisfied: Sequence[tuple[str, str | None]], *, now: datetime) -> None:
        repo.satisfy_events(satisfied, now=now)
        repo.save_lifecycle([{"device_id": d, **t.rec} for d, t in tracked.items()
                             if t.changed])
        repo.set_device_facts([(d, t.owner, t.inventory) for d, t in tracked.items()
                               if t.facts_changed], now=now)

    # -- operator actions, sweeps and views --------------------------------------------------
    def quarantine(self, device_id: str, *, reason: str, now: datetime,
                   _notify: bool = True) -> PostureChange | None:
        """Move a device to quarantined (the quarantine hook, or an operator).

        Returns the posture change (None if the device is unknown or already quarantined).
        """
        return self._action(device_id, OperatorAction.QUARANTINE, reason=reason, now=now,
                            notify=_notify)

    def release(self, device_id: str, *, now: datetime) -> PostureChange | None:
        """Release a quarantined device (an operator decision)."""
        return self._action(device_id, OperatorAction.RELEASE, reason="", now=now,
                            notify=True)

    def _action(self, device_id: str, action: OperatorAction, *, reason: str, now: datetime,
                notify: bool) -> PostureChange | None:
        with self.store.write() as s:
            loaded = self._load(s, device_id, lock=True)
            if loaded is None:
                return None
            device, rec, before = loaded
            try:
                after = apply_action(before, action, reason=reason)
            except LifecycleError:
                return None
            change = self._save(s, device, rec, before, after, now=now)
        if change is not None and notify:
            self._after_commit([change], now=now)
        return change

    def sweep_overdue(self, *, now: datetime, limit: int = 1000) -> tuple[PostureChange, ...]:
        """Re-assess devices whose deadline passed; returns (and publishes) the changes."""
        with self.store.read() as s:
            ids = LifecycleRepository(s).due_before(now, limit=limit)
        changes: list[PostureChange] = []
        for device_id in ids:
            with self.store.write() as s:
                loaded = self._load(s, device_id, lock=True)
                if loaded is None:
                    continue
                device, rec, current = loaded
                change = self._save(s, device, rec, current, current, now=now)
                if change is not None:
                    changes.append(change)
        return self._after_commit(changes, now=now)

    def device(self, device_id: str) -> DeviceLifecycle | None:
        """The lifecycle record of one device."""
        with self.store.read() as s:
            loaded = self._load(s, device_id, lock=False)
        return None if loaded is None else loaded[2]

    def posture(self, device_id: str, *, now: datetime) -> DevicePosture | None:
        """The posture of one device at ``now``."""
        d = self.device(device_id)
        return None if d is None else assess(d, now=now, rules=self.rules)

    def fleet(self, *, now: datetime, page: int = 2000
              ) -> list[tuple[DeviceLifecycle, DevicePosture]]:
        """Every device with its posture at ``now`` (for aggregates and tables)."""
        out: list[tuple[DeviceLifecycle, DevicePosture]] = []
        after: str | None = None
        while True:
            with self.store.read() as s:
                devices = DeviceRepository(s).search(_ALL, after=after, limit=page)
                if not devices:
                    break
                ids = [d.id for d in devices]
                repo = LifecycleRepository(s)
                recs = repo.records_for(ids)
                pending = repo.pending_events_for(ids)
            for dev in devices:
                rec = recs.get(dev.id)
                if rec is None:
                    continue
                pure = _to_pure(dev, rec, pending.get(dev.id, []))
                out.append((pure, assess(pure, now=now, rules=self.rules)))
            after = devices[-1].id
        return out


@dataclass(slots=True)
class _Tracked:
    """One device's lifecycle inside a batch transaction (its device row is locked)."""

    device_id: str
    owner: str
    inventory: str
    rec: dict[str, Any]
    pure: DeviceLifecycle
    changed: bool = False
    facts_changed: bool = False


def _canonical(message: Mapping[str, Any]) -> str:
    return compact_json(message, sort_keys=True).decode()


def _to_pure(device: Device, rec: DeviceLifecycleRecord,
             pending: Sequence[LifecycleEventRecord]) -> DeviceLifecycle:
    return _pure_of(device.id, device.model, device.owner,
                    {"latest_status": rec.latest_status, "latest_at": rec.latest_at,
                     "latest_requested_at": rec.latest_requested_at,
                     "latest_reasons": rec.latest_reasons,
                     "latest_challenge_id": rec.latest_challenge_id,
                     "firmware_version": rec.firmware_version, "state": rec.state,
                     "state_reason": rec.state_reason}, pending)


def _pure_of(device_id: str, model: str, owner: str, rec: Mapping[str, Any],
             pending: Sequence[Any]) -> DeviceLifecycle:
    """The pure record from a lifecycle row (a mapping of its columns) and the device's
    pending events (objects with ``event_id``, ``kind``, ``at``, ``deadline``)."""
    latest = None
    if rec["latest_status"] is not None and rec["latest_at"] is not None:
        latest = ResultSummary(rec["latest_status"], at=rec["latest_at"],
                               requested_at=rec["latest_requested_at"] or rec["latest_at"],
                               reasons=tuple((str(r[0]), str(r[1])) for r in
                                             rec["latest_reasons"] or () if len(r) == 2),
                               challenge_id=rec["latest_challenge_id"])
    dues = tuple(AttestationDue(e.event_id, EventKind(e.kind), e.at, e.deadline)
                 for e in pending if e.deadline is not None)
    return DeviceLifecycle(device_id, model=model, owner=owner,
                           firmware_version=rec["firmware_version"],
                           state=LifecycleState(rec["state"]), pending=dues, latest=latest,
                           state_reason=rec["state_reason"])


def _challenge_time(s: Any, challenge_id: str) -> datetime | None:
    ch = s.get(Challenge, challenge_id)
    return None if ch is None else ch.created_at  # type: ignore[no-any-return]


def _already_appraised(s: Any, device_id: str, challenge_id: str, digest: str) -> Any:
    for row in AttestationRepository(s).search(
            HistoryFilter(device_id=device_id, evidence_sha256=digest), limit=10):
        if row.challenge_id == challenge_id and row.outcome == "appraised":
            return row
    return None


_ALL = DeviceFilter()

__all__ = [
    "INVENTORY_STATE",
    "SERVICE_PRINCIPAL",
    "AttestationPort",
    "EventOutcome",
    "EvidenceItem",
    "EvidenceOutcome",
    "IssuedChallenge",
    "LifecycleCoordinator",
    "PostureChange",
    "QuarantineHook",
    "event_key",
    "quarantine_when_untrusted",
]
