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


def test_existing_review_flags_get_their_review_date(client, runtime, force, clock) -> None:
    """Migration 0014: review flags that predate it are due at recorded + the category's days
    (nothing was decided before it); other flags get no review date."""
    from evidence_locker.lifecycle.models import EvidenceFlag
    from life_helpers import configure, flag

    configure(runtime)
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="R1", clip=b"c")
    tok = force.tokens["officer1"]
    review_id = flag(client, tok, rid, category="crime - evidential").json()["id"]
    fixed_id = flag(client, tok, rid, category="use of force").json()["id"]
    with transaction(runtime.sessions) as s:
        rec = s.get(Recording, uuid.UUID(rid))
        assert rec is not None
        expected = rec.sort_at + dt.timedelta(days=6 * 365)
    cfg = alembic_config(runtime.settings.resolved_database_url)
    runtime.engine.dispose()
    command.downgrade(cfg, "0013")
    command.upgrade(cfg, "head")
    runtime.engine.dispose()
    with transaction(runtime.sessions) as s:
        due = s.get(EvidenceFlag, review_id)
        other = s.get(EvidenceFlag, fixed_id)
        assert due is not None and due.review_due_at is not None
        assert expected <= due.review_due_at <= expected + dt.timedelta(seconds=1)
        assert other is not None and other.review_due_at is None
