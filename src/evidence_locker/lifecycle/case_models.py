"""Cases: a reference that groups recordings, its status, owners and the watchdog grants on it.

Links, owners and grants are never deleted: removing or revoking one stamps who, when and why,
so the case keeps its history. `case_recordings.recording_id` has no foreign key on purpose: a
recording removed from a case (or in a closed one) may later be deleted by the retention sweep,
and the case still shows that it once held it."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from evidence_locker.db import Base, UTCDateTime


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)  # open | charged | closed
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)  # the command
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    opened_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    close_reason: Mapped[str | None] = mapped_column(Text)


class CaseOwner(Base):
    __tablename__ = "case_owners"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    added_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    removed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class CaseRecording(Base):
    __tablename__ = "case_recordings"
    __table_args__ = (Index("ix_case_recordings_recording", "recording_id", "removed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    added_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    added_reason: Mapped[str] = mapped_column(Text)
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    removed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    removed_reason: Mapped[str | None] = mapped_column(Text)


class CaseGrant(Base):
    """A watchdog's access to a case's current recordings, until revoked."""

    __tablename__ = "case_grants"
    __table_args__ = (Index("ix_case_grants_user", "user_id", "revoked_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    granted_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoke_reason: Mapped[str | None] = mapped_column(Text)
