"""The audit log: append-only rows, later linked into a hash chain by one sequencer."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from evidence_locker.db import Base, BigId, UTCDateTime


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    actor_type: Mapped[str] = mapped_column(String(16))  # user | dock | token | system
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_name: Mapped[str | None] = mapped_column(String(200), index=True)
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64), index=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    purpose: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON
    # Chain fields: NULL until the sequencer links the row, then frozen by trigger.
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
    sequenced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class AuditCheckpoint(Base):
    """A signed chain head. Also appended to a file outside the database, which verify compares.

    `prev_digest` is the SHA-256 of the previous checkpoint's signed payload, so checkpoints form
    a chain of their own and a removed one shows. Append-only by trigger (migration 0007).
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    hash: Mapped[str] = mapped_column(String(64))
    event_count: Mapped[int] = mapped_column(BigInteger)
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(16))  # head | archive-boundary
    key_id: Mapped[str] = mapped_column(String(16))
    prev_digest: Mapped[str | None] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
