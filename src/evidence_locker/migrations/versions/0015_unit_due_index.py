"""Recordings of a unit by deadline, soonest first: (unit_id, delete_after, id).

The due-for-deletion search (`GET /api/v1/recordings?due_within_days=N`, the /retention/due page
and the weekly digest) pages a supervisor's units soonest due first; without it each unit's
branch would walk the force-wide `delete_after` index past every other unit's deadlines.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # CONCURRENTLY on PostgreSQL so ingest keeps writing while it builds; SQLite ignores it.
    with op.get_context().autocommit_block():
        op.create_index("ix_recordings_unit_due", "recordings",
                        ["unit_id", "delete_after", "id"], postgresql_concurrently=True)


def downgrade() -> None:
    op.drop_index("ix_recordings_unit_due", "recordings")
