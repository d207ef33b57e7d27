"""A pure ASGI fast lane for the two challenge-response routes.

``POST /v1/challenges`` and ``POST /v1/challenges/{id}/evidence`` are the hot path: every
attestation is one of each. Through FastAPI each request also pays for the router (matched
against every route, the dashboard's included), the exception and exit-stack middleware,
dependency resolution and pydantic request validation: about as much CPU as the appraisal.
:class:`HotRoutes` serves the ordinary, well-formed case of those two routes directly, with
the same authentication, service calls, responses and error bodies as the routes in
``routes/challenges.py``; anything else (a body that does not parse or validate, a path
that is not exactly the route's, a missing Content-Type) is handed, body and all, to the
FastAPI application, which answers it as before (422, 415, ...). The OpenAPI description
is the FastAPI routes'.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devattest.errors import DevattestError, StoreError
from devattest.service.auth import Principal
from devattest.service.context import AppContext
from devattest.service.problems import ApiError
from devattest.service.routes._common import b64url
from devattest.service.tls import peer_certificate_der

_log = logging.getLogger("devattest.service")

_CHALLENGES = "/v1/challenges"
_EVIDENCE = re.compile(r"/v1/challenges/([0-9a-f]{32})/evidence")
#: ``schemas.DeviceId``.
_DEVICE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_NONCE_SIZES = (32, 48, 64)
_JSON_HEADERS = [(b"content-type", b"application/json")]
_T = TypeVar("_T")


class HotRoutes:
    """Serves the well-formed challenge and Evidence requests; passes the rest on."""

    def __init__(self, app: ASGIApp, *, ctx: AppContext,
                 route_for: Callable[[str], Any]) -> None:
        self.app = app
        self.ctx = ctx
        self._inline = ctx.store.dialect == "sqlite"
        # The FastAPI route objects, so that the access log labels these requests with
        # their route templates as before.
        self._route_for = route_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        evidence = None
        if path != _CHALLENGES:
            evidence = _EVIDENCE.fullmatch(path)
            if evidence is None:
                await self.app(scope, receive, send)
                return
        now = datetime.now(UTC)
        headers = _headers(scope)
        try:
            body = await _read_body(receive)
        except _ClientGone:
            # As Starlette's ClientDisconnect: a body cut short is never appraised (it would
            # consume the nonce and record a failure for the device).
            return
        except ApiError as exc:
            await _send_error(send, exc)
            return
        try:
            if evidence is None:
                handled = await self._challenge(scope, headers, body, now, send)
            else:
                handled = await self._evidence(scope, headers, evidence.group(1), body, now,
                                               send)
        except (ApiError, DevattestError) as exc:
            await _send_error(send, exc)
            return
        if not handled:
            await self.app(scope, _replay(body, receive), send)

    async def _blocking(self, fn: Callable[[], _T]) -> _T:
        """Run a service call: on SQLite on the event loop itself (the database is a local
        file, writers already queue on Store.write_gate, and a thread hand-off per request
        costs more than it frees); on PostgreSQL in the thread pool (network round trips
        and commit flushes must not stall the loop)."""
        if self._inline:
            return fn()
        return await run_in_threadpool(fn)

    async def _principal(self, scope: Scope, headers: dict[bytes, bytes]) -> Principal:
        """As ``deps._principal``: a cached token without I/O, else in the thread pool."""
        raw = headers.get(b"authorization")
        header = raw.decode("latin-1") if raw is not None else None
        cached = self.ctx.auth.cached(header)
        if cached is not None:
            return cached
        peer = peer_certificate_der(dict(scope))
        return await self._blocking(lambda: self.ctx.auth.authenticate(header, peer))

    async def _challenge(self, scope: Scope, headers: dict[bytes, bytes], body: bytes,
                         now: datetime, send: Send) -> bool:
        scope["route"] = self._route_for(_CHALLENGES)
        if _media_type(headers) != "application/json":
            return False
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        # schemas.ChallengeCreate (extra="forbid"); anything unusual goes to FastAPI.
        if not isinstance(doc, dict) or not doc.keys() <= {"device_id", "nonce_size"}:
            return False
        device_id = doc.get("device_id")
        size = doc.get("nonce_size", 32)
        if (not isinstance(device_id, str) or _DEVICE_ID.fullmatch(device_id) is None
                or type(size) is not int or size not in _NONCE_SIZES):
            return False
        caller = await self._principal(scope, headers)
        service = self.ctx.attestation
        if self._inline:
            ch = service.issue_challenge(caller, device_id=device_id, nonce_size=size,
                                         now=now)
        else:
            ch = await service.issue_challenge_async(caller, device_id=device_id,
                                                     nonce_size=size, now=now)
        await _send_json(send, 201, challenge_body(ch.id, ch.device_id, ch.nonce,
                                                   ch.expires_at))
        return True

    async def _evidence(self, scope: Scope, headers: dict[bytes, bytes], challenge_id: str,
                        body: bytes, now: datetime, send: Send) -> bool:
        scope["route"] = self._route_for(_CHALLENGES + "/{challenge_id}/evidence")
        media_type = headers.get(b"content-type", b"").decode("latin-1").strip()
        if not media_type:
            return False
        caller = await self._principal(scope, headers)
        service = self.ctx.attestation
        if self._inline:
            sub = service.submit_evidence(caller, challenge_id=challenge_id, evidence=body,
                                          media_type=media_type, now=now)
        else:
            sub = await service.submit_evidence_async(caller, challenge_id=challenge_id,
                                                      evidence=body, media_type=media_type,
                                                      now=now)
        await _send_json(send, 200, evidence_body(sub.attestation_id, sub.ear))
        return True


def challenge_body(challenge_id: str, device_id: str, nonce: bytes,
                   expires_at: datetime) -> bytes:
    """The ``ChallengePublic`` JSON."""
    return orjson.dumps({"id": challenge_id, "device_id": device_id, "nonce": b64url(nonce),
                         "expires_at": expires_at}, option=orjson.OPT_UTC_Z)


def evidence_body(attestation_id: int, ear: str) -> bytes:
    """The ``EvidenceResult`` JSON. ``result`` is the EAR's payload, the JSON claims-set the
    signer produced (RFC 7515 section 7.1: the second segment), copied in as it is: exactly
    the claims that were signed, with no second serialisation."""
    payload = ear.split(".", 2)[1]
    claims = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return b'{"attestation_id":%d,"ear":"%s","result":%s}' % (attestation_id, ear.encode(),
                                                               claims)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        out.setdefault(name, value)
    return out


def _media_type(headers: dict[bytes, bytes]) -> str:
    return headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()


class _ClientGone(Exception):
    """The client disconnected before the whole body arrived."""


async def _read_body(receive: Receive) -> bytes:
    """The whole body (BodyLimitMiddleware, outside, raises PayloadTooLarge past the
    limit).

    Raises:
        _ClientGone: the client disconnected before the end of the body.
    """
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _send_json(send: Send, status: int, body: bytes,
                     headers: dict[str, str] | None = None) -> None:
    raw = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if headers:
        raw.extend((k.lower().encode("latin-1"), v.encode("latin-1"))
                   for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, exc: ApiError | DevattestError) -> None:
    """The same answers as ``app._install_error_handlers``."""
    if isinstance(exc, ApiError):
        await _send_json(send, exc.status, orjson.dumps(exc.body()), exc.headers)
    elif isinstance(exc, StoreError):
        _log.error("store error", exc_info=exc)
        await _send_json(send, 503, orjson.dumps(
            {"error": {"code": exc.code, "message": "database unavailable"}}),
            {"Retry-After": "1"})
    else:
        _log.error("unexpected devattest error", exc_info=exc)
        await _send_json(send, 500, orjson.dumps(
            {"error": {"code": exc.code, "message": exc.message}}))
