"""A deleted restricted recording's tombstone keeps its restriction and access list, so that it
is shown only to whom the recording was: a `restricted` one to its list and professional
standards, a `post-incident` one to its list only. Tombstones written before this record no
restriction: the restriction rows went with the recording, so there is nothing to fill them
from (the recording's audit trail still names any restriction).

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tombstones") as batch:
        batch.add_column(sa.Column("restriction", sa.String(length=16), nullable=True))
    op.create_table(
        "tombstone_access",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tombstone_id", sa.Integer(), sa.ForeignKey("tombstones.id"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.UniqueConstraint("tombstone_id", "user_id"),
    )
    op.create_index("ix_tombstone_access_user", "tombstone_access", ["user_id", "tombstone_id"])


def downgrade() -> None:
    op.drop_index("ix_tombstone_access_user", table_name="tombstone_access")
    op.drop_table("tombstone_access")
    with op.batch_alter_table("tombstones") as batch:
        batch.drop_column("restriction")
