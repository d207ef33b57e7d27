"""The dashboard's pages: ``/dashboard/...``. Handlers parse the request, call
:class:`~devattest.dashboard.views.DashboardViews` (or the service's provisioning service
for changes) in a thread, and render a template. No SQL here."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from devattest.dashboard import charts
from devattest.dashboard.auth import (
    COOKIE_PATH,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    User,
    check_csrf,
    current_user,
    login,
    logout,
    read_form,
    require_change,
)
from devattest.dashboard.settings import DashboardSettings
from devattest.dashboard.views import (
    ATTENTION,
    DIMENSIONS,
    POSTURES,
    RESULT_STATUSES,
    DashboardViews,
)
from devattest.service.problems import ApiError

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.globals.update(POSTURES=POSTURES, ATTENTION=ATTENTION, DIMENSIONS=DIMENSIONS,
                             RESULT_STATUSES=RESULT_STATUSES, charts=charts)
TEMPLATES.env.filters["ts"] = lambda d: "" if d is None else d.strftime("%Y-%m-%d %H:%M:%S")

KINDS = {"reference-values": "Reference Values", "trust-anchors": "Trust Anchors",
         "policies": "Appraisal Policies"}
#: What the upload form offers (text only; CoRIM goes through the API).
UPLOAD_MEDIA_TYPES = {
    "reference-values": ("application/json", "application/yaml"),
    "trust-anchors": ("application/json", "application/yaml"),
    "policies": ("application/yaml", "application/json", "application/vnd.devattest.rego"),
}
_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_NAME = re.compile(r"^[A-Za-z0-9._:@-]{1,200}$")
PAGE = 50

#: Security headers on every dashboard page: no inline script or style, no framing, no
#: referrer, no caching of fleet data.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/dashboard", include_in_schema=False)


def _views(request: Request) -> DashboardViews:
    views: DashboardViews = request.app.state.dashboard_views
    return views


def _settings(request: Request) -> DashboardSettings:
    s: DashboardSettings = request.app.state.dashboard_settings
    return s


def _now() -> datetime:
    return datetime.now(UTC)


def render(request: Request, template: str, status: int = 200, **context: Any
           ) -> HTMLResponse:
    """A template with the security headers."""
    resp = TEMPLATES.TemplateResponse(request, template, context, status_code=status)
    resp.headers.update(SECURITY_HEADERS)
    return resp


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _safe_next(value: str | None) -> str:
    """Only same-site dashboard paths (no open redirect)."""
    if value and value.startswith("/dashboard") and "//" not in value and "\\" not in value:
        return value
    return "/dashboard/"


# -- login ---------------------------------------------------------------------------------
@router.get("/login")
def login_page(request: Request, next: Annotated[str | None, Query(max_length=500)] = None
               ) -> Response:
    """The login form (a double-submit CSRF cookie protects it)."""
    import secrets

    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", next=_safe_next(next), login_csrf=token, error=None,
                  user=None)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                    path=COOKIE_PATH, secure=_secure(request), max_age=3600)
    return resp


@router.post("/login")
async def login_submit(request: Request) -> Response:
    """Check the API token; on success set the session cookie and go on."""
    import hmac

    form = await read_form(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    sent = form.get("login_csrf", "")
    nxt = _safe_next(form.get("next"))
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        return render(request, "login.html", status=400, next=nxt, login_csrf=cookie,
                      error="The form expired; please try again.", user=None)
    ctx = request.app.state.ctx
    ttl = timedelta(seconds=_settings(request).session_seconds)
    started = await run_in_threadpool(login, ctx, form.get("token", ""), now=_now(), ttl=ttl)
    if started is None:
        return render(request, "login.html", status=401, next=nxt, login_csrf=cookie,
                      error="That token is not valid for the dashboard.", user=None)
    sid, _user = started
    resp = RedirectResponse(nxt, status_code=303)
    resp.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict", path=COOKIE_PATH,
                    secure=_secure(request), max_age=int(ttl.total_seconds()))
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
    return resp


@router.post("/logout")
async def logout_submit(request: Request, user: User) -> Response:
    """End the session (CSRF-checked)."""
    form = await read_form(request)
    check_csrf(request, user, form)
    await run_in_threadpool(logout, request.app.state.ctx, user)
    resp = RedirectResponse("/dashboard/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return resp


# -- fleet ---------------------------------------------------------------------------------
@router.get("/")
def fleet_page(request: Request, user: User) -> Response:
    """Fleet posture at a glance."""
    summary = _views(request).fleet(now=_now())
    return render(request, "fleet.html", user=user, s=summary, nav="fleet")


@router.get("/attention")
def attention_page(request: Request, user: User,
                   posture: Annotated[str, Query(pattern="^(untrusted|overdue|warning)$")
                                      ] = "untrusted",
                   after: Annotated[str | None, Query(max_length=128)] = None) -> Response:
    """Devices needing attention, one posture per tab, with reasons."""
    rows = _views(request).attention(posture, after=after, limit=PAGE, now=_now())
    counts = _views(request).attention_counts()
    nxt = None
    if len(rows) == PAGE:
        nxt = "/dashboard/attention?" + urlencode({"posture": posture,
                                                   "after": rows[-1].row.device_id})
    return render(request, "attention.html", user=user, rows=rows, posture=posture,
                  counts=counts, next_url=nxt, nav="attention", first=after is None)


@router.get("/devices")
def devices_page(request: Request, user: User,
                 posture: Annotated[str | None, Query(max_length=20)] = None,
                 model: Annotated[str | None, Query(max_length=200)] = None,
                 owner: Annotated[str | None, Query(max_length=200)] = None,
                 firmware_version: Annotated[str | None, Query(max_length=200)] = None,
                 after: Annotated[str | None, Query(max_length=128)] = None) -> Response:
    """Every device, filtered, keyset-paginated (empty filter fields mean any)."""
    posture = posture if posture in POSTURES else None
    model, owner, firmware_version, after = (v or None for v in (model, owner,
                                                                  firmware_version, after))
    rows = _views(request).devices(posture=posture, model=model, owner=owner,
                                   firmware_version=firmware_version, after=after, limit=PAGE,
                                   now=_now())
    filters = {k: v for k, v in (("posture", posture), ("model", model), ("owner", owner),
                                 ("firmware_version", firmware_version)) if v is not None}
    nxt = None
    if len(rows) == PAGE:
        nxt = "/dashboard/devices?" + urlencode({**filters, "after": rows[-1].row.device_id})
    return render(request, "devices.html", user=user, rows=rows, filters=filters,
                  next_url=nxt, nav="devices", first=after is None)


@router.get("/devices/{device_id}")
def device_page(request: Request, user: User, device_id: str,
                ev: Annotated[int | None, Query(ge=0)] = None,
                att: Annotated[int | None, Query(ge=0)] = None) -> Response:
    """One device: identity, Trust Anchors, posture, timeline, latest claims."""
    if not _ID.match(device_id):
        return render(request, "not_found.html", status=404, user=user, what="device")
    detail = _views(request).device(device_id, now=_now(), ev_before=ev, att_before=att)
    if detail is None:
        return render(request, "not_found.html", status=404, user=user, what="device")
    older = None
    if detail.next_cursor is not None:
        q = {k: v for k, v in (("ev", detail.next_cursor[0]), ("att", detail.next_cursor[1]))
             if v is not None}
        older = f"/dashboard/devices/{quote(device_id)}?{urlencode(q)}#timeline"
    return render(request, "device.html", user=user, d=detail, older=older, nav="devices")


# -- live ----------------------------------------------------------------------------------
@router.get("/live")
def live_page(request: Request, user: User) -> Response:
    """The live view: the fragment below, polled by htmx."""
    data = _views(request).live(now=_now())
    return render(request, "live.html", user=user, live=data, nav="live",
                  poll=_settings(request).live_poll_seconds, at=_now())


@router.get("/live/fragment")
def live_fragment(request: Request, user: User) -> Response:
    """What changes while a wave runs (htmx swaps it in every few seconds)."""
    data = _views(request).live(now=_now())
    return render(request, "_live.html", user=user, live=data,
                  poll=_settings(request).live_poll_seconds, at=_now())


# -- provisioning --------------------------------------------------------------------------
@router.get("/provisioning/{kind}")
def provisioning_page(request: Request, user: User, kind: str) -> Response:
    """Reference Values, Trust Anchors or policies in force."""
    if kind not in KINDS:
        return render(request, "not_found.html", status=404, user=user, what="page")
    records = _views(request).provisioned(kind)
    extra: dict[str, Any] = {}
    if kind == "trust-anchors":
        extra["anchors"] = _views(request).anchors(now=_now())
    elif kind == "reference-values":
        extra["refvals"] = request.app.state.ctx.material.get(now=_now()).reference_values
    return render(request, "provisioning.html", user=user, kind=kind, title=KINDS[kind],
                  records=records, media_types=UPLOAD_MEDIA_TYPES[kind], nav=kind,
                  message=request.query_params.get("message"), error=None, **extra)


@router.get("/provisioning/{kind}/{name}/versions/{version}")
def provisioned_document(request: Request, user: User, kind: str, name: str, version: int
                         ) -> Response:
    """One stored document, as text when it is text."""
    if kind not in KINDS or not _NAME.match(name):
        return render(request, "not_found.html", status=404, user=user, what="document")
    try:
        record = request.app.state.ctx.provisioning.get(kind, name, version)
    except ApiError:
        return render(request, "not_found.html", status=404, user=user, what="document")
    try:
        text = record.content.decode("utf-8")
        binary = False
    except UnicodeDecodeError:
        text = record.content[:4096].hex(" ", 16)
        binary = True
    return render(request, "document.html", user=user, kind=kind, title=KINDS[kind],
                  r=record, text=text, binary=binary, nav=kind)


@router.post("/provisioning/{kind}")
async def provisioning_upload(request: Request, user: User, kind: str) -> Response:
    """Submit a new version (admin, provisioner; CSRF-checked)."""
    form = await read_form(request)
    check_csrf(request, user, form)
    require_change(user)
    if kind not in KINDS:
        return render(request, "not_found.html", status=404, user=user, what="page")
    media_type = form.get("media_type", "")
    name = form.get("name") or None
    if media_type not in UPLOAD_MEDIA_TYPES[kind] or (name and not _NAME.match(name)):
        return RedirectResponse(f"/dashboard/provisioning/{kind}?" + urlencode(
            {"message": "refused: bad name or media type"}), status_code=303)
    content = form.get("content", "").encode("utf-8")
    try:
        record, created = await run_in_threadpool(lambda: request.app.state.ctx.provisioning
                                                  .submit(kind, name=name,
                                                          media_type=media_type,
                                                          content=content, now=_now()))
    except ApiError as exc:
        msg = f"refused: {exc.message}"
    else:
        msg = (f"stored {record.name} v{record.version}" if created else
               f"unchanged: {record.name} v{record.version} already holds this content")
    return RedirectResponse(f"/dashboard/provisioning/{kind}?" + urlencode({"message": msg}),
                            status_code=303)


@router.post("/provisioning/{kind}/{name}/delete")
async def provisioning_delete(request: Request, user: User, kind: str, name: str
                              ) -> Response:
    """Delete every version of ``name`` (admin, provisioner; CSRF-checked)."""
    form = await read_form(request)
    check_csrf(request, user, form)
    require_change(user)
    if kind not in KINDS or not _NAME.match(name):
        return render(request, "not_found.html", status=404, user=user, what="document")
    try:
        n = await run_in_threadpool(lambda: request.app.state.ctx.provisioning.delete(
            kind, name, now=_now()))
        msg = f"deleted {n} version(s) of {name}"
    except ApiError as exc:
        msg = f"refused: {exc.message}"
    return RedirectResponse(f"/dashboard/provisioning/{kind}?" + urlencode({"message": msg}),
                            status_code=303)


@router.get("")
def dashboard_root(request: Request) -> Response:
    """``/dashboard`` -> ``/dashboard/`` (or the login page)."""
    user = current_user(request, _now())
    return RedirectResponse("/dashboard/" if user else "/dashboard/login", status_code=303)
