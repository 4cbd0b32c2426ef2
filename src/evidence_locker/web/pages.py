"""The server-rendered web interface: sign in, list recordings, open one and play it.

Works without a build step or JavaScript framework; forms carry a CSRF token.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import RedirectResponse, Response

from evidence_locker.accounts.roles import Principal, may_view_footage_at_all, needs_justification
from evidence_locker.accounts.service import (
    Passwords,
    authenticate,
    create_session,
    end_session,
)
from evidence_locker.catalogue import access, queries
from evidence_locker.db import transaction
from evidence_locker.web.access_table import admits
from evidence_locker.web.auth import (
    SESSION_COOKIE,
    actor_from,
    client_ip,
    require_principal,
    runtime_of,
)
from evidence_locker.web.problems import ApiError

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
LOGIN_CSRF_COOKIE = "locker_login_csrf"


def _local(value: str | dt.datetime | None, zone: str) -> str:
    if value is None:
        return "—"
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


templates.env.filters["local"] = _local


#: The header's links, shown to whoever the authorisation table admits to each page.
NAV = [("Recordings", "/"), ("Cases", "/cases"), ("Fleet", "/fleet"),
       ("Access alerts", "/audit/alerts"),
       ("Due for deletion", "/retention/due"), ("Deleted", "/retention/deleted"),
       ("Reviews", "/reviews"), ("Subject told", "/reports/subject-told")]


def nav_for(principal: Principal | None) -> list[tuple[str, str]]:
    if principal is None or principal.role is None:
        return []
    return [(label, path) for label, path in NAV
            if admits("GET", path, principal.role)
            and (path != "/" or may_view_footage_at_all(principal))]


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    runtime = runtime_of(request)
    principal = getattr(request.state, "principal", None)
    base = {"force_name": runtime.settings.force_name, "zone": runtime.settings.timezone,
            "principal": principal, "nav": nav_for(principal),
            "csrf_token": getattr(request.state, "csrf_token", "")}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status)


def signed_in(request: Request) -> Principal | None:
    """The person signed in (a session, or an API token with the api scope), or None: a dock's
    or Prometheus's token is nobody here."""
    try:
        return require_principal(request)
    except ApiError:
        return None


def check_csrf(expected: str, given: str) -> None:
    if not expected or not hmac.compare_digest(expected, given):
        raise ApiError(403, "Forbidden", "the form's CSRF token is missing or wrong")


def _oidc_button(request: Request) -> dict[str, Any]:
    """"Sign in with <IdP>" on the login page when OpenID Connect is configured (accounts/oidc)."""
    settings = runtime_of(request).settings
    return {"oidc_name": settings.oidc_display_name if settings.oidc_enabled else None}


@router.get("/login")
def login_form(request: Request) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html",
                       {"login_csrf": token, "error": None, **_oidc_button(request)})
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                        secure=runtime_of(request).settings.secure_cookies, path="/login")
    return response


@router.post("/login")
def login(request: Request, username: str = Form(max_length=200),
          password: str = Form(max_length=1024), csrf: str = Form(max_length=200)) -> Response:
    runtime = runtime_of(request)
    check_csrf(request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf)
    passwords = Passwords.from_settings(runtime.settings)
    with transaction(runtime.sessions) as session:
        user = authenticate(session, clock=runtime.clock, passwords=passwords,
                            username=username, password=password, ip=client_ip(request),
                            user_agent=request.headers.get("user-agent"))
        secret = None
        if user is not None:
            # A fresh session id at every sign-in: no session fixation.
            secret, _ = create_session(session, clock=runtime.clock, user=user,
                                       hours=runtime.settings.session_hours,
                                       ip=client_ip(request),
                                       user_agent=request.headers.get("user-agent"))
    if secret is None:
        token = secrets.token_urlsafe(32)
        response = render(request, "login.html",
                           {"login_csrf": token, "error": "Sign-in failed.",
                            **_oidc_button(request)}, status=401)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=runtime.settings.secure_cookies, path="/login")
        return response
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="lax",
                        secure=runtime.settings.secure_cookies,
                        max_age=runtime.settings.session_hours * 3600)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, csrf: str = Form("", max_length=200)) -> Response:
    runtime = runtime_of(request)
    if signed_in(request) is not None:
        check_csrf(getattr(request.state, "csrf_token", ""), csrf)
        with transaction(runtime.sessions) as session:
            end_session(session, clock=runtime.clock,
                        secret=request.cookies.get(SESSION_COOKIE, ""),
                        ip=client_ip(request), user_agent=request.headers.get("user-agent"))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/")
def recordings_page(request: Request, officer: str | None = None, device: str | None = None,
                    state: str | None = None, cursor: str | None = None) -> Response:
    principal = signed_in(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if not may_view_footage_at_all(principal):
        return render(request, "no_footage.html", {}, status=200)
    runtime = runtime_of(request)
    filters = queries.Filters(officer=officer or None, device=device or None,
                              state=state or None)
    with transaction(runtime.sessions) as session:
        try:
            items, next_cursor = queries.search_recorded(
                session, clock=runtime.clock, principal=principal,
                actor=actor_from(request, principal), filters=filters, limit=50,
                cursor=cursor or None, via="web")
        except queries.QueryError as exc:
            raise ApiError(400, "Bad request", str(exc)) from exc
    return render(request, "recordings.html", {
        "items": items, "next_cursor": next_cursor,
        "filters": {"officer": officer or "", "device": device or "", "state": state or ""},
    })


@router.get("/recordings/{recording_id}")
def recording_page(recording_id: str, request: Request, clip: int = 1,
                   grant: str | None = None) -> Response:
    """The recording's facts; its player only with a grant. Someone else's footage asks for a
    purpose and reason first; one's own gets a grant without asking (still one audit event)."""
    principal = signed_in(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if not may_view_footage_at_all(principal):
        return render(request, "no_footage.html", {}, status=403)
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        body = queries.view_recorded(session, clock=runtime.clock, principal=principal,
                                     actor=actor_from(request, principal),
                                     recording_id=recording_id, via="web")
        if body is None:
            return render(request, "not_found.html", {}, status=404)
        rec = queries.get_visible(session, principal=principal, recording_id=recording_id)
        assert rec is not None
        own = not needs_justification(principal, queries.scope_of(session, rec))
        live = access.valid_grant(session, clock=runtime.clock, principal=principal,
                                  recording_id=rec.id, token=grant)
        token = grant if live is not None else None
        if token is None and own:
            token = access.issue_grant(
                session, clock=runtime.clock, principal=principal,
                actor=actor_from(request, principal), recording=rec, purpose="", reason="",
                purposes=runtime.settings.access_purposes,
                minutes=runtime.settings.access_grant_minutes, own=True).token
    return _recording(request, body, clip, token)


def _recording(request: Request, body: dict[str, Any], clip: int, grant: str | None,
               error: str | None = None, form: dict[str, str] | None = None,
               status: int = 200) -> Response:
    clips = [f for f in body["files"] if f["kind"] == "clip"]
    return render(request, "recording.html", {
        "r": body, "clips": clips, "clip": clip, "grant": grant, "error": error,
        "form": form or {"purpose": "", "reason": ""},
        "purposes": runtime_of(request).settings.access_purposes}, status=status)


@router.post("/recordings/{recording_id}/access")
def recording_access(recording_id: str, request: Request,
                     purpose: str = Form("", max_length=100),
                     reason: str = Form("", max_length=4000),
                     clip: int = Form(1, ge=1, le=10_000),
                     csrf: str = Form("", max_length=200)) -> Response:
    """The justification form: one audit event, then the player with its grant."""
    principal = signed_in(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    check_csrf(getattr(request.state, "csrf_token", ""), csrf)
    if not may_view_footage_at_all(principal):
        return render(request, "no_footage.html", {}, status=403)
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        rec = queries.get_visible(session, principal=principal, recording_id=recording_id)
        if rec is None:
            return render(request, "not_found.html", {}, status=404)
        own = not needs_justification(principal, queries.scope_of(session, rec))
        try:
            grant = access.issue_grant(
                session, clock=runtime.clock, principal=principal,
                actor=actor_from(request, principal), recording=rec, purpose=purpose,
                reason=reason, purposes=runtime.settings.access_purposes,
                minutes=runtime.settings.access_grant_minutes, own=own)
        except access.GrantRefused as exc:
            body = queries.describe(session, rec)
            return _recording(request, body, clip, None, error=str(exc),
                              form={"purpose": purpose, "reason": reason}, status=422)
        rid = rec.id
    return RedirectResponse(f"/recordings/{rid}?{urlencode({'clip': clip, 'grant': grant.token})}",
                            status_code=303)
