"""Finding recordings: filters, keyset pagination, and the visibility rule as SQL."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, false, or_, select, tuple_
from sqlalchemy.orm import Session, selectinload

from evidence_locker.accounts.roles import (
    Principal,
    RecordingScope,
    Role,
    may_view_footage_at_all,
    may_view_recording,
)
from evidence_locker.audit.service import Actor, record
from evidence_locker.catalogue.models import Recording, RecordingFile
from evidence_locker.catalogue.rules import missing_files
from evidence_locker.catalogue.service import expected_slots, present_slots
from evidence_locker.clock import Clock
from evidence_locker.fleet.models import Device, Officer, Unit

STATES = ("incomplete", "complete")


class QueryError(ValueError):
    pass


def visible(stmt: Select[Any], p: Principal) -> Select[Any]:
    """The rule of `roles.may_view_recording`, as a WHERE clause."""
    if not may_view_footage_at_all(p) or p.role in (Role.WATCHDOG, Role.PROSECUTOR):
        # Watchdogs and prosecutors see only what is granted or shared (later issues).
        return stmt.where(false())
    if p.role == Role.PROFESSIONAL_STANDARDS:
        return stmt
    own = Recording.officer_id == p.officer_id if p.officer_id is not None else false()
    if p.role == Role.OFFICER:
        return stmt.where(own)
    if p.unit_path:
        subtree = Recording.unit_id.in_(select(Unit.id).where(Unit.path.startswith(p.unit_path)))
        return stmt.where(or_(own, subtree))
    return stmt.where(own)


@dataclass(frozen=True)
class Filters:
    officer: str | None = None  # collar number
    unit: str | None = None  # unit code: that unit and everything under it
    device: str | None = None  # serial
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    state: str | None = None
    sha256: str | None = None


def encode_cursor(sort_at: dt.datetime, rec_id: uuid.UUID) -> str:
    raw = json.dumps([sort_at.isoformat(), str(rec_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, rid = json.loads(raw)
        when = dt.datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("naive")
        return when, uuid.UUID(rid)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise QueryError("invalid cursor") from exc


def search(
    session: Session, *, principal: Principal, filters: Filters, limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Recording], str | None]:
    """Newest first, by (sort_at, id); the cursor is the last row seen, so pages stay stable
    while new footage arrives."""
    stmt = visible(select(Recording), principal)
    f = filters
    if f.officer is not None:
        stmt = stmt.where(Recording.officer_id.in_(
            select(Officer.id).where(Officer.collar == f.officer)))
    if f.unit is not None:
        unit = session.scalars(select(Unit).where(Unit.code == f.unit)).one_or_none()
        if unit is None:
            return [], None
        stmt = stmt.where(Recording.unit_id.in_(
            select(Unit.id).where(Unit.path.startswith(unit.path))))
    if f.device is not None:
        stmt = stmt.where(Recording.device_serial == f.device)
    if f.since is not None:
        stmt = stmt.where(Recording.sort_at >= f.since)
    if f.until is not None:
        stmt = stmt.where(Recording.sort_at < f.until)
    if f.state is not None:
        if f.state not in STATES:
            raise QueryError(f"state must be one of {', '.join(STATES)}")
        stmt = stmt.where(Recording.state == f.state)
    if f.sha256 is not None:
        stmt = stmt.where(Recording.id.in_(
            select(RecordingFile.recording_id).where(RecordingFile.sha256 == f.sha256.lower())))
    if cursor:
        at, rid = decode_cursor(cursor)
        # A row comparison, so the database can seek in (…, sort_at, id) instead of filtering.
        stmt = stmt.where(tuple_(Recording.sort_at, Recording.id) < tuple_(at, rid))
    rows = list(session.scalars(
        stmt.order_by(Recording.sort_at.desc(), Recording.id.desc()).limit(limit + 1)
        .options(selectinload(Recording.files))))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].sort_at, rows[-1].id)
    return rows, next_cursor


def scope_of(session: Session, rec: Recording) -> RecordingScope:
    path = None
    if rec.unit_id is not None:
        unit = session.get(Unit, rec.unit_id)
        path = unit.path if unit else None
    return RecordingScope(officer_id=rec.officer_id, unit_path=path)


def get_visible(session: Session, *, principal: Principal, recording_id: str) -> Recording | None:
    try:
        rid = uuid.UUID(recording_id)
    except ValueError:
        return None
    rec = session.get(Recording, rid)
    if rec is None or not may_view_recording(principal, scope_of(session, rec)):
        return None
    return rec


def clip_of(rec: Recording, number: int) -> RecordingFile | None:
    """Clip N (from 1) of a recording: the first live copy of that slot."""
    for f in rec.files:
        if f.kind == "clip" and f.index == number and f.deleted_at is None:
            return f
    return None


def describe(session: Session, rec: Recording) -> dict[str, Any]:
    officer = session.get(Officer, rec.officer_id) if rec.officer_id else None
    unit = session.get(Unit, rec.unit_id) if rec.unit_id else None
    device = session.get(Device, rec.device_id) if rec.device_id else None
    missing = missing_files(expected_slots(rec), present_slots(session, rec))
    return {
        "id": str(rec.id),
        "device": {"serial": rec.device_serial, "model": rec.model, "firmware": rec.firmware,
                   "mount": device.mount if device else None,
                   "registered": bool(device and not device.needs_review)},
        "camera_recording_id": rec.camera_recording_id,
        "officer": {"collar": officer.collar, "name": officer.name} if officer else None,
        "reported_officer": rec.reported_officer,
        "unit": {"code": unit.code, "name": unit.name} if unit else None,
        "attribution_issues": [n for n in rec.attribution_issues.split("; ") if n],
        "started_at": rec.started_at.isoformat() if rec.started_at else None,
        "stopped_at": rec.stopped_at.isoformat() if rec.stopped_at else None,
        "camera_started_at": rec.camera_started_at,
        "camera_timezone": rec.camera_timezone,
        "pre_event_seconds": rec.pre_event_seconds,
        "trigger": {"on": rec.trigger_on_reason, "off": rec.trigger_off_reason},
        "clock_drift_seconds": rec.clock_drift_seconds,
        "clock_suspect": rec.clock_suspect,
        "clock_note": rec.clock_note,
        "received_at": rec.received_at.isoformat(),
        "completed_at": rec.completed_at.isoformat() if rec.completed_at else None,
        "state": rec.state,
        "sidecar_state": rec.sidecar_state,
        "missing": [{"kind": k, "index": i, "sha256": s} for k, i, s in missing],
        "bookmarks": json.loads(rec.bookmarks) if rec.bookmarks else [],
        "place": {"lat": rec.lat, "lon": rec.lon} if rec.lat is not None else None,
        "files": [
            {
                "id": f.id, "kind": f.kind, "index": f.index, "filename": f.filename,
                "sha256": f.sha256, "size": f.size, "received_at": f.received_at.isoformat(),
                "media_state": f.media_state, "unreadable_reason": f.unreadable_reason,
                "duration_seconds": f.duration_seconds, "video_codec": f.video_codec,
                "audio_codec": f.audio_codec, "width": f.width, "height": f.height,
                "frame_rate": f.frame_rate, "conflict": f.conflict,
                "has_poster": f.poster_sha256 is not None,
            }
            for f in rec.files if f.deleted_at is None
        ],
    }


def summary(session: Session, rec: Recording) -> dict[str, Any]:
    officer = session.get(Officer, rec.officer_id) if rec.officer_id else None
    unit = session.get(Unit, rec.unit_id) if rec.unit_id else None
    clips = [f for f in rec.files if f.kind == "clip" and f.deleted_at is None]
    return {
        "id": str(rec.id),
        "device": rec.device_serial,
        "camera_recording_id": rec.camera_recording_id,
        "officer": officer.collar if officer else None,
        "officer_name": officer.name if officer else None,
        "unit": unit.code if unit else None,
        "started_at": rec.started_at.isoformat() if rec.started_at else None,
        "received_at": rec.received_at.isoformat(),
        "state": rec.state,
        "clock_suspect": rec.clock_suspect,
        "clips": len(clips),
        "duration_seconds": sum(f.duration_seconds or 0 for f in clips) or None,
        "unreadable": any(f.media_state == "unreadable" for f in rec.files),
    }


def search_recorded(
    session: Session, *, clock: Clock, principal: Principal, actor: Actor, filters: Filters,
    limit: int, cursor: str | None, via: str,
) -> tuple[list[dict[str, Any]], str | None]:
    """One search, as the API and the pages run it: the audit row says who searched for what."""
    rows, next_cursor = search(session, principal=principal, filters=filters, limit=limit,
                               cursor=cursor)
    # One query each for the page's officers and units, not one per row; the lists keep them
    # alive in the session's identity map while the summaries are built.
    officers = list(session.scalars(select(Officer).where(
        Officer.id.in_({r.officer_id for r in rows if r.officer_id}))))
    units = list(session.scalars(select(Unit).where(
        Unit.id.in_({r.unit_id for r in rows if r.unit_id}))))
    items = [summary(session, r) for r in rows]
    del officers, units
    record(session, clock=clock, actor=actor, action="recording.searched",
           object_type="recording",
           details={"filters": {k: v for k, v in vars(filters).items() if v is not None},
                    "returned": len(items), "via": via})
    return items, next_cursor


def view_recorded(
    session: Session, *, clock: Clock, principal: Principal, actor: Actor, recording_id: str,
    via: str,
) -> dict[str, Any] | None:
    """A recording's description for someone allowed to see it (None otherwise), audited."""
    rec = get_visible(session, principal=principal, recording_id=recording_id)
    if rec is None:
        return None
    body = describe(session, rec)
    record(session, clock=clock, actor=actor, action="recording.viewed",
           object_type="recording", object_id=str(rec.id), details={"via": via})
    return body
