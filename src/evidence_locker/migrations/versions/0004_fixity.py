"""Fixity: when each blob was last re-read and hashed, and what that found.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_locker.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("blobs") as batch:
        batch.add_column(sa.Column("fixity_checked_at", evidence_locker.db.UTCDateTime(),
                                   nullable=True))
        batch.add_column(sa.Column("fixity_state", sa.String(length=16), nullable=False,
                                   server_default="unchecked"))
        batch.create_index("ix_blobs_fixity_checked_at", ["fixity_checked_at"])
    # Pending probe work is found by state and age (the stalled-job sweep).
    op.create_index("ix_recording_files_media_state", "recording_files",
                    ["media_state", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_recording_files_media_state", "recording_files")
    with op.batch_alter_table("blobs") as batch:
        batch.drop_index("ix_blobs_fixity_checked_at")
        batch.drop_column("fixity_state")
        batch.drop_column("fixity_checked_at")
