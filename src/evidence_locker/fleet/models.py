"""The fleet register: units in a hierarchy, officers, devices, docks."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from evidence_locker.db import Base, UTCDateTime


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
    # Until assignments (fleet issue) exist, the officer a device is issued to.
    issued_to_officer_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))


class Dock(Base):
    __tablename__ = "docks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    station: Mapped[str | None] = mapped_column(String(200))
    bays: Mapped[int] = mapped_column(Integer, default=8)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
