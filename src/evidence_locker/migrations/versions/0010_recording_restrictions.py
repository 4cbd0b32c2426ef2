"""Restricted footage: restrictions (restricted | post-incident) and their access lists.

Restricted recordings are rare, so they live in a small table of their own that search joins
against (NOT EXISTS), leaving the recordings table and its sort indexes untouched.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_locker.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recording_restrictions",
        sa.Column("recording_id", sa.Uuid(), sa.ForeignKey("recordings.id"), primary_key=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("placed_at", evidence_locker.db.UTCDateTime(), nullable=False),
    )
    op.create_table(
        "restriction_access",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("recording_id", sa.Uuid(),
                  sa.ForeignKey("recording_restrictions.recording_id"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("added_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("added_at", evidence_locker.db.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("recording_id", "user_id"),
    )
    op.create_index("ix_restriction_access_user", "restriction_access",
                    ["user_id", "recording_id"])


def downgrade() -> None:
    op.drop_table("restriction_access")
    op.drop_table("recording_restrictions")
