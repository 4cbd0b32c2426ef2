"""A tus upload in progress: its state lives here so that any process can resume it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from evidence_locker.db import Base, UTCDateTime


class Upload(Base):
    __tablename__ = "uploads"
    # The sweep detaches the uploads of the files it deletes (and the foreign key is checked
    # on each file row deleted): without it, a scan of every upload per batch.
    __table_args__ = (Index("ix_uploads_file_id", "file_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    length: Mapped[int] = mapped_column(BigInteger)
    # Bytes durably stored (fsync'd) and acknowledged; the partial file may hold more after a crash.
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    metadata_json: Mapped[str] = mapped_column(Text)
    device_serial: Mapped[str] = mapped_column(String(64))
    camera_recording_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    index: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    declared_sha256: Mapped[str] = mapped_column(String(64))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"))
    dock_id: Mapped[int | None] = mapped_column(ForeignKey("docks.id"))
    state: Mapped[str] = mapped_column(String(16), default="receiving", index=True)
    # receiving | completed | duplicate | rejected | terminated | expired
    failure: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    file_id: Mapped[int | None] = mapped_column(ForeignKey("recording_files.id"))
    # One writer at a time, across processes and nodes: `host:pid:nonce` and until when.
    lease_owner: Mapped[str | None] = mapped_column(String(160))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
