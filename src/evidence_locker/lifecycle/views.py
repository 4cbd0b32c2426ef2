"""/api/v1/recordings/{id}/flags, /holds, /retention and /subject-told: flag evidence, withdraw a
flag, record a review decision on it, place and release holds, see a recording's deadline, say
whether the subject was told; /api/v1/reviews (the review queue) and
/api/v1/reports/subject-told (compliance by unit).

POSTs take an `Idempotency-Key` header: the first answer is stored with the change in one
transaction, and a retry with the same key (same caller, same route, same body) gets that answer
again without acting twice; the same key with a different request is refused (422)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse, Response

from evidence_locker.accounts.roles import (
    Principal,
    RecordingScope,
    may_view_footage_at_all,
    may_view_recording,
)
from evidence_locker.catalogue import queries
from evidence_locker.catalogue.models import Recording
from evidence_locker.db import transaction
from evidence_locker.fleet.models import Unit
from evidence_locker.lifecycle import reviews, rules, service
from evidence_locker.lifecycle.models import IdempotencyKey, Tombstone
from evidence_locker.web.auth import actor_from, require_principal, runtime_of
from evidence_locker.web.problems import ApiError, aware

router = APIRouter(prefix="/api/v1/recordings", tags=["lifecycle"])
#: The review queue and the compliance report: not under one recording.
lists = APIRouter(prefix="/api/v1", tags=["lifecycle"])

KEY_MAX = 200


def _viewer(request: Request) -> Principal:
    principal = require_principal(request)
    if not may_view_footage_at_all(principal):
        raise ApiError(403, "Forbidden", "this role does not see footage")
    return principal


def _flagger(request: Request) -> Principal:
    principal = require_principal(request)
    if principal.role not in rules.FLAGGING_ROLES:
        raise ApiError(403, "Forbidden",
                       "officers, supervisors and evidence officers flag evidence")
    return principal


def _hold_manager(request: Request) -> Principal:
    principal = require_principal(request)
    if not rules.may_manage_holds(principal):
        raise ApiError(403, "Forbidden", "only professional standards place and release holds")
    return principal


def _reviewer(request: Request) -> Principal:
    principal = require_principal(request)
    if principal.role not in rules.REVIEWING_ROLES:
        raise ApiError(403, "Forbidden", "evidence officers review evidence")
    return principal


def _report_reader(request: Request) -> Principal:
    principal = require_principal(request)
    if not rules.may_read_reports(principal):
        raise ApiError(403, "Forbidden", "supervisors, evidence officers, professional "
                       "standards and auditors read this report")
    return principal


Viewer = Annotated[Principal, Depends(_viewer)]
Reviewer = Annotated[Principal, Depends(_reviewer)]
ReportReader = Annotated[Principal, Depends(_report_reader)]
Flagger = Annotated[Principal, Depends(_flagger)]
HoldManager = Annotated[Principal, Depends(_hold_manager)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]
#: Row ids are 32-bit integers: a larger one is bad input (422), not a database error.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class FlagRequest(BaseModel):
    category: str = Field(..., max_length=100)
    reference: str = Field(..., max_length=200)
    note: str = Field("", max_length=4000)


class HoldRequest(BaseModel):
    kind: str = Field(..., max_length=32, description="legal | complaint | post-incident")
    reason: str = Field("", max_length=4000)


class ReasonRequest(BaseModel):
    reason: str = Field("", max_length=4000)


class ReviewRequest(BaseModel):
    decision: str = Field(..., max_length=16, description="retain | dispose")
    reason: str = Field("", max_length=4000)
    next_review_days: int | None = Field(
        None, ge=0, le=100_000, description=f"retain only: {rules.NEXT_REVIEW_MIN_DAYS} to "
        f"{rules.NEXT_REVIEW_MAX_DAYS} days from now")


class SubjectToldRequest(BaseModel):
    told: str = Field(..., max_length=16, description="yes | no | not-practicable")
    reason: str = Field("", max_length=4000, description="why not (required unless yes)")


def _recording(session: Session, principal: Principal, recording_id: str) -> Recording:
    """The recording, if the caller may see it; 410 for one the caller could have seen that the
    retention sweep deleted (or is deleting); 404 otherwise."""
    rec = queries.get_visible(session, principal=principal, recording_id=recording_id)
    if rec is not None:
        return rec
    try:
        rid = uuid.UUID(recording_id)
    except ValueError:
        rid = None
    tomb = None if rid is None else session.scalars(
        select(Tombstone).where(Tombstone.recording_id == rid)).one_or_none()
    if tomb is not None:
        unit = session.get(Unit, tomb.unit_id) if tomb.unit_id is not None else None
        scope = RecordingScope(officer_id=tomb.officer_id,
                               unit_path=unit.path if unit is not None else None)
        if may_view_recording(principal, scope):
            raise ApiError(410, "Gone", "the recording was deleted under the retention rules")
    raise ApiError(404, "Not found", "no such recording, or not yours to see")


def run_change(request: Request, principal: Principal, *, key: str | None,
               body: BaseModel | None, status: int,
               act: Callable[[Session], dict[str, Any]]) -> JSONResponse:
    """One change in one transaction with its audit event and, given an `Idempotency-Key`, its
    idempotency record (per user; the same key with another request is 422, a retry gets the
    first answer). The services' typed refusals become problems: 422, 409, 403, 404."""
    runtime = runtime_of(request)
    route = f"{request.method} {request.url.path}"
    digest = hashlib.sha256((body.model_dump_json() if body else "").encode()).hexdigest()
    if key is not None and not 1 <= len(key) <= KEY_MAX:
        raise ApiError(400, "Bad request", f"Idempotency-Key must be 1 to {KEY_MAX} characters")
    try:
        with transaction(runtime.sessions) as session:
            if key is not None:
                seen = session.scalars(select(IdempotencyKey).where(
                    IdempotencyKey.user_id == principal.user_id,
                    IdempotencyKey.key == key)).one_or_none()
                if seen is not None:
                    if seen.route != f"{route} {digest}":
                        raise ApiError(422, "Idempotency key reused",
                                       "this Idempotency-Key was used for a different request")
                    return JSONResponse(json.loads(seen.body), status_code=seen.status,
                                        headers={"Idempotent-Replayed": "true"})
            try:
                result = act(session)
            except service.LifecycleRefused as exc:
                raise ApiError(422, "Refused", str(exc)) from exc
            except service.LifecycleConflict as exc:
                raise ApiError(409, "Conflict", str(exc)) from exc
            except PermissionError as exc:
                raise ApiError(403, "Forbidden", str(exc)) from exc
            except LookupError as exc:
                raise ApiError(404, "Not found", str(exc)) from exc
            if key is not None and principal.user_id is not None:
                session.add(IdempotencyKey(user_id=principal.user_id, key=key,
                                           route=f"{route} {digest}", status=status,
                                           body=json.dumps(result),
                                           created_at=runtime.clock.now()))
                session.flush()
    except IntegrityError as exc:
        raise ApiError(409, "Conflict", "a request with this Idempotency-Key is being handled, "
                       "or what it changes changed meanwhile; retry it") from exc
    return JSONResponse(result, status_code=status)


def _change(request: Request, principal: Principal, recording_id: str, *, key: str | None,
            body: BaseModel | None, status: int,
            act: Callable[[Session, Recording], dict[str, Any]],
            check: Callable[[Session, Recording], None] | None = None) -> JSONResponse:
    """`run_change` on a recording the caller can see (404/410 otherwise), `check`ed first."""
    def on_recording(session: Session) -> dict[str, Any]:
        rec = _recording(session, principal, recording_id)
        if check is not None:
            check(session, rec)
        return act(session, rec)
    return run_change(request, principal, key=key, body=body, status=status, act=on_recording)


def _may_flag(principal: Principal) -> Callable[[Session, Recording], None]:
    def check(session: Session, rec: Recording) -> None:
        if not rules.may_flag(principal, queries.scope_of(session, rec)):
            raise ApiError(403, "Forbidden", "not yours to flag")
    return check


def _may_review(principal: Principal) -> Callable[[Session, Recording], None]:
    def check(session: Session, rec: Recording) -> None:
        if not rules.may_review(principal, queries.scope_of(session, rec)):
            raise ApiError(403, "Forbidden", "not yours to review")
    return check


@router.get("/{recording_id}/retention")
def retention(recording_id: str, request: Request, principal: Viewer) -> dict[str, Any]:
    """The recording's flags, holds and deadline."""
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        rec = _recording(session, principal, recording_id)
        return service.describe_retention(session, settings=runtime.settings, rec=rec)


@router.post("/{recording_id}/flags", status_code=201)
def add_flag(recording_id: str, body: FlagRequest, request: Request, principal: Flagger,
             idempotency_key: IdemKey = None) -> JSONResponse:
    """Flag the recording as evidence with a category, a reference and a note; audited."""
    runtime = runtime_of(request)
    return _change(
        request, principal, recording_id, key=idempotency_key, body=body, status=201,
        check=_may_flag(principal),
        act=lambda s, rec: service.flag(
            s, clock=runtime.clock, settings=runtime.settings, principal=principal,
            actor=actor_from(request, principal), recording=rec, category=body.category,
            reference=body.reference, note=body.note))


@router.delete("/{recording_id}/flags/{flag_id}")
def withdraw_flag(recording_id: str, flag_id: RowId, body: ReasonRequest, request: Request,
                  principal: Flagger) -> JSONResponse:
    """Withdraw a flag with a reason; the deadline never drops below the review window."""
    runtime = runtime_of(request)
    return _change(
        request, principal, recording_id, key=None, body=body, status=200,
        check=_may_flag(principal),
        act=lambda s, rec: service.withdraw(
            s, clock=runtime.clock, settings=runtime.settings, principal=principal,
            actor=actor_from(request, principal), recording=rec, flag_id=flag_id,
            reason=body.reason))


@router.post("/{recording_id}/holds", status_code=201)
def add_hold(recording_id: str, body: HoldRequest, request: Request, principal: HoldManager,
             idempotency_key: IdemKey = None) -> JSONResponse:
    """Place a legal, complaint or post-incident hold: nothing held is deleted."""
    runtime = runtime_of(request)
    return _change(
        request, principal, recording_id, key=idempotency_key, body=body, status=201,
        act=lambda s, rec: service.place_hold(
            s, clock=runtime.clock, settings=runtime.settings, principal=principal,
            actor=actor_from(request, principal), recording=rec, kind=body.kind,
            reason=body.reason))


@router.post("/{recording_id}/holds/{hold_id}/release")
def release_hold(recording_id: str, hold_id: RowId, body: ReasonRequest, request: Request,
                 principal: HoldManager, idempotency_key: IdemKey = None) -> JSONResponse:
    """Release a hold with a reason; the deadline applies again."""
    runtime = runtime_of(request)
    return _change(
        request, principal, recording_id, key=idempotency_key, body=body, status=200,
        act=lambda s, rec: service.release_hold(
            s, clock=runtime.clock, settings=runtime.settings, principal=principal,
            actor=actor_from(request, principal), recording=rec, hold_id=hold_id,
            reason=body.reason))


@router.post("/{recording_id}/flags/{flag_id}/review")
def review_flag(recording_id: str, flag_id: RowId, body: ReviewRequest, request: Request,
                principal: Reviewer, idempotency_key: IdemKey = None) -> JSONResponse:
    """Record the review decision on a review flag that is due: retain (a reason, and the next
    review in `next_review_days`) or dispose (a reason); audited."""
    runtime = runtime_of(request)
    return _change(
        request, principal, recording_id, key=idempotency_key, body=body, status=200,
        check=_may_review(principal),
        act=lambda s, rec: reviews.decide_review(
            s, clock=runtime.clock, settings=runtime.settings, principal=principal,
            actor=actor_from(request, principal), recording=rec, flag_id=flag_id,
            decision=body.decision, reason=body.reason,
            next_review_days=body.next_review_days))


@router.put("/{recording_id}/subject-told")
def subject_told(recording_id: str, body: SubjectToldRequest, request: Request,
                 principal: Flagger) -> JSONResponse:
    """Say whether the subject was told they were being recorded (yes / no / not-practicable,
    with a reason unless yes). The same statement again changes nothing."""
    runtime = runtime_of(request)
    return _change(
        request, principal, recording_id, key=None, body=body, status=200,
        check=_may_flag(principal),
        act=lambda s, rec: reviews.tell(
            s, clock=runtime.clock, principal=principal, actor=actor_from(request, principal),
            recording=rec, told=body.told, reason=body.reason))


@lists.get("/reviews")
def review_queue(
    request: Request, principal: Reviewer,
    days: int = Query(0, ge=0, le=reviews.QUEUE_DAYS_MAX,
                      description="due within this many days (0: due now)"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=200),
) -> dict[str, Any]:
    """Review flags due for review (within `days`), soonest first, on recordings the caller
    reviews; the read is audited."""
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        try:
            page = reviews.review_queue(session, clock=runtime.clock, principal=principal,
                                        actor=actor_from(request, principal), days=days,
                                        limit=limit, cursor=cursor)
        except reviews.QueueError as exc:
            raise ApiError(400, "Bad request", str(exc)) from exc
    return {"until": page.until.isoformat(), "items": page.items,
            "next_cursor": page.next_cursor}


#: The report looks back this far unless `from` is given.
REPORT_DAYS_DEFAULT = 28


def subject_told_window(runtime: Any, since: dt.datetime | None,
                        until: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    end = aware(until, "to") or runtime.clock.now()
    start = aware(since, "from") or end - dt.timedelta(days=REPORT_DAYS_DEFAULT)
    if end <= start:
        raise ApiError(400, "Bad request", "to must be after from")
    return start, end


@lists.get("/reports/subject-told", response_model=None, responses={200: {
    "description": "The report, as JSON or CSV.",
    "content": {"application/json": {}, "text/csv": {}}}})
def subject_told_report(
    request: Request, principal: ReportReader,
    since: dt.datetime | None = Query(None, alias="from",
                                      description="recorded from (default: 28 days ago)"),
    until: dt.datetime | None = Query(None, alias="to", description="recorded before "
                                      "(default: now)"),
    format: str = Query("json", pattern="^(json|csv)$"),
) -> dict[str, Any] | Response:
    """Per unit: recordings whose subject was told, was not, could not practicably be, or with
    nothing recorded yet. Counts only (no footage); the read is audited."""
    runtime = runtime_of(request)
    start, end = subject_told_window(runtime, since, until)
    with transaction(runtime.sessions) as session:
        report = reviews.subject_told_report(session, clock=runtime.clock, principal=principal,
                                             actor=actor_from(request, principal),
                                             since=start, until=end, via=f"api {format}")
    if format == "csv":
        return Response(reviews.report_csv(report).encode(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition":
                                 'attachment; filename="subject-told.csv"'})
    return report
