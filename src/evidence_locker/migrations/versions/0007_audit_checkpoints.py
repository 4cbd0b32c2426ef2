"""Signed audit checkpoints: a table of signed chain heads, append-only like the log itself.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_locker.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UTC = evidence_locker.db.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("signed_at", UTC(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("prev_digest", sa.String(length=64), nullable=True),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    op.create_index(op.f("ix_audit_checkpoints_seq"), "audit_checkpoints", ["seq"])
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_checkpoints_no_{verb.lower()} BEFORE {verb} ON "
                "audit_checkpoints BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); "
                "END"
            )
    elif dialect == "postgresql":
        op.execute(
            """
            CREATE FUNCTION audit_checkpoints_guard() RETURNS trigger AS $$
            BEGIN
              RAISE EXCEPTION 'audit_checkpoints is append-only';
            END $$ LANGUAGE plpgsql;
            """
        )
        op.execute(
            "CREATE TRIGGER audit_checkpoints_guard BEFORE UPDATE OR DELETE ON audit_checkpoints "
            "FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_guard()"
        )
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database {dialect}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER audit_checkpoints_no_update")
        op.execute("DROP TRIGGER audit_checkpoints_no_delete")
    else:
        op.execute("DROP TRIGGER audit_checkpoints_guard ON audit_checkpoints")
        op.execute("DROP FUNCTION audit_checkpoints_guard()")
    op.drop_index(op.f("ix_audit_checkpoints_seq"), table_name="audit_checkpoints")
    op.drop_table("audit_checkpoints")
