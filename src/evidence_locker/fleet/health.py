"""Dock heartbeats and the camera health they carry.

The contract (`POST /api/v1/docks/heartbeat`, dock upload token) is fixed with the dock agent:
`{"agent_version", "bays", "sent_at" (ISO 8601 with offset, the dock's NTP clock), "cameras":
[{"bay", "serial", "model", "battery_percent", "firmware", "free_bytes", "clock_drift_seconds"
(camera minus dock), "files_waiting", "bytes_waiting"}]}`, at most MAX_CAMERAS cameras.

What is kept:
- per dock, the last heartbeat (arrival on our clock, `sent_at` on its clock, agent version);
- per camera, its latest report (`camera_status`, overwritten) and a thinned history
  (`camera_observations`): a row when a camera is first seen at a dock, whenever its firmware
  changes, and otherwise at most one per OBSERVATION_EVERY while it stays docked. Growth: at
  most 24 rows per camera-day; the reference force's 22,000 cameras docked ~14 h a day make
  ~310,000 rows a day (~115 M a year, ~20 GB with its index), so `prune_observations` keeps a
  window (default 400 days, enough to answer "was this camera healthy last year").
- Device.firmware follows what the camera reports (audited as device.firmware_changed). A serial
  the register does not know is created `needs_review`, like ingest does, so the fleet
  administrator sees it; routine heartbeats are telemetry, not register changes, and are not
  audited one by one.
"""

from __future__ import annotations

import datetime as dt

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evidence_locker.audit import service as audit
from evidence_locker.clock import Clock
from evidence_locker.fleet.models import CameraObservation, CameraStatus, Device, Dock
from evidence_locker.fleet.service import MAX_BAYS, SERIAL_RE, FleetError

MAX_CAMERAS = 64
MAX_HEARTBEAT_BYTES = 64 * 1024
OBSERVATION_EVERY = dt.timedelta(hours=1)
TEN_YEARS = 10 * 366 * 86400.0


class _Strict(BaseModel):
    # Strict types (no "5" for 5), unknown keys ignored so a newer agent can add some.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class CameraReport(_Strict):
    bay: int = Field(ge=0, le=MAX_BAYS)
    serial: str = Field(min_length=1, max_length=64, pattern=SERIAL_RE.pattern)
    model: str | None = Field(default=None, max_length=100)
    battery_percent: int | None = Field(default=None, ge=0, le=100)
    firmware: str | None = Field(default=None, max_length=64)
    free_bytes: int | None = Field(default=None, ge=0, le=2**62)
    clock_drift_seconds: float | None = Field(default=None, allow_inf_nan=False,
                                              ge=-TEN_YEARS, le=TEN_YEARS)
    files_waiting: int = Field(ge=0, le=10_000_000)
    bytes_waiting: int = Field(ge=0, le=2**62)


class Heartbeat(_Strict):
    agent_version: str = Field(min_length=1, max_length=64)
    bays: int = Field(ge=1, le=MAX_BAYS)
    sent_at: AwareDatetime
    cameras: list[CameraReport] = Field(max_length=MAX_CAMERAS)

    @model_validator(mode="after")
    def _one_camera_per_bay(self) -> Heartbeat:
        serials = [c.serial for c in self.cameras]
        if len(set(serials)) != len(serials):
            raise ValueError("a camera serial appears twice")
        bays = [c.bay for c in self.cameras]
        if len(set(bays)) != len(bays):
            raise ValueError("two cameras in one bay")
        if any(b > self.bays for b in bays):
            raise ValueError("a camera in a bay the dock does not have")
        return self


def _device(session: Session, *, clock: Clock, actor: audit.Actor, report: CameraReport,
            dock: Dock) -> Device:
    device = session.scalars(select(Device).where(Device.serial == report.serial)).one_or_none()
    if device is not None:
        return device
    try:
        with session.begin_nested():
            device = Device(serial=report.serial, model=report.model, mount="body",
                            firmware=report.firmware, status="active", needs_review=True)
            session.add(device)
            session.flush()
            audit.record(session, clock=clock, actor=actor, action="device.discovered",
                         object_type="device", object_id=report.serial,
                         details={"via": "heartbeat", "dock": dock.name, "bay": report.bay})
    except IntegrityError:  # ingest discovered it at the same moment
        device = session.scalars(select(Device).where(Device.serial == report.serial)).one()
    return device


def record_heartbeat(session: Session, *, clock: Clock, actor: audit.Actor, dock_id: int,
                     beat: Heartbeat) -> Dock:
    """Store a dock's heartbeat and what it saw of each camera in its bays."""
    dock = session.get(Dock, dock_id, with_for_update=True)
    if dock is None or not dock.active:
        raise FleetError("unknown or inactive dock")
    now = clock.now()
    dock.last_seen_at = now
    dock.last_sent_at = beat.sent_at.astimezone(dt.UTC)
    dock.agent_version = beat.agent_version
    dock.reported_bays = beat.bays
    for report in beat.cameras:
        device = _device(session, clock=clock, actor=actor, report=report, dock=dock)
        if report.firmware is not None and report.firmware != device.firmware:
            audit.record(session, clock=clock, actor=actor, action="device.firmware_changed",
                         object_type="device", object_id=str(device.id),
                         details={"serial": device.serial, "firmware": [device.firmware,
                                                                        report.firmware],
                                  "dock": dock.name})
            firmware_changed = True
            device.firmware = report.firmware
        else:
            firmware_changed = False
        if report.model is not None and device.model is None:
            device.model = report.model
        status = session.get(CameraStatus, device.id)
        observe = (status is None or status.dock_id != dock.id or firmware_changed
                   or now - status.observed_at >= OBSERVATION_EVERY)
        values = {"dock_id": dock.id, "bay": report.bay, "seen_at": now,
                  "battery_percent": report.battery_percent, "firmware": report.firmware,
                  "free_bytes": report.free_bytes,
                  "clock_drift_seconds": report.clock_drift_seconds,
                  "files_waiting": report.files_waiting, "bytes_waiting": report.bytes_waiting}
        if status is None:
            status = CameraStatus(device_id=device.id, observed_at=now, **values)
            session.add(status)
        else:
            for key, value in values.items():
                setattr(status, key, value)
        if observe:
            status.observed_at = now
            history = {k: v for k, v in values.items() if k != "seen_at"}
            session.add(CameraObservation(device_id=device.id, observed_at=now, **history))
    session.flush()
    return dock


def prune_observations(session: Session, *, clock: Clock, actor: audit.Actor,
                       keep: dt.timedelta) -> int:
    """Drop camera health history older than `keep` (the latest status per camera stays)."""
    cutoff = clock.now() - keep
    result = session.execute(delete(CameraObservation)
                             .where(CameraObservation.observed_at < cutoff))
    n = int(getattr(result, "rowcount", 0) or 0)
    audit.record(session, clock=clock, actor=actor, action="fleet.health_pruned",
                 object_type="fleet", details={"before": cutoff.isoformat(), "rows": n})
    return n
