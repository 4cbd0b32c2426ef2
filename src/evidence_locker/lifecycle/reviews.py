"""The review queue and its decisions, and whether the subject was told.

A review-kind flag keeps its recording until a *dispose* decision is recorded at review (MoPI:
review, then retain with a reason and a next review date, or dispose). Each decision locks the
recording row, recomputes `delete_after` (lifecycle/service.refresh) and writes its audit event
in the caller's transaction, so the sweep, which takes the same lock and re-checks the rule,
sees it or comes first (and the decision is then refused: 409).

Subject told: each recording records whether its subject was told they were being recorded
(yes / no / not practicable, with a reason unless yes); the compliance report counts them per
unit.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy.orm import Session

from evidence_locker.accounts.roles import Principal
from evidence_locker.audit.service import Actor, record
from evidence_locker.catalogue import queries
from evidence_locker.catalogue.models import Recording, RecordingRestriction
from evidence_locker.clock import Clock
from evidence_locker.config import Settings
from evidence_locker.fleet.models import Officer, Unit
from evidence_locker.lifecycle import rules
from evidence_locker.lifecycle.models import (
    CategoryVersion,
    EvidenceFlag,
    ReviewDecision,
    SubjectTold,
)
from evidence_locker.lifecycle.service import (
    REASON_MAX,
    LifecycleConflict,
    LifecycleRefused,
    _facts,
    _iso,
    _locked_live,
    _reason,
    decision_json,
    refresh,
)

#: How far ahead the queue may look (a year: planning, not a list of every flag).
QUEUE_DAYS_MAX = 366


# --- review decisions ------------------------------------------------------------------------


def decide_review(session: Session, *, clock: Clock, settings: Settings, principal: Principal,
                  actor: Actor, recording: Recording, flag_id: int, decision: str, reason: str,
                  next_review_days: int | None = None) -> dict[str, Any]:
    """Record a review decision on a review flag that is due: retain (the next review
    `next_review_days` from now) or dispose (the flag then keeps the recording no longer)."""
    problem = rules.review_refusal(decision, next_review_days)
    if problem is not None:
        raise LifecycleRefused(problem)
    reason = _reason(reason)
    if principal.user_id is None or principal.role is None:
        raise LifecycleRefused("only people record review decisions")
    rec = _locked_live(session, recording)
    found = [(row, cat, ff) for row, cat, ff in _facts(session, rec)[1]
             if row.id == flag_id]
    if not found:
        raise LookupError("no such flag on this recording")
    row, cat, ff = found[0]
    now = clock.now()
    conflict = rules.review_conflict(ff, recorded_at=rec.sort_at, now=now)
    if conflict is not None:
        raise LifecycleConflict(conflict)
    due = rules.review_due(ff, recorded_at=rec.sort_at)
    assert due is not None
    next_at = (now + dt.timedelta(days=next_review_days)
               if decision == rules.RETAIN and next_review_days is not None else None)
    d = ReviewDecision(flag_id=row.id, recording_id=rec.id, decision=decision, reason=reason,
                       review_was_due_at=due, next_review_at=next_at, decided_at=now,
                       decided_by=principal.user_id, decided_role=str(principal.role))
    session.add(d)
    refresh(session, settings=settings, rec=rec)
    record(session, clock=clock, actor=actor,
           action="evidence.retained" if decision == rules.RETAIN else "evidence.disposed",
           object_type="recording", object_id=str(rec.id), reason=reason,
           details={"flag": row.id, "category": cat.name, "reference": row.reference,
                    "decision": decision, "review_was_due_at": _iso(due),
                    "next_review_at": _iso(next_at), "delete_after": _iso(rec.delete_after)})
    return decision_json(d) | {"delete_after": _iso(rec.delete_after),
                               "review_due_at": _iso(row.review_due_at)}


# --- the queue -------------------------------------------------------------------------------


class QueueError(ValueError):
    """Bad paging input (400)."""


def _encode(at: dt.datetime, fid: int) -> str:
    raw = json.dumps([at.isoformat(), fid]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[dt.datetime, int]:
    try:
        at, fid = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        when = dt.datetime.fromisoformat(at)
        if when.tzinfo is None or not isinstance(fid, int) or isinstance(fid, bool):
            raise ValueError("bad cursor")
        return when, fid
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise QueueError("invalid cursor") from exc


@dataclass(frozen=True)
class QueuePage:
    items: list[dict[str, Any]]
    next_cursor: str | None
    until: dt.datetime


def _scope_condition(principal: Principal) -> Any:
    """The caller's units (and own recordings) as SQL, the same lines as seeing footage; the
    rows are checked again one by one (restrictions)."""
    conds: list[Any] = []
    if principal.unit_path:
        units = select(Unit.id).where(Unit.path.startswith(principal.unit_path))
        conds.append(Recording.unit_id.in_(units))
    if principal.officer_id is not None:
        conds.append(Recording.officer_id == principal.officer_id)
    return or_(*conds) if conds else Recording.id.is_(None)


def review_queue(session: Session, *, clock: Clock, principal: Principal | None, actor: Actor,
                 days: int = 0, limit: int = 50, cursor: str | None = None,
                 via: str = "api") -> QueuePage:
    """Active review flags whose review date is at most `days` days away, soonest first, on
    recordings the caller may review (`principal` None: the whole force, for the CLI). The read
    is audited (it lists recordings, like a search)."""
    if not 0 <= days <= QUEUE_DAYS_MAX:
        raise QueueError(f"days must be 0 to {QUEUE_DAYS_MAX}")
    until = clock.now() + dt.timedelta(days=days)
    base = (select(EvidenceFlag, CategoryVersion, Recording)
            .join(CategoryVersion, CategoryVersion.id == EvidenceFlag.category_id)
            .join(Recording, Recording.id == EvidenceFlag.recording_id)
            .where(EvidenceFlag.review_due_at <= until, EvidenceFlag.withdrawn_at.is_(None),
                   Recording.retention_state == "live"))
    if principal is not None:
        base = base.where(_scope_condition(principal))
    after = _decode(cursor) if cursor else None
    items: list[dict[str, Any]] = []
    last: tuple[dt.datetime, int] | None = None
    more = False
    while True:
        stmt = base
        if after is not None:
            stmt = stmt.where(tuple_(EvidenceFlag.review_due_at, EvidenceFlag.id)
                              > tuple_(after[0], after[1]))
        rows = session.execute(stmt.order_by(EvidenceFlag.review_due_at, EvidenceFlag.id)
                               .limit(limit + 1)).all()
        for flag, cat, rec in rows:
            assert flag.review_due_at is not None
            after = (flag.review_due_at, flag.id)
            if principal is not None and not rules.may_review(
                    principal, queries.scope_of(session, rec)):
                continue  # restricted footage the caller does not see
            if len(items) == limit:
                more = True
                break
            items.append(_queue_item(session, flag, cat, rec))
            last = after
        if more or len(rows) <= limit:
            break
    if principal is not None:
        record(session, clock=clock, actor=actor, action="evidence.review_queue_read",
               object_type="recording",
               details={"days": days, "returned": len(items), "via": via})
    return QueuePage(items, _encode(*last) if more and last is not None else None, until)


def _queue_item(session: Session, flag: EvidenceFlag, cat: CategoryVersion,
                rec: Recording) -> dict[str, Any]:
    officer = session.get(Officer, rec.officer_id) if rec.officer_id else None
    unit = session.get(Unit, rec.unit_id) if rec.unit_id else None
    last = session.scalars(select(ReviewDecision).where(ReviewDecision.flag_id == flag.id)
                           .order_by(ReviewDecision.id.desc()).limit(1)).first()
    return {"flag_id": flag.id, "recording_id": str(rec.id), "category": cat.name,
            "category_version": cat.version, "rule": {"kind": cat.kind, "days": cat.days},
            "reference": flag.reference, "review_due_at": _iso(flag.review_due_at),
            "recorded_at": _iso(rec.sort_at), "flagged_at": _iso(flag.flagged_at),
            "officer": officer.collar if officer else None,
            "unit": unit.code if unit else None,
            "last_decision": decision_json(last) if last is not None else None}


# --- subject told ----------------------------------------------------------------------------


def tell(session: Session, *, clock: Clock, principal: Principal, actor: Actor,
         recording: Recording, told: str, reason: str = "") -> dict[str, Any]:
    """Record whether the subject was told they were being recorded. A new statement replaces
    the current one (which stays as history); the same statement again changes nothing."""
    reason = " ".join((reason or "").split())
    problem = rules.subject_told_refusal(told, reason)
    if problem is not None:
        raise LifecycleRefused(problem)
    if told != "yes":
        reason = _reason(reason)
    elif len(reason) > REASON_MAX:
        raise LifecycleRefused(f"the reason is longer than {REASON_MAX} characters")
    if principal.user_id is None or principal.role is None:
        raise LifecycleRefused("only people say whether the subject was told")
    rec = _locked_live(session, recording)  # one current statement per recording
    current = session.scalars(select(SubjectTold).where(
        SubjectTold.recording_id == rec.id, SubjectTold.current.is_(True))).one_or_none()
    if current is not None and current.told == told and (current.reason or "") == reason:
        return _told_json(current) | {"changed": False}
    if current is not None:
        current.current = False
        session.flush()
    row = SubjectTold(recording_id=rec.id, told=told, reason=reason or None, current=True,
                      recorded_at=clock.now(), recorded_by=principal.user_id,
                      recorded_role=str(principal.role))
    session.add(row)
    session.flush()
    record(session, clock=clock, actor=actor, action="recording.subject_told",
           object_type="recording", object_id=str(rec.id), reason=reason or None,
           details={"told": told, "previous": current.told if current is not None else None})
    return _told_json(row) | {"changed": True}


def _told_json(row: SubjectTold) -> dict[str, Any]:
    return {"recording_id": str(row.recording_id), "told": row.told, "reason": row.reason,
            "recorded_at": _iso(row.recorded_at), "recorded_role": row.recorded_role}


REPORT_COLUMNS = ("yes", "no", "not-practicable", "not-recorded")


def subject_told_report(session: Session, *, clock: Clock, principal: Principal, actor: Actor,
                        since: dt.datetime, until: dt.datetime,
                        via: str = "api") -> dict[str, Any]:
    """Per unit, how many recordings made in [since, until) say the subject was told, was not,
    could not practicably be, or say nothing yet. Supervisors and evidence officers count their
    subtree without restricted recordings (a count would betray covert work to its unit);
    professional standards and auditors the whole force. Counts only: no footage."""
    if until <= since:
        raise LifecycleRefused("to must be after from")
    stmt = (select(Recording.unit_id, SubjectTold.told, func.count())
            .select_from(Recording)
            .outerjoin(SubjectTold, and_(SubjectTold.recording_id == Recording.id,
                                         SubjectTold.current.is_(True)))
            .where(Recording.sort_at >= since, Recording.sort_at < until,
                   Recording.retention_state == "live")
            .group_by(Recording.unit_id, SubjectTold.told))
    if not rules.report_covers_all(principal):
        if not principal.unit_path:
            stmt = stmt.where(Recording.id.is_(None))
        else:
            stmt = stmt.where(
                Recording.unit_id.in_(select(Unit.id).where(
                    Unit.path.startswith(principal.unit_path))),
                ~select(RecordingRestriction.recording_id).where(
                    RecordingRestriction.recording_id == Recording.id).exists())
    counts: dict[int | None, dict[str, int]] = {}
    for unit_id, told, n in session.execute(stmt):
        row = counts.setdefault(unit_id, dict.fromkeys(REPORT_COLUMNS, 0))
        row[told if told in rules.SUBJECT_TOLD else "not-recorded"] += int(n)
    units = {u.id: u for u in session.scalars(select(Unit).where(
        Unit.id.in_([u for u in counts if u is not None])))}
    rows: list[dict[str, Any]] = []
    for unit_id, c in counts.items():
        unit = units.get(unit_id) if unit_id is not None else None
        rows.append({"unit": unit.code if unit else None, "unit_name": unit.name if unit else None,
                     **c, "total": sum(c.values())})
    rows.sort(key=lambda r: (r["unit"] is None, r["unit"] or ""))
    totals = {k: sum(r[k] for r in rows) for k in (*REPORT_COLUMNS, "total")}
    record(session, clock=clock, actor=actor, action="report.subject_told_read",
           object_type="report", object_id="subject-told",
           details={"from": since.isoformat(), "until": until.isoformat(), "units": len(rows),
                    "via": via})
    return {"from": since.isoformat(), "to": until.isoformat(), "units": rows, "totals": totals}


def report_csv(report: dict[str, Any]) -> str:
    """The report as CSV, a row per unit and a total row."""
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["unit", "unit_name", *REPORT_COLUMNS, "total"])
    for r in report["units"]:
        w.writerow([_cell(r["unit"] or "(no unit)"), _cell(r["unit_name"] or ""),
                    *(r[k] for k in REPORT_COLUMNS), r["total"]])
    t = report["totals"]
    w.writerow(["(all)", "", *(t[k] for k in REPORT_COLUMNS), t["total"]])
    return out.getvalue()


def _cell(text: str) -> str:
    """Unit names are typed by people: never let a spreadsheet run one as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


