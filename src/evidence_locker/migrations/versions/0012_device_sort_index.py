"""Recordings by camera, newest first: (device_serial, sort_at, id).

Without it a "device + week" search for someone who sees everything walks the (sort_at, id) index
backwards through every camera's week until it has found a page of one camera's recordings:
bench/scale.py measured p95 ~200 ms at 10 M rows.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # CONCURRENTLY on PostgreSQL so ingest keeps writing while it builds; SQLite ignores it.
    with op.get_context().autocommit_block():
        op.create_index("ix_recordings_device_sort", "recordings",
                        ["device_serial", "sort_at", "id"], postgresql_concurrently=True)


def downgrade() -> None:
    op.drop_index("ix_recordings_device_sort", "recordings")
