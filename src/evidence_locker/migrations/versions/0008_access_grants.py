"""Access grants: the purpose and reason given before playing someone else's footage.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_locker.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_grants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("recording_id", sa.Uuid(), sa.ForeignKey("recordings.id"), nullable=False),
        sa.Column("purpose", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", evidence_locker.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", evidence_locker.db.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_access_grants_user_id", "access_grants", ["user_id"])
    op.create_index("ix_access_grants_recording_id", "access_grants", ["recording_id"])


def downgrade() -> None:
    op.drop_table("access_grants")
