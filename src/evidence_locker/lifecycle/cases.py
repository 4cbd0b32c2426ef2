"""Cases: group recordings under a reference; an open (or charged) case holds them, a closed one
starts its `case-closed` flags' days (lifecycle/rules.py). Watchdogs see a case's current
recordings through a grant on it (accounts/roles.py, catalogue/queries.py).

Every change writes its audit event in the caller's transaction. A change that affects
recordings takes the case row's lock first, then each affected recording's row lock (in id
order, the lock the sweep takes), and recomputes their `delete_after` before the transaction
ends: so a sweep deciding on a recording either sees the change or comes before it, and a
recording the sweep has already decided to delete cannot be linked (409)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from evidence_locker.accounts.models import User
from evidence_locker.accounts.roles import Principal, Role, may_view_recording
from evidence_locker.audit.service import Actor, record
from evidence_locker.catalogue import queries
from evidence_locker.catalogue.models import Recording
from evidence_locker.clock import Clock
from evidence_locker.config import Settings
from evidence_locker.fleet.models import Unit
from evidence_locker.lifecycle import rules
from evidence_locker.lifecycle.case_models import Case, CaseGrant, CaseOwner, CaseRecording
from evidence_locker.lifecycle.service import (
    LifecycleConflict,
    LifecycleRefused,
    _iso,
    _locked_live,
    _reason,
    lock_recording,
    refresh,
)

TITLE_MAX = 200
LIST_MAX = 500


class CaseForbidden(PermissionError):
    """The caller may read the case but not make this change (403)."""


# --- reading -------------------------------------------------------------------------------


def _path(session: Session, case: Case) -> str:
    unit = session.get(Unit, case.unit_id)
    return unit.path if unit is not None else "\x00"


def owners_of(session: Session, case_id: int) -> frozenset[int]:
    return frozenset(session.scalars(select(CaseOwner.user_id).where(
        CaseOwner.case_id == case_id, CaseOwner.removed_at.is_(None))))


def grantees_of(session: Session, case_id: int) -> frozenset[int]:
    return frozenset(session.scalars(select(CaseGrant.user_id).where(
        CaseGrant.case_id == case_id, CaseGrant.revoked_at.is_(None))))


def may_read(session: Session, principal: Principal, case: Case) -> bool:
    return rules.may_read_case(principal, _path(session, case), owners_of(session, case.id),
                               grantees_of(session, case.id))


def may_manage(session: Session, principal: Principal, case: Case) -> bool:
    return rules.may_manage_case(principal, _path(session, case), owners_of(session, case.id))


def readable(session: Session, principal: Principal, case_id: int) -> Case | None:
    """The case if the caller may read it (None otherwise: a case one may not read does not
    exist for them, as a restricted recording does not)."""
    case = session.get(Case, case_id)
    if case is None or not may_read(session, principal, case):
        return None
    return case


def current_recordings(session: Session, case_id: int) -> list[uuid.UUID]:
    return sorted(session.scalars(select(CaseRecording.recording_id).where(
        CaseRecording.case_id == case_id, CaseRecording.removed_at.is_(None))))


def cases_of_recording(session: Session, principal: Principal,
                       recording_id: uuid.UUID) -> list[dict[str, Any]]:
    """The cases a recording is in now that the caller may read (the evidence page's links)."""
    rows = session.scalars(select(Case).join(CaseRecording, CaseRecording.case_id == Case.id)
                           .where(CaseRecording.recording_id == recording_id,
                                  CaseRecording.removed_at.is_(None)).order_by(Case.id))
    return [_case_json(session, c) for c in rows if may_read(session, principal, c)]


def _username(session: Session, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return user.username if user is not None else None


def _case_json(session: Session, case: Case) -> dict[str, Any]:
    unit = session.get(Unit, case.unit_id)
    return {"id": case.id, "reference": case.reference, "title": case.title,
            "status": case.status, "open": case.status in rules.OPEN_CASE_STATUSES,
            "unit": unit.code if unit is not None else None,
            "opened_at": _iso(case.opened_at), "opened_by": _username(session, case.opened_by),
            "status_changed_at": _iso(case.status_changed_at),
            "closed_at": _iso(case.closed_at), "closed_by": _username(session, case.closed_by),
            "close_reason": case.close_reason}


def list_cases(session: Session, *, clock: Clock, principal: Principal, actor: Actor,
               status: str | None = None, reference: str | None = None,
               unit: str | None = None) -> list[dict[str, Any]]:
    """The cases the caller may read, newest first, filtered; audited like a search."""
    if status is not None and status not in rules.CASE_STATUSES:
        raise LifecycleRefused(f"status must be one of: {', '.join(rules.CASE_STATUSES)}")
    query = select(Case)
    uid = principal.user_id
    if uid is None or principal.role is None:
        return []
    owned = Case.id.in_(select(CaseOwner.case_id).where(
        CaseOwner.user_id == uid, CaseOwner.removed_at.is_(None)))
    if principal.role == Role.WATCHDOG:
        query = query.where(Case.id.in_(select(CaseGrant.case_id).where(
            CaseGrant.user_id == uid, CaseGrant.revoked_at.is_(None))))
    elif principal.role == Role.PROFESSIONAL_STANDARDS:
        pass
    elif principal.role == Role.EVIDENCE_OFFICER and principal.unit_path:
        query = query.where(or_(owned, Case.unit_id.in_(
            select(Unit.id).where(Unit.path.startswith(principal.unit_path)))))
    elif principal.role in rules.CASE_OWNER_ROLES:
        query = query.where(owned)
    else:
        return []
    if status is not None:
        query = query.where(Case.status == status)
    if reference:
        query = query.where(Case.reference.startswith(reference.strip(), autoescape=True))
    if unit:
        wanted = session.scalars(select(Unit).where(Unit.code == unit)).one_or_none()
        if wanted is None:
            return []
        query = query.where(Case.unit_id.in_(
            select(Unit.id).where(Unit.path.startswith(wanted.path))))
    rows = list(session.scalars(query.order_by(Case.opened_at.desc(), Case.id.desc())
                                .limit(LIST_MAX)))
    record(session, clock=clock, actor=actor, action="cases.listed", object_type="case",
           details={"status": status, "reference": reference, "unit": unit,
                    "results": len(rows)})
    return [_case_json(session, c) for c in rows]


def describe(session: Session, *, clock: Clock, principal: Principal, actor: Actor,
             case: Case) -> dict[str, Any]:
    """A case with the recordings in it that the caller may see (restricted ones stay hidden
    from those not on their list), its owners and, for those who manage it, its history of
    removed links and its watchdog grants. Audited: a case lists footage."""
    body = _case_json(session, case)
    links = session.scalars(select(CaseRecording).where(CaseRecording.case_id == case.id)
                            .order_by(CaseRecording.id))
    shown: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    for link in links:
        rec = queries.get_visible(session, principal=principal,
                                  recording_id=str(link.recording_id))
        if link.removed_at is None:
            if rec is not None:
                shown.append(queries.summary(session, rec) | {
                    "added_at": _iso(link.added_at), "added_by":
                    _username(session, link.added_by), "added_reason": link.added_reason})
        elif rec is not None or principal.role == Role.PROFESSIONAL_STANDARDS:
            removed.append({"recording_id": str(link.recording_id),
                            "added_at": _iso(link.added_at),
                            "removed_at": _iso(link.removed_at),
                            "removed_by": _username(session, link.removed_by),
                            "removed_reason": link.removed_reason})
    body["recordings"] = shown
    body["owners"] = sorted(filter(None, (_username(session, u)
                                          for u in owners_of(session, case.id))))
    managing = may_manage(session, principal, case)
    body["may_manage"] = managing
    if principal.role != Role.WATCHDOG:
        body["removed_recordings"] = removed
        body["grants"] = [
            {"id": g.id, "username": _username(session, g.user_id),
             "granted_at": _iso(g.granted_at), "granted_by": _username(session, g.granted_by),
             "reason": g.reason, "revoked_at": _iso(g.revoked_at),
             "revoke_reason": g.revoke_reason}
            for g in session.scalars(select(CaseGrant).where(CaseGrant.case_id == case.id)
                                     .order_by(CaseGrant.id))]
    record(session, clock=clock, actor=actor, action="case.viewed", object_type="case",
           object_id=str(case.id), details={"reference": case.reference,
                                            "recordings": len(shown)})
    return body


# --- changes -------------------------------------------------------------------------------


def _lock_case(session: Session, case: Case) -> Case:
    locked = session.scalars(select(Case).where(Case.id == case.id).with_for_update()).one()
    session.refresh(locked)
    return locked


def _require_manager(session: Session, principal: Principal, case: Case) -> None:
    if not may_manage(session, principal, case):
        raise CaseForbidden("only the command's evidence officers, the case's owners and "
                            "professional standards change a case")


def create(session: Session, *, clock: Clock, settings: Settings, principal: Principal,
           actor: Actor, reference: str, title: str, unit: str | None) -> dict[str, Any]:
    """Open a case in a command (an evidence officer's own unit unless another in their
    command is named); whoever opens it becomes its first owner."""
    reference = reference.strip()
    if not re.fullmatch(settings.retention_reference_pattern, reference):
        raise LifecycleRefused(
            f"reference {reference!r} does not match the force's pattern "
            f"{settings.retention_reference_pattern}")
    title = " ".join(title.split())
    if not 1 <= len(title) <= TITLE_MAX:
        raise LifecycleRefused(f"give a title of 1 to {TITLE_MAX} characters")
    if unit:
        row = session.scalars(select(Unit).where(Unit.code == unit)).one_or_none()
        if row is None:
            raise LifecycleRefused(f"no unit {unit!r}")
    elif principal.unit_path:
        row = session.scalars(select(Unit).where(Unit.path == principal.unit_path)).one_or_none()
    else:
        row = None
    if row is None:
        raise LifecycleRefused("name the command unit the case belongs to")
    if principal.user_id is None or not rules.may_create_case(principal, row.path):
        raise CaseForbidden("evidence officers open cases for their own command")
    if session.scalars(select(Case.id).where(Case.reference == reference)).first() is not None:
        raise LifecycleConflict(f"a case with reference {reference!r} exists")
    now = clock.now()
    case = Case(reference=reference, title=title, status=rules.CASE_OPEN, unit_id=row.id,
                opened_at=now, opened_by=principal.user_id, status_changed_at=now)
    session.add(case)
    session.flush()
    session.add(CaseOwner(case_id=case.id, user_id=principal.user_id, added_at=now,
                          added_by=principal.user_id))
    session.flush()
    record(session, clock=clock, actor=actor, action="case.opened", object_type="case",
           object_id=str(case.id), details={"reference": reference, "title": title,
                                            "unit": row.code})
    return _case_json(session, case)


def add_recording(session: Session, *, clock: Clock, settings: Settings, principal: Principal,
                  actor: Actor, case: Case, recording: Recording,
                  reason: str) -> dict[str, Any]:
    """Link a recording the caller can see; while the case is open it is held."""
    reason = _reason(reason)
    case = _lock_case(session, case)
    _require_manager(session, principal, case)
    if case.status not in rules.OPEN_CASE_STATUSES:
        raise LifecycleConflict("the case is closed: reopen it to add recordings")
    rec = _locked_live(session, recording)
    if rec.id in current_recordings(session, case.id):
        raise LifecycleConflict("the recording is already in this case")
    assert principal.user_id is not None
    session.add(CaseRecording(case_id=case.id, recording_id=rec.id, added_at=clock.now(),
                              added_by=principal.user_id, added_reason=reason))
    refresh(session, settings=settings, rec=rec)
    record(session, clock=clock, actor=actor, action="case.recording_added",
           object_type="recording", object_id=str(rec.id), reason=reason,
           details={"case": case.id, "reference": case.reference,
                    "delete_after": _iso(rec.delete_after)})
    return {"case": case.id, "recording_id": str(rec.id), "held": True,
            "delete_after": _iso(rec.delete_after)}


def remove_recording(session: Session, *, clock: Clock, settings: Settings,
                     principal: Principal, actor: Actor, case: Case, recording: Recording,
                     reason: str) -> dict[str, Any]:
    """Unlink a recording with a reason (the link stays, stamped); its deadline applies again
    unless another hold or open case keeps it."""
    reason = _reason(reason)
    case = _lock_case(session, case)
    _require_manager(session, principal, case)
    rec = _locked_live(session, recording)
    link = session.scalars(select(CaseRecording).where(
        CaseRecording.case_id == case.id, CaseRecording.recording_id == rec.id,
        CaseRecording.removed_at.is_(None))).one_or_none()
    if link is None:
        raise LookupError("the recording is not in this case")
    link.removed_at, link.removed_by, link.removed_reason = (
        clock.now(), principal.user_id, reason)
    refresh(session, settings=settings, rec=rec)
    record(session, clock=clock, actor=actor, action="case.recording_removed",
           object_type="recording", object_id=str(rec.id), reason=reason,
           details={"case": case.id, "reference": case.reference,
                    "delete_after": _iso(rec.delete_after)})
    return {"case": case.id, "recording_id": str(rec.id),
            "delete_after": _iso(rec.delete_after)}


def change_status(session: Session, *, clock: Clock, settings: Settings, principal: Principal,
                  actor: Actor, case: Case, status: str, reason: str) -> dict[str, Any]:
    """Open, charge, close or reopen a case with a reason. Closing lets its recordings go on
    their deadlines (a `case-closed` category's days start now); reopening holds them again.
    Every current recording is locked and its `delete_after` recomputed in this transaction;
    one the sweep has already decided to delete is gone and left out (listed in the answer)."""
    if status not in rules.CASE_STATUSES:
        raise LifecycleRefused(f"status must be one of: {', '.join(rules.CASE_STATUSES)}")
    reason = _reason(reason)
    case = _lock_case(session, case)
    _require_manager(session, principal, case)
    if status == case.status:
        raise LifecycleConflict(f"the case is already {status}")
    previous = case.status
    now = clock.now()
    case.status, case.status_changed_at = status, now
    if status == rules.CASE_CLOSED_STATUS:
        case.closed_at, case.closed_by, case.close_reason = now, principal.user_id, reason
    else:
        case.closed_at = case.closed_by = case.close_reason = None
    session.flush()
    changed: list[dict[str, Any]] = []
    gone: list[str] = []
    for rid in current_recordings(session, case.id):
        rec = lock_recording(session, rid)
        if rec is None:
            gone.append(str(rid))
            continue
        session.refresh(rec)
        if rec.retention_state != "live":
            gone.append(str(rid))
            continue
        before = rec.delete_after
        after = refresh(session, settings=settings, rec=rec)
        if before != after:
            changed.append({"recording_id": str(rid), "delete_after": _iso(after)})
    record(session, clock=clock, actor=actor, action="case.status_changed", object_type="case",
           object_id=str(case.id), reason=reason,
           details={"reference": case.reference, "from": previous, "to": status,
                    "recordings": len(current_recordings(session, case.id)),
                    "delete_after_changed": changed, "already_deleting": gone})
    return _case_json(session, case) | {"delete_after_changed": changed,
                                        "already_deleting": gone}


def _user(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None or not user.active:
        raise LifecycleRefused(f"no active user {username!r}")
    return user


def add_owner(session: Session, *, clock: Clock, principal: Principal, actor: Actor,
              case: Case, username: str) -> dict[str, Any]:
    case = _lock_case(session, case)
    _require_manager(session, principal, case)
    user = _user(session, username)
    if user.role not in rules.CASE_OWNER_ROLES:
        raise LifecycleRefused("owners are officers, supervisors, evidence officers or "
                               "professional standards (a watchdog is given a grant)")
    if user.id in owners_of(session, case.id):
        raise LifecycleConflict(f"{username} already owns the case")
    assert principal.user_id is not None
    session.add(CaseOwner(case_id=case.id, user_id=user.id, added_at=clock.now(),
                          added_by=principal.user_id))
    session.flush()
    record(session, clock=clock, actor=actor, action="case.owner_added", object_type="case",
           object_id=str(case.id), details={"reference": case.reference, "owner": username})
    return {"case": case.id, "owners": sorted(filter(None, (
        _username(session, u) for u in owners_of(session, case.id))))}


def remove_owner(session: Session, *, clock: Clock, principal: Principal, actor: Actor,
                 case: Case, username: str, reason: str) -> dict[str, Any]:
    reason = _reason(reason)
    case = _lock_case(session, case)
    _require_manager(session, principal, case)
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    row = None if user is None else session.scalars(select(CaseOwner).where(
        CaseOwner.case_id == case.id, CaseOwner.user_id == user.id,
        CaseOwner.removed_at.is_(None))).one_or_none()
    if row is None:
        raise LookupError(f"{username} does not own the case")
    row.removed_at, row.removed_by = clock.now(), principal.user_id
    session.flush()
    record(session, clock=clock, actor=actor, action="case.owner_removed", object_type="case",
           object_id=str(case.id), reason=reason,
           details={"reference": case.reference, "owner": username})
    return {"case": case.id, "owners": sorted(filter(None, (
        _username(session, u) for u in owners_of(session, case.id))))}


def place_grant(session: Session, *, clock: Clock, principal: Principal, actor: Actor,
                case: Case, username: str, reason: str) -> dict[str, Any]:
    """Give a watchdog the case's current recordings (restricted ones only if it is on their
    list), until revoked."""
    reason = _reason(reason)
    if not rules.may_manage_case_grants(principal):
        raise CaseForbidden("only professional standards grant watchdogs a case")
    case = _lock_case(session, case)
    user = _user(session, username)
    if user.role != Role.WATCHDOG:
        raise LifecycleRefused("case grants are for watchdogs")
    if user.id in grantees_of(session, case.id):
        raise LifecycleConflict(f"{username} already has a grant on this case")
    assert principal.user_id is not None
    row = CaseGrant(case_id=case.id, user_id=user.id, granted_at=clock.now(),
                    granted_by=principal.user_id, reason=reason)
    session.add(row)
    session.flush()
    record(session, clock=clock, actor=actor, action="case.grant_placed", object_type="case",
           object_id=str(case.id), reason=reason,
           details={"reference": case.reference, "grant": row.id, "watchdog": username})
    return {"id": row.id, "case": case.id, "username": username,
            "granted_at": _iso(row.granted_at), "reason": reason}


def revoke_grant(session: Session, *, clock: Clock, principal: Principal, actor: Actor,
                 case: Case, grant_id: int, reason: str) -> dict[str, Any]:
    reason = _reason(reason)
    if not rules.may_manage_case_grants(principal):
        raise CaseForbidden("only professional standards revoke a watchdog's grant")
    case = _lock_case(session, case)
    row = session.get(CaseGrant, grant_id)
    if row is None or row.case_id != case.id:
        raise LookupError("no such grant on this case")
    if row.revoked_at is not None:
        raise LifecycleConflict("the grant is already revoked")
    row.revoked_at, row.revoked_by, row.revoke_reason = clock.now(), principal.user_id, reason
    session.flush()
    record(session, clock=clock, actor=actor, action="case.grant_revoked", object_type="case",
           object_id=str(case.id), reason=reason,
           details={"reference": case.reference, "grant": row.id,
                    "watchdog": _username(session, row.user_id)})
    return {"id": row.id, "case": case.id, "revoked_at": _iso(row.revoked_at),
            "revoke_reason": reason}


def visible_recording(session: Session, principal: Principal, recording_id: str) -> Recording:
    """A recording for a case change: one the caller can see (else LookupError: 404)."""
    rec = queries.get_visible(session, principal=principal, recording_id=recording_id)
    if rec is None or not may_view_recording(principal, queries.scope_of(session, rec)):
        raise LookupError("no such recording, or not yours to see")
    return rec
