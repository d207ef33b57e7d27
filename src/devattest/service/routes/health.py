"""Health, readiness and the EAR verification keys (unauthenticated); metrics (a token)."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from devattest.service.deps import Ctx
from devattest.service.problems import Unavailable
from devattest.service.routes._common import errors
from devattest.service.tls import peer_certificate_der
from devattest.store import current_revision, head_revision

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready"}})
async def readyz(ctx: Ctx) -> dict[str, str]:
    """Readiness: the database answers and the schema is at the newest migration."""
    def check() -> str | None:
        return current_revision(ctx.store.engine) if ctx.store.ping() else None

    try:
        rev = await run_in_threadpool(check)
    except Exception:  # any database failure means not ready
        rev = None
    if rev is None or rev != head_revision():
        raise Unavailable("database unreachable or not migrated", code="not_ready")
    return {"status": "ready", "schema": rev}


@router.get("/metrics", response_class=Response, responses=errors(403))
async def metrics(request: Request, ctx: Ctx) -> Response:
    """Prometheus exposition. Needs ``Authorization: Bearer <metrics_token>`` or an admin
    API token, unless the operator set ``metrics_public`` (docs/service.md)."""
    settings = ctx.settings
    if not settings.metrics_public:
        header = request.headers.get("authorization") or ""
        token = settings.metrics_token
        scheme, _, given = header.partition(" ")
        if token is None or scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), token.encode()):
            caller = ctx.auth.cached(header)
            if caller is None:
                caller = await run_in_threadpool(ctx.auth.authenticate, header or None,
                                                 peer_certificate_der(dict(request.scope)))
            caller.require("admin")
    body, content_type = await run_in_threadpool(ctx.metrics.render)
    return Response(body, media_type=content_type)


@router.get("/.well-known/devattest/keys")
def jwks(ctx: Ctx) -> dict[str, Any]:
    """The JWK Set of the EAR signing key(s)."""
    return ctx.signer.jwks()
