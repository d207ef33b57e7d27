"""Helpers shared by routers: error response docs and bounded body reading."""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import Request

from devattest.service.problems import PayloadTooLarge
from devattest.service.schemas import ErrorResponse

ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorResponse} for s in (400, 401, 403, 404, 409, 413, 415, 422)}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI response docs for these error codes (plus 401)."""
    return {c: ERRORS[c] for c in (401, *codes)}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes while streaming.

    Raises:
        PayloadTooLarge: the body is over the limit.
    """
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def b64url(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT this service signed (read back from its own store)."""
    payload = token.split(".")[1]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    decoded: dict[str, Any] = json.loads(raw)
    return decoded


RAW_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}
