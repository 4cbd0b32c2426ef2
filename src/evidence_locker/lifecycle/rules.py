"""The rule of deletion as plain functions over plain data (no I/O), so hypothesis can prove it.

A recording's deadline is the latest of: the unflagged default (the later of *recorded + N days*
and *received + review window*, so footage that arrives late is not gone before anyone could look
at it), each active flag's category deadline, and, for each withdrawn flag, *withdrawn + review
window* (a withdrawal never shortens below the review window), and likewise *let go + review
window* for each released hold, closed case and removal from a case (whatever stopped keeping the
recording, it then shows on the due list for a review window, so that those who relied on the
hold or the case can flag it in time). `None` means "no deadline": a
review category until a dispose decision is recorded, a case-closed category until the cases the
recording is in are all closed. A recording may be deleted only when no hold is active, it is in
no open case (an open case holds its recordings) and its deadline has passed. Adding a flag, a
hold or an open case can therefore only make the deadline later (or take it away).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from evidence_locker.accounts.roles import Principal, RecordingScope, Role, may_view_recording

FIXED = "fixed"
REVIEW = "review"
CASE_CLOSED = "case-closed"
RetentionKind = Literal["fixed", "review", "case-closed"]
RETENTION_KINDS: tuple[str, ...] = (FIXED, REVIEW, CASE_CLOSED)

HOLD_KINDS: tuple[str, ...] = ("legal", "complaint", "post-incident")

#: Case statuses. `open` and `charged` (the prosecution runs) keep the case open: its
#: recordings are held. `closed` lets them go, and starts the `case-closed` categories' days.
CASE_OPEN, CASE_CHARGED, CASE_CLOSED_STATUS = "open", "charged", "closed"
CASE_STATUSES: tuple[str, ...] = (CASE_OPEN, CASE_CHARGED, CASE_CLOSED_STATUS)
OPEN_CASE_STATUSES = frozenset({CASE_OPEN, CASE_CHARGED})


@dataclass(frozen=True)
class Category:
    """One category as configured: `fixed` keeps for `days` from the recording date; `review`
    keeps until reviewed `days` after the recording date and a *dispose* decision is recorded;
    `case-closed` keeps until the case closes plus `days`."""

    name: str
    kind: str
    days: int


@dataclass(frozen=True)
class Policy:
    unflagged_days: int = 31
    review_window_days: int = 7


@dataclass(frozen=True)
class FlagFacts:
    kind: str
    days: int
    withdrawn_at: dt.datetime | None = None
    disposed_at: dt.datetime | None = None  # review: the recorded dispose decision
    case_closed_at: dt.datetime | None = None  # case-closed: when its case closed
    review_at: dt.datetime | None = None  # review: the next review date the last retain set


@dataclass(frozen=True)
class HoldFacts:
    released_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.released_at is None


@dataclass(frozen=True)
class CaseFacts:
    """A case the recording is in now (links removed from a case do not count)."""

    closed_at: dt.datetime | None = None  # None: open (open or charged)

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True)
class RecordingFacts:
    recorded_at: dt.datetime  # the corrected start, or the receipt time if the clock is suspect
    received_at: dt.datetime
    flags: tuple[FlagFacts, ...] = ()
    holds: tuple[HoldFacts, ...] = ()
    cases: tuple[CaseFacts, ...] = ()
    unlinked_at: tuple[dt.datetime, ...] = ()  # when it was removed from a case, each time


def cases_closed_at(cases: tuple[CaseFacts, ...]) -> dt.datetime | None:
    """When a `case-closed` flag's clock starts: the latest closing of the cases the recording
    is in, once all of them are closed. None (kept indefinitely, as before cases existed) while
    any is open, and when the recording is in no case at all. A reopened case is open again, so
    its flags keep indefinitely again."""
    if not cases or any(c.open for c in cases):
        return None
    return max(c.closed_at for c in cases if c.closed_at is not None)


def unflagged_deadline(policy: Policy, *, recorded_at: dt.datetime,
                       received_at: dt.datetime) -> dt.datetime:
    return max(recorded_at + dt.timedelta(days=policy.unflagged_days),
               received_at + dt.timedelta(days=policy.review_window_days))


def flag_deadline(policy: Policy, flag: FlagFacts, *,
                  recorded_at: dt.datetime) -> dt.datetime | None:
    """What one flag keeps the recording until (None: indefinitely, for now)."""
    if flag.withdrawn_at is not None:
        return flag.withdrawn_at + dt.timedelta(days=policy.review_window_days)
    period = dt.timedelta(days=flag.days)
    if flag.kind == FIXED:
        return recorded_at + period
    if flag.kind == REVIEW:
        if flag.disposed_at is None:
            return None
        # Never before the review date, even if a dispose were recorded early: a retain moves
        # the review date and so can only keep the footage longer.
        due = review_due(flag, recorded_at=recorded_at)
        assert due is not None
        return max(due, flag.disposed_at)
    if flag.kind == CASE_CLOSED:
        return None if flag.case_closed_at is None else flag.case_closed_at + period
    return None  # an unknown kind keeps: never delete on a rule we do not understand


def review_due(flag: FlagFacts, *, recorded_at: dt.datetime) -> dt.datetime | None:
    """When a review flag is due for review: recorded + the category's days, moved by each
    retain decision to the next review date it set (never earlier). None for other kinds and
    for withdrawn flags."""
    if flag.kind != REVIEW or flag.withdrawn_at is not None:
        return None
    due = recorded_at + dt.timedelta(days=flag.days)
    return due if flag.review_at is None else max(due, flag.review_at)


RETAIN = "retain"
DISPOSE = "dispose"
REVIEW_DECISIONS: tuple[str, ...] = (RETAIN, DISPOSE)
#: A retain sets the next review this many days ahead: at least a month (a shorter wait is
#: a dispose deferred, not a review), at most ten years (MoPI reviews at most every ten).
NEXT_REVIEW_MIN_DAYS, NEXT_REVIEW_MAX_DAYS = 30, 3650


def review_refusal(decision: str, next_review_days: int | None) -> str | None:
    """What is wrong with a review decision's input (None: nothing)."""
    if decision not in REVIEW_DECISIONS:
        return f"decision must be one of: {', '.join(REVIEW_DECISIONS)}"
    if decision == RETAIN:
        if next_review_days is None:
            return "a retain decision needs the days until the next review"
        if not NEXT_REVIEW_MIN_DAYS <= next_review_days <= NEXT_REVIEW_MAX_DAYS:
            return (f"the next review must be {NEXT_REVIEW_MIN_DAYS} to "
                    f"{NEXT_REVIEW_MAX_DAYS} days ahead")
    elif next_review_days is not None:
        return "a dispose decision sets no next review"
    return None


def review_conflict(flag: FlagFacts, *, recorded_at: dt.datetime, now: dt.datetime) -> str | None:
    """Why the flag's state allows no review decision now (None: it does). Decisions are taken
    at review: neither retain nor dispose before the review date (a dispose recorded early would
    count the moment the date came, with nobody looking at the footage again then); a disposed
    flag is decided for good (flag again, or ask for a hold, to keep the footage)."""
    if flag.kind != REVIEW:
        return "this flag's category has no review date"
    if flag.withdrawn_at is not None:
        return "the flag is withdrawn"
    if flag.disposed_at is not None:
        return "a dispose decision is already recorded on this flag"
    due = review_due(flag, recorded_at=recorded_at)
    assert due is not None
    if now < due:
        return f"the flag is not due for review until {due.isoformat()}"
    return None


def let_go(facts: RecordingFacts) -> list[dt.datetime]:
    """When something that kept the recording stopped: holds released, cases closed, removals
    from cases. Each keeps it for a review window more, as a withdrawn flag does."""
    return ([h.released_at for h in facts.holds if h.released_at is not None]
            + [c.closed_at for c in facts.cases if c.closed_at is not None]
            + list(facts.unlinked_at))


def deadline(policy: Policy, facts: RecordingFacts) -> dt.datetime | None:
    """The latest of the default, every flag's deadline and each let-go + review window; None if
    any flag keeps indefinitely. Active holds are not deadlines: see `may_delete`."""
    latest = unflagged_deadline(policy, recorded_at=facts.recorded_at,
                                received_at=facts.received_at)
    window = dt.timedelta(days=policy.review_window_days)
    for when in let_go(facts):
        latest = max(latest, when + window)
    for flag in facts.flags:
        d = flag_deadline(policy, flag, recorded_at=facts.recorded_at)
        if d is None:
            return None
        latest = max(latest, d)
    return latest


def held(facts: RecordingFacts) -> bool:
    """An active hold, or an open case the recording is in: an open case holds its
    recordings."""
    return any(h.active for h in facts.holds) or any(c.open for c in facts.cases)


def delete_after(policy: Policy, facts: RecordingFacts) -> dt.datetime | None:
    """What the catalogue stores for the sweep to find: the deadline, or None while held or
    kept indefinitely."""
    return None if held(facts) else deadline(policy, facts)


def may_delete(policy: Policy, facts: RecordingFacts, now: dt.datetime) -> bool:
    """The rule of deletion: nothing held, and nothing before its deadline."""
    if held(facts):
        return False
    d = deadline(policy, facts)
    return d is not None and d <= now


def rule_name(policy: Policy, facts: RecordingFacts, categories: tuple[str, ...] = ()) -> str:
    """The rule that let the recording go, for its tombstone."""
    if not facts.flags:
        return (f"unflagged: later of recorded + {policy.unflagged_days} days and received + "
                f"{policy.review_window_days} days")
    names = ", ".join(categories) if categories else f"{len(facts.flags)} flag(s)"
    return f"flags expired or withdrawn ({names}); default {policy.unflagged_days} days"


def shortens(old: Category, new: Category) -> bool:
    """Whether replacing a category's rule could delete flagged footage sooner."""
    if old.kind == new.kind:
        return new.days < old.days
    # From a fixed date to an event (a decision, a case closing) only lengthens; any other change
    # of kind may bring deletion forward, so it counts as shortening.
    return old.kind != FIXED


# --- who may (plain functions over the roles' data) ------------------------------------------

#: Roles that flag evidence: DESIGN.md gives officers their own footage, supervisors their unit
#: and evidence officers their command; `may_view_recording` draws exactly those lines.
FLAGGING_ROLES = frozenset({Role.OFFICER, Role.SUPERVISOR, Role.EVIDENCE_OFFICER})


def may_flag(p: Principal, r: RecordingScope) -> bool:
    """Flag, or withdraw a flag on, a recording: the flagging roles, on recordings they see."""
    return p.role in FLAGGING_ROLES and p.user_id is not None and may_view_recording(p, r)


#: Review decisions (retain with a reason, or dispose) and the review queue: evidence
#: (disclosure) officers, for their command. Not supervisors: disposing of evidence is a
#: disclosure decision (CPIA, MoPI), kept with the role accountable for it and apart from the
#: line managers of the officers the footage records.
REVIEWING_ROLES = frozenset({Role.EVIDENCE_OFFICER})


def may_review(p: Principal, r: RecordingScope) -> bool:
    return p.role in REVIEWING_ROLES and p.user_id is not None and may_view_recording(p, r)


SUBJECT_TOLD = ("yes", "no", "not-practicable")


def subject_told_refusal(told: str, reason: str) -> str | None:
    """Whether the subject was told they were being recorded: yes, or no / not practicable
    with a reason (DESIGN.md: "and if not, why")."""
    if told not in SUBJECT_TOLD:
        return f"told must be one of: {', '.join(SUBJECT_TOLD)}"
    if told != "yes" and not reason:
        return "say why the subject was not told"
    return None


#: The subject-told compliance report: supervisors (their unit), evidence officers (their
#: command), professional standards and auditors (the force). Counts only, no footage.
REPORT_ROLES = frozenset({Role.SUPERVISOR, Role.EVIDENCE_OFFICER, Role.PROFESSIONAL_STANDARDS,
                          Role.AUDITOR})


def may_read_reports(p: Principal) -> bool:
    return p.role in REPORT_ROLES and p.user_id is not None


def report_covers_all(p: Principal) -> bool:
    """Professional standards and auditors see the whole force; the others their subtree."""
    return p.role in (Role.PROFESSIONAL_STANDARDS, Role.AUDITOR)


def may_manage_holds(p: Principal) -> bool:
    """Place and release holds (legal, complaint, post-incident): professional standards only,
    as DESIGN.md's roles table says; an evidence officer asks them (a hold exists to stop the
    command's own decisions)."""
    return p.role == Role.PROFESSIONAL_STANDARDS and p.user_id is not None


# --- cases ---------------------------------------------------------------------------------

#: Who may own a case: the people who work cases (not watchdogs, prosecutors or the no-footage
#: roles; a watchdog is given a grant instead).
CASE_OWNER_ROLES = frozenset({Role.OFFICER, Role.SUPERVISOR, Role.EVIDENCE_OFFICER,
                              Role.PROFESSIONAL_STANDARDS})
#: Who opens cases: evidence officers (their command) and professional standards.
CASE_CREATOR_ROLES = frozenset({Role.EVIDENCE_OFFICER, Role.PROFESSIONAL_STANDARDS})


def may_work_cases(p: Principal) -> bool:
    """The role gate of every change to a case (the case then decides: `may_manage_case`)."""
    return p.role in CASE_OWNER_ROLES and p.user_id is not None


def may_open_cases(p: Principal) -> bool:
    """The role gate of opening a case (the command then decides: `may_create_case`)."""
    return p.role in CASE_CREATOR_ROLES and p.user_id is not None


def _in_command(p: Principal, case_unit_path: str) -> bool:
    return (p.role == Role.EVIDENCE_OFFICER and p.unit_path is not None
            and case_unit_path.startswith(p.unit_path))


def may_create_case(p: Principal, case_unit_path: str) -> bool:
    """Evidence officers for their command; professional standards anywhere."""
    if p.user_id is None:
        return False
    return p.role == Role.PROFESSIONAL_STANDARDS or _in_command(p, case_unit_path)


def may_manage_case(p: Principal, case_unit_path: str, owners: frozenset[int]) -> bool:
    """Link and unlink recordings, change the status, add and remove owners: the command's
    evidence officers, the case's owners and professional standards."""
    if p.user_id is None or p.role not in CASE_OWNER_ROLES:
        return False
    return may_create_case(p, case_unit_path) or p.user_id in owners


def may_read_case(p: Principal, case_unit_path: str, owners: frozenset[int],
                  granted: frozenset[int]) -> bool:
    """Those who manage it, and a watchdog the case is granted to."""
    if p.user_id is None:
        return False
    if p.role == Role.WATCHDOG:
        return p.user_id in granted
    return may_manage_case(p, case_unit_path, owners)


def may_manage_case_grants(p: Principal) -> bool:
    """Watchdog grants are placed and revoked by professional standards (like holds and
    restrictions: the decision about who outside the force sees what)."""
    return p.role == Role.PROFESSIONAL_STANDARDS and p.user_id is not None
