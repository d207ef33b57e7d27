"""Dependency aliases, defined once (``Annotated[..., Depends(...)]``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from devattest.service.auth import Principal
from devattest.service.context import AppContext
from devattest.service.tls import peer_certificate_der

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer dat_...`")


# The dependencies are coroutines: FastAPI runs a plain ``def`` dependency in the thread
# pool, a hop per dependency per request.
async def _context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(_context)]


async def _principal(request: Request, ctx: Ctx,
                     creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
                     ) -> Principal:
    header = f"Bearer {creds.credentials}" if creds is not None else (
        request.headers.get("authorization"))
    cached = ctx.auth.cached(header)
    if cached is not None:
        return cached
    # A token look-up (database) or a certificate check: in the thread pool.
    return await run_in_threadpool(ctx.auth.authenticate, header,
                                   peer_certificate_der(dict(request.scope)))


Caller = Annotated[Principal, Depends(_principal)]


async def _now() -> datetime:
    return datetime.now(UTC)


Now = Annotated[datetime, Depends(_now)]
