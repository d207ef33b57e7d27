"""Retention: keep the history (and the other growing tables) bounded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from devattest.store.challenges import ChallengeRepository
from devattest.store.lifecycle_repo import EvidenceReceipt
from devattest.store.models import Attestation, Challenge, Device, WebhookDelivery


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How much history to keep. ``None`` disables a bound."""

    #: Delete history entries older than this (a device's latest entry is always kept).
    max_age: timedelta | None = timedelta(days=90)
    #: Keep at most this many history entries per device (newest kept).
    max_rows_per_device: int | None = 10_000
    #: Delete challenges this long after they expired.
    challenge_grace: timedelta = timedelta(hours=1)
    #: Delete delivered (and dead) webhook deliveries older than this.
    delivery_max_age: timedelta = timedelta(days=7)


@dataclass(slots=True)
class PruneReport:
    """How many rows each table lost."""

    attestations: int = 0
    challenges: int = 0
    receipts: int = 0
    deliveries: int = 0
    devices_trimmed: list[str] = field(default_factory=list)


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def prune(session: Session, policy: RetentionPolicy, *, now: datetime) -> PruneReport:
    """Apply ``policy`` once. Safe to run concurrently with traffic and on several replicas.

    Each device's latest result (the one the inventory points at) is never deleted.
    """
    report = PruneReport()
    keep = select(Device.latest_attestation_id).where(
        Device.latest_attestation_id.is_not(None)).scalar_subquery()
    if policy.max_age is not None:
        report.attestations += _rowcount(session.execute(
            delete(Attestation).where(Attestation.created_at < now - policy.max_age,
                                      Attestation.id.not_in(keep))
            .execution_options(synchronize_session=False)))
    if policy.max_rows_per_device is not None:
        n = policy.max_rows_per_device
        over = session.execute(select(Attestation.device_id).group_by(Attestation.device_id)
                               .having(func.count() > n)).scalars().all()
        for device_id in over:
            # The id of the n-th newest entry: everything older goes.
            cutoff = session.scalar(select(Attestation.id)
                                    .where(Attestation.device_id == device_id)
                                    .order_by(Attestation.id.desc()).offset(n - 1).limit(1))
            if cutoff is None:
                continue
            report.attestations += _rowcount(session.execute(
                delete(Attestation).where(Attestation.device_id == device_id,
                                          Attestation.id < cutoff,
                                          Attestation.id.not_in(keep))
                .execution_options(synchronize_session=False)))
            report.devices_trimmed.append(device_id)
    report.challenges = ChallengeRepository(session).prune(
        expired_before=now - policy.challenge_grace)
    # An Evidence receipt answers redeliveries for as long as its challenge exists; once the
    # challenge is gone, a redelivery is refused as an unknown challenge (no history, no
    # verdict) with or without it. Deleting it earlier would let a late redelivery of honest
    # Evidence meet a consumed nonce and be recorded as a replay; never deleting it let the
    # table grow by a row per attestation for ever.
    report.receipts = _rowcount(session.execute(
        delete(EvidenceReceipt).where(
            EvidenceReceipt.created_at < now - policy.challenge_grace,
            ~exists().where(Challenge.id == EvidenceReceipt.challenge_id))
        .execution_options(synchronize_session=False)))
    report.deliveries = _rowcount(session.execute(
        delete(WebhookDelivery).where(WebhookDelivery.state != "pending",
                                      WebhookDelivery.created_at < now - policy.delivery_max_age)
        .execution_options(synchronize_session=False)))
    return report
