"""Fleet API and pages: the dock heartbeat, rollout by borough and unit, one camera's history,
attribution conflicts.

Who may call what: the heartbeat only a dock's upload token (a user, even with an upload token,
gets 403); the register's reports fleet administrators (the whole force) and supervisors (their
unit subtree); everyone else 403, nobody signed in 401. No footage is ever shown here.
"""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from evidence_locker.accounts.roles import Principal
from evidence_locker.db import transaction
from evidence_locker.fleet import health, queries
from evidence_locker.fleet.rules import fleet_scope
from evidence_locker.web.auth import actor_from, require_principal, runtime_of
from evidence_locker.web.openapi import body_of
from evidence_locker.web.pages import render, signed_in
from evidence_locker.web.problems import ApiError

router = APIRouter(prefix="/api/v1", tags=["fleet"])
pages = APIRouter(include_in_schema=False)


def _dock(request: Request) -> Principal:
    principal = require_principal(request, scope=None)
    if principal.dock_id is None or principal.role is not None or \
            "upload" not in principal.scopes:
        raise ApiError(403, "Forbidden", "only a dock's upload token may send heartbeats")
    return principal


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "Content Too Large", f"at most {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "Content Too Large", f"at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/docks/heartbeat", openapi_extra=body_of(health.Heartbeat),
             responses={413: {"description": "The body is over its size limit."},
                        415: {"description": "The body is not application/json."}})
async def heartbeat(request: Request) -> dict[str, str]:
    """A dock's heartbeat and the health of the cameras in its bays (see fleet/health.py for the
    body). Answers the dock's name and the server's time of receipt."""
    runtime = runtime_of(request)
    principal = await to_thread.run_sync(_dock, request)
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise ApiError(415, "Unsupported Media Type", "send application/json")
    raw = await _body(request, health.MAX_HEARTBEAT_BYTES)
    try:
        beat = health.Heartbeat.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()[:20]) from None
    assert principal.dock_id is not None
    dock_id = principal.dock_id

    def store() -> dict[str, str]:
        with transaction(runtime.sessions) as session:
            dock = health.record_heartbeat(session, clock=runtime.clock,
                                           actor=actor_from(request, principal),
                                           dock_id=dock_id, beat=beat)
            assert dock.last_seen_at is not None
            return {"dock": dock.name, "received_at": dock.last_seen_at.isoformat()}

    return await to_thread.run_sync(store)


def fleet_reader(request: Request) -> tuple[Principal, str]:
    principal = require_principal(request)
    scope = fleet_scope(principal)
    if scope is None:
        raise ApiError(403, "Forbidden", "the fleet register is for fleet administrators and "
                                         "supervisors")
    return principal, scope


Reader = Annotated[tuple[Principal, str], Depends(fleet_reader)]


def _rollout(request: Request, scope: str, unit: str | None, not_docked_days: int,
             silent_hours: int) -> dict[str, Any]:
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        try:
            path = queries.resolve_scope(session, scope=scope, unit_code=unit)
        except queries.FleetQueryError as exc:
            raise ApiError(exc.status, "Not found" if exc.status == 404 else "Forbidden",
                           str(exc)) from None
        return queries.rollout(session, now=runtime.clock.now(), path=path,
                               not_docked_days=not_docked_days, silent_hours=silent_hours)


@router.get("/fleet/rollout")
def rollout(
    request: Request,
    reader: Reader,
    unit: str | None = Query(None, max_length=32, description="unit code, with its sub-units"),
    not_docked_days: int = Query(7, ge=1, le=365),
    silent_hours: int = Query(24, ge=1, le=24 * 365),
) -> dict[str, Any]:
    """Rollout by command and unit: issued, docked in 24 h, footage waiting, cameras not docked
    for N days, docks silent for H hours."""
    return _rollout(request, reader[1], unit, not_docked_days, silent_hours)


def _device(request: Request, scope: str, serial: str) -> dict[str, Any]:
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        body = queries.device_detail(session, now=runtime.clock.now(), scope=scope,
                                     serial=serial)
    if body is None:
        raise ApiError(404, "Not found", "no such camera in your part of the force")
    return body


@router.get("/fleet/devices/{serial}")
def device(serial: str, request: Request, reader: Reader) -> dict[str, Any]:
    """One camera: register entry, assignment history, recent health, docks, uploads."""
    return _device(request, reader[1], serial)


@router.get("/fleet/conflicts")
def conflicts(request: Request, reader: Reader, limit: int = Query(100, ge=1, le=500),
              before: int | None = Query(None, ge=1)) -> dict[str, Any]:
    """Recordings whose camera named another officer than the register (newest first)."""
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        items, next_before = queries.conflicts(session, scope=reader[1], limit=limit,
                                               before_id=before)
    return {"items": items, "next_before": next_before}


# --- pages -------------------------------------------------------------------------------------


def _page_reader(request: Request) -> tuple[Principal, str] | Response:
    principal = signed_in(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    scope = fleet_scope(principal)
    if scope is None:
        return render(request, "fleet_forbidden.html", {}, status=403)
    return principal, scope


@pages.get("/fleet")
def fleet_page(request: Request, unit: str | None = None, not_docked_days: int = 7,
               silent_hours: int = 24) -> Response:
    got = _page_reader(request)
    if isinstance(got, Response):
        return got
    if not 1 <= not_docked_days <= 365 or not 1 <= silent_hours <= 24 * 365:
        raise ApiError(400, "Bad request", "not_docked_days 1-365, silent_hours 1-8760")
    body = _rollout(request, got[1], unit or None, not_docked_days, silent_hours)
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        items, _ = queries.conflicts(session, scope=got[1], limit=50)
    return render(request, "fleet.html", {"r": body, "conflicts": items, "unit": unit or ""})


@pages.get("/fleet/devices/{serial}")
def fleet_device_page(serial: str, request: Request) -> Response:
    got = _page_reader(request)
    if isinstance(got, Response):
        return got
    try:
        body = _device(request, got[1], serial)
    except ApiError:
        return render(request, "not_found.html", {}, status=404)
    return render(request, "fleet_device.html", {"d": body})
