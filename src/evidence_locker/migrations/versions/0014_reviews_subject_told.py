"""Review decisions on review-kind evidence flags (retain with a reason and a next review date,
or dispose), each flag's `review_due_at` (the review queue's index), and whether the subject of
a recording was told it was being recorded.

Existing active review flags get their review date, recorded + the category's days (nothing was
decided before this revision), in one UPDATE.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_locker.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

UTC = evidence_locker.db.UTCDateTime


def upgrade() -> None:
    op.add_column("evidence_flags", sa.Column("review_due_at", UTC(), nullable=True))
    op.create_index("ix_evidence_flags_review_due_at", "evidence_flags", ["review_due_at"])
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("flag_id", sa.Integer(), sa.ForeignKey("evidence_flags.id"), nullable=False),
        sa.Column("recording_id", sa.Uuid(), sa.ForeignKey("recordings.id"), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("review_was_due_at", UTC(), nullable=False),
        sa.Column("next_review_at", UTC(), nullable=True),
        sa.Column("decided_at", UTC(), nullable=False),
        sa.Column("decided_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("decided_role", sa.String(length=32), nullable=False),
    )
    op.create_index("ix_review_decisions_flag_id", "review_decisions", ["flag_id"])
    op.create_index("ix_review_decisions_recording_id", "review_decisions", ["recording_id"])
    op.create_table(
        "subject_told",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("recording_id", sa.Uuid(), sa.ForeignKey("recordings.id"), nullable=False),
        sa.Column("told", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", UTC(), nullable=False),
        sa.Column("recorded_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("recorded_role", sa.String(length=32), nullable=False),
    )
    op.create_index("ix_subject_told_recording_current", "subject_told",
                    ["recording_id", "current"])
    _backfill()


_POSTGRESQL = (
    "UPDATE evidence_flags SET review_due_at = (SELECT r.sort_at + make_interval(days => c.days) "
    "FROM recordings r, retention_categories c WHERE r.id = evidence_flags.recording_id "
    "AND c.id = evidence_flags.category_id) WHERE withdrawn_at IS NULL AND category_id IN "
    "(SELECT id FROM retention_categories WHERE kind = 'review')")
# SQLite keeps naive UTC text; julianday arithmetic, rounded up a second as in 0013.
_SQLITE = (
    "UPDATE evidence_flags SET review_due_at = (SELECT strftime('%Y-%m-%d %H:%M:%f000', "
    "julianday(r.sort_at) + c.days + 1.0 / 86400) "
    "FROM recordings r, retention_categories c WHERE r.id = evidence_flags.recording_id "
    "AND c.id = evidence_flags.category_id) WHERE withdrawn_at IS NULL AND category_id IN "
    "(SELECT id FROM retention_categories WHERE kind = 'review')")


def _backfill() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.get_bind().execute(sa.text(_POSTGRESQL if postgres else _SQLITE))


def downgrade() -> None:
    op.drop_table("subject_told")
    op.drop_table("review_decisions")
    op.drop_index("ix_evidence_flags_review_due_at", table_name="evidence_flags")
    op.drop_column("evidence_flags", "review_due_at")
