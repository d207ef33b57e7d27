"""API tokens: bearer secrets hashed at rest (SHA-256 of a 256-bit random token)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from devattest.store.models import ApiToken

#: Roles, from most to least powerful.
ROLES = ("admin", "provisioner", "relying-party", "device")
_PREFIX = "dat_"


def hash_token(token: str) -> str:
    """SHA-256 (hex) of a token. A slow hash is unnecessary: tokens carry 256 random bits."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenRepository:
    """API tokens. The plaintext is returned once, at creation, and never stored."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def create(self, *, role: str, now: datetime, device_id: str | None = None,
               label: str = "") -> tuple[ApiToken, str]:
        """Create a token and return the record with the plaintext.

        Raises:
            ValueError: unknown role, or a device token without a device (or vice versa).
        """
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        if (role == "device") != (device_id is not None):
            raise ValueError("a device token needs a device_id, and only a device token has one")
        plaintext = _PREFIX + secrets.token_urlsafe(32)
        record = ApiToken(id=secrets.token_hex(8), token_hash=hash_token(plaintext), role=role,
                          device_id=device_id, label=label, created_at=now, revoked_at=None)
        self._s.add(record)
        self._s.flush()
        return record, plaintext

    def authenticate(self, plaintext: str) -> ApiToken | None:
        """The live (unrevoked) token with this plaintext, or None."""
        if not plaintext.startswith(_PREFIX) or len(plaintext) > 200:
            return None
        return self._s.scalars(select(ApiToken).where(
            ApiToken.token_hash == hash_token(plaintext),
            ApiToken.revoked_at.is_(None))).first()

    def get(self, token_id: str) -> ApiToken | None:
        """A token by id."""
        return self._s.get(ApiToken, token_id)

    def list_tokens(self) -> list[ApiToken]:
        """Every token, newest first."""
        return list(self._s.scalars(select(ApiToken).order_by(ApiToken.created_at.desc())))

    def revoke(self, token_id: str, *, now: datetime) -> bool:
        """Revoke a token; False if there is no such live token."""
        record = self._s.get(ApiToken, token_id)
        if record is None or record.revoked_at is not None:
            return False
        record.revoked_at = now
        return True

    def count_live(self, role: str | None = None) -> int:
        """How many unrevoked tokens exist (of ``role``, if given)."""
        q = select(func.count()).select_from(ApiToken).where(ApiToken.revoked_at.is_(None))
        if role is not None:
            q = q.where(ApiToken.role == role)
        return int(self._s.scalar(q) or 0)
