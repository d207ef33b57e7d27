"""Dashboard login: an API token in, an opaque session cookie out; CSRF on every POST.

* The login form takes an API token and checks it with the service's own
  :class:`~devattest.service.auth.Authenticator`. Roles admin, provisioner and relying-party
  may log in; device tokens may not.
* The cookie holds 256 random bits, never the token. The database keeps only the SHA-256 of
  it (``dashboard_sessions``), with the token id, role, expiry and a per-session CSRF secret.
  Revoking the API token ends its dashboard sessions at once (the session query joins the
  token and requires it unrevoked). The cookie is ``HttpOnly``, ``SameSite=Strict``,
  ``Path=/dashboard`` and ``Secure`` when the request came over HTTPS.
* Every POST carries the session's CSRF secret (a hidden form field, or the
  ``X-CSRF-Token`` header htmx sends) and is refused without it. The login form itself is
  protected by a double-submit cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request

from devattest.service.auth import Principal
from devattest.service.context import AppContext
from devattest.service.problems import ApiError
from devattest.store import DashboardRepository

SESSION_COOKIE = "devattest_session"
LOGIN_CSRF_COOKIE = "devattest_login_csrf"
COOKIE_PATH = "/dashboard"
#: Roles that may log in, and those that see change controls.
VIEW_ROLES = frozenset({"admin", "provisioner", "relying-party"})
CHANGE_ROLES = frozenset({"admin", "provisioner"})
MAX_FORM_BYTES = 1024 * 1024


class LoginRequired(Exception):
    """No valid session: the handler redirects to the login page."""


class CsrfRejected(Exception):
    """A POST without the session's CSRF secret."""


class ChangeForbidden(Exception):
    """A relying-party session tried to change something."""


@dataclass(frozen=True, slots=True)
class DashboardUser:
    """A logged-in dashboard user."""

    role: str
    token_id: str
    csrf: str
    session_hash: str

    @property
    def can_change(self) -> bool:
        """Admins and provisioners see and use change controls."""
        return self.role in CHANGE_ROLES


def session_hash(session_id: str) -> str:
    """What the database stores for a session id."""
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


def login(ctx: AppContext, token: str, *, now: datetime, ttl: timedelta
          ) -> tuple[str, DashboardUser] | None:
    """Start a session for an API token; None when the token is unknown, revoked or a
    device's. Returns the cookie value (the session id) and the user."""
    token = token.strip()
    if not token or len(token) > 200:
        return None
    try:
        principal: Principal = ctx.auth.authenticate(f"Bearer {token}", None)
    except ApiError:
        return None
    if principal.role not in VIEW_ROLES or principal.token_id is None:
        return None
    sid = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    h = session_hash(sid)
    with ctx.store.write() as s:
        DashboardRepository(s).add_session(id_hash=h, token_id=principal.token_id,
                                           role=principal.role, csrf=csrf, now=now,
                                           expires_at=now + ttl)
    return sid, DashboardUser(principal.role, principal.token_id, csrf, h)


def logout(ctx: AppContext, user: DashboardUser) -> None:
    """End the session server-side."""
    with ctx.store.write() as s:
        DashboardRepository(s).end_session(user.session_hash)


def current_user(request: Request, now: datetime) -> DashboardUser | None:
    """The user of this request's session cookie, if it is live."""
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid or len(sid) > 100:
        return None
    ctx: AppContext = request.app.state.ctx
    h = session_hash(sid)
    with ctx.store.read() as s:
        row = DashboardRepository(s).live_session(h, now=now)
        if row is None:
            return None
        return DashboardUser(row.role, row.token_id, row.csrf, h)


def _user(request: Request) -> DashboardUser:
    from datetime import UTC

    user = current_user(request, datetime.now(UTC))
    if user is None:
        raise LoginRequired()
    return user


User = Annotated[DashboardUser, Depends(_user)]


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (bounded), first value per field.

    Raises:
        CsrfRejected: the body is not a form or is too large.
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise CsrfRejected("a form post was expected")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise CsrfRejected("the form is too large")
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True,
                      max_num_fields=50)
    return {k: v[0] for k, v in parsed.items() if v}


def check_csrf(request: Request, user: DashboardUser, form: dict[str, str]) -> None:
    """Raises: CsrfRejected unless the form or header carries the session's CSRF secret."""
    sent = form.get("csrf_token") or request.headers.get("x-csrf-token") or ""
    if not hmac.compare_digest(sent.encode(), user.csrf.encode()):
        raise CsrfRejected("missing or wrong CSRF token")


def require_change(user: DashboardUser) -> None:
    """Raises: ChangeForbidden unless the user is an admin or a provisioner."""
    if not user.can_change:
        raise ChangeForbidden(f"role {user.role!r} may view but not change")
