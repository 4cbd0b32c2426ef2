"""Migration 0006 turns what `issued_to_officer_id` said into open assignments."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from evidence_locker import db
from evidence_locker.fleet.rules import ASSIGNMENT_EPOCH


def test_issued_devices_become_open_assignments(db_url: str) -> None:
    cfg = db.alembic_config(db_url)
    command.downgrade(cfg, "0005")
    engine = db.make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO units (id, code, name, kind, path) "
                              "VALUES (1, 'F', 'Force', 'force', '/F/')"))
            conn.execute(text("INSERT INTO officers (id, collar, name, unit_id, active) "
                              "VALUES (7, '77', 'PC Seven', 1, true)"))
            conn.execute(text(
                "INSERT INTO devices (id, serial, mount, status, needs_review, "
                "issued_to_officer_id) VALUES (1, 'ISSUED', 'body', 'active', false, 7), "
                "(2, 'SPARE', 'body', 'spare', false, NULL)"))
        command.upgrade(cfg, "head")
        sessions = db.make_session_factory(engine)
        from evidence_locker.fleet.models import DeviceAssignment

        with db.transaction(sessions) as s:
            rows = s.query(DeviceAssignment).all()
            assert [(a.device_id, a.officer_id, a.starts_at, a.ends_at, a.created_by)
                    for a in rows] == [(1, 7, ASSIGNMENT_EPOCH, None, "migration 0006")]
    finally:
        engine.dispose()
