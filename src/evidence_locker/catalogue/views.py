"""/api/v1/recordings: search, detail, access (justification), media with Range, poster, and
restrictions (professional standards hide a recording from all but its access list).

Every read is audited: searches and detail per request, someone else's footage once per grant."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response, StreamingResponse

from evidence_locker.accounts.roles import (
    Principal,
    may_manage_restrictions,
    may_view_footage_at_all,
    needs_justification,
)
from evidence_locker.audit.service import record
from evidence_locker.catalogue import access, queries, restrictions
from evidence_locker.db import transaction
from evidence_locker.web.auth import actor_from, require_principal, runtime_of
from evidence_locker.web.problems import ApiError, aware
from evidence_locker.web.ranges import RangeNotSatisfiable, parse_range

router = APIRouter(prefix="/api/v1/recordings", tags=["recordings"])


def footage_viewer(request: Request) -> Principal:
    principal = require_principal(request)
    if not may_view_footage_at_all(principal):
        raise ApiError(403, "Forbidden", "this role does not see footage")
    return principal


Viewer = Annotated[Principal, Depends(footage_viewer)]


@router.get("")
def list_recordings(
    request: Request,
    principal: Viewer,
    officer: str | None = Query(None, max_length=64, description="collar number"),
    unit: str | None = Query(None, max_length=32, description="unit code, with its sub-units"),
    device: str | None = Query(None, max_length=64, description="camera serial"),
    since: dt.datetime | None = Query(None, alias="from"),
    until: dt.datetime | None = Query(None, alias="to"),
    state: str | None = Query(None, max_length=16),
    sha256: str | None = Query(None, pattern="^[0-9a-fA-F]{64}$"),
    reference: str | None = Query(None, min_length=1, max_length=64,
                                  description="an evidence flag's crime or case reference"),
    due_within_days: int | None = Query(
        None, ge=0, le=366, description="due for deletion within N days, soonest first"),
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, max_length=400),
) -> dict[str, Any]:
    runtime = runtime_of(request)
    filters = queries.Filters(officer=officer, unit=unit, device=device,
                              since=aware(since, "from"), until=aware(until, "to"),
                              state=state, sha256=sha256, reference=reference,
                              due_before=queries.due_before(runtime.clock, due_within_days))
    with transaction(runtime.sessions) as session:
        try:
            items, next_cursor = queries.search_recorded(
                session, clock=runtime.clock, principal=principal,
                actor=actor_from(request, principal), filters=filters, limit=limit,
                cursor=cursor, via="api")
        except queries.QueryError as exc:
            raise ApiError(400, "Bad request", str(exc)) from exc
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{recording_id}")
def get_recording(recording_id: str, request: Request, principal: Viewer) -> dict[str, Any]:
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        body = queries.view_recorded(session, clock=runtime.clock, principal=principal,
                                     actor=actor_from(request, principal),
                                     recording_id=recording_id, via="api")
    if body is None:
        raise ApiError(404, "Not found", "no such recording, or not yours to see")
    return body


class AccessRequest(BaseModel):
    purpose: str = Field("", max_length=100)
    reason: str = Field("", max_length=4000)


@router.post("/{recording_id}/access", status_code=201)
def request_access(recording_id: str, body: AccessRequest, request: Request,
                   principal: Viewer) -> dict[str, Any]:
    """The justification for playing or downloading footage that is not one's own: one audit
    event, and a short-lived grant for the media and poster URLs (`?grant=`)."""
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        rec = queries.get_visible(session, principal=principal, recording_id=recording_id)
        if rec is None:
            raise ApiError(404, "Not found", "no such recording, or not yours to see")
        own = not needs_justification(principal, queries.scope_of(session, rec))
        try:
            grant = access.issue_grant(
                session, clock=runtime.clock, principal=principal,
                actor=actor_from(request, principal), recording=rec, purpose=body.purpose,
                reason=body.reason, purposes=runtime.settings.access_purposes,
                minutes=runtime.settings.access_grant_minutes, own=own)
        except access.GrantRefused as exc:
            raise ApiError(422, "Justification refused", str(exc)) from exc
        rid = str(rec.id)
    base = f"/api/v1/recordings/{rid}"
    return {"grant": grant.token, "expires_at": grant.expires_at.isoformat(),
            "media_url": f"{base}/media?grant={grant.token}",
            "poster_url": f"{base}/poster?grant={grant.token}"}


@dataclass(frozen=True)
class ClipRef:
    sha256: str
    size: int
    filename: str
    poster_sha256: str | None


def _find_clip(request: Request, principal: Principal, recording_id: str, clip: int,
               grant: str | None, audit_action: str | None = None,
               details: dict[str, Any] | None = None) -> ClipRef:
    """Clip N of a recording the caller may see and, unless it is their own, holds a grant for.
    With `audit_action` the read is recorded in the same transaction, except a stream under a
    grant: the grant's own event covers the many Range requests of one playback."""
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        rec = queries.get_visible(session, principal=principal, recording_id=recording_id)
        if rec is None:
            raise ApiError(404, "Not found", "no such recording, or not yours to see")
        f = queries.clip_of(rec, clip)
        if f is None:
            raise ApiError(404, "Not found", f"recording has no clip {clip}")
        live = access.valid_grant(session, clock=runtime.clock, principal=principal,
                                  recording_id=rec.id, token=grant)
        if live is None and needs_justification(principal, queries.scope_of(session, rec)):
            raise ApiError(403, "Justification required",
                           f"this is not your footage: POST /api/v1/recordings/{rec.id}/access "
                           "with a purpose and a reason, then add ?grant=<grant> to this URL")
        if audit_action is not None and (live is None or audit_action == "media.download"):
            record(session, clock=runtime.clock, actor=actor_from(request, principal),
                   action=audit_action, object_type="recording", object_id=str(rec.id),
                   details={"file_id": f.id, "clip": clip, "sha256": f.sha256,
                            **({"grant_id": live.id} if live else {}), **(details or {})})
        return ClipRef(f.sha256, f.size, f.filename, f.poster_sha256)


@router.get("/{recording_id}/media", response_class=StreamingResponse, responses={
    200: {"description": "The whole clip.", "content": {
        "video/mp4": {}, "application/octet-stream": {}}},
    206: {"description": "The requested byte range.", "content": {
        "video/mp4": {}, "application/octet-stream": {}}},
    416: {"description": "The range lies outside the clip."}})
async def media(
    recording_id: str,
    request: Request,
    clip: int = Query(1, ge=1, le=10_000),
    download: bool = Query(False),
    grant: str | None = Query(None, max_length=200),
) -> Response:
    """The original bytes of clip N, with HTTP Range (206) for playback."""
    runtime = runtime_of(request)
    principal = await to_thread.run_sync(footage_viewer, request)
    range_header = request.headers.get("range")

    def lookup() -> tuple[ClipRef, tuple[int, int] | None]:
        # Check the range before recording the read, so a refused request is not a read.
        size = _find_clip(request, principal, recording_id, clip, grant).size
        try:
            rng = parse_range(range_header, size)
        except RangeNotSatisfiable as exc:
            raise ApiError(416, "Range Not Satisfiable", f"the clip has {size} bytes",
                           headers={"Content-Range": f"bytes */{size}"}) from exc
        ref = _find_clip(request, principal, recording_id, clip, grant,
                         "media.download" if download else "media.stream",
                         {"range": f"{rng[0]}-{rng[1]}" if rng else "all"})
        return ref, rng

    ref, rng = await to_thread.run_sync(lookup)
    size, filename = ref.size, ref.filename
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store",
               "X-Content-Type-Options": "nosniff"}
    if download:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    media_type = "video/mp4" if filename.lower().endswith(".mp4") else "application/octet-stream"
    if rng is None:
        start, end, status = 0, size - 1, 200
    else:
        start, end, status = rng[0], rng[1], 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(max(0, end - start + 1))
    body = runtime.store.read_range(ref.sha256, start, end) if size else iter([b""])
    return StreamingResponse(body, status_code=status, headers=headers, media_type=media_type)


@router.get("/{recording_id}/poster", response_class=Response, responses={
    200: {"description": "The poster frame.", "content": {"image/jpeg": {}}}})
def poster(recording_id: str, request: Request, principal: Viewer,
           clip: int = Query(1, ge=1, le=10_000),
           grant: str | None = Query(None, max_length=200)) -> Response:
    """A still frame of clip N (JPEG), made by the probe job."""
    runtime = runtime_of(request)
    if _find_clip(request, principal, recording_id, clip, grant).poster_sha256 is None:
        raise ApiError(404, "Not found", "no poster frame (not probed yet, or unreadable)")
    ref = _find_clip(request, principal, recording_id, clip, grant, "media.poster")
    assert ref.poster_sha256 is not None
    data = b"".join(runtime.store.read_range(ref.poster_sha256))
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, no-store"})


# --- restrictions: professional standards hide a recording from all but its access list -------


def restriction_manager(request: Request) -> Principal:
    principal = require_principal(request)
    if not may_manage_restrictions(principal):
        raise ApiError(403, "Forbidden", "only professional standards manage restrictions")
    return principal


Manager = Annotated[Principal, Depends(restriction_manager)]


class RestrictionRequest(BaseModel):
    kind: str = Field(..., max_length=32, description="restricted | post-incident")
    reason: str = Field("", max_length=4000)


class ReasonRequest(BaseModel):
    reason: str = Field("", max_length=4000)


class AccessListRequest(BaseModel):
    username: str = Field(..., max_length=100)
    reason: str = Field("", max_length=4000)


def _restriction_change(request: Request, principal: Principal, recording_id: str,
                        change: Any, **kwargs: Any) -> Any:
    """Run one restriction change on a recording the caller can see, in one transaction with
    its audit event; the errors as problems."""
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        rec = queries.get_visible(session, principal=principal, recording_id=recording_id)
        if rec is None:
            raise ApiError(404, "Not found", "no such recording, or not yours to see")
        try:
            return change(session, clock=runtime.clock, principal=principal,
                          actor=actor_from(request, principal), recording=rec, **kwargs)
        except restrictions.RestrictionRefused as exc:
            raise ApiError(422, "Restriction refused", str(exc)) from exc
        except restrictions.RestrictionConflict as exc:
            raise ApiError(409, "Conflict", str(exc)) from exc


@router.get("/{recording_id}/restriction")
def get_restriction(recording_id: str, request: Request, principal: Manager) -> dict[str, Any]:
    """The restriction and its access list (404 when unrestricted)."""
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        rec = queries.get_visible(session, principal=principal, recording_id=recording_id)
        body = restrictions.describe(session, rec.id) if rec is not None else None
        if rec is None or body is None:
            raise ApiError(404, "Not found", "no such restricted recording")
    return body


@router.post("/{recording_id}/restriction", status_code=201)
def restrict(recording_id: str, body: RestrictionRequest, request: Request,
             principal: Manager) -> dict[str, Any]:
    """Restrict a recording, or change its restriction's kind; audited with the reason."""
    result: dict[str, Any] = _restriction_change(
        request, principal, recording_id, restrictions.place, kind=body.kind, reason=body.reason)
    return result


@router.delete("/{recording_id}/restriction", status_code=204)
def unrestrict(recording_id: str, body: ReasonRequest, request: Request,
               principal: Manager) -> Response:
    """Release the restriction (and its access list); audited with the reason."""
    _restriction_change(request, principal, recording_id, restrictions.release,
                        reason=body.reason)
    return Response(status_code=204)


@router.post("/{recording_id}/restriction/access", status_code=201)
def list_person(recording_id: str, body: AccessListRequest, request: Request,
                principal: Manager) -> dict[str, Any]:
    """Put someone on the access list; audited with the reason."""
    result: dict[str, Any] = _restriction_change(
        request, principal, recording_id, restrictions.add_access, username=body.username,
        reason=body.reason)
    return result


@router.delete("/{recording_id}/restriction/access/{username}")
def unlist_person(recording_id: str, username: str, body: ReasonRequest, request: Request,
                  principal: Manager) -> dict[str, Any]:
    """Take someone off the access list; audited with the reason."""
    result: dict[str, Any] = _restriction_change(
        request, principal, recording_id, restrictions.remove_access, username=username,
        reason=body.reason)
    return result
