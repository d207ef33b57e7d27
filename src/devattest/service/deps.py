"""Dependency aliases, defined once (``Annotated[..., Depends(...)]``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from devattest.service.auth import Principal
from devattest.service.context import AppContext
from devattest.service.tls import peer_certificate_der

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer dat_...`")


def _context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(_context)]


def _principal(request: Request, ctx: Ctx,
               creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
               ) -> Principal:
    header = f"Bearer {creds.credentials}" if creds is not None else (
        request.headers.get("authorization"))
    return ctx.auth.authenticate(header, peer_certificate_der(dict(request.scope)))


Caller = Annotated[Principal, Depends(_principal)]


def _now() -> datetime:
    return datetime.now(UTC)


Now = Annotated[datetime, Depends(_now)]
