"""The visibility rule and the search filters written the plain way, as one WHERE clause: the
reference that search()'s per-unit query is checked against, by tests/catalogue/
test_search_scope.py on small random catalogues and by bench/scale.py at 10 M rows (which loads
this file by path)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, false, or_, select
from sqlalchemy.orm import Session

from evidence_locker.accounts.roles import (
    POST_INCIDENT,
    Principal,
    Role,
    may_view_footage_at_all,
)
from evidence_locker.catalogue.models import (
    Recording,
    RecordingFile,
    RecordingRestriction,
    RestrictionAccess,
)
from evidence_locker.catalogue.queries import Filters
from evidence_locker.fleet.models import Officer, Unit
from evidence_locker.lifecycle.case_models import CaseGrant, CaseRecording
from evidence_locker.lifecycle.models import EvidenceFlag


def reference(stmt: Select[Any], p: Principal, session: Session, f: Filters) -> Select[Any]:
    """The rule of roles.may_view_recording and the filters as plain WHERE clauses."""
    def subtree(path: str) -> Any:
        return Recording.unit_id.in_(select(Unit.id).where(Unit.path.startswith(path)))

    restricted = Recording.id.in_(select(RecordingRestriction.recording_id))
    post_incident = Recording.id.in_(select(RecordingRestriction.recording_id).where(
        RecordingRestriction.kind == POST_INCIDENT))
    listed = Recording.id.in_(select(RestrictionAccess.recording_id).where(
        RestrictionAccess.user_id == p.user_id))
    if not may_view_footage_at_all(p) or p.role == Role.PROSECUTOR:
        stmt = stmt.where(false())
    elif p.role == Role.WATCHDOG:
        # What it is listed on, and the unrestricted recordings now in the cases it holds a
        # grant on (neither the link removed nor the grant revoked).
        granted = Recording.id.in_(select(CaseRecording.recording_id).where(
            CaseRecording.removed_at.is_(None), CaseRecording.case_id.in_(
                select(CaseGrant.case_id).where(CaseGrant.user_id == p.user_id,
                                                CaseGrant.revoked_at.is_(None)))))
        stmt = stmt.where(or_(and_(restricted, listed), and_(~restricted, granted)))
    elif p.role == Role.PROFESSIONAL_STANDARDS:
        stmt = stmt.where(or_(~post_incident, listed))
    else:
        own = Recording.officer_id == p.officer_id if p.officer_id is not None else false()
        seen = own if p.role == Role.OFFICER or not p.unit_path else \
            or_(own, subtree(p.unit_path))
        stmt = stmt.where(or_(and_(seen, ~restricted), and_(restricted, listed)))
    stmt = stmt.where(Recording.retention_state == "live")
    if f.unit is not None:
        unit = session.scalars(select(Unit).where(Unit.code == f.unit)).one()
        stmt = stmt.where(subtree(unit.path))
    if f.officer is not None:
        stmt = stmt.where(Recording.officer_id.in_(
            select(Officer.id).where(Officer.collar == f.officer)))
    if f.device is not None:
        stmt = stmt.where(Recording.device_serial == f.device)
    if f.since is not None:
        stmt = stmt.where(Recording.sort_at >= f.since)
    if f.until is not None:
        stmt = stmt.where(Recording.sort_at < f.until)
    if f.state is not None:
        stmt = stmt.where(Recording.state == f.state)
    if f.sha256 is not None:
        stmt = stmt.where(Recording.id.in_(
            select(RecordingFile.recording_id).where(RecordingFile.sha256 == f.sha256.lower())))
    if f.reference is not None:
        stmt = stmt.where(Recording.id.in_(select(EvidenceFlag.recording_id).where(
            EvidenceFlag.reference == f.reference, EvidenceFlag.withdrawn_at.is_(None))))
    if f.due_before is not None:
        # What is due for deletion, soonest first.
        return stmt.where(Recording.delete_after <= f.due_before) \
            .order_by(Recording.delete_after, Recording.id)
    return stmt.order_by(Recording.sort_at.desc(), Recording.id.desc())
