"""Cases (issue 6) and the watchdog's grants on them (issue 5): cases, case_owners,
case_recordings, case_grants. No existing row changes.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_locker.db

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

UTC = evidence_locker.db.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reference", sa.String(length=64), nullable=False, unique=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("unit_id", sa.Integer(), sa.ForeignKey("units.id"), nullable=False),
        sa.Column("opened_at", UTC(), nullable=False),
        sa.Column("opened_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("status_changed_at", UTC(), nullable=False),
        sa.Column("closed_at", UTC(), nullable=True),
        sa.Column("closed_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_cases_status", "cases", ["status"])
    op.create_index("ix_cases_unit_id", "cases", ["unit_id"])
    op.create_table(
        "case_owners",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("added_at", UTC(), nullable=False),
        sa.Column("added_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("removed_at", UTC(), nullable=True),
        sa.Column("removed_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
    )
    op.create_index("ix_case_owners_case_id", "case_owners", ["case_id"])
    op.create_index("ix_case_owners_user_id", "case_owners", ["user_id"])
    op.create_table(
        "case_recordings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("added_at", UTC(), nullable=False),
        sa.Column("added_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("added_reason", sa.Text(), nullable=False),
        sa.Column("removed_at", UTC(), nullable=True),
        sa.Column("removed_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("removed_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_case_recordings_case_id", "case_recordings", ["case_id"])
    op.create_index("ix_case_recordings_recording", "case_recordings",
                    ["recording_id", "removed_at"])
    op.create_table(
        "case_grants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("granted_at", UTC(), nullable=False),
        sa.Column("granted_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("revoked_at", UTC(), nullable=True),
        sa.Column("revoked_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_case_grants_case_id", "case_grants", ["case_id"])
    op.create_index("ix_case_grants_user", "case_grants", ["user_id", "revoked_at"])


def downgrade() -> None:
    op.drop_table("case_grants")
    op.drop_table("case_recordings")
    op.drop_table("case_owners")
    op.drop_table("cases")
