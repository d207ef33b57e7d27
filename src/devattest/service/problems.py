"""HTTP errors of the API: one JSON shape, ``{"error": {"code", "message"}, ...}``.

Services raise :class:`ApiError` subclasses; the app turns them (and devattest errors that
escape a service) into responses in exactly one place (``app._install_error_handlers``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class ApiError(Exception):
    """An error with an HTTP status and a stable code."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, *, code: str | None = None,
                 extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = code or self.code
        self.extra = extra or {}
        self.headers = headers

    def body(self) -> dict[str, Any]:
        """The JSON response body."""
        return {"error": {"code": self.error_code, "message": self.message}, **self.extra}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str = "a valid bearer token is required") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMedia(ApiError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(ApiError):
    status, code = 422, "unprocessable"


class Unavailable(ApiError):
    status, code = 503, "unavailable"
