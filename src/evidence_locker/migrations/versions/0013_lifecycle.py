"""Evidence lifecycle: category versions, evidence flags, holds, tombstones, idempotency keys, and
each recording's computed `delete_after` (indexed, for the sweep) and `retention_state`.

Existing recordings get the unflagged default, the later of *recorded + N days* and *received +
review window*, from LOCKER_RETENTION_UNFLAGGED_DAYS / LOCKER_RETENTION_REVIEW_WINDOW_DAYS (31
and 7 unless set), rounded up to the next second, in one UPDATE.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

import evidence_locker.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UTC = evidence_locker.db.UTCDateTime


def upgrade() -> None:
    op.add_column("recordings", sa.Column("delete_after", UTC(), nullable=True))
    op.add_column("recordings", sa.Column("retention_state", sa.String(length=16),
                                          nullable=False, server_default="live"))
    op.create_index("ix_recordings_delete_after", "recordings", ["delete_after"])
    op.create_table(
        "retention_categories",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("applied_at", UTC(), nullable=False),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.UniqueConstraint("name", "version"),
    )
    op.create_table(
        "evidence_flags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("recording_id", sa.Uuid(), sa.ForeignKey("recordings.id"), nullable=False),
        sa.Column("category_id", sa.Integer(), sa.ForeignKey("retention_categories.id"),
                  nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("flagged_at", UTC(), nullable=False),
        sa.Column("flagged_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("withdrawn_at", UTC(), nullable=True),
        sa.Column("withdrawn_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("withdrawn_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_evidence_flags_recording_id", "evidence_flags", ["recording_id"])
    op.create_index("ix_evidence_flags_category_id", "evidence_flags", ["category_id"])
    op.create_index("ix_evidence_flags_reference", "evidence_flags", ["reference"])
    op.create_table(
        "retention_holds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("recording_id", sa.Uuid(), sa.ForeignKey("recordings.id"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_at", UTC(), nullable=False),
        sa.Column("placed_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("placed_role", sa.String(length=32), nullable=False),
        sa.Column("released_at", UTC(), nullable=True),
        sa.Column("released_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("released_role", sa.String(length=32), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_retention_holds_recording_id", "retention_holds", ["recording_id"])
    op.create_table(
        "tombstones",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("recording_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("device_serial", sa.String(length=64), nullable=False),
        sa.Column("camera_recording_id", sa.String(length=128), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("started_at", UTC(), nullable=True),
        sa.Column("stopped_at", UTC(), nullable=True),
        sa.Column("received_at", UTC(), nullable=False),
        sa.Column("files", sa.Text(), nullable=False),
        sa.Column("total_size", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("deadline", UTC(), nullable=True),
        sa.Column("decided_at", UTC(), nullable=False),
        sa.Column("finished_at", UTC(), nullable=True),
    )
    op.create_index("ix_tombstones_finished_at", "tombstones", ["finished_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("route", sa.String(length=300), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.UniqueConstraint("user_id", "key"),
    )
    op.create_index("ix_idempotency_created", "idempotency_keys", ["created_at"])
    _backfill()


def _backfill() -> None:
    days = int(os.environ.get("LOCKER_RETENTION_UNFLAGGED_DAYS", "31"))
    window = int(os.environ.get("LOCKER_RETENTION_REVIEW_WINDOW_DAYS", "7"))
    if op.get_bind().dialect.name == "postgresql":
        sql = ("UPDATE recordings SET delete_after = GREATEST("
               "sort_at + make_interval(days => :days), "
               "received_at + make_interval(days => :window))")
    else:
        # SQLite keeps naive UTC text; julianday arithmetic, rounded up a second.
        sql = ("UPDATE recordings SET delete_after = strftime('%Y-%m-%d %H:%M:%f000', max("
               "julianday(sort_at) + :days, julianday(received_at) + :window) + 1.0 / 86400)")
    op.get_bind().execute(sa.text(sql), {"days": days, "window": window})


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("tombstones")
    op.drop_table("retention_holds")
    op.drop_table("evidence_flags")
    op.drop_table("retention_categories")
    op.drop_index("ix_recordings_delete_after", table_name="recordings")
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy of recordings would trip foreign keys.
    op.drop_column("recordings", "retention_state")
    op.drop_column("recordings", "delete_after")
