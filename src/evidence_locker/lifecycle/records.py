"""Deletion is never silent: the tombstones as rows for the force's records manager (CSV).

Tombstones hold no footage: what was deleted (camera, recording id, files' SHA-256 and sizes),
when it was recorded, decided and finished, and by which rule. Reading them is audited like any
other report, in the same transaction."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence_locker.audit.service import Actor, record
from evidence_locker.clock import Clock
from evidence_locker.fleet.models import Unit
from evidence_locker.lifecycle.models import Tombstone

COLUMNS = ("tombstone", "recording_id", "device_serial", "camera_recording_id", "unit",
           "officer_id", "started_at", "received_at", "rule", "deadline", "decided_at",
           "finished_at", "files", "total_size", "sha256")


def _iso(value: dt.datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def tombstone_rows(session: Session, *, since: dt.datetime | None = None,
                   until: dt.datetime | None = None, unit: str | None = None,
                   chunk: int = 1000) -> Iterator[tuple[str, ...]]:
    """Finished tombstones (deleted in [since, until), in `unit`'s subtree if given), oldest
    deletion first, read `chunk` rows at a time so a year of deletions is never in memory."""
    codes = {u.id: u.code for u in session.scalars(select(Unit))}
    stmt = select(Tombstone).where(Tombstone.finished_at.is_not(None))
    if since is not None:
        stmt = stmt.where(Tombstone.finished_at >= since)
    if until is not None:
        stmt = stmt.where(Tombstone.finished_at < until)
    if unit is not None:
        root = session.scalars(select(Unit).where(Unit.code == unit)).one_or_none()
        if root is None:
            raise LookupError(f"no unit {unit!r}")
        stmt = stmt.where(Tombstone.unit_id.in_(
            select(Unit.id).where(Unit.path.startswith(root.path))))
    stmt = stmt.order_by(Tombstone.finished_at, Tombstone.id).execution_options(yield_per=chunk)
    for t in session.scalars(stmt):
        files = json.loads(t.files)
        yield (str(t.id), str(t.recording_id), t.device_serial, t.camera_recording_id,
               codes.get(t.unit_id, "") if t.unit_id is not None else "",
               "" if t.officer_id is None else str(t.officer_id), _iso(t.started_at),
               _iso(t.received_at), t.rule, _iso(t.deadline), _iso(t.decided_at),
               _iso(t.finished_at), str(len(files)), str(t.total_size),
               " ".join(f"{f['kind']}:{f['sha256']}:{f['size']}" for f in files))


def csv_lines(rows: Iterator[tuple[str, ...]]) -> Iterator[str]:
    """The header and one CSV line per row, produced as they are read."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    yield buf.getvalue()
    for row in rows:
        buf.seek(0)
        buf.truncate()
        writer.writerow(row)
        yield buf.getvalue()


def audit_export(session: Session, *, clock: Clock, actor: Actor, via: str,
                 filters: dict[str, str]) -> None:
    """The export names deleted recordings: who read them is itself a record."""
    record(session, clock=clock, actor=actor, action="tombstones.exported",
           object_type="tombstone", details={"via": via, "filters": filters})
