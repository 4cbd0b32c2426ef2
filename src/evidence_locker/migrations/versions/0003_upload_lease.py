"""Upload leases: one writer per upload across processes and nodes.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_locker.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(length=160), nullable=True))
        batch.add_column(sa.Column("lease_until", evidence_locker.db.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
