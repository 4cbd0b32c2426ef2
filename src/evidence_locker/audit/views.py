"""/api/v1/audit: per-recording and per-user audit trails (JSON pages, CSV and PDF exports) and
access-pattern alerts; the pages /audit/recordings/{id} and /audit/users/{username}.

Who may read (DESIGN.md's roles table):
- auditors: every trail and the alerts ("the audit log and reports"), never footage;
- professional standards: every trail and the alerts, for complaints and misconduct work; a
  recording's trail only while they can see the recording (a post-incident restriction they are
  not listed on hides its trail too, as it hides the recording);
- evidence officers: the trail of a recording they can see (their command), because the
  chain-of-custody record goes to court with the footage they disclose; not people's trails;
- everyone else, officers included, none: the trail of one's own footage names who looked at
  it and why, which can be a complaint or covert investigation the officer must not learn of
  (a subject access request goes through the force's disclosure process instead).

Every read of a trail or of the alerts is itself an audit event, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from evidence_locker.accounts.models import User
from evidence_locker.accounts.roles import Principal, Role
from evidence_locker.audit import reports
from evidence_locker.audit.service import record
from evidence_locker.audit.signing import KeyRing, SigningKeyError
from evidence_locker.catalogue import queries
from evidence_locker.db import transaction
from evidence_locker.runtime import Runtime
from evidence_locker.web.auth import actor_from, require_principal, runtime_of
from evidence_locker.web.problems import ApiError, aware

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

#: Roles that read every trail and the alerts.
READ_ALL = frozenset({Role.AUDITOR, Role.PROFESSIONAL_STANDARDS})
#: Roles that read the trail of a recording they can see.
READ_RECORDING = READ_ALL | {Role.EVIDENCE_OFFICER}


def may_read_recording_trails(p: Principal) -> bool:
    return p.role in READ_RECORDING and p.user_id is not None


def may_read_user_trails(p: Principal) -> bool:
    return p.role in READ_ALL and p.user_id is not None


def _reader(check: Any) -> Any:
    def dependency(request: Request) -> Principal:
        principal = require_principal(request)
        if not check(principal):
            raise ApiError(403, "Forbidden", "this role does not read audit trails")
        return principal
    return dependency


RecordingReader = Annotated[Principal, Depends(_reader(may_read_recording_trails))]
AllReader = Annotated[Principal, Depends(_reader(may_read_user_trails))]


def key_ring(runtime: Runtime) -> KeyRing | None:
    """The verifier's public keys, to check the covering checkpoint's signature (None: none)."""
    from evidence_locker.audit.cli import key_ring as configured

    try:
        ring = configured(runtime.settings)
    except SigningKeyError:
        return None
    return ring or None


def _trail(request: Request, principal: Principal, session: Session, *, stmt: Any,
           subject: str, object_type: str, object_id: str, name: str, fmt: str, limit: int,
           cursor: str | None, since: dt.datetime | None, until: dt.datetime | None,
           via: str = "api") -> Any:
    """One trail in the asked format; the read recorded after the events were fetched (so a
    page never holds its own read)."""
    runtime = runtime_of(request)
    keys = key_ring(runtime)
    details: dict[str, Any] = {"format": fmt, "subject": subject, "via": via,
                               "from": since.isoformat() if since else None,
                               "to": until.isoformat() if until else None}
    response: Any
    if fmt == "json":
        try:
            events, next_cursor = reports.page(session, stmt, limit=limit, cursor=cursor,
                                               since=since, until=until)
        except reports.ReportError as exc:
            raise ApiError(400, "Bad request", str(exc)) from exc
        status = reports.chain_status(session, events, keys=keys)
        response = {"subject": subject, "items": [
            {**reports.as_dict(e), "intact": reports.intact(e)} for e in events],
            "next_cursor": next_cursor, "chain": status.as_dict()}
        details.update(cursor=cursor, returned=len(events))
    elif fmt == "csv":
        events_iter = reports.every(session, stmt, since=since, until=until)
        counted = 0

        def counting() -> Any:
            nonlocal counted
            for e in events_iter:
                counted += 1
                yield e

        body = "".join(reports.to_csv(counting()))
        details.update(returned=counted)
        response = Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8",
                            headers=_attachment(f"audit-{name}.csv"))
    else:
        total = session.scalar(select(func.count()).select_from(
            reports.window(stmt, since, until).subquery())) or 0
        cap = runtime.settings.audit_pdf_max_events
        if total > cap:
            raise ApiError(422, "Too many events for one PDF",
                           f"{total} events; a PDF holds at most {cap}: narrow it with from/to, "
                           "or take format=csv")
        events = list(reports.every(session, stmt, since=since, until=until))
        status = reports.chain_status(session, events, keys=keys)
        pdf = reports.to_pdf(
            title="Audit trail", subject=subject, requested_by=principal.username,
            generated_at=runtime.clock.now(), events=events, status=status,
            force_name=runtime.settings.force_name)
        details.update(returned=len(events), chain_ok=status.ok)
        response = Response(pdf, media_type="application/pdf",
                            headers=_attachment(f"audit-{name}.pdf"))
    record(session, clock=runtime.clock, actor=actor_from(request, principal),
           action="audit.trail_read", object_type=object_type, object_id=object_id,
           details=details)
    return response


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}


def _recording_trail(request: Request, principal: Principal, recording_id: str, *, fmt: str,
                     limit: int, cursor: str | None, since: dt.datetime | None,
                     until: dt.datetime | None, via: str = "api") -> Any:
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        if principal.role != Role.AUDITOR:
            rec = queries.get_visible(session, principal=principal, recording_id=recording_id)
            if rec is None:
                raise ApiError(404, "Not found", "no such recording, or not yours to see")
            recording_id = str(rec.id)
        elif len(recording_id) > 64:
            raise ApiError(404, "Not found", "no such recording")
        return _trail(request, principal, session, stmt=reports.recording_trail(recording_id),
                      subject=f"recording {recording_id}", object_type="recording",
                      object_id=recording_id, name=f"recording-{recording_id}", fmt=fmt,
                      limit=limit, cursor=cursor, since=since, until=until, via=via)


def _user_trail(request: Request, principal: Principal, username: str, *, fmt: str, limit: int,
                cursor: str | None, since: dt.datetime | None, until: dt.datetime | None,
                via: str = "api") -> Any:
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        user = session.scalars(select(User).where(User.username == username)).one_or_none()
        if user is None:
            raise ApiError(404, "Not found", "no such user")
        return _trail(request, principal, session, stmt=reports.user_trail(user),
                      subject=f"user {user.username} ({user.role})", object_type="user",
                      object_id=str(user.id), name=f"user-{user.username}", fmt=fmt,
                      limit=limit, cursor=cursor, since=since, until=until, via=via)


#: A trail comes as JSON, CSV or PDF (`format=`).
TRAIL_FORMATS: dict[int | str, dict[str, Any]] = {200: {
    "description": "The trail, in the format asked for.",
    "content": {"application/json": {}, "text/csv": {}, "application/pdf": {}}}}


@router.get("/recordings/{recording_id}", response_model=None, responses=TRAIL_FORMATS)
def recording_trail(
    recording_id: str, request: Request, principal: RecordingReader,
    format: str = Query("json", pattern="^(json|csv|pdf)$"),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=40),
    since: dt.datetime | None = Query(None, alias="from"),
    until: dt.datetime | None = Query(None, alias="to"),
) -> Any:
    """Every event about one recording, oldest first: JSON pages (`cursor`), or the whole trail
    (within from/to) as CSV or a PDF court copy with the chain status."""
    return _recording_trail(request, principal, recording_id, fmt=format, limit=limit,
                            cursor=cursor, since=aware(since, "from"), until=aware(until, "to"))


@router.get("/users/{username}", response_model=None, responses=TRAIL_FORMATS)
def user_trail(
    username: str, request: Request, principal: AllReader,
    format: str = Query("json", pattern="^(json|csv|pdf)$"),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=40),
    since: dt.datetime | None = Query(None, alias="from"),
    until: dt.datetime | None = Query(None, alias="to"),
) -> Any:
    """Everything one user did, and everything done to their account, oldest first."""
    return _user_trail(request, principal, username, fmt=format, limit=limit, cursor=cursor,
                       since=aware(since, "from"), until=aware(until, "to"))


@router.get("/alerts")
def alerts(
    request: Request, principal: AllReader,
    since: dt.datetime = Query(..., description="start of the window (with a UTC offset)"),
    until: dt.datetime | None = Query(None, description="end of the window (default: now)"),
) -> dict[str, Any]:
    """Unusual access in the window, for professional standards (and auditors): many
    recordings of others, recordings outside one's unit, restricted footage."""
    runtime = runtime_of(request)
    start = aware(since, "since")
    assert start is not None
    end = aware(until, "until") or runtime.clock.now()
    return _alerts(request, principal, start, end, via="api")


def _alerts(request: Request, principal: Principal, start: dt.datetime, end: dt.datetime, *,
            via: str) -> dict[str, Any]:
    """The alerts of a window, and the audit event that they were read."""
    runtime = runtime_of(request)
    if end <= start:
        raise ApiError(400, "Bad request", "until must be after since")
    thresholds = reports.Thresholds.from_settings(runtime.settings)
    with transaction(runtime.sessions) as session:
        found = reports.access_alerts(session, since=start, until=end, thresholds=thresholds)
        record(session, clock=runtime.clock, actor=actor_from(request, principal),
               action="audit.alerts_read", object_type="audit",
               details={"since": start.isoformat(), "until": end.isoformat(),
                        "alerts": len(found), "via": via})
    return {"since": start.isoformat(), "until": end.isoformat(),
            "thresholds": vars(thresholds), "alerts": [a.as_dict() for a in found]}


# --- pages ------------------------------------------------------------------------------------

pages = APIRouter(include_in_schema=False)


def _page(request: Request, check: Any, load: Any, title: str, export: str) -> Response:
    from evidence_locker.web.pages import render, signed_in

    principal = signed_in(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if not check(principal):
        return render(request, "audit_forbidden.html", {}, status=403)
    cursor = request.query_params.get("cursor")
    try:
        body = load(principal, cursor)
    except ApiError as exc:
        if exc.status == 404:
            return render(request, "not_found.html", {}, status=404)
        raise
    return render(request, "audit_trail.html",
                   {"t": body, "title": title, "export": export, "cursor": cursor})


@pages.get("/audit/recordings/{recording_id}")
def recording_trail_page(recording_id: str, request: Request) -> Response:
    """A recording's trail, 100 events a page, with the chain status and the exports."""
    return _page(
        request, may_read_recording_trails,
        lambda p, c: _recording_trail(request, p, recording_id, fmt="json", limit=100,
                                      cursor=_cursor(c), since=None, until=None, via="web"),
        f"Audit trail of recording {recording_id}",
        f"/api/v1/audit/recordings/{quote(recording_id)}")


@pages.get("/audit/users/{username}")
def user_trail_page(username: str, request: Request) -> Response:
    """A person's trail: what they did, and what was done to their account."""
    return _page(
        request, may_read_user_trails,
        lambda p, c: _user_trail(request, p, username, fmt="json", limit=100, cursor=_cursor(c),
                                 since=None, until=None, via="web"),
        f"Audit trail of {username}", f"/api/v1/audit/users/{quote(username)}")


def _cursor(value: str | None) -> str | None:
    if value is not None and (len(value) > 40 or not value.isdigit()):
        raise ApiError(400, "Bad request", "invalid cursor")
    return value


#: The alerts page looks back this many days unless asked otherwise (at most a quarter).
ALERT_DAYS_DEFAULT, ALERT_DAYS_MAX = 7, 92


@pages.get("/audit/alerts")
def alerts_page(request: Request, days: int = ALERT_DAYS_DEFAULT) -> Response:
    """Unusual access over the last `days` days, each person linked to their trail: the page
    professional standards open first thing."""
    from evidence_locker.web.pages import render, signed_in

    principal = signed_in(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if not may_read_user_trails(principal):
        return render(request, "audit_forbidden.html", {}, status=403)
    days = max(1, min(days, ALERT_DAYS_MAX))
    end = runtime_of(request).clock.now()
    body = _alerts(request, principal, end - dt.timedelta(days=days), end, via="web")
    return render(request, "audit_alerts.html", {"a": body, "days": days})
