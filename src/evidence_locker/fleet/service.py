"""Fleet register use cases: units, officers, devices and docks.

Like every service, these only flush: the caller owns the transaction, and each change carries its
audit event into it. The register functions take an optional clock and actor so that seeding
scripts and tests stay short; they then record the change as done by the system.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evidence_locker.accounts import service as accounts
from evidence_locker.audit import service as audit
from evidence_locker.clock import Clock, SystemClock
from evidence_locker.fleet.models import Device, Dock, Officer, Unit

DOCK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Unit codes become segments of the materialised path, so no '/' and nothing odd.
UNIT_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
COLLAR_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
SERIAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
UNIT_KINDS = frozenset({"force", "command", "unit"})
MOUNTS = frozenset({"body", "cap", "helmet"})
MAX_BAYS = 1000


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
    dock = Dock(name=name, station=station, bays=bays, active=True, created_at=clock.now())
    session.add(dock)
    _flush_unique(session, f"dock {name!r}")
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="dock.registered",
        object_type="dock",
        object_id=str(dock.id),
        details={"name": name, "station": station, "bays": bays},
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
    clock: Clock | None = None,
    actor: audit.Actor | None = None,
) -> Device:
    """Register a camera by serial number, optionally issued to an officer."""
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
    audit.record(
        session,
        clock=clock or SystemClock(),
        actor=actor or audit.SYSTEM,
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
