"""Categories (versioned, applied from configuration), evidence flags, their review decisions,
holds, whether the subject was told, tombstones, and the idempotency keys of retried POSTs."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from evidence_locker.db import Base, UTCDateTime


class CategoryVersion(Base):
    """One version of a configured category. Applying a changed configuration adds a version and
    moves active flags to it, so each flag names the version that sets its deadline now."""

    __tablename__ = "retention_categories"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # fixed | review | case-closed
    days: Mapped[int] = mapped_column(Integer)
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    applied_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    decision: Mapped[str | None] = mapped_column(Text)  # why a shortening was accepted


class EvidenceFlag(Base):
    __tablename__ = "evidence_flags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("recordings.id"), index=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("retention_categories.id"), index=True)
    reference: Mapped[str] = mapped_column(String(64), index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    flagged_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    flagged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: the camera
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    withdrawn_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)
    # When a review flag is next due for review (rules.review_due), kept by service.refresh
    # with the deadline; NULL for other kinds, withdrawn or disposed flags. The review queue's
    # index.
    review_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)


class ReviewDecision(Base):
    """One decision at a review flag's review: retain (with a reason and the next review date)
    or dispose (with a reason). Rows are never changed; the latest retain sets the review date."""

    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("evidence_flags.id"), index=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("recordings.id"), index=True)
    decision: Mapped[str] = mapped_column(String(16))  # retain | dispose
    reason: Mapped[str] = mapped_column(Text)
    review_was_due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    next_review_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # retain only
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decided_role: Mapped[str] = mapped_column(String(32))


class SubjectTold(Base):
    """Whether the subject was told they were being recorded: yes, no or not practicable (with
    a reason unless yes). Each statement is a row; the newest is `current`, earlier ones stay as
    the history (the audit log has each too)."""

    __tablename__ = "subject_told"
    __table_args__ = (Index("ix_subject_told_recording_current", "recording_id", "current"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("recordings.id"))
    told: Mapped[str] = mapped_column(String(16))  # yes | no | not-practicable
    reason: Mapped[str | None] = mapped_column(Text)
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_role: Mapped[str] = mapped_column(String(32))


class Hold(Base):
    __tablename__ = "retention_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("recordings.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # legal | complaint | post-incident
    reason: Mapped[str] = mapped_column(Text)
    placed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    placed_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    placed_role: Mapped[str] = mapped_column(String(32))
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    released_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    released_role: Mapped[str | None] = mapped_column(String(32))
    release_reason: Mapped[str | None] = mapped_column(Text)


class Tombstone(Base):
    """What is left of a deleted recording: enough to show what was deleted, when and by which
    rule, and nothing of the footage. Written when the sweep decides (finished_at None), finished
    when storage and catalogue are clean, so a crash half-way is resumed from here."""

    __tablename__ = "tombstones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    device_serial: Mapped[str] = mapped_column(String(64))
    camera_recording_id: Mapped[str] = mapped_column(String(128))
    officer_id: Mapped[int | None] = mapped_column(Integer)
    unit_id: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    stopped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # JSON [{"kind","index","filename","sha256","size","poster_sha256"}]
    files: Mapped[str] = mapped_column(Text)
    total_size: Mapped[int] = mapped_column(BigInteger)
    rule: Mapped[str] = mapped_column(Text)
    deadline: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)
    # The recording's restriction when it was deleted (None, restricted or post-incident): its
    # tombstone is shown to whom the recording was (`roles.may_know_of_restricted`).
    restriction: Mapped[str | None] = mapped_column(String(16))


class TombstoneAccess(Base):
    """One person who was on a deleted restricted recording's access list."""

    __tablename__ = "tombstone_access"
    __table_args__ = (
        UniqueConstraint("tombstone_id", "user_id"),
        Index("ix_tombstone_access_user", "user_id", "tombstone_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tombstone_id: Mapped[int] = mapped_column(ForeignKey("tombstones.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


class IdempotencyKey(Base):
    """A POST's Idempotency-Key and the answer it got, so a retry gets the same answer."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),
                      Index("ix_idempotency_created", "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(200))
    route: Mapped[str] = mapped_column(String(300))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
