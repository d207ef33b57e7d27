"""The attestation history: every submission, its result, its reasons and its EAR."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from devattest.store.models import Attestation


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """History filters; ``None`` means any."""

    device_id: str | None = None
    status: str | None = None
    outcome: str | None = None
    evidence_sha256: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AttestationRepository:
    """Append and query the history (newest first, keyset pagination on the id)."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, *, device_id: str, challenge_id: str | None, outcome: str, status: str,
            media_type: str, evidence_sha256: str, reasons: list[Any], ear: str | None,
            ear_expires_at: datetime | None, now: datetime) -> Attestation:
        """Append one entry and return it (with its id)."""
        row = Attestation(device_id=device_id, challenge_id=challenge_id, outcome=outcome,
                          status=status, media_type=media_type[:200],
                          evidence_sha256=evidence_sha256, reasons=reasons, ear=ear,
                          ear_expires_at=ear_expires_at, created_at=now)
        self._s.add(row)
        self._s.flush()
        return row

    def get(self, attestation_id: int) -> Attestation | None:
        """One entry by id."""
        return self._s.get(Attestation, attestation_id)

    def latest_valid(self, device_id: str, *, now: datetime) -> Attestation | None:
        """The newest appraised entry whose EAR has not expired (the passport model)."""
        return self._s.scalars(
            select(Attestation)
            .where(Attestation.device_id == device_id, Attestation.outcome == "appraised",
                   Attestation.ear.is_not(None), Attestation.ear_expires_at > now)
            .order_by(Attestation.id.desc()).limit(1)).first()

    def search(self, flt: HistoryFilter, *, before_id: int | None = None, limit: int = 100
             ) -> Sequence[Attestation]:
        """Entries newest first; ``before_id`` is the keyset cursor (last id seen)."""
        q = select(Attestation).order_by(Attestation.id.desc()).limit(limit)
        if before_id is not None:
            q = q.where(Attestation.id < before_id)
        if flt.device_id is not None:
            q = q.where(Attestation.device_id == flt.device_id)
        if flt.status is not None:
            q = q.where(Attestation.status == flt.status)
        if flt.outcome is not None:
            q = q.where(Attestation.outcome == flt.outcome)
        if flt.evidence_sha256 is not None:
            q = q.where(Attestation.evidence_sha256 == flt.evidence_sha256.lower())
        if flt.since is not None:
            q = q.where(Attestation.created_at >= flt.since)
        if flt.until is not None:
            q = q.where(Attestation.created_at < flt.until)
        return self._s.scalars(q).all()
