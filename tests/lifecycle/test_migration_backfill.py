"""Migration 0013 gives recordings that predate it the unflagged default deadline."""

from __future__ import annotations

import datetime as dt
import uuid

from alembic import command

from cat_helpers import record_camera
from evidence_locker.catalogue.models import Recording
from evidence_locker.db import alembic_config, transaction


def test_existing_recordings_get_the_default_deadline(client, runtime, force, clock) -> None:
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="R1", clip=b"c")
    with transaction(runtime.sessions) as s:
        rec = s.get(Recording, uuid.UUID(rid))
        assert rec is not None
        expected = max(rec.sort_at + dt.timedelta(days=31),
                       rec.received_at + dt.timedelta(days=7))
    cfg = alembic_config(runtime.settings.resolved_database_url)
    runtime.engine.dispose()
    command.downgrade(cfg, "0012")
    command.upgrade(cfg, "head")
    runtime.engine.dispose()
    with transaction(runtime.sessions) as s:
        rec = s.get(Recording, uuid.UUID(rid))
        assert rec is not None and rec.delete_after is not None
        # Never earlier; SQLite's arithmetic is rounded up to at most a second later.
        assert expected <= rec.delete_after <= expected + dt.timedelta(seconds=1)
        assert rec.retention_state == "live"
