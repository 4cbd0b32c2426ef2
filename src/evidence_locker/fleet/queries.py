"""Reading the fleet register: rollout by borough and unit, one camera's history, attribution
conflicts. Scoped by a unit path prefix (see rules.fleet_scope); no footage is ever returned.

Sizes at the reference force: ~22,000 devices and a few thousand units and docks are read whole
(a few MB); uploads are found by a range scan of `recordings.received_at` (indexed) over the
window asked for, i.e. ~220,000 index entries per day of window.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from evidence_locker.catalogue.models import Recording, RecordingFile
from evidence_locker.fleet.models import (
    AttributionConflict,
    CameraObservation,
    CameraStatus,
    Device,
    DeviceAssignment,
    Dock,
    Officer,
    Unit,
)
from evidence_locker.fleet.rules import in_scope

MAX_LISTED = 1000
DAY = dt.timedelta(days=1)


class FleetQueryError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def resolve_scope(session: Session, *, scope: str, unit_code: str | None) -> str:
    """The path prefix to report on: the caller's scope, or a unit within it."""
    if unit_code is None:
        return scope
    unit = session.scalars(select(Unit).where(Unit.code == unit_code)).one_or_none()
    if unit is None:
        raise FleetQueryError(404, f"no unit {unit_code!r}")
    if not in_scope(scope, unit.path):
        raise FleetQueryError(403, f"unit {unit_code!r} is outside your part of the force")
    return unit.path


@dataclass
class _Tally:
    code: str
    name: str
    issued: int = 0
    docked_24h: int = 0
    files_waiting: int = 0
    bytes_waiting: int = 0
    not_docked: int = 0
    units: dict[str, _Tally] = field(default_factory=dict)

    def add(self, *, docked: bool, stale: bool, files: int, nbytes: int) -> None:
        self.issued += 1
        self.docked_24h += docked
        self.not_docked += stale
        self.files_waiting += files
        self.bytes_waiting += nbytes

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "name": self.name, "issued": self.issued,
                               "docked_24h": self.docked_24h,
                               "files_waiting": self.files_waiting,
                               "bytes_waiting": self.bytes_waiting,
                               "not_docked": self.not_docked}
        if self.units:
            out["units"] = [u.body() for u in sorted(self.units.values(), key=lambda u: u.code)]
        return out


def _uploaded_since(session: Session, since: dt.datetime) -> set[int]:
    return set(session.scalars(select(Recording.device_id).distinct()
                               .where(Recording.received_at >= since,
                                      Recording.device_id.is_not(None))))


def rollout(session: Session, *, now: dt.datetime, path: str, not_docked_days: int,
            silent_hours: int) -> dict[str, Any]:
    """Per command (borough or specialist command) and unit: cameras issued, docked in the last
    24 h (a dock saw it, or an upload from it arrived), footage waiting on cameras as their docks
    last reported, cameras not docked for more than N days; and docks silent for H hours."""
    units = {u.path: u for u in session.scalars(select(Unit))}
    open_a = aliased(DeviceAssignment)
    rows = session.execute(
        select(Device.id, Device.serial, Device.status, Device.needs_review, Officer.collar,
               Officer.name, Unit.path)
        .outerjoin(open_a, and_(open_a.device_id == Device.id, open_a.ends_at.is_(None)))
        .outerjoin(Officer, Officer.id == open_a.officer_id)
        .outerjoin(Unit, Unit.id == Officer.unit_id)).all()
    status = {s.device_id: s for s in session.scalars(select(CameraStatus))}
    docked_cut, stale_cut = now - DAY, now - not_docked_days * DAY
    uploaded_day = _uploaded_since(session, docked_cut)
    uploaded_window = _uploaded_since(session, stale_cut)

    commands: dict[str, _Tally] = {}
    unassigned = {"devices": 0, "needs_review": 0, "docked_24h": 0, "files_waiting": 0,
                  "bytes_waiting": 0}
    not_docked: list[dict[str, Any]] = []
    total = _Tally("", "total")
    for device_id, serial, dev_status, needs_review, collar, name, unit_path in rows:
        st = status.get(device_id)
        seen = None if st is None else st.seen_at
        docked = device_id in uploaded_day or (seen is not None and seen >= docked_cut)
        files = 0 if st is None else st.files_waiting
        nbytes = 0 if st is None else st.bytes_waiting
        if collar is None or unit_path is None:
            if path == "/":
                unassigned["devices"] += 1
                unassigned["needs_review"] += bool(needs_review)
                unassigned["docked_24h"] += docked
                unassigned["files_waiting"] += files
                unassigned["bytes_waiting"] += nbytes
            continue
        if not unit_path.startswith(path):
            continue
        stale = (device_id not in uploaded_window
                 and (seen is None or seen < stale_cut) and dev_status == "active")
        parts = unit_path.strip("/").split("/")
        cmd_path = "/" + "/".join(parts[:2]) + "/"
        cmd_unit, own = units.get(cmd_path), units.get(unit_path)
        cmd = commands.setdefault(cmd_path, _Tally(cmd_unit.code if cmd_unit else cmd_path,
                                                   cmd_unit.name if cmd_unit else cmd_path))
        tally = cmd.units.setdefault(unit_path, _Tally(own.code if own else unit_path,
                                                       own.name if own else unit_path))
        for t in (cmd, tally, total):
            t.add(docked=docked, stale=stale, files=files, nbytes=nbytes)
        if stale:
            not_docked.append({"serial": serial, "officer": collar, "officer_name": name,
                               "unit": own.code if own else None, "last_heartbeat_at": _iso(seen),
                               "last_upload_at": None})
    not_docked.sort(key=lambda d: (d["last_heartbeat_at"] or "", d["serial"]))
    listed = not_docked[:MAX_LISTED]
    _last_uploads(session, listed)

    silent_cut = now - dt.timedelta(hours=silent_hours)
    dock_rows = session.execute(
        select(Dock, Unit.code, Unit.path).outerjoin(Unit, Unit.id == Dock.unit_id)
        .where(Dock.active.is_(True))
        .where((Dock.last_seen_at.is_(None)) | (Dock.last_seen_at < silent_cut))
        .order_by(Dock.last_seen_at.is_(None).desc(), Dock.last_seen_at, Dock.name)).all()
    silent = [{"name": d.name, "station": d.station, "unit": code,
               "last_seen_at": _iso(d.last_seen_at), "agent_version": d.agent_version}
              for d, code, unit_path in dock_rows if in_scope(path, unit_path)]
    body = total.body()
    del body["code"], body["name"]
    return {
        "generated_at": now.isoformat(), "scope": path, "not_docked_days": not_docked_days,
        "silent_hours": silent_hours, "totals": body,
        "commands": [c.body() for c in sorted(commands.values(), key=lambda c: c.code)],
        "unassigned": unassigned if path == "/" else None,
        "not_docked": listed, "not_docked_truncated": len(not_docked) > len(listed),
        "silent_docks": silent[:MAX_LISTED], "silent_docks_truncated": len(silent) > MAX_LISTED,
    }


def _last_uploads(session: Session, listed: list[dict[str, Any]]) -> None:
    """When each listed camera's last recording arrived (through the per-serial index)."""
    serials = [d["serial"] for d in listed]
    last: dict[str, dt.datetime] = {}
    for i in range(0, len(serials), 500):
        last.update({serial: at for serial, at in session.execute(
            select(Recording.device_serial, func.max(Recording.received_at))
            .where(Recording.device_serial.in_(serials[i:i + 500]))
            .group_by(Recording.device_serial))})
    for d in listed:
        d["last_upload_at"] = _iso(last.get(d["serial"]))


def device_detail(session: Session, *, now: dt.datetime, scope: str, serial: str,
                  observations: int = 50) -> dict[str, Any] | None:
    """One camera: the register's entry, who had it when, recent health, where it docked, how
    much arrived from it. None if there is no such camera in the caller's scope."""
    device = session.scalars(select(Device).where(Device.serial == serial)).one_or_none()
    if device is None:
        return None
    history = session.execute(
        select(DeviceAssignment, Officer.collar, Officer.name, Unit.code, Unit.path)
        .join(Officer, Officer.id == DeviceAssignment.officer_id)
        .outerjoin(Unit, Unit.id == Officer.unit_id)
        .where(DeviceAssignment.device_id == device.id)
        .order_by(DeviceAssignment.starts_at.desc(), DeviceAssignment.id.desc())).all()
    current = next((h for h in history if h[0].ends_at is None), None)
    if not in_scope(scope, None if current is None else current[4]):
        return None
    status = session.get(CameraStatus, device.id)
    obs = session.scalars(select(CameraObservation)
                          .where(CameraObservation.device_id == device.id)
                          .order_by(CameraObservation.observed_at.desc(),
                                    CameraObservation.id.desc()).limit(observations)).all()
    dock_names = {d.id: d.name for d in session.scalars(select(Dock))}
    docks: dict[str, dict[str, Any]] = {}
    for dock_id, last in session.execute(
            select(CameraObservation.dock_id, func.max(CameraObservation.observed_at))
            .where(CameraObservation.device_id == device.id)
            .group_by(CameraObservation.dock_id)):
        docks[dock_names.get(dock_id, str(dock_id))] = {"last_heartbeat_at": _iso(last),
                                                         "last_upload_at": None}
    for upload_dock, last in session.execute(
            select(RecordingFile.dock_id, func.max(RecordingFile.received_at))
            .join(Recording, Recording.id == RecordingFile.recording_id)
            .where(Recording.device_serial == serial, RecordingFile.dock_id.is_not(None))
            .group_by(RecordingFile.dock_id)):
        entry = docks.setdefault(dock_names.get(upload_dock or 0, str(upload_dock)),
                                 {"last_heartbeat_at": None, "last_upload_at": None})
        entry["last_upload_at"] = _iso(last)
    since = now - 30 * DAY
    recent, last_upload = session.execute(
        select(func.count().filter(Recording.received_at >= since),
               func.max(Recording.received_at))
        .where(Recording.device_serial == serial)).one()
    conflicts = session.scalar(select(func.count()).select_from(AttributionConflict)
                               .where(AttributionConflict.device_id == device.id)) or 0

    def health(o: CameraObservation | CameraStatus, at: dt.datetime) -> dict[str, Any]:
        return {"at": at.isoformat(), "dock": dock_names.get(o.dock_id), "bay": o.bay,
                "battery_percent": o.battery_percent, "firmware": o.firmware,
                "free_bytes": o.free_bytes, "clock_drift_seconds": o.clock_drift_seconds,
                "files_waiting": o.files_waiting, "bytes_waiting": o.bytes_waiting}

    return {
        "serial": device.serial, "model": device.model, "mount": device.mount,
        "firmware": device.firmware, "status": device.status,
        "needs_review": device.needs_review,
        "holder": None if current is None else {"collar": current[1], "name": current[2],
                                                "unit": current[3]},
        "assignments": [{"id": a.id, "officer": collar, "officer_name": name, "unit": code,
                         "starts_at": _iso(a.starts_at), "ends_at": _iso(a.ends_at),
                         "note": a.note, "created_by": a.created_by}
                        for a, collar, name, code, _path in history],
        "latest": None if status is None else health(status, status.seen_at),
        "observations": [health(o, o.observed_at) for o in obs],
        "docks": [{"dock": k, **v} for k, v in sorted(docks.items())],
        "uploads": {"recordings_30d": int(recent or 0), "last_upload_at": _iso(last_upload)},
        "attribution_conflicts": int(conflicts),
    }


def conflicts(session: Session, *, scope: str, limit: int = 100,
              before_id: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """Recordings whose camera named someone other than the register (newest first), in the
    scope of the unit the recording is attributed to. Returns (items, next before_id)."""
    register = aliased(Officer)
    query = (select(AttributionConflict, Recording.device_serial,
                    Recording.camera_recording_id, register.collar, Unit.code, Unit.path)
             .join(Recording, Recording.id == AttributionConflict.recording_id)
             .outerjoin(register, register.id == AttributionConflict.register_officer_id)
             .outerjoin(Unit, Unit.id == Recording.unit_id)
             .order_by(AttributionConflict.id.desc()))
    if scope != "/":
        query = query.where(Unit.path.startswith(scope, autoescape=True))
    if before_id is not None:
        query = query.where(AttributionConflict.id < before_id)
    rows = session.execute(query.limit(limit + 1)).all()
    items: list[dict[str, Any]] = [
        {"id": c.id, "recording_id": str(c.recording_id), "device": serial,
              "camera_recording_id": camera_id, "kind": c.kind,
              "camera_officer": c.camera_officer, "register_officer": collar, "unit": code,
              "recorded_at": _iso(c.recorded_at), "detected_at": _iso(c.detected_at),
              "note": c.note}
             for c, serial, camera_id, collar, code, _path in rows[:limit]]
    return items, (items[-1]["id"] if len(rows) > limit else None)


#: A camera reported within this long is "docked now" for the gauges.
DOCKED_WITHIN = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class FleetGauges:
    """What the platform team alerts on: docks that stopped calling in, and footage waiting on
    cameras that are docked (it should drain; if it grows, uploads are stuck)."""

    docks_active: int
    dock_last_seen: dict[str, float]  # active dock name -> last heartbeat, Unix seconds (0: never)
    cameras_docked: int
    files_waiting: int
    bytes_waiting: int


def fleet_gauges(session: Session, *, now: dt.datetime) -> FleetGauges:
    """One scan of the active docks (a few thousand) and one aggregate over the camera
    statuses reported in the last DOCKED_WITHIN (the index on `seen_at`)."""
    docks = session.execute(select(Dock.name, Dock.last_seen_at).where(
        Dock.active.is_(True))).all()
    docked, files, nbytes = session.execute(
        select(func.count(), func.coalesce(func.sum(CameraStatus.files_waiting), 0),
               func.coalesce(func.sum(CameraStatus.bytes_waiting), 0))
        .where(CameraStatus.seen_at >= now - DOCKED_WITHIN)).one()
    return FleetGauges(
        docks_active=len(docks),
        dock_last_seen={name: seen.timestamp() if seen else 0.0 for name, seen in docks},
        cameras_docked=int(docked), files_waiting=int(files), bytes_waiting=int(nbytes))
