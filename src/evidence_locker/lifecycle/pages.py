"""The "Evidence and retention" page of a recording: its deadline, flags (with their review
decisions), holds, restriction and whether the subject was told, with the forms the caller's role
may use; the review queue (/reviews), what is due for deletion (/retention/due), what was
deleted (/retention/deleted: the tombstones, for the records manager) and the subject-told
compliance report (/reports/subject-told).

Each form posts to its own route (so the authorisation table names exactly who may do what) and
calls the same service function as the JSON API, in one transaction with its audit event. A
refused change shows the page again with the reason (422); a done one goes back to the page
(303), so a reload does not post twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Path, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from evidence_locker.accounts.roles import (
    RESTRICTION_KINDS,
    Principal,
    may_manage_restrictions,
    may_view_footage_at_all,
)
from evidence_locker.catalogue import queries, restrictions
from evidence_locker.catalogue.models import Recording
from evidence_locker.db import transaction
from evidence_locker.lifecycle import cases, records, reviews, rules, service
from evidence_locker.lifecycle.record_views import may_read_tombstones
from evidence_locker.web.auth import actor_from, runtime_of
from evidence_locker.web.pages import check_csrf, render, signed_in

router = APIRouter(include_in_schema=False)

T = TypeVar("T")

#: Every field has a default, so that a caller who may not post is refused (401/403) before
#: their input is judged (422).
Reason = Annotated[str, Form(max_length=4000)]
Csrf = Annotated[str, Form(max_length=200)]
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]

#: Refusals a form shows back to the person (the API answers 422 or 409 for the same).
REFUSALS = (service.LifecycleRefused, service.LifecycleConflict, LookupError,
            restrictions.RestrictionRefused, restrictions.RestrictionConflict)


def _page(request: Request, session: Session, principal: Principal, rec: Recording, *,
          error: str | None = None, status: int = 200) -> Response:
    runtime = runtime_of(request)
    scope = queries.scope_of(session, rec)
    manages = may_manage_restrictions(principal)
    retention = service.describe_retention(session, settings=runtime.settings, rec=rec)
    now = runtime.clock.now()
    return render(request, "evidence.html", {
        "r": queries.describe(session, rec),
        "retention": retention,
        # Review flags whose review is due now: the ones a reviewer may decide on.
        "due": {f["id"] for f in retention["flags"] if f.get("review_due_at")
                and dt.datetime.fromisoformat(f["review_due_at"]) <= now},
        "may_review": rules.may_review(principal, scope),
        "told_values": rules.SUBJECT_TOLD,
        "next_review": (rules.NEXT_REVIEW_MIN_DAYS, rules.NEXT_REVIEW_MAX_DAYS),
        "restriction": restrictions.describe(session, rec.id) if manages else None,
        "may_flag": rules.may_flag(principal, scope),
        "may_hold": rules.may_manage_holds(principal),
        "may_restrict": manages,
        "categories": [c.name for c in service.current_categories(session)],
        "hold_kinds": rules.HOLD_KINDS,
        "restriction_kinds": RESTRICTION_KINDS,
        "cases": cases.cases_of_recording(session, principal, rec.id),
        "error": error,
    }, status=status)


def _visible(session: Session, principal: Principal, recording_id: str) -> Recording | None:
    return queries.get_visible(session, principal=principal, recording_id=recording_id)


@router.get("/recordings/{recording_id}/evidence")
def evidence_page(recording_id: str, request: Request) -> Response:
    """What keeps this recording, until when, and what the caller may change about that."""
    return shown_page(request, allowed=may_view_footage_at_all,
                      find=lambda s, p: _visible(s, p, recording_id),
                      show=lambda s, p, rec: _page(request, s, p, rec))


def shown_page(request: Request, *, allowed: Callable[[Principal], bool],
               find: Callable[[Session, Principal], T | None],
               show: Callable[[Session, Principal, T], Response]) -> Response:
    """A page about one thing (a recording, a case): signed in, a role that sees footage, the
    thing one the caller may see (404 otherwise), then the page (its audit in the same
    transaction)."""
    principal = signed_in(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if not allowed(principal):
        return render(request, "no_footage.html", {}, status=403)
    with transaction(runtime_of(request).sessions) as session:
        thing = find(session, principal)
        if thing is None:
            return render(request, "not_found.html", {}, status=404)
        return show(session, principal, thing)


def refusal_text(exc: Exception) -> str:
    """A refusal's message as a form shows it (a LookupError's str() is quoted)."""
    return str(exc).strip("'\"")


def posted_by(request: Request, csrf: str, *, allowed: Callable[[Principal], bool],
              refusal: str) -> Principal | Response:
    """Who posted a form, or the answer instead: sent to sign in, refused for a CSRF token that
    is not the session's (403), or for the role (403, with the reason)."""
    principal = signed_in(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    check_csrf(getattr(request.state, "csrf_token", ""), csrf)
    if not allowed(principal):
        return render(request, "forbidden.html", {"why": refusal}, status=403)
    return principal


def form_change(request: Request, csrf: str, *, allowed: Callable[[Principal], bool],
                refusal: str, find: Callable[[Session, Principal], T | None],
                act: Callable[[Session, Principal, T], object],
                refused: Callable[[Session, Principal, T, Exception], Response],
                back: Callable[[T], str], refusals: tuple[type[Exception], ...],
                scoped: Callable[[Principal, Session, T], bool] | None = None) -> Response:
    """One form's change to one thing: signed in, CSRF, role, the thing one the caller may see,
    then the service call in a savepoint (its audit event in the same transaction). A refusal
    (one of `refusals`) shows the page again through `refused`, nothing changed; a change done
    goes `back` (303), so a reload does not post twice."""
    principal = posted_by(request, csrf, allowed=allowed, refusal=refusal)
    if isinstance(principal, Response):
        return principal
    with transaction(runtime_of(request).sessions) as session:
        thing = find(session, principal)
        if thing is None:
            return render(request, "not_found.html", {}, status=404)
        if scoped is not None and not scoped(principal, session, thing):
            return render(request, "forbidden.html", {"why": refusal}, status=403)
        try:
            with session.begin_nested():
                act(session, principal, thing)
        except refusals as exc:
            session.expire_all()
            return refused(session, principal, thing, exc)
        url = back(thing)
    return RedirectResponse(url, status_code=303)


def _change(request: Request, recording_id: str, csrf: str, *,
            allowed: Callable[[Principal], bool], refusal: str,
            act: Callable[[Session, Principal, Recording], object],
            scoped: Callable[[Principal, Session, Recording], bool] | None = None) -> Response:
    """One form's change to a recording's evidence and retention."""
    return form_change(
        request, csrf, allowed=allowed, refusal=refusal, act=act, scoped=scoped,
        find=lambda s, p: _visible(s, p, recording_id), refusals=REFUSALS,
        refused=lambda s, p, rec, exc: _page(request, s, p, rec, error=refusal_text(exc),
                                             status=422),
        back=lambda rec: f"/recordings/{rec.id}/evidence")


def _signed_in_as(request: Request, allowed: Callable[[Principal], bool],
                  refusal: str) -> Principal | Response:
    """The person at a report page, or the answer instead: sent to sign in, or refused (403)."""
    principal = signed_in(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if not allowed(principal):
        return render(request, "forbidden.html", {"why": refusal}, status=403)
    return principal


def _flagging(principal: Principal) -> bool:
    return principal.role in rules.FLAGGING_ROLES


def _may_flag_this(principal: Principal, session: Session, rec: Recording) -> bool:
    return rules.may_flag(principal, queries.scope_of(session, rec))


FLAG_REFUSAL = "Officers flag their own footage, supervisors their unit's, evidence officers " \
    "their command's."
HOLD_REFUSAL = "Only professional standards place and release holds."
REVIEW_REFUSAL = "Evidence officers record review decisions on their command's evidence."
REPORT_REFUSAL = "Supervisors, evidence officers, professional standards and auditors read " \
    "this report."
RESTRICTION_REFUSAL = "Only professional standards manage restrictions."


@router.post("/recordings/{recording_id}/evidence/flags")
def flag(recording_id: str, request: Request, category: Annotated[str, Form(max_length=100)] = "",
         reference: Annotated[str, Form(max_length=200)] = "", csrf: Csrf = "",
         note: Annotated[str, Form(max_length=4000)] = "") -> Response:
    runtime = runtime_of(request)
    return _change(request, recording_id, csrf, allowed=_flagging, refusal=FLAG_REFUSAL,
                   scoped=_may_flag_this, act=lambda s, p, rec: service.flag(
                       s, clock=runtime.clock, settings=runtime.settings, principal=p,
                       actor=actor_from(request, p), recording=rec, category=category,
                       reference=reference, note=note))


@router.post("/recordings/{recording_id}/evidence/flags/{flag_id}/withdraw")
def withdraw(recording_id: str, flag_id: RowId, request: Request, reason: Reason = "",
             csrf: Csrf = "") -> Response:
    runtime = runtime_of(request)
    return _change(request, recording_id, csrf, allowed=_flagging, refusal=FLAG_REFUSAL,
                   scoped=_may_flag_this, act=lambda s, p, rec: service.withdraw(
                       s, clock=runtime.clock, settings=runtime.settings, principal=p,
                       actor=actor_from(request, p), recording=rec, flag_id=flag_id,
                       reason=reason))


@router.post("/recordings/{recording_id}/evidence/holds")
def hold(recording_id: str, request: Request, kind: Annotated[str, Form(max_length=32)] = "",
         reason: Reason = "", csrf: Csrf = "") -> Response:
    runtime = runtime_of(request)
    return _change(request, recording_id, csrf, allowed=rules.may_manage_holds,
                   refusal=HOLD_REFUSAL, act=lambda s, p, rec: service.place_hold(
                       s, clock=runtime.clock, settings=runtime.settings, principal=p,
                       actor=actor_from(request, p), recording=rec, kind=kind, reason=reason))


@router.post("/recordings/{recording_id}/evidence/holds/{hold_id}/release")
def release(recording_id: str, hold_id: RowId, request: Request, reason: Reason = "",
            csrf: Csrf = "") -> Response:
    runtime = runtime_of(request)
    return _change(request, recording_id, csrf, allowed=rules.may_manage_holds,
                   refusal=HOLD_REFUSAL, act=lambda s, p, rec: service.release_hold(
                       s, clock=runtime.clock, settings=runtime.settings, principal=p,
                       actor=actor_from(request, p), recording=rec, hold_id=hold_id,
                       reason=reason))


@router.post("/recordings/{recording_id}/evidence/restriction")
def restrict(recording_id: str, request: Request, kind: Annotated[str, Form(max_length=32)] = "",
             reason: Reason = "", csrf: Csrf = "") -> Response:
    runtime = runtime_of(request)
    return _change(request, recording_id, csrf, allowed=may_manage_restrictions,
                   refusal=RESTRICTION_REFUSAL, act=lambda s, p, rec: restrictions.place(
                       s, clock=runtime.clock, principal=p, actor=actor_from(request, p),
                       recording=rec, kind=kind, reason=reason))


@router.post("/recordings/{recording_id}/evidence/restriction/release")
def unrestrict(recording_id: str, request: Request, reason: Reason = "",
               csrf: Csrf = "") -> Response:
    runtime = runtime_of(request)
    return _change(request, recording_id, csrf, allowed=may_manage_restrictions,
                   refusal=RESTRICTION_REFUSAL, act=lambda s, p, rec: restrictions.release(
                       s, clock=runtime.clock, principal=p, actor=actor_from(request, p),
                       recording=rec, reason=reason))


@router.post("/recordings/{recording_id}/evidence/restriction/access")
def list_person(recording_id: str, request: Request,
                username: Annotated[str, Form(max_length=100)] = "", reason: Reason = "",
                csrf: Csrf = "") -> Response:
    runtime = runtime_of(request)
    return _change(request, recording_id, csrf, allowed=may_manage_restrictions,
                   refusal=RESTRICTION_REFUSAL, act=lambda s, p, rec: restrictions.add_access(
                       s, clock=runtime.clock, principal=p, actor=actor_from(request, p),
                       recording=rec, username=username, reason=reason))


@router.post("/recordings/{recording_id}/evidence/restriction/access/{username}/remove")
def unlist_person(recording_id: str, username: str, request: Request, reason: Reason = "",
                  csrf: Csrf = "") -> Response:
    runtime = runtime_of(request)
    return _change(request, recording_id, csrf, allowed=may_manage_restrictions,
                   refusal=RESTRICTION_REFUSAL, act=lambda s, p, rec: restrictions.remove_access(
                       s, clock=runtime.clock, principal=p, actor=actor_from(request, p),
                       recording=rec, username=username, reason=reason))


def _reviewing(principal: Principal) -> bool:
    return principal.role in rules.REVIEWING_ROLES


def _may_review_this(principal: Principal, session: Session, rec: Recording) -> bool:
    return rules.may_review(principal, queries.scope_of(session, rec))


def _days(text: str) -> int | None:
    """The form's next-review field: empty for none; anything not a whole number is refused by
    the service's bounds (so the page shows why)."""
    text = text.strip()
    if not text:
        return None
    return int(text) if text.isdigit() and len(text) <= 6 else -1


@router.post("/recordings/{recording_id}/evidence/flags/{flag_id}/review")
def review(recording_id: str, flag_id: RowId, request: Request,
           decision: Annotated[str, Form(max_length=16)] = "", reason: Reason = "",
           next_review_days: Annotated[str, Form(max_length=16)] = "",
           csrf: Csrf = "") -> Response:
    runtime = runtime_of(request)
    return _change(request, recording_id, csrf, allowed=_reviewing, refusal=REVIEW_REFUSAL,
                   scoped=_may_review_this, act=lambda s, p, rec: reviews.decide_review(
                       s, clock=runtime.clock, settings=runtime.settings, principal=p,
                       actor=actor_from(request, p), recording=rec, flag_id=flag_id,
                       decision=decision, reason=reason,
                       next_review_days=_days(next_review_days) if decision == rules.RETAIN
                       else None))


@router.post("/recordings/{recording_id}/evidence/subject-told")
def subject_told(recording_id: str, request: Request,
                 told: Annotated[str, Form(max_length=16)] = "", reason: Reason = "",
                 csrf: Csrf = "") -> Response:
    runtime = runtime_of(request)
    return _change(request, recording_id, csrf, allowed=_flagging, refusal=FLAG_REFUSAL,
                   scoped=_may_flag_this, act=lambda s, p, rec: reviews.tell(
                       s, clock=runtime.clock, principal=p, actor=actor_from(request, p),
                       recording=rec, told=told, reason=reason))


@router.get("/reviews")
def reviews_page(request: Request, days: Annotated[int, Query(ge=0, le=reviews.QUEUE_DAYS_MAX)] = 0,
                 cursor: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    """The review queue: the evidence officer's command's review flags due now (or within
    `days`), soonest first, each linked to its evidence page where the decision is taken."""
    principal = _signed_in_as(request, _reviewing, REVIEW_REFUSAL)
    if isinstance(principal, Response):
        return principal
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        try:
            page = reviews.review_queue(session, clock=runtime.clock, principal=principal,
                                        actor=actor_from(request, principal), days=days,
                                        limit=100, cursor=cursor, via="web")
        except reviews.QueueError:
            page = reviews.review_queue(session, clock=runtime.clock, principal=principal,
                                        actor=actor_from(request, principal), days=days,
                                        limit=100, via="web")
    return render(request, "reviews.html", {"page": page, "days": days})


#: The due page looks this far ahead unless asked otherwise (a week: the digest's horizon).
DUE_DAYS_DEFAULT, DUE_DAYS_MAX = 7, 366


@router.get("/retention/due")
def due_page(request: Request,
             days: Annotated[int, Query(ge=0, le=DUE_DAYS_MAX)] = DUE_DAYS_DEFAULT,
             unit: Annotated[str | None, Query(max_length=32)] = None,
             cursor: Annotated[str | None, Query(max_length=400)] = None) -> Response:
    """What the stored deadlines say the sweep will delete in the next `days` days, among the
    recordings the caller may see, counted by unit and listed soonest first, each linked to its
    evidence page so it can be flagged in time. The same search as the API's
    `?due_within_days=`, audited the same way."""
    principal = signed_in(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if not may_view_footage_at_all(principal):
        return render(request, "no_footage.html", {}, status=403)
    runtime = runtime_of(request)
    filters = queries.Filters(unit=unit or None,
                              due_before=queries.due_before(runtime.clock, days))
    with transaction(runtime.sessions) as session:
        try:
            items, next_cursor = queries.search_recorded(
                session, clock=runtime.clock, principal=principal,
                actor=actor_from(request, principal), filters=filters, limit=100,
                cursor=cursor or None, via="web-due")
        except queries.QueryError:
            return render(request, "due.html", {
                "error": "That page link is out of date: start again from the first page.",
                "items": [], "by_unit": [], "days": days, "unit": unit or "",
                "until": filters.due_before, "next_cursor": None}, status=400)
        by_unit = queries.count_by_unit(
            session, principal=principal,
            filters=queries.Filters(due_before=filters.due_before))
    return render(request, "due.html", {
        "items": items, "by_unit": by_unit, "days": days, "unit": unit or "",
        "until": filters.due_before, "next_cursor": next_cursor, "error": None,
        "total": sum(n for _, n in by_unit)})


#: The report page looks back this many days unless asked otherwise (at most a year).
REPORT_DAYS_DEFAULT, REPORT_DAYS_MAX = 28, 366


@router.get("/reports/subject-told")
def subject_told_page(request: Request,
                      days: Annotated[int, Query(ge=1, le=REPORT_DAYS_MAX)] = REPORT_DAYS_DEFAULT,
                      ) -> Response:
    """Whether subjects were told they were being recorded, per unit, over the last `days`
    days, with the CSV of the same report."""
    principal = _signed_in_as(request, rules.may_read_reports, REPORT_REFUSAL)
    if isinstance(principal, Response):
        return principal
    runtime = runtime_of(request)
    end = runtime.clock.now()
    start = end - dt.timedelta(days=days)
    with transaction(runtime.sessions) as session:
        report = reviews.subject_told_report(session, clock=runtime.clock, principal=principal,
                                             actor=actor_from(request, principal),
                                             since=start, until=end, via="web")
    return render(request, "subject_told.html", {"report": report, "days": days})


DELETED_REFUSAL = "What was deleted is for auditors and professional standards."
DELETED_PAGE_ROWS = 100


def _day(value: str | None) -> dt.date | None:
    """A form's date field: empty is no bound (ValueError: not a YYYY-MM-DD date)."""
    return dt.date.fromisoformat(value) if value else None


def _day_start(day: dt.date | None, zone: str) -> dt.datetime | None:
    """Midnight starting `day` in the force's time zone (what a records manager means by it)."""
    if day is None:
        return None
    return dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(zone))


@router.get("/retention/deleted")
def deleted_page(request: Request,
                 since: Annotated[str | None, Query(alias="from", max_length=10)] = None,
                 until: Annotated[str | None, Query(alias="to", max_length=10)] = None,
                 unit: Annotated[str | None, Query(max_length=32)] = None,
                 cursor: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    """What the retention sweep deleted (its tombstones), oldest deletion first, deleted from
    the day `from` to the day `to` inclusive in the force's time zone, in a unit's subtree;
    each with its deletion certificate, and the whole selection as CSV. The same readers,
    restricted recordings' rule and audit event as the API's /api/v1/tombstones."""
    principal = _signed_in_as(request, may_read_tombstones, DELETED_REFUSAL)
    if isinstance(principal, Response):
        return principal
    runtime = runtime_of(request)
    zone = runtime.settings.timezone
    shown = {"from": since or "", "to": until or "", "unit": unit or ""}
    try:
        first, last = _day(since), _day(until)
    except ValueError:
        return render(request, "deleted.html", {
            "items": [], "next_cursor": None, "shown": shown, "csv_query": "",
            "error": "Give the days as YYYY-MM-DD, or leave them empty."}, status=400)
    start = _day_start(first, zone)
    end = _day_start(last + dt.timedelta(days=1), zone) if last is not None else None
    filters = {k: v for k, v in (("from", start.isoformat() if start else None),
                                 ("to", end.isoformat() if end else None),
                                 ("unit", unit or None)) if v}
    items: list[dict[str, object]] = []
    next_cursor = error = None
    with transaction(runtime.sessions) as session:
        try:
            items, next_cursor = records.tombstone_page(
                session, since=start, until=end, unit=unit or None, limit=DELETED_PAGE_ROWS,
                cursor=cursor or None, viewer=principal)
        except reviews.QueueError:
            error = "That page link is out of date: start again from the first page."
        except LookupError as exc:
            error = f"{exc}."
        if error is None:
            records.audit_export(session, clock=runtime.clock,
                                 actor=actor_from(request, principal), via="web",
                                 filters=filters)
    csv_query = urlencode(filters)  # (the API reads the same instants the page did)
    return render(request, "deleted.html", {
        "items": items, "next_cursor": next_cursor, "error": error, "shown": shown,
        "csv_query": csv_query}, status=400 if error else 200)
