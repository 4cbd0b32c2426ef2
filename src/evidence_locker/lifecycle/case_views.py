"""/api/v1/cases: list, open, read a case; link and unlink recordings, change its status, its
owners and its watchdog grants. Each change is one transaction with its audit event; POSTs take
an `Idempotency-Key` header as lifecycle/views.py's do (same storage, same answers)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse

from evidence_locker.accounts.roles import Principal, may_view_footage_at_all
from evidence_locker.db import transaction
from evidence_locker.lifecycle import cases, rules, service
from evidence_locker.lifecycle.case_models import Case
from evidence_locker.lifecycle.views import IdemKey, ReasonRequest, RowId, run_change
from evidence_locker.web.auth import actor_from, require_principal, runtime_of
from evidence_locker.web.problems import ApiError

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])


def may_read_cases(p: Principal) -> bool:
    """The role gate of reading cases (each case then decides: `cases.may_read`)."""
    return may_view_footage_at_all(p) and p.user_id is not None


def _reader(request: Request) -> Principal:
    principal = require_principal(request)
    if not may_read_cases(principal):
        raise ApiError(403, "Forbidden", "this role does not see cases")
    return principal


def _worker(request: Request) -> Principal:
    principal = require_principal(request)
    if not rules.may_work_cases(principal):
        raise ApiError(403, "Forbidden", "watchdogs and prosecutors do not change cases")
    return principal


def _creator(request: Request) -> Principal:
    principal = require_principal(request)
    if not rules.may_open_cases(principal):
        raise ApiError(403, "Forbidden",
                       "evidence officers and professional standards open cases")
    return principal


def _grantor(request: Request) -> Principal:
    principal = require_principal(request)
    if not rules.may_manage_case_grants(principal):
        raise ApiError(403, "Forbidden", "only professional standards grant watchdogs a case")
    return principal


Reader = Annotated[Principal, Depends(_reader)]
Worker = Annotated[Principal, Depends(_worker)]
Creator = Annotated[Principal, Depends(_creator)]
Grantor = Annotated[Principal, Depends(_grantor)]


class CaseRequest(BaseModel):
    reference: str = Field(..., max_length=200)
    title: str = Field(..., max_length=400)
    unit: str | None = Field(None, max_length=32, description="command unit code")


class LinkRequest(BaseModel):
    recording_id: str = Field(..., max_length=64)
    reason: str = Field("", max_length=4000)


class StatusRequest(BaseModel):
    status: str = Field(..., max_length=16, description="open | charged | closed")
    reason: str = Field("", max_length=4000)


class OwnerRequest(BaseModel):
    username: str = Field(..., max_length=100)


class GrantRequest(BaseModel):
    username: str = Field(..., max_length=100)
    reason: str = Field("", max_length=4000)


def _case(session: Session, principal: Principal, case_id: int) -> Case:
    case = cases.readable(session, principal, case_id)
    if case is None:
        raise ApiError(404, "Not found", "no such case, or not yours to see")
    return case


@router.get("")
def list_cases(request: Request, principal: Reader,
               status: Annotated[str | None, Query(max_length=16)] = None,
               reference: Annotated[str | None, Query(max_length=64)] = None,
               unit: Annotated[str | None, Query(max_length=32)] = None) -> dict[str, Any]:
    """The cases the caller may read (a watchdog: those granted to it), newest first."""
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        try:
            items = cases.list_cases(session, clock=runtime.clock, principal=principal,
                                     actor=actor_from(request, principal), status=status,
                                     reference=reference, unit=unit)
        except service.LifecycleRefused as exc:
            raise ApiError(422, "Refused", str(exc)) from exc
        return {"items": items}


@router.post("", status_code=201)
def open_case(body: CaseRequest, request: Request, principal: Creator,
              idempotency_key: IdemKey = None) -> JSONResponse:
    """Open a case under a reference in a command; the opener owns it."""
    runtime = runtime_of(request)
    return run_change(request, principal, key=idempotency_key, body=body, status=201,
                      act=lambda s: cases.create(
                          s, clock=runtime.clock, settings=runtime.settings,
                          principal=principal, actor=actor_from(request, principal),
                          reference=body.reference, title=body.title, unit=body.unit))


@router.get("/{case_id}")
def case_detail(case_id: RowId, request: Request, principal: Reader) -> dict[str, Any]:
    """A case and the recordings in it the caller may see; audited."""
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        case = _case(session, principal, case_id)
        return cases.describe(session, clock=runtime.clock, principal=principal,
                              actor=actor_from(request, principal), case=case)


@router.post("/{case_id}/recordings", status_code=201)
def add_recording(case_id: RowId, body: LinkRequest, request: Request, principal: Worker,
                  idempotency_key: IdemKey = None) -> JSONResponse:
    """Link a recording (one the caller can see) with a reason: an open case holds it."""
    runtime = runtime_of(request)

    def act(s: Session) -> dict[str, Any]:
        case = _case(s, principal, case_id)
        rec = cases.visible_recording(s, principal, body.recording_id)
        return cases.add_recording(s, clock=runtime.clock, settings=runtime.settings,
                                   principal=principal, actor=actor_from(request, principal),
                                   case=case, recording=rec, reason=body.reason)
    return run_change(request, principal, key=idempotency_key, body=body, status=201, act=act)


@router.delete("/{case_id}/recordings/{recording_id}")
def remove_recording(case_id: RowId, recording_id: str, body: ReasonRequest, request: Request,
                     principal: Worker) -> JSONResponse:
    """Unlink a recording with a reason; the link's history stays."""
    runtime = runtime_of(request)

    def act(s: Session) -> dict[str, Any]:
        case = _case(s, principal, case_id)
        rec = cases.visible_recording(s, principal, recording_id)
        return cases.remove_recording(s, clock=runtime.clock, settings=runtime.settings,
                                      principal=principal,
                                      actor=actor_from(request, principal), case=case,
                                      recording=rec, reason=body.reason)
    return run_change(request, principal, key=None, body=body, status=200, act=act)


@router.post("/{case_id}/status")
def change_status(case_id: RowId, body: StatusRequest, request: Request, principal: Worker,
                  idempotency_key: IdemKey = None) -> JSONResponse:
    """Charge, close or reopen the case with a reason; its recordings' deadlines follow."""
    runtime = runtime_of(request)
    return run_change(
        request, principal, key=idempotency_key, body=body, status=200,
        act=lambda s: cases.change_status(
            s, clock=runtime.clock, settings=runtime.settings, principal=principal,
            actor=actor_from(request, principal), case=_case(s, principal, case_id),
            status=body.status, reason=body.reason))


@router.post("/{case_id}/owners", status_code=201)
def add_owner(case_id: RowId, body: OwnerRequest, request: Request, principal: Worker,
              idempotency_key: IdemKey = None) -> JSONResponse:
    """Add an owner (an officer, supervisor, evidence officer or professional standards)."""
    runtime = runtime_of(request)
    return run_change(
        request, principal, key=idempotency_key, body=body, status=201,
        act=lambda s: cases.add_owner(
            s, clock=runtime.clock, principal=principal, actor=actor_from(request, principal),
            case=_case(s, principal, case_id), username=body.username))


@router.delete("/{case_id}/owners/{username}")
def remove_owner(case_id: RowId, username: Annotated[str, Path(max_length=100)],
                 body: ReasonRequest, request: Request, principal: Worker) -> JSONResponse:
    """Remove an owner with a reason."""
    runtime = runtime_of(request)
    return run_change(
        request, principal, key=None, body=body, status=200,
        act=lambda s: cases.remove_owner(
            s, clock=runtime.clock, principal=principal, actor=actor_from(request, principal),
            case=_case(s, principal, case_id), username=username, reason=body.reason))


@router.post("/{case_id}/grants", status_code=201)
def place_grant(case_id: RowId, body: GrantRequest, request: Request, principal: Grantor,
                idempotency_key: IdemKey = None) -> JSONResponse:
    """Grant a watchdog the case's recordings, with a reason."""
    runtime = runtime_of(request)
    return run_change(
        request, principal, key=idempotency_key, body=body, status=201,
        act=lambda s: cases.place_grant(
            s, clock=runtime.clock, principal=principal, actor=actor_from(request, principal),
            case=_case(s, principal, case_id), username=body.username, reason=body.reason))


@router.post("/{case_id}/grants/{grant_id}/revoke")
def revoke_grant(case_id: RowId, grant_id: RowId, body: ReasonRequest, request: Request,
                 principal: Grantor, idempotency_key: IdemKey = None) -> JSONResponse:
    """Revoke a watchdog's grant with a reason."""
    runtime = runtime_of(request)
    return run_change(
        request, principal, key=idempotency_key, body=body, status=200,
        act=lambda s: cases.revoke_grant(
            s, clock=runtime.clock, principal=principal, actor=actor_from(request, principal),
            case=_case(s, principal, case_id), grant_id=grant_id, reason=body.reason))
