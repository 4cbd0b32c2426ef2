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


@dataclass(frozen=True)
class RecordingScope:
    """What the rules need to know about a recording."""

    officer_id: int | None
    unit_path: str | None


def may_view_footage_at_all(p: Principal) -> bool:
    return p.role is not None and p.role not in NO_FOOTAGE


def may_view_recording(p: Principal, r: RecordingScope) -> bool:
    """Officer: own; supervisor: own unit subtree; evidence officer: their command subtree;
    professional standards: all. Watchdog and prosecutor see only what is granted or shared
    (later issues), so nothing here."""
    if p.role is None or not may_view_footage_at_all(p):
        return False
    if p.role == Role.PROFESSIONAL_STANDARDS:
        return True
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
