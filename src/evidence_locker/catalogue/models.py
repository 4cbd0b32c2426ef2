"""Recordings (one activation of a camera), their files, and the content-addressed blobs."""

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
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from evidence_locker.db import Base, BigId, UTCDateTime


class Blob(Base):
    """Stored bytes, named by SHA-256. Deleted only when no live file refers to it."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    stored_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # Fixity: when the stored bytes were last re-read and hashed, and what that found.
    fixity_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)
    fixity_state: Mapped[str] = mapped_column(String(16), default="unchecked")
    # unchecked | ok | mismatch | missing


class Recording(Base):
    __tablename__ = "recordings"
    __table_args__ = (
        UniqueConstraint("device_serial", "camera_recording_id"),
        Index("ix_recordings_sort", "sort_at", "id"),
        Index("ix_recordings_officer_sort", "officer_id", "sort_at", "id"),
        Index("ix_recordings_unit_sort", "unit_id", "sort_at", "id"),
        Index("ix_recordings_device_sort", "device_serial", "sort_at", "id"),
        # Which cameras docked in a window (fleet rollout): an index-only range scan.
        Index("ix_recordings_received_device", "received_at", "device_id"),
        # The retention sweep and the due-for-deletion list (lifecycle/).
        Index("ix_recordings_delete_after", "delete_after"),
        Index("ix_recordings_unit_due", "unit_id", "delete_after", "id"),
        # The few recordings a sweep left half-deleted, found without scanning the catalogue.
        Index("ix_recordings_deleting", "retention_state",
              sqlite_where=text("retention_state = 'deleting'"),
              postgresql_where=text("retention_state = 'deleting'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    device_serial: Mapped[str] = mapped_column(String(64))
    camera_recording_id: Mapped[str] = mapped_column(String(128))

    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    reported_officer: Mapped[str | None] = mapped_column(String(64))
    attribution_issues: Mapped[str] = mapped_column(Text, default="")  # "; "-joined notes

    # Times as the camera wrote them, and corrected UTC times used for search and retention.
    camera_started_at: Mapped[str | None] = mapped_column(String(64))
    camera_timezone: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    stopped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    pre_event_seconds: Mapped[float | None] = mapped_column(Float)
    trigger_on_reason: Mapped[str | None] = mapped_column(String(64))
    trigger_off_reason: Mapped[str | None] = mapped_column(String(64))
    clock_drift_seconds: Mapped[float | None] = mapped_column(Float)
    clock_suspect: Mapped[bool] = mapped_column(Boolean, default=False)
    clock_note: Mapped[str | None] = mapped_column(Text)

    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # What lists sort and page by: the corrected start once known, else the receipt time.
    sort_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16), default="incomplete")  # incomplete|complete
    sidecar_state: Mapped[str] = mapped_column(String(16), default="missing")
    # Files the sidecar lists, as JSON [{"kind","index","filename","sha256","size"}].
    expected_files: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(100))
    firmware: Mapped[str | None] = mapped_column(String(64))
    bookmarks: Mapped[str | None] = mapped_column(Text)  # JSON list
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    # Retention (lifecycle/rules.py): when the rule of deletion lets it go; None while held or
    # kept indefinitely. `deleting`: the sweep has decided, and is removing its files.
    delete_after: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    retention_state: Mapped[str] = mapped_column(String(16), default="live",
                                                 server_default="live")  # live | deleting

    files: Mapped[list[RecordingFile]] = relationship(
        back_populates="recording", order_by="(RecordingFile.kind, RecordingFile.index)"
    )


class RecordingFile(Base):
    __tablename__ = "recording_files"
    __table_args__ = (
        UniqueConstraint("recording_id", "kind", "index", "sha256"),
        Index("ix_recording_files_sha256", "sha256"),
        Index("ix_recording_files_media_state", "media_state", "received_at"),
        # Whether a poster is still used by a live file (the sweep, per batch); most files
        # have none.
        Index("ix_recording_files_poster", "poster_sha256",
              sqlite_where=text("poster_sha256 IS NOT NULL"),
              postgresql_where=text("poster_sha256 IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("recordings.id"))
    kind: Mapped[str] = mapped_column(String(16))  # clip | sidecar | track
    index: Mapped[int] = mapped_column(Integer, default=1)
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    size: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    upload_id: Mapped[str | None] = mapped_column(String(64))
    dock_id: Mapped[int | None] = mapped_column(ForeignKey("docks.id"))
    # Another copy of this slot arrived with different bytes: kept, and flagged.
    conflict: Mapped[bool] = mapped_column(Boolean, default=False)

    media_state: Mapped[str] = mapped_column(String(16), default="pending")
    # pending | ready | unreadable | n/a (sidecars and tracks are not media)
    unreadable_reason: Mapped[str | None] = mapped_column(Text)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    video_codec: Mapped[str | None] = mapped_column(String(32))
    audio_codec: Mapped[str | None] = mapped_column(String(32))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    frame_rate: Mapped[float | None] = mapped_column(Float)
    media_created_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    poster_sha256: Mapped[str | None] = mapped_column(String(64))
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    recording: Mapped[Recording] = relationship(back_populates="files")


class AccessGrant(Base):
    """A purpose and reason given once for playing someone else's footage (catalogue/access.py);
    only the token's SHA-256 is kept."""

    __tablename__ = "access_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("recordings.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class RecordingRestriction(Base):
    """A recording hidden from everyone but its access list (and, unless it is post-incident,
    professional standards): catalogue/restrictions.py. Rare, so search excludes restricted rows
    with an anti-join on this small table instead of a flag on the recordings' indexes."""

    __tablename__ = "recording_restrictions"

    recording_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("recordings.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # restricted | post-incident
    reason: Mapped[str] = mapped_column(Text, default="")
    placed_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    placed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class RestrictionAccess(Base):
    """One person on a restricted recording's access list; the rows go with the restriction."""

    __tablename__ = "restriction_access"
    __table_args__ = (
        UniqueConstraint("recording_id", "user_id"),
        # A person's own list entries: the access-list branch of every search they make.
        Index("ix_restriction_access_user", "user_id", "recording_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("recording_restrictions.recording_id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    added_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
