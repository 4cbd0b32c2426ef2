"""The database itself refuses UPDATE and DELETE on the audit log, except the sequencer's one-time
filling of the chain fields (seq, prev_hash, hash, sequenced_at) on a row that has none.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CONTENT = [
    "id", "occurred_at", "action", "actor_type", "actor_id", "actor_name", "object_type",
    "object_id", "ip", "user_agent", "purpose", "reason", "details",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in CONTENT)
        op.execute(
            "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
            f"WHEN OLD.seq IS NOT NULL OR NEW.seq IS NULL OR NEW.hash IS NULL OR {changed} "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
        )
    elif dialect == "postgresql":
        changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in CONTENT)
        op.execute(
            f"""
            CREATE FUNCTION audit_events_guard() RETURNS trigger AS $$
            BEGIN
              IF TG_OP = 'DELETE' THEN
                RAISE EXCEPTION 'audit_events is append-only';
              END IF;
              IF OLD.seq IS NOT NULL OR NEW.seq IS NULL OR NEW.hash IS NULL OR {changed} THEN
                RAISE EXCEPTION 'audit_events is append-only';
              END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql;
            """
        )
        op.execute(
            "CREATE TRIGGER audit_events_guard BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_guard()"
        )
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database {dialect}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER audit_events_no_delete")
        op.execute("DROP TRIGGER audit_events_no_update")
    else:
        op.execute("DROP TRIGGER audit_events_guard ON audit_events")
        op.execute("DROP FUNCTION audit_events_guard()")
