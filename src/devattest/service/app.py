"""The FastAPI application factory. No module-level engine or settings: everything hangs off
the :class:`~devattest.service.context.AppContext` that :func:`create_app` builds."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import import_module
from importlib.metadata import version as _dist_version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from devattest.errors import DevattestError, StoreError
from devattest.schemes import SchemeRegistry
from devattest.service.context import AppContext, build_context
from devattest.service.fastlane import HotRoutes
from devattest.service.middleware import AccessLogMiddleware, BodyLimitMiddleware
from devattest.service.problems import ApiError
from devattest.service.routes import (
    admin,
    challenges,
    devices,
    health,
    history,
    provisioning,
    tokens,
    webhooks,
)
from devattest.service.services.retention import RetentionJob
from devattest.service.services.webhooks import WebhookWorker, parse_networks
from devattest.service.settings import Settings
from devattest.store import migrate

_log = logging.getLogger("devattest.service")

DESCRIPTION = """\
devattest Verifier service (RFC 9334 background-check and passport models).

Authenticate with `Authorization: Bearer <token>` (create the first admin token with
`devattest service admin create-token --role admin`). Nonces are base64url without padding.
Evidence is posted raw, with its media type as Content-Type. Errors are
`{"error": {"code", "message"}}`.
"""


def create_app(settings: Settings | None = None, *, registry: SchemeRegistry | None = None,
               settle: bool = False) -> FastAPI:
    """Build the application (with the built-in evidence schemes unless ``registry``).

    Migrations run (``alembic upgrade head``) and background workers start in the lifespan
    start-up; the engine is disposed at shutdown. ``settle`` (a served process, not an app
    built in a test) also loads the provisioned material and freezes the start-up heap at
    start-up (:meth:`AppContext.settle`).

    Raises:
        ConfigurationError: bad database URL or signing key.
    """
    settings = settings or Settings()
    ctx = build_context(settings, registry=registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(migrate, ctx.store.engine)
        if settle:
            await run_in_threadpool(lambda: ctx.settle(now=datetime.now(UTC)))
        _start_jobs(ctx)
        _log.info("devattest service started", extra={
            "database": ctx.store.dialect, "kid": ctx.signer.kid})
        try:
            yield
        finally:
            for job in (ctx.webhook_worker, ctx.retention_job):
                if job is not None:
                    job.stop()
            await ctx.attestation.close_async()
            ctx.store.dispose()

    # /docs (Swagger UI) and /redoc load their scripts and styles from assets shipped in the
    # fastapi-offline package, not from a CDN: the pages work on an offline network.
    app = FastAPIOffline(title="devattest Verifier", version=_dist_version("devattest"),
                         description=DESCRIPTION, lifespan=lifespan)
    app.state.ctx = ctx
    for router in (health.router, challenges.router, devices.router, history.router,
                   provisioning.trust_anchors, provisioning.reference_values,
                   provisioning.policies, tokens.router, webhooks.router, admin.router):
        app.include_router(router)
    if settings.dashboard:
        # The dashboard sits above the service in the layers contract: loaded by name.
        import_module("devattest.dashboard").install(app)
    _install_error_handlers(app)
    app.add_middleware(HotRoutes, ctx=ctx, route_for=_route_finder(app))
    app.add_middleware(AccessLogMiddleware, metrics=ctx.metrics, log=settings.access_log)
    app.add_middleware(BodyLimitMiddleware, evidence_limit=settings.max_evidence_bytes,
                       default_limit=settings.max_body_bytes,
                       tpm_evidence_limit=settings.tpm_max_evidence_bytes)
    return app


def _route_finder(app: FastAPI) -> Callable[[str], Any]:
    """The API route with a given path template (for the access log's route label)."""
    found: dict[str, Any] = {}

    def route_for(path: str) -> Any:
        if path not in found:
            found[path] = next((r for r in app.routes
                                if isinstance(r, APIRoute) and r.path == path), None)
        return found[path]

    return route_for


def create_app_from_env() -> FastAPI:
    """``uvicorn --factory devattest.service.app:create_app_from_env``: Settings from the
    environment (what ``devattest serve`` hands to each worker)."""
    from devattest.service.jsonlog import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings, settle=True)


def _start_jobs(ctx: AppContext) -> None:
    s = ctx.settings
    if s.webhook_worker:
        ctx.webhook_worker = WebhookWorker(
            ctx.store, ctx.metrics, max_attempts=s.webhook_max_attempts,
            backoff=s.webhook_backoff_seconds, timeout=s.webhook_timeout_seconds,
            poll=s.webhook_poll_seconds,
            allowed_networks=parse_networks(s.webhook_allowed_networks))
        ctx.webhook_worker.start()
    if s.retention_interval_seconds:
        ctx.retention_job = RetentionJob(ctx.store, ctx.retention_policy,
                                         interval=s.retention_interval_seconds)
        ctx.retention_job.start()


def _install_error_handlers(app: FastAPI) -> None:
    """The one place where errors become HTTP responses."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))}
                for e in exc.errors()][:20]
        return JSONResponse({"error": {"code": "invalid_request", "message": "invalid request"},
                             "details": errs}, status_code=422)

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> JSONResponse:
        _log.error("store error", exc_info=exc)
        return JSONResponse({"error": {"code": exc.code, "message": "database unavailable"}},
                            status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(DevattestError)
    async def _devattest(_: Request, exc: DevattestError) -> JSONResponse:
        _log.error("unexpected devattest error", exc_info=exc)
        return JSONResponse({"error": {"code": exc.code, "message": exc.message}},
                            status_code=500)


__all__ = ["create_app", "create_app_from_env"]
