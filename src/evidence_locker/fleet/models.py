"""The fleet register: units in a hierarchy, officers, devices, docks, who had which camera when,
and what docks report about the cameras in their bays."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from evidence_locker.db import Base, BigId, UTCDateTime


class Unit(Base):
    """Force → command/borough → unit. `path` is a materialised path (`/force/cmd/unit/`) so
    "everything in my command" is one prefix comparison."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # force | command | unit
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    path: Mapped[str] = mapped_column(String(400), index=True)


class Officer(Base):
    __tablename__ = "officers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collar: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str | None] = mapped_column(String(100))
    mount: Mapped[str] = mapped_column(String(20), default="body")  # body | cap | helmet
    firmware: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="active")
    # Set when a device first appears through ingest without being registered.
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    # Who holds the camera now: the officer of its open assignment, kept in step by the fleet
    # service (a convenience for lists; attribution reads `device_assignments`).
    issued_to_officer_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))


class Dock(Base):
    __tablename__ = "docks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    station: Mapped[str | None] = mapped_column(String(200))
    bays: Mapped[int] = mapped_column(Integer, default=8)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # The unit whose station it stands in, so a borough sees its own silent docks.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    # The last heartbeat: when it arrived (server clock), when the dock says it sent it (its own
    # NTP clock), and what the agent reported.
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    agent_version: Mapped[str | None] = mapped_column(String(64))
    reported_bays: Mapped[int | None] = mapped_column(Integer)


# Open assignments have no end; at most one per device (a partial unique index on both backends).
OPEN = text("ends_at IS NULL")


class DeviceAssignment(Base):
    """A camera in an officer's hands over [starts_at, ends_at). Intervals of one device never
    overlap, so any instant names at most one officer: the one a recording is attributed to."""

    __tablename__ = "device_assignments"
    __table_args__ = (
        Index("ix_device_assignments_device_starts", "device_id", "starts_at"),
        Index("ix_device_assignments_officer", "officer_id", "starts_at"),
        Index("uq_device_assignments_open", "device_id", unique=True,
              sqlite_where=OPEN, postgresql_where=OPEN),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(String(500), default="")


class CameraStatus(Base):
    """The latest a dock reported about a camera: one row per device, overwritten."""

    __tablename__ = "camera_status"

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    dock_id: Mapped[int] = mapped_column(ForeignKey("docks.id"))
    bay: Mapped[int] = mapped_column(Integer)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    battery_percent: Mapped[int | None] = mapped_column(Integer)
    firmware: Mapped[str | None] = mapped_column(String(64))
    free_bytes: Mapped[int | None] = mapped_column(BigInteger)
    clock_drift_seconds: Mapped[float | None] = mapped_column(Float)
    files_waiting: Mapped[int] = mapped_column(Integer, default=0)
    bytes_waiting: Mapped[int] = mapped_column(BigInteger, default=0)
    # When the last history row was written (history is thinned: see fleet/health.py).
    observed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class CameraObservation(Base):
    """Camera health history, one row per camera per docking and then at most one per
    OBSERVATION_EVERY while it stays docked."""

    __tablename__ = "camera_observations"
    __table_args__ = (Index("ix_camera_observations_device_at", "device_id", "observed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    dock_id: Mapped[int] = mapped_column(ForeignKey("docks.id"))
    bay: Mapped[int] = mapped_column(Integer)
    observed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    battery_percent: Mapped[int | None] = mapped_column(Integer)
    firmware: Mapped[str | None] = mapped_column(String(64))
    free_bytes: Mapped[int | None] = mapped_column(BigInteger)
    clock_drift_seconds: Mapped[float | None] = mapped_column(Float)
    files_waiting: Mapped[int] = mapped_column(Integer, default=0)
    bytes_waiting: Mapped[int] = mapped_column(BigInteger, default=0)


class AttributionConflict(Base):
    """A recording whose camera named an officer the register disagrees with (or names no one
    for that time). The register's answer stands; this row is the fleet administrator's to-do,
    and disappears when the register is corrected to agree."""

    __tablename__ = "attribution_conflicts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("recordings.id"), unique=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # mismatch | unassigned
    register_officer_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    camera_officer: Mapped[str | None] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    detected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    note: Mapped[str] = mapped_column(Text, default="")
