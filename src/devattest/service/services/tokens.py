"""API token administration."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from devattest.service.problems import BadRequest, NotFound
from devattest.store import DeviceRepository, Store, TokenRepository
from devattest.store.models import ApiToken


class TokenService:
    """Create, list and revoke API tokens."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(self, *, role: str, device_id: str | None, label: str, now: datetime
               ) -> tuple[ApiToken, str]:
        """Returns the record and the plaintext (shown once).

        Raises:
            BadRequest: bad role/device combination.
            NotFound: the device does not exist.
        """
        with self._store.write() as s:
            if device_id is not None and DeviceRepository(s).get(device_id) is None:
                raise NotFound(f"no device {device_id!r}")
            try:
                return TokenRepository(s).create(role=role, device_id=device_id, label=label,
                                                 now=now)
            except ValueError as exc:
                raise BadRequest(str(exc), code="bad_token_request") from None

    def list(self) -> Sequence[ApiToken]:
        """Every token (hashes are never returned by the API)."""
        with self._store.read() as s:
            return TokenRepository(s).list_tokens()

    def revoke(self, token_id: str, *, now: datetime) -> None:
        """Raises: NotFound."""
        with self._store.write() as s:
            if not TokenRepository(s).revoke(token_id, now=now):
                raise NotFound(f"no live token {token_id!r}")
