"""64-bit recording file ids; an index for "which cameras docked in this window".

recording_files grows by ~660,000 rows a day at the reference force: a 32-bit key (and its
sequence, which PostgreSQL types as integer for a serial column) runs out in about nine years.
The received_at index becomes (received_at, device_id), so the fleet rollout's "docked in the
last 24 h" is an index-only range scan. SQLite's INTEGER keys are 64-bit already.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE recording_files ALTER COLUMN id TYPE bigint")
        op.execute("ALTER SEQUENCE IF EXISTS recording_files_id_seq AS bigint")
        op.execute("ALTER TABLE uploads ALTER COLUMN file_id TYPE bigint")
    op.create_index("ix_recordings_received_device", "recordings", ["received_at", "device_id"])
    op.drop_index("ix_recordings_received_at", "recordings")


def downgrade() -> None:
    op.create_index("ix_recordings_received_at", "recordings", ["received_at"])
    op.drop_index("ix_recordings_received_device", "recordings")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE uploads ALTER COLUMN file_id TYPE integer")
        op.execute("ALTER SEQUENCE IF EXISTS recording_files_id_seq AS integer")
        op.execute("ALTER TABLE recording_files ALTER COLUMN id TYPE integer")
