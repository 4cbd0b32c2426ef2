"""Finding recordings: filters, keyset pagination, and the visibility rule as SQL."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Select, and_, bindparam, func, or_, select, true, tuple_, union
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, selectinload

from evidence_locker.accounts.roles import (
    POST_INCIDENT,
    Principal,
    RecordingScope,
    Role,
    may_view_footage_at_all,
    may_view_recording,
)
from evidence_locker.audit.service import Actor, record
from evidence_locker.catalogue.models import (
    Recording,
    RecordingFile,
    RecordingRestriction,
    RestrictionAccess,
)
from evidence_locker.catalogue.restrictions import restriction_of
from evidence_locker.catalogue.rules import missing_files
from evidence_locker.catalogue.service import expected_slots, present_slots
from evidence_locker.clock import Clock
from evidence_locker.fleet.models import Device, Officer, Unit
from evidence_locker.lifecycle.case_models import CaseGrant, CaseRecording
from evidence_locker.lifecycle.models import EvidenceFlag

STATES = ("incomplete", "complete")


class QueryError(ValueError):
    pass


@dataclass(frozen=True)
class Filters:
    officer: str | None = None  # collar number
    unit: str | None = None  # unit code: that unit and everything under it
    device: str | None = None  # serial
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    state: str | None = None
    sha256: str | None = None
    reference: str | None = None  # an active evidence flag's crime/case reference
    # Due for deletion by this time (the stored deadline; the sweep re-checks): soonest first.
    due_before: dt.datetime | None = None


@dataclass(frozen=True)
class _Order:
    """The key a search pages by: newest recorded first, or soonest due for deletion."""
    column: Any
    descending: bool

    def first(self, stmt: _Keys, n: int) -> _Keys:
        """The first `n` recordings of `stmt` in this order."""
        return self.first_of(stmt, n, self.column, Recording.id)

    def first_of(self, stmt: _Keys, n: int, key: Any, rid: Any) -> _Keys:
        """The first `n` rows of `stmt` in this order of its columns `key` and `rid` (a
        subquery's, when merging branches)."""
        if self.descending:
            return stmt.order_by(key.desc(), rid.desc()).limit(n)
        return stmt.order_by(key.asc(), rid.asc()).limit(n)


NEWEST = _Order(Recording.sort_at, descending=True)
SOONEST_DUE = _Order(Recording.delete_after, descending=False)


def due_before(clock: Clock, days: int | None) -> dt.datetime | None:
    """`due_within_days` as the instant the filter compares deadlines with."""
    return None if days is None else clock.now() + dt.timedelta(days=days)


def order_of(f: Filters) -> _Order:
    return SOONEST_DUE if f.due_before is not None else NEWEST


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


@dataclass(frozen=True)
class _Scope:
    """Where the rows may come from: the union of `units` (None: anywhere) and the officer's own
    recordings (`own`), those restricted to `own_units` when a unit filter applies; minus
    restricted recordings (all of them, or only post-incident ones for professional standards:
    `hide`), plus the restricted recordings on user `listed`'s access lists (within `own_units`
    too)."""

    units: list[int] | None
    own: int | None
    own_units: list[int] | None = None
    listed: int | None = None
    hide: str = "all"  # all | post-incident
    granted: int | None = None  # a watchdog with case grants: those cases' recordings


def _subtree(session: Session, path: str) -> list[int]:
    return list(session.scalars(select(Unit.id).where(Unit.path.startswith(path))))


def _scope(session: Session, p: Principal, f: Filters) -> _Scope | None:
    """`roles.may_view_recording` as lists of units, intersected with the unit filter; None when
    nothing can match."""
    if not may_view_footage_at_all(p) or p.role == Role.PROSECUTOR:
        return None  # prosecutors see only what is shared (later)
    # The access-list branch only for people on some list (few): everyone else's plan is the
    # per-unit scans plus one anti-join on the small restrictions table.
    listed = p.user_id if p.user_id is not None and session.scalars(
        select(RestrictionAccess.id).where(RestrictionAccess.user_id == p.user_id).limit(1)
    ).first() is not None else None
    if p.role == Role.PROFESSIONAL_STANDARDS:
        scope = _Scope(units=None, own=None, listed=listed, hide=POST_INCIDENT)
    elif p.role == Role.WATCHDOG:
        # What it is listed on and what its case grants give it, nothing else.
        scope = _Scope(units=[], own=None, listed=listed, granted=_granted(session, p))
    else:
        units = _subtree(session, p.unit_path) if p.role != Role.OFFICER and p.unit_path else []
        scope = _Scope(units=units, own=p.officer_id, listed=listed)
    if f.unit is not None:
        unit = session.scalars(select(Unit).where(Unit.code == f.unit)).one_or_none()
        if unit is None:
            return None
        wanted = _subtree(session, unit.path)
        if scope.units is None:
            scope = _Scope(units=wanted, own=None, own_units=wanted, listed=scope.listed,
                           hide=scope.hide, granted=scope.granted)
        else:
            keep = set(wanted)
            scope = _Scope(units=[u for u in scope.units if u in keep], own=scope.own,
                           own_units=wanted, listed=scope.listed, hide=scope.hide,
                           granted=scope.granted)
    if scope.units == [] and scope.own is None and scope.listed is None \
            and scope.granted is None:
        return None
    return scope


def _granted(session: Session, p: Principal) -> int | None:
    """The watchdog's user id if it holds any case grant now (else no branch for it)."""
    if p.user_id is None:
        return None
    return p.user_id if session.scalars(select(CaseGrant.id).where(
        CaseGrant.user_id == p.user_id, CaseGrant.revoked_at.is_(None)).limit(1)
    ).first() is not None else None


def granted_recordings(user_id: int) -> Select[uuid.UUID]:
    """The recordings currently in the cases granted (and not revoked) to a watchdog."""
    return select(CaseRecording.recording_id).join(
        CaseGrant, CaseGrant.case_id == CaseRecording.case_id).where(
        CaseGrant.user_id == user_id, CaseGrant.revoked_at.is_(None),
        CaseRecording.removed_at.is_(None))


def _hidden(hide: str) -> Any:
    """Rows a scope's unit and own branches leave out: an anti-join on the restrictions table
    (restricted recordings are rare, so it is small and its primary key answers each probe)."""
    restricted = select(RecordingRestriction.recording_id).where(
        RecordingRestriction.recording_id == Recording.id)
    if hide == POST_INCIDENT:
        restricted = restricted.where(RecordingRestriction.kind == POST_INCIDENT)
    return ~restricted.exists()


def _conditions(session: Session, f: Filters, cursor: str | None) -> list[Any] | None:
    """Every filter but the unit (that one is part of the scope); None when nothing matches."""
    # A recording the sweep has decided to delete is gone for everyone (get_visible says so
    # too), though its bytes may take a moment to go: rare rows, filtered in the index scans.
    conds: list[Any] = [Recording.retention_state == "live"]
    if f.officer is not None:
        officer_id = session.scalars(select(Officer.id).where(Officer.collar == f.officer)).first()
        if officer_id is None:
            return None
        conds.append(Recording.officer_id == officer_id)
    if f.device is not None:
        conds.append(Recording.device_serial == f.device)
    if f.since is not None:
        conds.append(Recording.sort_at >= f.since)
    if f.until is not None:
        conds.append(Recording.sort_at < f.until)
    if f.state is not None:
        if f.state not in STATES:
            raise QueryError(f"state must be one of {', '.join(STATES)}")
        conds.append(Recording.state == f.state)
    if f.sha256 is not None:
        conds.append(Recording.id.in_(
            select(RecordingFile.recording_id).where(RecordingFile.sha256 == f.sha256.lower())))
    if f.reference is not None:
        conds.append(Recording.id.in_(
            select(EvidenceFlag.recording_id).where(EvidenceFlag.reference == f.reference,
                                                    EvidenceFlag.withdrawn_at.is_(None))))
    if f.due_before is not None:
        conds.append(Recording.delete_after <= f.due_before)
    if cursor:
        at, rid = decode_cursor(cursor)
        # A row comparison, so the database can seek in (…, key, id) instead of filtering.
        order = order_of(f)
        row = tuple_(order.column, Recording.id)
        conds.append(row < tuple_(at, rid) if order.descending else row > tuple_(at, rid))
    return conds


# SQLite refuses compound SELECTs of more than 500 terms; past this, one IN branch instead.
_MAX_UNION_BRANCHES = 200


_Keys = Select[dt.datetime, uuid.UUID]


def _page_keys(session: Session, scope: _Scope, conds: list[Any], n: int,
               narrow: bool = False, order: _Order = NEWEST) -> _Keys:
    """The (key, id) of the page (key: sort_at, or delete_after for the due search), each
    branch an ordered scan of one index that stops after `n` rows: (unit_id, key, id) per unit
    in scope, (officer_id, sort_at, id) for the officer's own. A single `unit_id IN (…) OR
    officer_id = …` would make the database read every row of the window and sort them
    (bench/scale.py measured seconds at 10 M rows). Restricted recordings leave those branches
    through an anti-join on the small restrictions table and come back, for the people on their
    lists, from one branch over the caller's access-list entries."""
    keys = (order.column.label("k"), Recording.id)

    filters = conds
    conds = [*conds, _hidden(scope.hide)]
    branches: list[_Keys] = []
    if scope.listed is not None:
        # The restricted recordings on the caller's access lists: few, found from its index.
        mine = select(RestrictionAccess.recording_id).where(
            RestrictionAccess.user_id == scope.listed)
        listed = [Recording.id.in_(mine), *filters]
        if scope.own_units is not None:
            listed.append(Recording.unit_id.in_(scope.own_units))
        branches.append(order.first(select(*keys).where(*listed), n))
    if scope.granted is not None:
        # A watchdog's case grants: the cases' current unrestricted recordings (`conds` hides
        # the restricted ones; those the watchdog is listed on come from the branch above).
        granted = [Recording.id.in_(granted_recordings(scope.granted)), *conds]
        if scope.own_units is not None:
            granted.append(Recording.unit_id.in_(scope.own_units))
        branches.append(order.first(select(*keys).where(*granted), n))
    if scope.units is None and scope.own is None:
        everything = order.first(select(*keys).where(*conds), n)
        if not branches:
            return everything
        branches.append(everything)
    units = scope.units or []
    if narrow and units:
        # An officer, a camera or a hash names few rows, found from their own index: one
        # branch that checks the scope per row beats one scan per unit through the window.
        seen: list[Any] = [Recording.unit_id.in_(units)]
        if scope.own is not None:
            seen.append(and_(Recording.officer_id == scope.own,
                             *([Recording.unit_id.in_(scope.own_units)]
                               if scope.own_units is not None else [])))
        branches.append(order.first(select(*keys).where(or_(*seen), *conds), n))
    elif len(units) > 1 and session.get_bind().dialect.name == "postgresql":
        # One LATERAL branch per unit, the list passed as one array parameter.
        unit = func.unnest(bindparam("scope_units", units, type_=ARRAY(Integer))) \
            .table_valued("unit_id").render_derived(name="scope_unit")
        per_unit = order.first(
            select(*keys).where(Recording.unit_id == unit.c.unit_id, *conds), n).lateral("r")
        branches.append(order.first_of(select(per_unit.c.k, per_unit.c.id)
                                       .select_from(unit).join(per_unit, true()),
                                       n, per_unit.c.k, per_unit.c.id))
    elif len(units) > _MAX_UNION_BRANCHES:
        branches.append(order.first(select(*keys).where(Recording.unit_id.in_(units), *conds), n))
    else:
        branches += [order.first(select(*keys).where(Recording.unit_id == u, *conds), n)
                     for u in units]
    if scope.own is not None and not (narrow and units):
        mine_conds = [Recording.officer_id == scope.own, *conds]
        if scope.own_units is not None:
            mine_conds.append(Recording.unit_id.in_(scope.own_units))
        branches.append(order.first(select(*keys).where(*mine_conds), n))
    if len(branches) == 1:
        return branches[0]
    # UNION, not UNION ALL: one's own recording in one's own unit comes from two branches.
    merged = union(*(select(*b.subquery().c) for b in branches)).subquery()
    return order.first_of(select(merged.c.k, merged.c.id), n, merged.c.k, merged.c.id)


def search(
    session: Session, *, principal: Principal, filters: Filters, limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Recording], str | None]:
    """Newest first, by (sort_at, id), or soonest due first, by (delete_after, id), when the
    filters ask what is due for deletion; the cursor is the last row seen, so pages stay stable
    while new footage arrives."""
    scope = _scope(session, principal, filters)
    conds = _conditions(session, filters, cursor) if scope is not None else None
    if scope is None or conds is None:
        return [], None
    narrow = any(v is not None for v in (filters.officer, filters.device, filters.sha256,
                                         filters.reference))
    keys = session.execute(_page_keys(session, scope, conds, limit + 1, narrow,
                                      order_of(filters))).all()
    next_cursor = None
    if len(keys) > limit:
        keys = keys[:limit]
        next_cursor = encode_cursor(keys[-1].k, keys[-1].id)
    ids = [k.id for k in keys]
    loaded = {r.id: r for r in session.scalars(
        select(Recording).where(Recording.id.in_(ids)).options(selectinload(Recording.files)))}
    return [loaded[i] for i in ids], next_cursor


def count_by_unit(session: Session, *, principal: Principal,
                  filters: Filters) -> list[tuple[str | None, int]]:
    """How many recordings `search` would list with these filters, per unit code (None: no
    unit), in one grouped query: the due page's summary. The same scope as `search`'s
    branches, so a count never reveals a restricted recording the list would not show."""
    scope = _scope(session, principal, filters)
    conds = _conditions(session, filters, None) if scope is not None else None
    if scope is None or conds is None:
        return []
    hidden = _hidden(scope.hide)
    within = [Recording.unit_id.in_(scope.own_units)] if scope.own_units is not None else []
    seen: list[Any] = []
    if scope.units is None and scope.own is None:
        seen.append(hidden)
    if scope.units:
        seen.append(and_(Recording.unit_id.in_(scope.units), hidden))
    if scope.own is not None:
        seen.append(and_(Recording.officer_id == scope.own, hidden, *within))
    if scope.listed is not None:
        seen.append(and_(Recording.id.in_(select(RestrictionAccess.recording_id).where(
            RestrictionAccess.user_id == scope.listed)), *within))
    if scope.granted is not None:
        seen.append(and_(Recording.id.in_(granted_recordings(scope.granted)), hidden,
                         *within))
    if not seen:
        return []
    rows = session.execute(select(Unit.code, func.count(Recording.id))
                           .select_from(Recording)
                           .outerjoin(Unit, Unit.id == Recording.unit_id)
                           .where(or_(*seen), *conds).group_by(Unit.code)).all()
    return sorted(((code, n) for code, n in rows), key=lambda r: (r[0] is None, r[0] or ""))


def scope_of(session: Session, rec: Recording) -> RecordingScope:
    path = None
    if rec.unit_id is not None:
        unit = session.get(Unit, rec.unit_id)
        path = unit.path if unit else None
    restriction = restriction_of(session, rec.id)
    grants = frozenset(session.scalars(select(CaseGrant.user_id).join(
        CaseRecording, CaseRecording.case_id == CaseGrant.case_id).where(
        CaseRecording.recording_id == rec.id, CaseRecording.removed_at.is_(None),
        CaseGrant.revoked_at.is_(None))))
    if restriction is None:
        return RecordingScope(officer_id=rec.officer_id, unit_path=path, case_grants=grants)
    return RecordingScope(officer_id=rec.officer_id, unit_path=path,
                          restriction=restriction.kind, access_list=restriction.access_list,
                          case_grants=grants)


def get_visible(session: Session, *, principal: Principal, recording_id: str) -> Recording | None:
    try:
        rid = uuid.UUID(recording_id)
    except ValueError:
        return None
    rec = session.get(Recording, rid)
    if rec is None or not may_view_recording(principal, scope_of(session, rec)):
        return None
    if rec.retention_state != "live":
        return None  # the retention sweep has decided to delete it (lifecycle/sweep.py)
    return rec


def clip_of(rec: Recording, number: int) -> RecordingFile | None:
    """Clip N (from 1) of a recording: the first live copy of that slot."""
    for f in rec.files:
        if f.kind == "clip" and f.index == number and f.deleted_at is None:
            return f
    return None


def _restriction_kind(session: Session, rec: Recording) -> str | None:
    row = session.get(RecordingRestriction, rec.id)
    return row.kind if row is not None else None


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
        "restriction": _restriction_kind(session, rec),
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
        "delete_after": rec.delete_after.isoformat() if rec.delete_after else None,
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
