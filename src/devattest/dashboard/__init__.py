"""The operator dashboard: server-rendered pages (Jinja2, htmx, inline SVG charts) over the
service's store and services, mounted at ``/dashboard``.

The service loads it by name (``devattest.service.app``, setting ``dashboard``), because the
dashboard sits above the service in the layers contract. See ``docs/dashboard.md``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devattest.dashboard.auth import ChangeForbidden, CsrfRejected, LoginRequired
from devattest.dashboard.routes import SECURITY_HEADERS, render
from devattest.dashboard.routes import router as pages
from devattest.dashboard.settings import DashboardSettings
from devattest.dashboard.views import DashboardViews
from devattest.errors import StoreError

_log = logging.getLogger("devattest.dashboard")
STATIC = Path(__file__).parent / "static"


class PostureSampler:
    """Records the fleet posture every ``interval`` seconds (the posture-over-time chart)."""

    def __init__(self, views: DashboardViews, interval: float) -> None:
        self._views = views
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-sampler",
                                        daemon=True)

    def start(self) -> None:
        """Start sampling in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (waits for the thread)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._views.sample(now=datetime.now(UTC), interval=self._interval)
            except StoreError:
                _log.warning("posture sample failed", exc_info=True)
            self._stop.wait(self._interval)


class ServerTiming:
    """Pure ASGI middleware: a ``Server-Timing: app;dur=<ms>`` header on dashboard pages
    (time to the response headers, i.e. queries and rendering), for the benchmark and for
    the browser's developer tools."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/dashboard"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - started) * 1000
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"server-timing",
                                                   f"app;dur={ms:.1f}".encode())]}
            await send(message)

        await self.app(scope, receive, send_timed)


def _lifespan_router(settings: DashboardSettings) -> APIRouter:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sampler = None
        if settings.sample_seconds > 0:
            sampler = PostureSampler(app.state.dashboard_views, settings.sample_seconds)
            sampler.start()
        try:
            yield
        finally:
            if sampler is not None:
                sampler.stop()

    return APIRouter(lifespan=lifespan)


def install(app: FastAPI, settings: DashboardSettings | None = None) -> None:
    """Mount the dashboard on a service application built by ``create_app``.

    Raises:
        RuntimeError: the application has no service context (not from ``create_app``).
    """
    settings = settings or DashboardSettings()
    ctx = getattr(app.state, "ctx", None)
    if ctx is None:
        raise RuntimeError("install the dashboard on an app built by create_app")
    app.state.dashboard_settings = settings
    app.state.dashboard_views = DashboardViews(ctx, cache_seconds=settings.cache_seconds)
    app.include_router(pages)
    app.include_router(_lifespan_router(settings))
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")
    app.add_middleware(ServerTiming)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = "/dashboard/login?" + urlencode({"next": target})
        if request.headers.get("hx-request"):
            # htmx: a full-page redirect to the login form.
            return Response(status_code=401, headers={"HX-Redirect": login, **SECURITY_HEADERS})
        return RedirectResponse(login, status_code=303, headers=SECURITY_HEADERS)

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, exc: CsrfRejected) -> Response:
        return render(request, "error.html", status=403, user=None,
                      message=f"Request refused: {exc}.")

    @app.exception_handler(ChangeForbidden)
    async def _forbidden(request: Request, exc: ChangeForbidden) -> Response:
        if request.headers.get("accept", "").startswith("application/json"):
            return JSONResponse({"error": {"code": "forbidden", "message": str(exc)}},
                                status_code=403)
        return render(request, "error.html", status=403, user=None,
                      message=f"Not allowed: {exc}.")


__all__ = ["DashboardSettings", "DashboardViews", "PostureSampler", "ServerTiming", "install"]
