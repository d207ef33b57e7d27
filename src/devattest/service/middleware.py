"""Pure ASGI middleware: request limits (413 before parsing; 422 for control characters in
the path or query) and request logging with metrics."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any
from urllib.parse import unquote_plus

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devattest.model.text import has_control_characters
from devattest.service.metrics import Metrics
from devattest.service.problems import PayloadTooLarge

_EVIDENCE_PATH = re.compile(r"^/v1/challenges/[^/]+/evidence/?$")
_TPM_MEDIA_TYPE = b"application/vnd.devattest.tpm-quote+cbor"


def _is_tpm_evidence(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == _TPM_MEDIA_TYPE)
    return False
_log = logging.getLogger("devattest.service.access")


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps({"error": {"code": "payload_too_large",
                                 "message": f"the body exceeds {limit} bytes"}}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


async def _send_422(send: Send, where: str) -> None:
    body = json.dumps({"error": {"code": "invalid_request", "message": "invalid request"},
                       "details": [{"loc": [where],
                                    "msg": "control characters are not allowed"}]}).encode()
    await send({"type": "http.response.start", "status": 422,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _control_characters_in(scope: Scope) -> str | None:
    """``"path"`` or ``"query"`` when the decoded path or query string holds a control
    character or a lone surrogate (issue 13, defect 5: a NUL in a list filter reached
    PostgreSQL, which cannot store it, and came back as a 503); None when neither does.
    Every path and query parameter passes here, before any route."""
    if has_control_characters(scope.get("path", "")):
        return "path"
    query: bytes = scope.get("query_string", b"")
    if query and has_control_characters(
            unquote_plus(query.decode("latin-1"), errors="surrogateescape")):
        return "query"
    return None


class BodyLimitMiddleware:
    """Request limits, before any route: bodies over the limit are refused (413) at once
    from ``Content-Length``, and while streaming (chunked uploads) before the application
    has the bytes. Evidence has its own, smaller limit; TPM quote Evidence (which carries an
    event log) its own, ``tpm_evidence_limit``, looked at only when a body is over the
    Evidence limit. A path or query string holding a control character is refused (422,
    ``invalid_request``)."""

    def __init__(self, app: ASGIApp, *, evidence_limit: int, default_limit: int,
                 tpm_evidence_limit: int = 0) -> None:
        self.app = app
        self.evidence_limit = evidence_limit
        self.default_limit = default_limit
        self.tpm_evidence_limit = tpm_evidence_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = _control_characters_in(scope)
        if where is not None:
            await _send_422(send, where)
            return
        evidence = _EVIDENCE_PATH.match(scope.get("path", "")) is not None
        limit = self.evidence_limit if evidence else self.default_limit
        if evidence and self.tpm_evidence_limit > limit and _is_tpm_evidence(scope):
            limit = self.tpm_evidence_limit
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = limit + 1
                if declared > limit or declared < 0:
                    await _send_413(send, limit)
                    return
        seen = 0
        started = refused = False

        async def limited_receive() -> Message:
            # A streamed (chunked) body over the limit is answered 413 here, before the
            # application has the bytes: raising into it let FastAPI turn the error into
            # "400 There was an error parsing the body" on JSON routes (issue 13, defect 7).
            # The application then sees the client gone, and whatever it answers is dropped.
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    if started:  # the application answers already: it gets the error
                        raise PayloadTooLarge(f"the body exceeds {limit} bytes")
                    refused = True
                    await _send_413(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except ClientDisconnect:
            if not refused:
                raise
            # The route read on after the 413 and found the client gone: answered already.


class AccessLogMiddleware:
    """One JSON log line and the Prometheus samples per request."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, log: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.log = log
        # Labelled children, looked up once per (method, route, status).
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            key = (scope["method"], template, status)
            children = self._children.get(key)
            if children is None:
                children = (self.metrics.requests.labels(key[0], template, str(status)),
                            self.metrics.latency.labels(template))
                if len(self._children) < 10_000:
                    self._children[key] = children
            children[0].inc()
            children[1].observe(elapsed)
            if self.log:
                _log.info("request", extra={
                    "method": scope["method"], "path": scope.get("path"), "route": template,
                    "status": status, "ms": round(elapsed * 1000, 2),
                    "client": (scope.get("client") or ("", 0))[0]})
