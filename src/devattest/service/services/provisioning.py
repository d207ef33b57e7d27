"""Provisioning: Trust Anchors, Reference Values and policies, versioned and idempotent."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from devattest.crypto.pki import key_identifier
from devattest.errors import (
    ConfigurationError,
    CorimError,
    CorimSignatureInvalid,
    StoreError,
)
from devattest.provisioning import parse_corim
from devattest.service.problems import BadRequest, NotFound, Unprocessable
from devattest.service.services.material import CORIM_TYPES, base_media_type, parse_document
from devattest.store import KINDS, ProvisionedRepository, Store, content_hash
from devattest.store.models import PolicyRecord, ReferenceValueRecord, TrustAnchorRecord

Record = TrustAnchorRecord | ReferenceValueRecord | PolicyRecord
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@")


def _check_name(name: str) -> str:
    if not 1 <= len(name) <= 200 or not set(name) <= _NAME_CHARS:
        raise BadRequest("a name is 1-200 characters of [A-Za-z0-9-_.:@]", code="bad_name")
    return name


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


def load_corim_signers(path: Path) -> tuple[Any, ...]:
    """The CoRIM signer keys in a PEM file: ``PUBLIC KEY`` blocks and/or ``CERTIFICATE``
    blocks (only the certificate's key is used: no chain, validity or name is checked).

    Raises:
        ConfigurationError: the file is unreadable, holds no key, or holds another PEM type.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the CoRIM signer keys {path}: {exc}") from exc
    keys: list[Any] = []
    for m in _PEM_BLOCK.finditer(data):
        kind = m.group(1).decode()
        try:
            if kind == "PUBLIC KEY":
                keys.append(serialization.load_pem_public_key(m.group(0)))
            elif kind == "CERTIFICATE":
                keys.append(x509.load_pem_x509_certificate(m.group(0)).public_key())
            else:
                raise ConfigurationError(f"{path}: a {kind} block is not a CoRIM signer key")
        except ValueError as exc:
            raise ConfigurationError(f"{path}: unreadable {kind}: {exc}") from exc
    if not keys:
        raise ConfigurationError(f"{path} holds no PUBLIC KEY or CERTIFICATE")
    return tuple(keys)


class ProvisioningService:
    """One service for the three kinds; ``kind`` is a key of :data:`devattest.store.KINDS`.

    CoRIM signatures: a signed CoRIM is stored only when one of ``corim_signers`` verifies
    it; an unsigned CoRIM only when not ``require_signed_corim``.
    """

    def __init__(self, store: Store, *, corim_signers: Sequence[Any] = (),
                 require_signed_corim: bool = False) -> None:
        self._store = store
        self._corim_signers = tuple(corim_signers)
        self._require_signed_corim = require_signed_corim

    def check_corim_signature(self, content: bytes, *, now: datetime) -> dict[str, Any]:
        """Check a CoRIM's signature against the configured signers.

        Returns:
            Summary fields for a verified signed CoRIM (``verified``, ``signer``,
            ``signer_key_sha256``); empty for an accepted unsigned one.

        Raises:
            Unprocessable: ``corim_signature_required`` (unsigned, and signatures are
                required), ``corim_signer_unknown`` (signed, and no signer key is
                configured), ``corim_signature_invalid`` (no configured key verifies it),
                or the CoRIM is otherwise invalid.
        """
        try:
            # 1: well-formed, and signed or not (draft-ietf-rats-corim section 4).
            corim = parse_corim(content, now=now)
            if not corim.signed:
                # 2: an unsigned CoRIM, when the operator requires signatures.
                if self._require_signed_corim:
                    raise Unprocessable("this CoRIM is unsigned, and the service requires "
                                        "signed CoRIMs (require_signed_corim)",
                                        code="corim_signature_required")
                return {}
            # 3: a signed CoRIM is never stored unverified.
            if not self._corim_signers:
                raise Unprocessable("this CoRIM is signed, but no CoRIM signer key is "
                                    "configured (corim_signer_keys_file) to verify it",
                                    code="corim_signer_unknown")
            # 4: the COSE_Sign1 signature (section 4.2, RFC 9052 section 4.4) with each key.
            last: CorimSignatureInvalid | None = None
            for key in self._corim_signers:
                try:
                    verified = parse_corim(content, verification_key=key, require_signed=True,
                                           now=now)
                except CorimSignatureInvalid as exc:
                    last = exc
                    continue
                return {"verified": True, "signer": verified.signer,
                        "signer_key_sha256": key_identifier(key).hex()}
        except CorimError as exc:
            raise Unprocessable(exc.diagnostics(), code=exc.code) from None
        assert last is not None
        raise Unprocessable(f"no configured CoRIM signer key verifies this CoRIM "
                            f"({last.diagnostics()})", code="corim_signature_invalid")

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
        summary = parsed.summary
        if mt in CORIM_TYPES:
            summary = {**summary, **self.check_corim_signature(content, now=now)}
        final = _check_name(name or parsed.name or default_name)
        for attempt in range(3):
            try:
                with self._store.write() as s:
                    return self._repo(s, kind).submit(name=final, media_type=mt,
                                                      content=content, summary=summary,
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
