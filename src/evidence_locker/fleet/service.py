"""Fleet register use cases: units, officers, devices, docks and assignments.

Like every service, these only flush: the caller owns the transaction, and each change carries its
audit event into it. The register functions take an optional clock and actor so that seeding
scripts and tests stay short; they then record the change as done by the system.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evidence_locker.accounts import service as accounts
from evidence_locker.accounts.models import ApiToken
from evidence_locker.audit import service as audit
from evidence_locker.clock import Clock, SystemClock
from evidence_locker.fleet.models import Device, DeviceAssignment, Dock, Officer, Unit
from evidence_locker.fleet.rules import ASSIGNMENT_EPOCH, overlaps

DOCK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Unit codes become segments of the materialised path, so no '/' and nothing odd.
UNIT_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
COLLAR_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
SERIAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
UNIT_KINDS = frozenset({"force", "command", "unit"})
MOUNTS = frozenset({"body", "cap", "helmet"})
DEVICE_STATUSES = frozenset({"active", "spare", "repair", "lost", "retired"})
MAX_BAYS = 1000
MAX_NOTE = 500


class FleetError(ValueError):
    """A request the fleet service refuses; the message is fit to show to the operator."""


def unit_by_code(session: Session, code: str) -> Unit | None:
    return session.scalars(select(Unit).where(Unit.code == code)).one_or_none()


def officer_by_collar(session: Session, collar: str) -> Officer | None:
    return session.scalars(select(Officer).where(Officer.collar == collar)).one_or_none()


def device_by_serial(session: Session, serial: str) -> Device | None:
    return session.scalars(select(Device).where(Device.serial == serial)).one_or_none()


def dock_by_name(session: Session, name: str) -> Dock | None:
    return session.scalars(select(Dock).where(Dock.name == name)).one_or_none()


def _flush_unique(session: Session, what: str) -> None:
    """Flush, turning a unique-constraint race into the same error as the pre-check."""
    try:
        session.flush()
    except IntegrityError as exc:
        raise FleetError(f"{what} already exists") from exc


def register_dock(
    session: Session,
    *,
    clock: Clock,
    actor: audit.Actor,
    name: str,
    station: str | None = None,
    bays: int = 8,
    unit_code: str | None = None,
) -> tuple[Dock, str]:
    """Register a dock and issue its upload token; returns the dock and the token secret, which
    is shown only once and goes into the dock agent's configuration."""
    if not DOCK_NAME_RE.fullmatch(name):
        raise FleetError(
            f"invalid dock name {name!r}: 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if not 1 <= bays <= MAX_BAYS:
        raise FleetError(f"bays must be between 1 and {MAX_BAYS}")
    if station is not None and len(station) > 200:
        raise FleetError("station must be at most 200 characters")
    if dock_by_name(session, name) is not None:
        raise FleetError(f"dock {name!r} already exists")
    unit: Unit | None = None
    if unit_code is not None:
        unit = unit_by_code(session, unit_code)
        if unit is None:
            raise FleetError(f"unknown unit code {unit_code!r}")
    dock = Dock(name=name, station=station, bays=bays, active=True, created_at=clock.now(),
                unit_id=None if unit is None else unit.id)
    session.add(dock)
    _flush_unique(session, f"dock {name!r}")
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="dock.registered",
        object_type="dock",
        object_id=str(dock.id),
        details={"name": name, "station": station, "bays": bays,
                 **({"unit": unit_code} if unit_code is not None else {})},
    )
    secret = accounts.create_api_token(
        session, clock=clock, actor=actor, dock=dock, scopes={"upload"}, name=f"dock {name}"
    )
    return dock, secret


def create_unit(
    session: Session,
    *,
    code: str,
    name: str,
    kind: str,
    parent_code: str | None = None,
    clock: Clock | None = None,
    actor: audit.Actor | None = None,
) -> Unit:
    """Add a unit under its parent; its path is the parent's path plus its own code
    (`/MPS/`, `/MPS/BX/`, `/MPS/BX/BX-RT/`), so a subtree is one prefix match."""
    if not UNIT_CODE_RE.fullmatch(code):
        raise FleetError(f"invalid unit code {code!r}")
    if kind not in UNIT_KINDS:
        raise FleetError(f"unknown unit kind {kind!r}; known: {', '.join(sorted(UNIT_KINDS))}")
    if not name or len(name) > 200:
        raise FleetError("unit name must be 1-200 characters")
    if unit_by_code(session, code) is not None:
        raise FleetError(f"unit {code!r} already exists")
    parent: Unit | None = None
    if parent_code is not None:
        parent = unit_by_code(session, parent_code)
        if parent is None:
            raise FleetError(f"unknown parent unit code {parent_code!r}")
    path = f"{parent.path if parent is not None else '/'}{code}/"
    if len(path) > 400:
        raise FleetError("unit hierarchy too deep")
    unit = Unit(
        code=code,
        name=name,
        kind=kind,
        parent_id=None if parent is None else parent.id,
        path=path,
    )
    session.add(unit)
    _flush_unique(session, f"unit {code!r}")
    audit.record(
        session,
        clock=clock or SystemClock(),
        actor=actor or audit.SYSTEM,
        action="unit.created",
        object_type="unit",
        object_id=str(unit.id),
        details={"code": code, "name": name, "kind": kind, "path": path},
    )
    session.flush()
    return unit


def create_officer(
    session: Session,
    *,
    collar: str,
    name: str,
    unit_code: str | None = None,
    clock: Clock | None = None,
    actor: audit.Actor | None = None,
) -> Officer:
    """Add an officer (by collar number) to a unit."""
    if not COLLAR_RE.fullmatch(collar):
        raise FleetError(f"invalid collar number {collar!r}")
    if not name or len(name) > 200:
        raise FleetError("officer name must be 1-200 characters")
    if officer_by_collar(session, collar) is not None:
        raise FleetError(f"officer {collar!r} already exists")
    unit: Unit | None = None
    if unit_code is not None:
        unit = unit_by_code(session, unit_code)
        if unit is None:
            raise FleetError(f"unknown unit code {unit_code!r}")
    officer = Officer(
        collar=collar, name=name, unit_id=None if unit is None else unit.id, active=True
    )
    session.add(officer)
    _flush_unique(session, f"officer {collar!r}")
    audit.record(
        session,
        clock=clock or SystemClock(),
        actor=actor or audit.SYSTEM,
        action="officer.created",
        object_type="officer",
        object_id=str(officer.id),
        details={"collar": collar, "name": name, "unit": unit_code},
    )
    session.flush()
    return officer


def create_device(
    session: Session,
    *,
    serial: str,
    model: str | None,
    mount: str = "body",
    firmware: str | None = None,
    issued_to_collar: str | None = None,
    issued_since: dt.datetime | None = None,
    clock: Clock | None = None,
    actor: audit.Actor | None = None,
) -> Device:
    """Register a camera by serial number, optionally issued to an officer: an open assignment
    from `issued_since`, or from ASSIGNMENT_EPOCH when the start is not known."""
    if not SERIAL_RE.fullmatch(serial):
        raise FleetError(f"invalid device serial {serial!r}")
    if mount not in MOUNTS:
        raise FleetError(f"unknown mount {mount!r}; known: {', '.join(sorted(MOUNTS))}")
    if model is not None and len(model) > 100:
        raise FleetError("device model must be at most 100 characters")
    if firmware is not None and len(firmware) > 64:
        raise FleetError("firmware must be at most 64 characters")
    if device_by_serial(session, serial) is not None:
        raise FleetError(f"device {serial!r} already exists")
    officer: Officer | None = None
    if issued_to_collar is not None:
        officer = officer_by_collar(session, issued_to_collar)
        if officer is None:
            raise FleetError(f"unknown officer collar number {issued_to_collar!r}")
    device = Device(
        serial=serial,
        model=model,
        mount=mount,
        firmware=firmware,
        status="active",
        needs_review=False,
        issued_to_officer_id=None if officer is None else officer.id,
    )
    session.add(device)
    _flush_unique(session, f"device {serial!r}")
    clock = clock or SystemClock()
    actor = actor or audit.SYSTEM
    if officer is not None:
        # Part of this creation, so its audit event is device.created (details say to whom).
        session.add(DeviceAssignment(
            device_id=device.id, officer_id=officer.id,
            starts_at=_aware(issued_since, "issued_since") or ASSIGNMENT_EPOCH, ends_at=None,
            created_at=clock.now(), created_by=_actor_name(actor), note="issued at registration"))
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="device.created",
        object_type="device",
        object_id=str(device.id),
        details={
            "serial": serial,
            "model": model,
            "mount": mount,
            "firmware": firmware,
            "issued_to": issued_to_collar,
        },
    )
    session.flush()
    return device


# --- helpers -----------------------------------------------------------------------------------


def _aware(value: dt.datetime | None, what: str) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise FleetError(f"{what} needs a UTC offset")
    return None if value is None else value.astimezone(dt.UTC)


def _actor_name(actor: audit.Actor) -> str:
    return (actor.name or actor.id or actor.type)[:200]


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _require_device(session: Session, serial: str, *, lock: bool = False) -> Device:
    query = select(Device).where(Device.serial == serial)
    if lock:
        # Serialises register changes to one camera (PostgreSQL; SQLite's writer lock already).
        query = query.with_for_update()
    device = session.scalars(query).one_or_none()
    if device is None:
        raise FleetError(f"unknown device {serial!r}")
    return device


def _require_officer(session: Session, collar: str) -> Officer:
    officer = officer_by_collar(session, collar)
    if officer is None:
        raise FleetError(f"unknown officer collar number {collar!r}")
    return officer


def _changed(obj: object, values: dict[str, object]) -> dict[str, list[object]]:
    """Apply values to obj; returns {field: [old, new]} for those that changed."""
    changes: dict[str, list[object]] = {}
    for key, new in values.items():
        old = getattr(obj, key)
        if old != new:
            changes[key] = [old, new]
            setattr(obj, key, new)
    return changes


# --- updates (the import uses these; each change is audited with what changed) ----------------


def update_unit(session: Session, *, clock: Clock, actor: audit.Actor, code: str, name: str,
                kind: str, parent_code: str | None) -> dict[str, list[object]]:
    """Rename, re-kind or move a unit. A move rewrites the materialised path of the whole
    subtree, so "everything in my command" stays one prefix match."""
    unit = unit_by_code(session, code)
    if unit is None:
        raise FleetError(f"unknown unit code {code!r}")
    if kind not in UNIT_KINDS:
        raise FleetError(f"unknown unit kind {kind!r}; known: {', '.join(sorted(UNIT_KINDS))}")
    if not name or len(name) > 200:
        raise FleetError("unit name must be 1-200 characters")
    parent: Unit | None = None
    if parent_code is not None:
        parent = unit_by_code(session, parent_code)
        if parent is None:
            raise FleetError(f"unknown parent unit code {parent_code!r}")
        if parent.path.startswith(unit.path):
            raise FleetError(f"unit {code!r} cannot move under its own subtree")
    new_path = f"{parent.path if parent is not None else '/'}{code}/"
    changes = _changed(unit, {"name": name, "kind": kind,
                              "parent_id": None if parent is None else parent.id})
    if new_path != unit.path:
        old_path = unit.path
        deepest = session.scalar(
            select(func.max(func.length(Unit.path))).where(Unit.path.startswith(old_path,
                                                                                autoescape=True)))
        if (deepest or 0) - len(old_path) + len(new_path) > 400:
            raise FleetError("unit hierarchy too deep")
        session.execute(
            update(Unit)
            .where(Unit.path.startswith(old_path, autoescape=True))
            .values(path=new_path + func.substr(Unit.path, len(old_path) + 1))
            .execution_options(synchronize_session="fetch"))
        changes["path"] = [old_path, new_path]
    if changes:
        audit.record(session, clock=clock, actor=actor, action="unit.updated",
                     object_type="unit", object_id=str(unit.id),
                     details={"code": code, "changes": changes})
        session.flush()
    return changes


def update_officer(session: Session, *, clock: Clock, actor: audit.Actor, collar: str,
                   name: str, unit_code: str | None, active: bool) -> dict[str, list[object]]:
    """Change an officer's name, unit or active flag (officers are never deleted)."""
    officer = _require_officer(session, collar)
    if not name or len(name) > 200:
        raise FleetError("officer name must be 1-200 characters")
    unit_id: int | None = None
    if unit_code is not None:
        unit = unit_by_code(session, unit_code)
        if unit is None:
            raise FleetError(f"unknown unit code {unit_code!r}")
        unit_id = unit.id
    changes = _changed(officer, {"name": name, "unit_id": unit_id, "active": active})
    if changes:
        audit.record(session, clock=clock, actor=actor, action="officer.updated",
                     object_type="officer", object_id=str(officer.id),
                     details={"collar": collar, "changes": changes})
        session.flush()
    return changes


def update_device(session: Session, *, clock: Clock, actor: audit.Actor, serial: str,
                  model: str | None, mount: str, firmware: str | None,
                  status: str) -> dict[str, list[object]]:
    """Change what the asset register says about a camera; a camera that was discovered through
    ingest is reviewed by being described here."""
    device = _require_device(session, serial)
    if mount not in MOUNTS:
        raise FleetError(f"unknown mount {mount!r}; known: {', '.join(sorted(MOUNTS))}")
    if status not in DEVICE_STATUSES:
        raise FleetError(
            f"unknown status {status!r}; known: {', '.join(sorted(DEVICE_STATUSES))}")
    if model is not None and len(model) > 100:
        raise FleetError("device model must be at most 100 characters")
    if firmware is not None and len(firmware) > 64:
        raise FleetError("firmware must be at most 64 characters")
    changes = _changed(device, {"model": model, "mount": mount, "firmware": firmware,
                                "status": status, "needs_review": False})
    if changes:
        audit.record(session, clock=clock, actor=actor, action="device.updated",
                     object_type="device", object_id=str(device.id),
                     details={"serial": serial, "changes": changes})
        session.flush()
    return changes


# --- assignments -------------------------------------------------------------------------------


def assignment_at(session: Session, *, device_id: int, at: dt.datetime) -> DeviceAssignment | None:
    """The assignment that covered a device at an instant (at most one: they never overlap)."""
    return session.scalars(
        select(DeviceAssignment)
        .where(DeviceAssignment.device_id == device_id, DeviceAssignment.starts_at <= at)
        .where((DeviceAssignment.ends_at.is_(None)) | (DeviceAssignment.ends_at > at))
        .order_by(DeviceAssignment.starts_at.desc()).limit(1)
    ).one_or_none()


def assignments_of(session: Session, device_id: int) -> list[DeviceAssignment]:
    return list(session.scalars(
        select(DeviceAssignment).where(DeviceAssignment.device_id == device_id)
        .order_by(DeviceAssignment.starts_at.desc(), DeviceAssignment.id.desc())))


def _open_assignment(session: Session, device_id: int) -> DeviceAssignment | None:
    return session.scalars(select(DeviceAssignment).where(
        DeviceAssignment.device_id == device_id, DeviceAssignment.ends_at.is_(None))).one_or_none()


def _reattribute(session: Session, *, clock: Clock, actor: audit.Actor, device: Device,
                 since: dt.datetime, until: dt.datetime | None) -> int:
    from evidence_locker.catalogue.service import reattribute_device

    return reattribute_device(session, clock=clock, actor=actor, device=device, since=since,
                              until=until)


@dataclass(frozen=True)
class Assigned:
    assignment: DeviceAssignment
    closed: DeviceAssignment | None  # the open assignment this one ended
    reattributed: int  # recordings whose officer changed


def assign_device(
    session: Session,
    *,
    clock: Clock,
    actor: audit.Actor,
    serial: str,
    collar: str,
    starts_at: dt.datetime | None = None,
    ends_at: dt.datetime | None = None,
    note: str = "",
) -> Assigned:
    """Put a camera in an officer's hands from `starts_at` (default now). An open assignment
    (no `ends_at`) ends the device's current open assignment at that instant; any other overlap
    is refused, so every instant names at most one officer. Recordings made in the interval are
    attributed again (a backdated correction reaches footage already catalogued)."""
    starts = _aware(starts_at, "starts_at") or clock.now()
    ends = _aware(ends_at, "ends_at")
    if ends is not None and ends <= starts:
        raise FleetError("an assignment must end after it starts")
    if len(note) > MAX_NOTE:
        raise FleetError(f"note must be at most {MAX_NOTE} characters")
    device = _require_device(session, serial, lock=True)
    officer = _require_officer(session, collar)
    current = _open_assignment(session, device.id)
    closed: DeviceAssignment | None = None
    if ends is None and current is not None and current.starts_at < starts:
        if current.officer_id == officer.id:
            raise FleetError(f"device {serial!r} is already assigned to {collar!r}")
        closed = current
    for other in assignments_of(session, device.id):
        other_end = starts if other is closed else other.ends_at
        if overlaps(starts, ends, other.starts_at, other_end):
            held_by = session.get(Officer, other.officer_id)
            raise FleetError(
                f"device {serial!r} was assigned to "
                f"{held_by.collar if held_by else other.officer_id!r} from "
                f"{other.starts_at.isoformat()}"
                f"{' until ' + other_end.isoformat() if other_end else ' (still open)'}: "
                "assignments must not overlap")
    if closed is not None:
        closed.ends_at = starts
        session.flush()  # the open slot is free before the new open assignment takes it
        audit.record(session, clock=clock, actor=actor, action="device.unassigned",
                     object_type="device", object_id=str(device.id),
                     details={"serial": serial, "assignment_id": closed.id,
                              "ends_at": _iso(starts), "reason": "reassigned"})
    assignment = DeviceAssignment(device_id=device.id, officer_id=officer.id, starts_at=starts,
                                  ends_at=ends, created_at=clock.now(),
                                  created_by=_actor_name(actor), note=note)
    session.add(assignment)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent open assignment took the slot
        raise FleetError(f"device {serial!r} changed meanwhile; try again") from exc
    if ends is None:
        device.issued_to_officer_id = officer.id
    audit.record(session, clock=clock, actor=actor, action="device.assigned",
                 object_type="device", object_id=str(device.id),
                 details={"serial": serial, "officer": collar, "assignment_id": assignment.id,
                          "starts_at": _iso(starts), "ends_at": _iso(ends), "note": note,
                          "closed_assignment_id": None if closed is None else closed.id})
    session.flush()
    moved = _reattribute(session, clock=clock, actor=actor, device=device, since=starts,
                         until=ends)
    return Assigned(assignment, closed, moved)


def end_assignment(
    session: Session,
    *,
    clock: Clock,
    actor: audit.Actor,
    serial: str,
    at: dt.datetime | None = None,
    note: str = "",
) -> DeviceAssignment:
    """The camera went back to stores (or was lost): its open assignment ends at `at`."""
    end = _aware(at, "at") or clock.now()
    device = _require_device(session, serial, lock=True)
    current = _open_assignment(session, device.id)
    if current is None:
        raise FleetError(f"device {serial!r} has no open assignment")
    if end <= current.starts_at:
        raise FleetError("an assignment must end after it starts")
    current.ends_at = end
    device.issued_to_officer_id = None
    audit.record(session, clock=clock, actor=actor, action="device.unassigned",
                 object_type="device", object_id=str(device.id),
                 details={"serial": serial, "assignment_id": current.id, "ends_at": _iso(end),
                          "reason": note or "returned"})
    session.flush()
    _reattribute(session, clock=clock, actor=actor, device=device, since=end, until=None)
    return current


def correct_assignment(
    session: Session,
    *,
    clock: Clock,
    actor: audit.Actor,
    assignment: DeviceAssignment,
    starts_at: dt.datetime,
    ends_at: dt.datetime | None,
) -> bool:
    """Correct when an assignment began or ended (a register entered late or wrongly, or the
    import closing history it opened). Refused if it would overlap another assignment; the
    recordings of the span that changed are attributed again. Returns whether anything
    changed."""
    starts = _aware(starts_at, "starts_at")
    assert starts is not None
    ends = _aware(ends_at, "ends_at")
    if (starts, ends) == (assignment.starts_at, assignment.ends_at):
        return False
    if ends is not None and ends <= starts:
        raise FleetError("an assignment must end after it starts")
    device = session.get(Device, assignment.device_id)
    assert device is not None
    session.refresh(device, with_for_update=True)
    for other in assignments_of(session, assignment.device_id):
        if other.id != assignment.id and overlaps(starts, ends, other.starts_at, other.ends_at):
            raise FleetError(f"device {device.serial!r}: assignments must not overlap")
    old_start, old_end = assignment.starts_at, assignment.ends_at
    assignment.starts_at, assignment.ends_at = starts, ends
    try:
        session.flush()
    except IntegrityError as exc:
        raise FleetError(f"device {device.serial!r} already has an open assignment") from exc
    if ends is None:
        device.issued_to_officer_id = assignment.officer_id
    elif old_end is None:
        device.issued_to_officer_id = None
    audit.record(session, clock=clock, actor=actor, action="device.assignment_corrected",
                 object_type="device", object_id=str(device.id),
                 details={"serial": device.serial, "assignment_id": assignment.id,
                          "starts_at": [_iso(old_start), _iso(starts)],
                          "ends_at": [_iso(old_end), _iso(ends)]})
    session.flush()
    # Everything from the earlier start onwards may have changed hands.
    _reattribute(session, clock=clock, actor=actor, device=device,
                 since=min(old_start, starts), until=None)
    return True


# --- docks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DockSummary:
    name: str
    station: str | None
    unit: str | None
    bays: int
    active: bool
    live_tokens: int
    last_seen_at: dt.datetime | None
    agent_version: str | None


def list_docks(session: Session) -> list[DockSummary]:
    live = (select(ApiToken.dock_id, func.count().label("n"))
            .where(ApiToken.dock_id.is_not(None), ApiToken.revoked_at.is_(None))
            .group_by(ApiToken.dock_id).subquery())
    rows = session.execute(
        select(Dock, Unit.code, live.c.n)
        .outerjoin(Unit, Unit.id == Dock.unit_id)
        .outerjoin(live, live.c.dock_id == Dock.id)
        .order_by(Dock.name)).all()
    return [DockSummary(d.name, d.station, code, d.bays, d.active, int(n or 0), d.last_seen_at,
                        d.agent_version) for d, code, n in rows]


def _require_dock(session: Session, name: str) -> Dock:
    dock = dock_by_name(session, name)
    if dock is None:
        raise FleetError(f"no dock {name!r}")
    return dock


def revoke_dock(session: Session, *, clock: Clock, actor: audit.Actor, name: str) -> int:
    """Revoke every live token of a dock (a stolen or retired dock): its uploads are refused
    from now on. The dock stays registered; `rotate_dock` gives it a token again."""
    dock = _require_dock(session, name)
    tokens = session.scalars(select(ApiToken).where(ApiToken.dock_id == dock.id,
                                                    ApiToken.revoked_at.is_(None))).all()
    if not tokens:
        raise FleetError(f"dock {name!r} has no live token")
    for token in tokens:
        accounts.revoke_token(session, clock=clock, actor=actor, token_id=token.id)
    audit.record(session, clock=clock, actor=actor, action="dock.revoked", object_type="dock",
                 object_id=str(dock.id),
                 details={"name": name, "tokens": sorted(t.id for t in tokens)})
    session.flush()
    return len(tokens)


def rotate_dock(session: Session, *, clock: Clock, actor: audit.Actor, name: str) -> str:
    """A new upload token for a dock; the old ones are revoked in the same transaction, so there
    is never a moment with none or with both. Uploads in flight resume with the new token (they
    belong to the dock, not the token)."""
    dock = _require_dock(session, name)
    old = session.scalars(select(ApiToken).where(ApiToken.dock_id == dock.id,
                                                 ApiToken.revoked_at.is_(None))).all()
    for token in old:
        accounts.revoke_token(session, clock=clock, actor=actor, token_id=token.id)
    secret = accounts.create_api_token(session, clock=clock, actor=actor, dock=dock,
                                       scopes={"upload"}, name=f"dock {name}")
    audit.record(session, clock=clock, actor=actor, action="dock.rotated", object_type="dock",
                 object_id=str(dock.id),
                 details={"name": name, "revoked": sorted(t.id for t in old)})
    session.flush()
    return secret
