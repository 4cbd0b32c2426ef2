"""Three indexes the retention sweep needs at catalogue scale.

- `ix_recording_files_poster` (poster_sha256, where set): each sweep batch asks whether a live
  file still uses any of the batch's posters; without it that question scanned every file row,
  so a sweep's cost grew with the square of the catalogue (240 recordings/s at 200,000 rows
  against 720/s at 5,000).
- `ix_recordings_deleting` (where retention_state = 'deleting'): the recordings a crashed sweep
  left half-deleted, found at the start of each run without scanning the catalogue.
- `ix_uploads_file_id`: the sweep detaches the uploads of the files it deletes, and SQLite
  checks the uploads' foreign key for each file row deleted; both scanned every upload.

A test (tests/lifecycle/test_sweep.py) asks SQLite for the plan of every query a sweep runs.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # CONCURRENTLY on PostgreSQL so ingest keeps writing while they build; SQLite ignores it.
    with op.get_context().autocommit_block():
        op.create_index("ix_recording_files_poster", "recording_files", ["poster_sha256"],
                        postgresql_concurrently=True,
                        sqlite_where=sa.text("poster_sha256 IS NOT NULL"),
                        postgresql_where=sa.text("poster_sha256 IS NOT NULL"))
        op.create_index("ix_recordings_deleting", "recordings", ["retention_state"],
                        postgresql_concurrently=True,
                        sqlite_where=sa.text("retention_state = 'deleting'"),
                        postgresql_where=sa.text("retention_state = 'deleting'"))
        op.create_index("ix_uploads_file_id", "uploads", ["file_id"],
                        postgresql_concurrently=True)


def downgrade() -> None:
    op.drop_index("ix_uploads_file_id", "uploads")
    op.drop_index("ix_recordings_deleting", "recordings")
    op.drop_index("ix_recording_files_poster", "recording_files")
