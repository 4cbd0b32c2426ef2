"""Fleet rules as plain functions: assignment intervals, which instant attributes a recording,
who may read the fleet register."""

from __future__ import annotations

import datetime as dt

from evidence_locker.accounts.roles import Principal, Role

# The register's "since before records began": where an assignment whose start is unknown
# (issued before assignments were recorded, or registered with no date) begins.
ASSIGNMENT_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def overlaps(a_start: dt.datetime, a_end: dt.datetime | None,
             b_start: dt.datetime, b_end: dt.datetime | None) -> bool:
    """Half-open intervals [start, end); None is an end not yet known (still running)."""
    return (b_end is None or a_start < b_end) and (a_end is None or b_start < a_end)


def attribution_instant(*, started_at: dt.datetime | None, clock_suspect: bool,
                        received_at: dt.datetime) -> tuple[dt.datetime, str]:
    """The instant whose assignment a recording is attributed by, and why that one: the
    corrected camera start when it is known and plausible, else the time it reached us (the
    camera was certainly in someone's keeping then, and usually the same hands)."""
    if started_at is not None and not clock_suspect:
        return started_at, "recorded"
    return received_at, "clock-suspect" if started_at is not None else "received"


def fleet_scope(p: Principal) -> str | None:
    """The unit subtree (materialised path prefix) a caller may read the fleet register of:
    "/" for a fleet administrator, their unit's path for a supervisor; None: refused. Officers,
    prosecutors and everyone else have no business with the fleet."""
    if p.role == Role.FLEET_ADMINISTRATOR:
        return "/"
    if p.role == Role.SUPERVISOR and p.unit_path:
        return p.unit_path
    return None


def in_scope(scope: str, path: str | None) -> bool:
    """Whether a unit path lies within a scope. Things with no unit (an unassigned camera, a
    dock with no station unit) belong to the force: only the whole-force scope sees them."""
    if scope == "/":
        return True
    return path is not None and path.startswith(scope)


def may_manage_fleet(p: Principal) -> bool:
    """Changing the register (assignments, docks, imports) is the fleet administrator's."""
    return p.role == Role.FLEET_ADMINISTRATOR
