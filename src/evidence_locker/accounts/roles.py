"""Roles and what they may do: plain functions over plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    EVIDENCE_OFFICER = "evidence-officer"
    PROFESSIONAL_STANDARDS = "professional-standards"
    WATCHDOG = "watchdog"
    PROSECUTOR = "prosecutor"
    FLEET_ADMINISTRATOR = "fleet-administrator"
    AUDITOR = "auditor"
    SYSTEM_ADMINISTRATOR = "system-administrator"


# The people who run the system cannot watch the footage.
NO_FOOTAGE = frozenset({Role.FLEET_ADMINISTRATOR, Role.AUDITOR, Role.SYSTEM_ADMINISTRATOR})


@dataclass(frozen=True)
class Principal:
    """The authenticated caller as the rules see it."""

    user_id: int | None
    username: str
    role: Role | None  # None for a dock token
    unit_path: str | None = None
    officer_id: int | None = None
    dock_id: int | None = None
    token_id: int | None = None
    scopes: frozenset[str] = frozenset()


#: Kinds of restriction (catalogue/restrictions.py). `restricted`: covert or sensitive
#: operations, seen by its access list and professional standards. `post-incident` (after a
#: death or serious injury): its access list only, professional standards included only if listed.
RESTRICTED = "restricted"
POST_INCIDENT = "post-incident"
RESTRICTION_KINDS = (RESTRICTED, POST_INCIDENT)


@dataclass(frozen=True)
class RecordingScope:
    """What the rules need to know about a recording."""

    officer_id: int | None
    unit_path: str | None
    restriction: str | None = None  # None, RESTRICTED or POST_INCIDENT
    access_list: frozenset[int] = frozenset()  # user ids on the restriction's access list
    case_grants: frozenset[int] = frozenset()  # watchdogs granted a case the recording is in


def may_view_footage_at_all(p: Principal) -> bool:
    return p.role is not None and p.role not in NO_FOOTAGE


def may_be_listed(role: Role | None) -> bool:
    """Who may be put on a restriction's access list: people who see footage at all, except
    prosecutors, who see footage only through an expiring share (disclosure). A watchdog may:
    being listed on a (post-incident) restriction is its per-recording grant until cases and
    complaints exist."""
    return role is not None and role not in NO_FOOTAGE and role != Role.PROSECUTOR


def may_manage_restrictions(p: Principal) -> bool:
    """Placing, changing and releasing restrictions and their access lists: professional
    standards only (and only on recordings they can see, so a post-incident restriction is
    managed by the professional-standards people on its list). Not evidence officers: DESIGN.md
    gives them everything in their command, and a restriction exists to narrow exactly that
    (covert work, or an investigation of the command's own officers)."""
    return p.role == Role.PROFESSIONAL_STANDARDS and p.user_id is not None


def may_know_of_restricted(p: Principal, kind: str, access_list: frozenset[int]) -> bool:
    """Who may know a restricted recording exists (its footage, its tombstone): the people on
    its access list, and professional standards unless it is post-incident."""
    if p.user_id is not None and p.user_id in access_list:
        return True
    return kind == RESTRICTED and p.role == Role.PROFESSIONAL_STANDARDS


def may_view_recording(p: Principal, r: RecordingScope) -> bool:
    """Officer: own; supervisor: own unit subtree; evidence officer: their command subtree;
    professional standards: all. A restriction overrides all of that: only its access list,
    plus professional standards unless it is post-incident. Watchdogs see what they are listed
    on and the unrestricted recordings of cases granted to them; prosecutors only what is
    shared (later issue), so nothing here."""
    if p.role is None or not may_view_footage_at_all(p) or p.role == Role.PROSECUTOR:
        return False
    if r.restriction is not None:
        return may_know_of_restricted(p, r.restriction, r.access_list)
    if p.role == Role.PROFESSIONAL_STANDARDS:
        return True
    if p.role == Role.WATCHDOG:
        # A grant on a case: its current recordings, unless restricted (then only the list).
        return p.user_id is not None and p.user_id in r.case_grants
    if p.role == Role.OFFICER:
        return p.officer_id is not None and r.officer_id == p.officer_id
    if p.role in (Role.SUPERVISOR, Role.EVIDENCE_OFFICER):
        if p.officer_id is not None and r.officer_id == p.officer_id:
            return True
        return (
            p.unit_path is not None
            and r.unit_path is not None
            and r.unit_path.startswith(p.unit_path)
        )
    return False


def needs_justification(p: Principal, r: RecordingScope) -> bool:
    """Viewing someone else's footage asks for a purpose and a reason (the access issue
    enforces it)."""
    return not (p.officer_id is not None and r.officer_id == p.officer_id)
