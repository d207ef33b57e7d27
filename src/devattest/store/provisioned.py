"""Provisioned material (Trust Anchors, Reference Values, policies): named, versioned,
content-addressed. Re-submitting the latest content of a name is idempotent."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from devattest.store.models import (
    ConfigGeneration,
    PolicyRecord,
    ReferenceValueRecord,
    TrustAnchorRecord,
)

R = TypeVar("R", TrustAnchorRecord, ReferenceValueRecord, PolicyRecord)

KINDS: dict[str, type[TrustAnchorRecord] | type[ReferenceValueRecord] | type[PolicyRecord]] = {
    "trust-anchors": TrustAnchorRecord,
    "reference-values": ReferenceValueRecord,
    "policies": PolicyRecord,
}


def content_hash(media_type: str, content: bytes) -> str:
    """SHA-256 over the media type and the content (hex)."""
    h = hashlib.sha256()
    h.update(media_type.encode("utf-8"))
    h.update(b"\x00")
    h.update(content)
    return h.hexdigest()


class ProvisionedRepository(Generic[R]):
    """One kind of provisioned material."""

    def __init__(self, session: Session, record_type: type[R]) -> None:
        self._s = session
        self._t: type[R] = record_type

    def submit(self, *, name: str, media_type: str, content: bytes, summary: dict[str, Any],
               now: datetime) -> tuple[R, bool]:
        """Store a new version of ``name`` unless its latest version has the same content.

        Returns:
            The record, and whether it was created (False: an idempotent re-submission).
            Two concurrent first submissions race on the ``(name, version)`` unique
            constraint; the loser's transaction fails and is retried by the caller.
        """
        digest = content_hash(media_type, content)
        latest = self.get(name)
        if latest is not None and latest.content_hash == digest:
            return latest, False
        top = self._s.scalar(select(func.max(self._t.version)).where(self._t.name == name))
        record = self._t(name=name, version=(top or 0) + 1, content_hash=digest,
                         media_type=media_type, content=content, summary=summary,
                         created_at=now, deleted_at=None)
        self._s.add(record)
        self._s.flush()
        bump_generation(self._s)
        return record, True

    def get(self, name: str, version: int | None = None) -> R | None:
        """The latest live version of ``name``, or a given live version."""
        q = select(self._t).where(self._t.name == name, self._t.deleted_at.is_(None))
        if version is not None:
            q = q.where(self._t.version == version)
        return self._s.scalars(q.order_by(self._t.version.desc()).limit(1)).first()

    def versions(self, name: str) -> Sequence[R]:
        """Every live version of ``name``, newest first."""
        return self._s.scalars(select(self._t).where(
            self._t.name == name, self._t.deleted_at.is_(None)
        ).order_by(self._t.version.desc())).all()

    def latest_all(self) -> Sequence[R]:
        """The latest live version of every name, ordered by name (what appraisal uses)."""
        sub = (select(self._t.name, func.max(self._t.version).label("v"))
               .where(self._t.deleted_at.is_(None)).group_by(self._t.name).subquery())
        return self._s.scalars(
            select(self._t).join(sub, (self._t.name == sub.c.name)
                                 & (self._t.version == sub.c.v))
            .order_by(self._t.name)).all()

    def delete(self, name: str, *, now: datetime, version: int | None = None) -> int:
        """Delete one version, or every version, of ``name``; returns how many."""
        q = (update(self._t).where(self._t.name == name, self._t.deleted_at.is_(None))
             .values(deleted_at=now).execution_options(synchronize_session=False))
        if version is not None:
            q = q.where(self._t.version == version)
        n = int(getattr(self._s.execute(q), "rowcount", 0) or 0)
        if n:
            bump_generation(self._s)
        return n


def bump_generation(session: Session) -> None:
    """Tell every replica that provisioned material changed."""
    session.execute(update(ConfigGeneration).where(ConfigGeneration.id == 1)
                    .values(generation=ConfigGeneration.generation + 1)
                    .execution_options(synchronize_session=False))


def current_generation(session: Session) -> int:
    """The provisioning generation (compare it to decide whether caches are stale)."""
    return int(session.scalar(select(ConfigGeneration.generation)
                              .where(ConfigGeneration.id == 1)) or 0)
