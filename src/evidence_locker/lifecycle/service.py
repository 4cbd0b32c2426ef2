"""Flags, holds and categories: each change locks the recording row, recomputes its
`delete_after` from lifecycle/rules.py and writes its audit event, all in the caller's
transaction. The sweep (lifecycle/sweep.py) takes the same row lock, so whichever of a flag, a
hold or a deletion comes second sees the first."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evidence_locker.accounts.roles import POST_INCIDENT, Principal
from evidence_locker.audit.service import Actor, record
from evidence_locker.catalogue import restrictions
from evidence_locker.catalogue.models import Recording
from evidence_locker.clock import Clock
from evidence_locker.config import Settings
from evidence_locker.lifecycle import rules
from evidence_locker.lifecycle.case_models import Case, CaseRecording
from evidence_locker.lifecycle.models import (
    CategoryVersion,
    EvidenceFlag,
    Hold,
    ReviewDecision,
    SubjectTold,
)

REASON_MIN, REASON_MAX = 10, 2000
NOTE_MAX = 4000


class LifecycleRefused(ValueError):
    """Bad input: the message is for the person asking (422)."""


class LifecycleConflict(ValueError):
    """The change contradicts the current state (409)."""


def policy_of(settings: Settings) -> rules.Policy:
    return rules.Policy(unflagged_days=settings.retention_unflagged_days,
                        review_window_days=settings.retention_review_window_days)


def _reason(reason: str | None) -> str:
    reason = " ".join((reason or "").split())
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        raise LifecycleRefused(f"give a reason of {REASON_MIN} to {REASON_MAX} characters")
    return reason


def lock_recording(session: Session, recording_id: uuid.UUID) -> Recording | None:
    """The recording row, locked until the transaction ends (PostgreSQL: FOR UPDATE; SQLite
    serialises writers on its own)."""
    return session.scalars(select(Recording).where(Recording.id == recording_id)
                           .with_for_update()).one_or_none()


# --- facts and deadlines -------------------------------------------------------------------


#: A flag, its category version, and its facts for the rule.
FlagRow = tuple[EvidenceFlag, CategoryVersion, rules.FlagFacts]


@dataclass(frozen=True)
class Facts:
    facts: rules.RecordingFacts
    categories: tuple[str, ...]
    flags: tuple[FlagRow, ...] = ()


def facts_of_many(session: Session, recs: list[Recording]) -> dict[uuid.UUID, Facts]:
    """What the rule of deletion needs about each recording, in four queries for any number
    of them (the sweep reads a batch under its row locks, so a flag, hold, case change or
    decision that committed first is seen). A review flag's facts carry the review date the
    latest retain set and when a dispose decision was recorded; a case-closed flag's, when the
    cases the recording is in (now) were all closed. Open cases hold the recording; the times it was
    removed from cases count as let-go times (`rules.let_go`)."""
    ids = [r.id for r in recs]
    flags: dict[uuid.UUID, list[tuple[EvidenceFlag, CategoryVersion]]] = {i: [] for i in ids}
    holds: dict[uuid.UUID, list[rules.HoldFacts]] = {i: [] for i in ids}
    cases: dict[uuid.UUID, list[rules.CaseFacts]] = {i: [] for i in ids}
    unlinked: dict[uuid.UUID, list[dt.datetime]] = {i: [] for i in ids}
    review_at: dict[int, dt.datetime] = {}
    disposed: dict[int, dt.datetime] = {}
    if ids:
        for fl, cat in session.execute(
                select(EvidenceFlag, CategoryVersion)
                .join(CategoryVersion, CategoryVersion.id == EvidenceFlag.category_id)
                .where(EvidenceFlag.recording_id.in_(ids)).order_by(EvidenceFlag.id)).all():
            flags[fl.recording_id].append((fl, cat))
        for fid, decision, next_at, at in session.execute(
                select(ReviewDecision.flag_id, ReviewDecision.decision,
                       ReviewDecision.next_review_at, ReviewDecision.decided_at)
                .where(ReviewDecision.recording_id.in_(ids))):
            if decision == rules.RETAIN and next_at is not None:
                review_at[fid] = max(review_at.get(fid, next_at), next_at)
            elif decision == rules.DISPOSE:
                disposed[fid] = min(disposed.get(fid, at), at)
        for rid, released in session.execute(select(Hold.recording_id, Hold.released_at)
                                              .where(Hold.recording_id.in_(ids))):
            holds[rid].append(rules.HoldFacts(released_at=released))
        for rid, status, closed_at, removed_at in session.execute(
                select(CaseRecording.recording_id, Case.status, Case.closed_at,
                       CaseRecording.removed_at)
                .join(Case, Case.id == CaseRecording.case_id)
                .where(CaseRecording.recording_id.in_(ids))):
            if removed_at is not None:
                unlinked[rid].append(removed_at)
            else:
                cases[rid].append(rules.CaseFacts(
                    closed_at=closed_at if status not in rules.OPEN_CASE_STATUSES else None))
    out = {}
    for rec in recs:
        in_cases = tuple(cases[rec.id])
        closed = rules.cases_closed_at(in_cases)
        rows = tuple((f, c, rules.FlagFacts(kind=c.kind, days=c.days,
                                            withdrawn_at=f.withdrawn_at,
                                            disposed_at=disposed.get(f.id),
                                            case_closed_at=closed,
                                            review_at=review_at.get(f.id)))
                     for f, c in flags[rec.id])
        facts = rules.RecordingFacts(recorded_at=rec.sort_at, received_at=rec.received_at,
                                     flags=tuple(ff for _, _, ff in rows),
                                     holds=tuple(holds[rec.id]), cases=in_cases,
                                     unlinked_at=tuple(sorted(unlinked[rec.id])))
        out[rec.id] = Facts(facts, tuple(sorted({c.name for _, c, _ in rows})), rows)
    return out


def facts_of(session: Session, rec: Recording) -> Facts:
    return facts_of_many(session, [rec])[rec.id]


def refresh(session: Session, *, settings: Settings, rec: Recording) -> dt.datetime | None:
    """Work out the recording's `delete_after` again (after any change to its flags, holds,
    review decisions or times), and each review flag's `review_due_at` (the queue's index)."""
    session.flush()
    f = facts_of(session, rec)
    for row, _, ff in f.flags:
        due = None if ff.disposed_at is not None else rules.review_due(
            ff, recorded_at=rec.sort_at)
        if row.review_due_at != due:
            row.review_due_at = due
    rec.delete_after = rules.delete_after(policy_of(settings), f.facts)
    return rec.delete_after


def describe_retention(session: Session, *, settings: Settings, rec: Recording) -> dict[str, Any]:
    f = facts_of(session, rec)
    decisions: dict[int, list[ReviewDecision]] = {}
    for d in session.scalars(select(ReviewDecision).where(
            ReviewDecision.recording_id == rec.id).order_by(ReviewDecision.id)):
        decisions.setdefault(d.flag_id, []).append(d)
    holds = session.scalars(select(Hold).where(Hold.recording_id == rec.id).order_by(Hold.id))
    deadline = rules.deadline(policy_of(settings), f.facts)
    return {
        "recording_id": str(rec.id),
        "delete_after": rec.delete_after.isoformat() if rec.delete_after else None,
        "deadline": deadline.isoformat() if deadline else None,
        "held": rules.held(f.facts),
        "open_cases": sum(c.open for c in f.facts.cases),
        "flags": [_flag_json(fl, c) | _review_json(ff, rec, decisions.get(fl.id, []))
                  for fl, c, ff in f.flags],
        "holds": [_hold_json(h) for h in holds],
        "subject_told": describe_subject_told(session, rec),
    }


def _review_json(ff: rules.FlagFacts, rec: Recording,
                 decisions: list[ReviewDecision]) -> dict[str, Any]:
    if ff.kind != rules.REVIEW:
        return {}
    due = None if ff.disposed_at is not None else rules.review_due(ff, recorded_at=rec.sort_at)
    return {"review_due_at": _iso(due), "disposed_at": _iso(ff.disposed_at),
            "reviews": [decision_json(d) for d in decisions]}


def decision_json(d: ReviewDecision) -> dict[str, Any]:
    return {"id": d.id, "flag_id": d.flag_id, "decision": d.decision, "reason": d.reason,
            "review_was_due_at": _iso(d.review_was_due_at),
            "next_review_at": _iso(d.next_review_at), "decided_at": _iso(d.decided_at),
            "decided_role": d.decided_role}


def describe_subject_told(session: Session, rec: Recording) -> dict[str, Any] | None:
    """The current statement of whether the subject was told, and how many came before it."""
    rows = list(session.scalars(select(SubjectTold).where(
        SubjectTold.recording_id == rec.id).order_by(SubjectTold.id)))
    current = next((r for r in rows if r.current), None)
    if current is None:
        return None
    return {"told": current.told, "reason": current.reason,
            "recorded_at": _iso(current.recorded_at), "recorded_role": current.recorded_role,
            "earlier": [{"told": r.told, "reason": r.reason, "recorded_at": _iso(r.recorded_at),
                         "recorded_role": r.recorded_role} for r in rows if not r.current]}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _flag_json(flag: EvidenceFlag, cat: CategoryVersion) -> dict[str, Any]:
    return {"id": flag.id, "category": cat.name, "category_version": cat.version,
            "rule": {"kind": cat.kind, "days": cat.days}, "reference": flag.reference,
            "note": flag.note, "flagged_at": _iso(flag.flagged_at),
            "withdrawn_at": _iso(flag.withdrawn_at), "withdrawn_reason": flag.withdrawn_reason,
            "review_due_at": _iso(flag.review_due_at)}


def _hold_json(hold: Hold) -> dict[str, Any]:
    return {"id": hold.id, "kind": hold.kind, "reason": hold.reason,
            "placed_at": _iso(hold.placed_at), "placed_role": hold.placed_role,
            "released_at": _iso(hold.released_at), "released_role": hold.released_role,
            "release_reason": hold.release_reason}


def _locked_live(session: Session, rec: Recording) -> Recording:
    locked = lock_recording(session, rec.id)
    if locked is None:
        raise LifecycleConflict("the recording has been deleted")
    session.refresh(locked)
    if locked.retention_state != "live":
        raise LifecycleConflict("the recording is being deleted")
    return locked


# --- categories ----------------------------------------------------------------------------


def current_category(session: Session, name: str) -> CategoryVersion | None:
    return session.scalars(select(CategoryVersion).where(
        CategoryVersion.name == name, CategoryVersion.current.is_(True))).one_or_none()


def current_categories(session: Session) -> list[CategoryVersion]:
    """The categories one may flag with now: the applied ones (not merely configured)."""
    return list(session.scalars(select(CategoryVersion).where(
        CategoryVersion.current.is_(True)).order_by(CategoryVersion.name)))


@dataclass(frozen=True)
class CategoryChange:
    name: str
    old: rules.Category | None
    new: rules.Category
    flagged: int  # active flags the change applies to
    shortens: bool


def plan_categories(session: Session, *, settings: Settings) -> list[CategoryChange]:
    """What applying the configured categories would change (nothing for unchanged ones)."""
    changes: list[CategoryChange] = []
    for conf in settings.retention_categories:
        new = rules.Category(conf.name, conf.kind, conf.days)
        row = current_category(session, conf.name)
        old = None if row is None else rules.Category(row.name, row.kind, row.days)
        if old == new:
            continue
        flagged = 0
        if row is not None:
            flagged = len(session.scalars(select(EvidenceFlag.id).where(
                EvidenceFlag.category_id == row.id,
                EvidenceFlag.withdrawn_at.is_(None))).all())
        changes.append(CategoryChange(conf.name, old, new, flagged,
                                      old is not None and flagged > 0
                                      and rules.shortens(old, new)))
    return changes


def apply_categories(session: Session, *, clock: Clock, actor: Actor, settings: Settings,
                     decision: str | None = None) -> list[CategoryChange]:
    """Record the configured categories as new versions and move active flags to them. A change
    that would shorten retention for evidence already flagged is refused unless a decision
    (why, by whom) is recorded with it. Categories no longer configured are left as they are:
    their flags keep the version that set them."""
    changes = plan_categories(session, settings=settings)
    shortening = [c for c in changes if c.shortens]
    if shortening and not decision:
        raise LifecycleRefused(
            "these changes shorten retention for evidence already flagged: "
            + ", ".join(f"{c.name} ({c.flagged} flagged)" for c in shortening)
            + "; record a decision (--decision) to apply them")
    if decision is not None:
        decision = _reason(decision)
    now = clock.now()
    for change in changes:
        row = current_category(session, change.name)
        version = 1
        if row is not None:
            row.current = False
            version = row.version + 1
        new = CategoryVersion(name=change.name, version=version, kind=change.new.kind,
                              days=change.new.days, current=True, applied_at=now,
                              decision=decision if change.shortens else None)
        session.add(new)
        session.flush()
        recording_ids: list[uuid.UUID] = []
        if row is not None:
            recording_ids = list(session.scalars(select(EvidenceFlag.recording_id).where(
                EvidenceFlag.category_id == row.id, EvidenceFlag.withdrawn_at.is_(None))))
            session.execute(update(EvidenceFlag).where(
                EvidenceFlag.category_id == row.id, EvidenceFlag.withdrawn_at.is_(None))
                .values(category_id=new.id))
        for rid in sorted(set(recording_ids)):
            rec = lock_recording(session, rid)
            if rec is not None:
                refresh(session, settings=settings, rec=rec)
        record(session, clock=clock, actor=actor, action="retention.category_applied",
               object_type="category", object_id=change.name,
               reason=decision if change.shortens else None,
               details={"version": version, "kind": change.new.kind, "days": change.new.days,
                        "previous": None if change.old is None else
                        {"kind": change.old.kind, "days": change.old.days},
                        "flagged": change.flagged, "shortens": change.shortens})
    return changes


# --- flags ---------------------------------------------------------------------------------


def flag(session: Session, *, clock: Clock, settings: Settings, principal: Principal,
         actor: Actor, recording: Recording, category: str, reference: str,
         note: str = "") -> dict[str, Any]:
    """Flag a recording as evidence: its deadline becomes at least the category's."""
    cat = current_category(session, category)
    if cat is None:
        known = sorted(c.name for c in settings.retention_categories)
        raise LifecycleRefused(f"unknown category {category!r}; known: {', '.join(known)}")
    reference = reference.strip()
    if not re.fullmatch(settings.retention_reference_pattern, reference):
        raise LifecycleRefused(
            f"reference {reference!r} does not match the force's pattern "
            f"{settings.retention_reference_pattern}")
    if len(note) > NOTE_MAX:
        raise LifecycleRefused(f"the note is longer than {NOTE_MAX} characters")
    rec = _locked_live(session, recording)
    row = EvidenceFlag(recording_id=rec.id, category_id=cat.id, reference=reference,
                       note=note.replace("\x00", "\ufffd"), flagged_at=clock.now(),
                       flagged_by=principal.user_id)
    session.add(row)
    refresh(session, settings=settings, rec=rec)
    record(session, clock=clock, actor=actor, action="evidence.flagged",
           object_type="recording", object_id=str(rec.id),
           details={"flag": row.id, "category": cat.name, "category_version": cat.version,
                    "reference": reference, "delete_after": _iso(rec.delete_after)})
    return _flag_json(row, cat) | {"delete_after": _iso(rec.delete_after)}


def withdraw(session: Session, *, clock: Clock, settings: Settings, principal: Principal,
             actor: Actor, recording: Recording, flag_id: int, reason: str) -> dict[str, Any]:
    """Withdraw a flag with a reason; the deadline is worked out again, never below the
    review window from now."""
    reason = _reason(reason)
    rec = _locked_live(session, recording)
    row = session.get(EvidenceFlag, flag_id)
    if row is None or row.recording_id != rec.id:
        raise LookupError("no such flag on this recording")
    if row.withdrawn_at is not None:
        raise LifecycleConflict("the flag is already withdrawn")
    row.withdrawn_at, row.withdrawn_by, row.withdrawn_reason = (
        clock.now(), principal.user_id, reason)
    refresh(session, settings=settings, rec=rec)
    cat = session.get(CategoryVersion, row.category_id)
    assert cat is not None
    record(session, clock=clock, actor=actor, action="evidence.flag_withdrawn",
           object_type="recording", object_id=str(rec.id), reason=reason,
           details={"flag": row.id, "category": cat.name, "reference": row.reference,
                    "delete_after": _iso(rec.delete_after)})
    return _flag_json(row, cat) | {"delete_after": _iso(rec.delete_after)}


# --- holds ---------------------------------------------------------------------------------


def place_hold(session: Session, *, clock: Clock, settings: Settings, principal: Principal,
               actor: Actor, recording: Recording, kind: str, reason: str) -> dict[str, Any]:
    """A hold blocks deletion whatever the deadline, until released with a reason."""
    if kind not in rules.HOLD_KINDS:
        raise LifecycleRefused(f"kind must be one of: {', '.join(rules.HOLD_KINDS)}")
    reason = _reason(reason)
    if principal.user_id is None or principal.role is None:
        raise LifecycleRefused("only people place holds")
    rec = _locked_live(session, recording)
    row = Hold(recording_id=rec.id, kind=kind, reason=reason, placed_at=clock.now(),
               placed_by=principal.user_id, placed_role=str(principal.role))
    session.add(row)
    refresh(session, settings=settings, rec=rec)
    record(session, clock=clock, actor=actor, action="hold.placed", object_type="recording",
           object_id=str(rec.id), reason=reason, details={"hold": row.id, "kind": kind})
    restricted = False
    if kind == POST_INCIDENT:
        # After a death or serious injury, viewing is controlled too: a post-incident
        # restriction (its access list only, starting with whoever placed the hold). Releasing
        # the hold leaves it: lifting a restriction is its own decision.
        current = restrictions.restriction_of(session, rec.id)
        if current is None or current.kind != POST_INCIDENT:
            restrictions.place(session, clock=clock, principal=principal, actor=actor,
                               recording=rec, kind=POST_INCIDENT, reason=reason)
        restricted = True
    return _hold_json(row) | {"restricted": restricted}


def release_hold(session: Session, *, clock: Clock, settings: Settings, principal: Principal,
                 actor: Actor, recording: Recording, hold_id: int,
                 reason: str) -> dict[str, Any]:
    reason = _reason(reason)
    if principal.user_id is None or principal.role is None:
        raise LifecycleRefused("only people release holds")
    rec = _locked_live(session, recording)
    row = session.get(Hold, hold_id)
    if row is None or row.recording_id != rec.id:
        raise LookupError("no such hold on this recording")
    if row.released_at is not None:
        raise LifecycleConflict("the hold is already released")
    row.released_at, row.released_by, row.released_role, row.release_reason = (
        clock.now(), principal.user_id, str(principal.role), reason)
    refresh(session, settings=settings, rec=rec)
    record(session, clock=clock, actor=actor, action="hold.released", object_type="recording",
           object_id=str(rec.id), reason=reason,
           details={"hold": row.id, "kind": row.kind, "delete_after": _iso(rec.delete_after)})
    return _hold_json(row) | {"delete_after": _iso(rec.delete_after)}


def apply_camera_bookmarks(session: Session, *, clock: Clock, actor: Actor, rec: Recording,
                           bookmarks: list[tuple[str, str, str]]) -> int:
    """Categories set on the camera (sidecar bookmarks: at, category, note) arrive already
    applied: one flag per configured category named exactly as the bookmark's, with no
    reference (a person adds one by flagging) and no person as its author. Bookmarks naming no
    configured category stay on the recording as the camera wrote them. Idempotent; the caller
    refreshes the deadline."""
    added = 0
    existing = set(session.scalars(
        select(CategoryVersion.name).join(EvidenceFlag, EvidenceFlag.category_id ==
                                          CategoryVersion.id)
        .where(EvidenceFlag.recording_id == rec.id, EvidenceFlag.flagged_by.is_(None))))
    for at, name, note in bookmarks:
        cat = current_category(session, name)
        if cat is None or name in existing:
            continue
        existing.add(name)
        row = EvidenceFlag(recording_id=rec.id, category_id=cat.id, reference="",
                           note=f"camera bookmark at {at}: {note}"[:NOTE_MAX],
                           flagged_at=clock.now(), flagged_by=None)
        session.add(row)
        session.flush()
        record(session, clock=clock, actor=actor, action="evidence.flagged",
               object_type="recording", object_id=str(rec.id),
               details={"flag": row.id, "category": cat.name, "category_version": cat.version,
                        "via": "camera bookmark", "bookmark_at": at})
        added += 1
    return added
