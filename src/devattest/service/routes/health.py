"""Health, readiness, metrics and the EAR verification keys (unauthenticated)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from devattest.service.deps import Ctx
from devattest.service.problems import Unavailable
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


@router.get("/metrics", response_class=Response)
def metrics(ctx: Ctx) -> Response:
    """Prometheus exposition."""
    body, content_type = ctx.metrics.render()
    return Response(body, media_type=content_type)


@router.get("/.well-known/devattest/keys")
def jwks(ctx: Ctx) -> dict[str, Any]:
    """The JWK Set of the EAR signing key(s)."""
    return ctx.signer.jwks()
