"""Provisioning: Trust Anchors, Reference Values and policies, versioned and idempotent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from devattest.errors import StoreError
from devattest.service.problems import BadRequest, NotFound
from devattest.service.services.material import base_media_type, parse_document
from devattest.store import KINDS, ProvisionedRepository, Store, content_hash
from devattest.store.models import PolicyRecord, ReferenceValueRecord, TrustAnchorRecord

Record = TrustAnchorRecord | ReferenceValueRecord | PolicyRecord
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@")


def _check_name(name: str) -> str:
    if not 1 <= len(name) <= 200 or not set(name) <= _NAME_CHARS:
        raise BadRequest("a name is 1-200 characters of [A-Za-z0-9-_.:@]", code="bad_name")
    return name


class ProvisioningService:
    """One service for the three kinds; ``kind`` is a key of :data:`devattest.store.KINDS`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _repo(self, s: Session, kind: str) -> ProvisionedRepository[Any]:
        return ProvisionedRepository(s, KINDS[kind])

    def submit(self, kind: str, *, name: str | None, media_type: str, content: bytes,
               now: datetime) -> tuple[Record, bool]:
        """Validate and store a document; an identical re-submission returns the stored one.

        Raises:
            BadRequest: bad name or empty body.
            UnsupportedMedia: media type not accepted for ``kind``.
            Unprocessable: the document is invalid.
        """
        if not content:
            raise BadRequest("the body is empty", code="empty_body")
        mt = base_media_type(media_type)
        default_name = name or f"sha256-{content_hash(mt, content)[:16]}"
        parsed = parse_document(kind, mt, content, name=default_name, now=now)
        final = _check_name(name or parsed.name or default_name)
        for attempt in range(3):
            try:
                with self._store.write() as s:
                    return self._repo(s, kind).submit(name=final, media_type=mt,
                                                      content=content, summary=parsed.summary,
                                                      now=now)
            except StoreError as exc:
                # A concurrent submission took the same version number: look again.
                if not isinstance(exc.__cause__, IntegrityError) or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def list(self, kind: str) -> Sequence[Record]:
        """The latest live version of every name."""
        with self._store.read() as s:
            return self._repo(s, kind).latest_all()

    def get(self, kind: str, name: str, version: int | None = None) -> Record:
        """Raises: NotFound."""
        with self._store.read() as s:
            r: Record | None = self._repo(s, kind).get(name, version)
        if r is None:
            raise NotFound(f"no {kind} named {name!r}" + (f" v{version}" if version else ""))
        return r

    def versions(self, kind: str, name: str) -> Sequence[Record]:
        """Raises: NotFound."""
        with self._store.read() as s:
            rs = self._repo(s, kind).versions(name)
        if not rs:
            raise NotFound(f"no {kind} named {name!r}")
        return rs

    def delete(self, kind: str, name: str, *, now: datetime, version: int | None = None
               ) -> int:
        """Raises: NotFound."""
        with self._store.write() as s:
            n = self._repo(s, kind).delete(name, now=now, version=version)
        if not n:
            raise NotFound(f"no {kind} named {name!r}")
        return n
