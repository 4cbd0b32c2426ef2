"""Case pages: /cases lists the cases one may read (and opens one), /cases/{id} shows a case
with its recordings, owners, history and watchdog grants, and the forms its managers use.

The same people, rules and audit events as /api/v1/cases (lifecycle/case_views.py): each form
posts to its own route, calls the same function of lifecycle/cases.py in one transaction with
its audit event, and goes back to the case (303) when done or shows it again with the reason
when refused (422; 409 for a conflict; 403 for someone who may not change this case).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from evidence_locker.accounts.roles import Principal
from evidence_locker.db import transaction
from evidence_locker.lifecycle import cases, rules, service
from evidence_locker.lifecycle.case_models import Case
from evidence_locker.lifecycle.case_views import may_read_cases
from evidence_locker.lifecycle.pages import form_change, posted_by, refusal_text, shown_page
from evidence_locker.web.auth import actor_from, runtime_of
from evidence_locker.web.pages import render, signed_in

router = APIRouter(include_in_schema=False)

#: Every field has a default, so that a caller who may not post is refused (401/403) before
#: their input is judged (422).
Reason = Annotated[str, Form(max_length=4000)]
Csrf = Annotated[str, Form(max_length=200)]
Username = Annotated[str, Form(max_length=100)]
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1)]

WORK_REFUSAL = "Watchdogs and prosecutors read cases; they do not change them."
OPEN_REFUSAL = "Evidence officers and professional standards open cases."
GRANT_REFUSAL = "Only professional standards grant a watchdog a case."

#: What a refused change answers, shown on the case page.
_STATUS = ((cases.CaseForbidden, 403), (service.LifecycleConflict, 409),
           (service.LifecycleRefused, 422), (LookupError, 422))


def _status_of(exc: Exception) -> int:
    return next(code for kind, code in _STATUS if isinstance(exc, kind))


def _case_page(request: Request, session: Session, principal: Principal, case: Case, *,
               error: str | None = None, status: int = 200) -> Response:
    runtime = runtime_of(request)
    body = cases.describe(session, clock=runtime.clock, principal=principal,
                          actor=actor_from(request, principal), case=case)
    return render(request, "case.html", {
        "c": body, "error": error, "statuses": rules.CASE_STATUSES,
        "may_grant": rules.may_manage_case_grants(principal)}, status=status)


@router.get("/cases")
def cases_page(request: Request,
               status: Annotated[str | None, Query(max_length=16)] = None,
               reference: Annotated[str | None, Query(max_length=64)] = None,
               unit: Annotated[str | None, Query(max_length=32)] = None) -> Response:
    """The cases the caller may read, newest first, filtered; the form to open one."""
    principal = signed_in(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if not may_read_cases(principal):
        return render(request, "no_footage.html", {}, status=403)
    return _list(request, principal, status=status or None, reference=reference or None,
                 unit=unit or None)


def _list(request: Request, principal: Principal, *, status: str | None = None,
          reference: str | None = None, unit: str | None = None, error: str | None = None,
          code: int = 200, opening: dict[str, str] | None = None) -> Response:
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        try:
            items = cases.list_cases(session, clock=runtime.clock, principal=principal,
                                     actor=actor_from(request, principal), status=status,
                                     reference=reference, unit=unit)
        except service.LifecycleRefused as exc:
            items, error, code = [], str(exc), 400
    return render(request, "cases.html", {
        "items": items, "error": error, "statuses": rules.CASE_STATUSES,
        "shown": {"status": status or "", "reference": reference or "", "unit": unit or ""},
        "may_open": rules.may_open_cases(principal), "opening": opening or {}}, status=code)


@router.post("/cases")
def open_case(request: Request, reference: Annotated[str, Form(max_length=200)] = "",
              title: Annotated[str, Form(max_length=400)] = "",
              unit: Annotated[str, Form(max_length=32)] = "", csrf: Csrf = "") -> Response:
    """Open a case; its page next (the opener owns it)."""
    principal = posted_by(request, csrf, allowed=rules.may_open_cases, refusal=OPEN_REFUSAL)
    if isinstance(principal, Response):
        return principal
    runtime = runtime_of(request)
    try:
        with transaction(runtime.sessions) as session:
            made = cases.create(session, clock=runtime.clock, settings=runtime.settings,
                                principal=principal, actor=actor_from(request, principal),
                                reference=reference, title=title, unit=unit or None)
    except (cases.CaseForbidden, service.LifecycleRefused, service.LifecycleConflict) as exc:
        return _list(request, principal, error=refusal_text(exc), code=_status_of(exc),
                     opening={"reference": reference, "title": title, "unit": unit})
    return RedirectResponse(f"/cases/{made['id']}", status_code=303)


@router.get("/cases/{case_id}")
def case_page(case_id: CaseId, request: Request) -> Response:
    """A case and the recordings in it the caller may see; audited (a case lists footage)."""
    return shown_page(request, allowed=may_read_cases,
                      find=lambda s, p: cases.readable(s, p, case_id),
                      show=lambda s, p, case: _case_page(request, s, p, case))


def _change(request: Request, case_id: int, csrf: str, *, allowed: Callable[[Principal], bool],
            refusal: str, act: Callable[[Session, Principal, Case], Any]) -> Response:
    """One form's change to a case, shown back on the case when refused."""
    return form_change(
        request, csrf, allowed=allowed, refusal=refusal, act=act,
        find=lambda s, p: cases.readable(s, p, case_id),
        refusals=tuple(kind for kind, _ in _STATUS),
        refused=lambda s, p, case, exc: _case_page(request, s, p, case, error=refusal_text(exc),
                                                   status=_status_of(exc)),
        back=lambda case: f"/cases/{case.id}")


def _who(request: Request, p: Principal) -> dict[str, Any]:
    runtime = runtime_of(request)
    return {"clock": runtime.clock, "principal": p, "actor": actor_from(request, p)}


@router.post("/cases/{case_id}/recordings")
def add_recording(case_id: CaseId, request: Request,
                  recording_id: Annotated[str, Form(max_length=64)] = "", reason: Reason = "",
                  csrf: Csrf = "") -> Response:
    settings = runtime_of(request).settings
    return _change(request, case_id, csrf, allowed=rules.may_work_cases, refusal=WORK_REFUSAL,
                   act=lambda s, p, case: cases.add_recording(
                       s, settings=settings, **_who(request, p), case=case,
                       recording=cases.visible_recording(s, p, recording_id.strip()),
                       reason=reason))


@router.post("/cases/{case_id}/recordings/{recording_id}/remove")
def remove_recording(case_id: CaseId, recording_id: Annotated[str, Path(max_length=64)],
                     request: Request, reason: Reason = "", csrf: Csrf = "") -> Response:
    settings = runtime_of(request).settings
    return _change(request, case_id, csrf, allowed=rules.may_work_cases, refusal=WORK_REFUSAL,
                   act=lambda s, p, case: cases.remove_recording(
                       s, settings=settings, **_who(request, p), case=case,
                       recording=cases.visible_recording(s, p, recording_id), reason=reason))


@router.post("/cases/{case_id}/status")
def change_status(case_id: CaseId, request: Request,
                  status: Annotated[str, Form(max_length=16)] = "", reason: Reason = "",
                  csrf: Csrf = "") -> Response:
    settings = runtime_of(request).settings
    return _change(request, case_id, csrf, allowed=rules.may_work_cases, refusal=WORK_REFUSAL,
                   act=lambda s, p, case: cases.change_status(
                       s, settings=settings, **_who(request, p), case=case, status=status,
                       reason=reason))


@router.post("/cases/{case_id}/owners")
def add_owner(case_id: CaseId, request: Request, username: Username = "",
              csrf: Csrf = "") -> Response:
    return _change(request, case_id, csrf, allowed=rules.may_work_cases, refusal=WORK_REFUSAL,
                   act=lambda s, p, case: cases.add_owner(
                       s, **_who(request, p), case=case, username=username.strip()))


@router.post("/cases/{case_id}/owners/{username}/remove")
def remove_owner(case_id: CaseId, username: Annotated[str, Path(max_length=100)],
                 request: Request, reason: Reason = "", csrf: Csrf = "") -> Response:
    return _change(request, case_id, csrf, allowed=rules.may_work_cases, refusal=WORK_REFUSAL,
                   act=lambda s, p, case: cases.remove_owner(
                       s, **_who(request, p), case=case, username=username, reason=reason))


@router.post("/cases/{case_id}/grants")
def place_grant(case_id: CaseId, request: Request, username: Username = "",
                reason: Reason = "", csrf: Csrf = "") -> Response:
    return _change(request, case_id, csrf, allowed=rules.may_manage_case_grants,
                   refusal=GRANT_REFUSAL, act=lambda s, p, case: cases.place_grant(
                       s, **_who(request, p), case=case, username=username.strip(),
                       reason=reason))


@router.post("/cases/{case_id}/grants/{grant_id}/revoke")
def revoke_grant(case_id: CaseId, grant_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
                 request: Request, reason: Reason = "", csrf: Csrf = "") -> Response:
    return _change(request, case_id, csrf, allowed=rules.may_manage_case_grants,
                   refusal=GRANT_REFUSAL, act=lambda s, p, case: cases.revoke_grant(
                       s, **_who(request, p), case=case, grant_id=grant_id, reason=reason))
