"""Deletion is never silent: the tombstones for the force's records manager, as JSON pages, CSV,
and a deletion certificate per tombstone.

Tombstones hold no footage: what was deleted (camera, recording id, files' SHA-256 and sizes),
when it was recorded, decided and finished, and by which rule. A certificate adds the deleted
recording's audit trail (its deletion decision and its deletion among it) with the chain checked
and the covering signed checkpoint, so the records manager can show what went, when, why, and
that the record of it is intact. Reading any of it is audited like any other report, in the same
transaction."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, or_, select, tuple_
from sqlalchemy.orm import Session

from evidence_locker.accounts.roles import RESTRICTED, Principal, may_know_of_restricted
from evidence_locker.audit import reports
from evidence_locker.audit.models import AuditEvent
from evidence_locker.audit.service import Actor, record
from evidence_locker.audit.signing import KeyRing
from evidence_locker.clock import Clock
from evidence_locker.fleet.models import Officer, Unit
from evidence_locker.lifecycle.models import Tombstone, TombstoneAccess
from evidence_locker.lifecycle.reviews import decode_cursor, encode_cursor

COLUMNS = ("tombstone", "recording_id", "device_serial", "camera_recording_id", "unit",
           "officer_id", "started_at", "received_at", "rule", "deadline", "decided_at",
           "finished_at", "files", "total_size", "sha256", "restriction")


def _iso(value: dt.datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def unit_named(session: Session, unit: str | None) -> Unit | None:
    """The unit a filter names (LookupError: no such unit; None: no filter)."""
    if unit is None:
        return None
    root = session.scalars(select(Unit).where(Unit.code == unit)).one_or_none()
    if root is None:
        raise LookupError(f"no unit {unit!r}")
    return root


def shown_to(viewer: Principal) -> ColumnElement[bool]:
    """The tombstones `viewer` may know of: every unrestricted one, and a restricted recording's
    only as `roles.may_know_of_restricted` says of the recording (its list; professional
    standards unless post-incident)."""
    listed = exists().where(TombstoneAccess.tombstone_id == Tombstone.id,
                            TombstoneAccess.user_id == viewer.user_id)
    shown = [Tombstone.restriction.is_(None), listed]
    if may_know_of_restricted(viewer, RESTRICTED, frozenset()):
        shown.append(Tombstone.restriction == RESTRICTED)
    return or_(*shown)


def _finished(session: Session, *, since: dt.datetime | None, until: dt.datetime | None,
              unit: str | None, viewer: Principal | None) -> Select[Any]:
    """Finished tombstones deleted in [since, until), in `unit`'s subtree if given, that
    `viewer` may know of (None: all, for the platform's own CLI)."""
    stmt = select(Tombstone).where(Tombstone.finished_at.is_not(None))
    if viewer is not None:
        stmt = stmt.where(shown_to(viewer))
    if since is not None:
        stmt = stmt.where(Tombstone.finished_at >= since)
    if until is not None:
        stmt = stmt.where(Tombstone.finished_at < until)
    root = unit_named(session, unit)
    if root is not None:
        stmt = stmt.where(Tombstone.unit_id.in_(
            select(Unit.id).where(Unit.path.startswith(root.path))))
    return stmt


def tombstone_rows(session: Session, *, since: dt.datetime | None = None,
                   until: dt.datetime | None = None, unit: str | None = None,
                   viewer: Principal | None = None,
                   chunk: int = 1000) -> Iterator[tuple[str, ...]]:
    """Finished tombstones (deleted in [since, until), in `unit`'s subtree if given), oldest
    deletion first, read `chunk` rows at a time so a year of deletions is never in memory."""
    codes = {u.id: u.code for u in session.scalars(select(Unit))}
    stmt = _finished(session, since=since, until=until, unit=unit, viewer=viewer) \
        .order_by(Tombstone.finished_at, Tombstone.id).execution_options(yield_per=chunk)
    for t in session.scalars(stmt):
        files = json.loads(t.files)
        yield (str(t.id), str(t.recording_id), t.device_serial, t.camera_recording_id,
               codes.get(t.unit_id, "") if t.unit_id is not None else "",
               "" if t.officer_id is None else str(t.officer_id), _iso(t.started_at),
               _iso(t.received_at), t.rule, _iso(t.deadline), _iso(t.decided_at),
               _iso(t.finished_at), str(len(files)), str(t.total_size),
               " ".join(f"{f['kind']}:{f['sha256']}:{f['size']}" for f in files),
               t.restriction or "")


def tombstone_json(session: Session, t: Tombstone) -> dict[str, Any]:
    unit = session.get(Unit, t.unit_id) if t.unit_id is not None else None
    officer = session.get(Officer, t.officer_id) if t.officer_id is not None else None
    return {"id": t.id, "recording_id": str(t.recording_id), "device": t.device_serial,
            "camera_recording_id": t.camera_recording_id,
            "unit": unit.code if unit else None,
            "officer": officer.collar if officer else None,
            "started_at": _iso(t.started_at) or None, "stopped_at": _iso(t.stopped_at) or None,
            "received_at": _iso(t.received_at), "rule": t.rule,
            "deadline": _iso(t.deadline) or None, "decided_at": _iso(t.decided_at),
            "finished_at": _iso(t.finished_at) or None, "total_size": t.total_size,
            "restriction": t.restriction,  # only ever seen by whom it admitted (`shown_to`)
            "files": [{k: f.get(k) for k in ("kind", "index", "filename", "sha256", "size",
                                             "poster_sha256")} for f in json.loads(t.files)]}


def tombstone_page(session: Session, *, since: dt.datetime | None = None,
                   until: dt.datetime | None = None, unit: str | None = None, limit: int = 50,
                   cursor: str | None = None, viewer: Principal | None = None
                   ) -> tuple[list[dict[str, Any]], str | None]:
    """One page of finished tombstones, oldest deletion first; the cursor is the last one seen
    (the sweep only adds newer ones, so pages stay stable)."""
    stmt = _finished(session, since=since, until=until, unit=unit, viewer=viewer)
    if cursor:
        at, tid = decode_cursor(cursor)
        stmt = stmt.where(tuple_(Tombstone.finished_at, Tombstone.id) > tuple_(at, tid))
    rows = list(session.scalars(stmt.order_by(Tombstone.finished_at, Tombstone.id)
                                .limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    next_cursor = encode_cursor(last.finished_at, last.id) \
        if last is not None and last.finished_at is not None else None
    return [tombstone_json(session, t) for t in rows], next_cursor


@dataclass
class Certificate:
    tombstone: Tombstone
    events: list[AuditEvent]
    chain: reports.ChainStatus


def certificate(session: Session, *, tombstone_id: int, keys: KeyRing | None,
                viewer: Principal | None = None) -> Certificate:
    """A finished tombstone with the deleted recording's whole audit trail, chain checked
    (LookupError: no such finished tombstone, or none `viewer` may know of; an unfinished one
    is not a deletion yet)."""
    t = session.scalars(_finished(session, since=None, until=None, unit=None, viewer=viewer)
                        .where(Tombstone.id == tombstone_id)).one_or_none()
    if t is None:
        raise LookupError("no such deletion")
    events = list(reports.every(session, reports.recording_trail(str(t.recording_id))))
    return Certificate(t, events, reports.chain_status(session, events, keys=keys))


def certificate_facts(session: Session, cert: Certificate) -> list[str]:
    """The tombstone as lines for the certificate's PDF."""
    d = tombstone_json(session, cert.tombstone)
    lines = [f"Recording {d['recording_id']} (camera {d['device']}, its recording "
             f"{d['camera_recording_id']}); officer {d['officer'] or 'unknown'}, unit "
             f"{d['unit'] or 'none'}.",
             f"Recorded {d['started_at'] or 'unknown'} to {d['stopped_at'] or 'unknown'}; "
             f"received {d['received_at']}.",
             f"Deleted under the rule '{d['rule']}' (deadline {d['deadline'] or 'none'}): "
             f"decided {d['decided_at']}, finished {d['finished_at']}; "
             f"{len(d['files'])} file(s), {d['total_size']} bytes.",
             "Files deleted (SHA-256, bytes):"]
    if d["restriction"]:  # (a certificate is only made for those the restriction admits)
        lines.insert(3, f"The recording was {d['restriction']}: this record of its deletion "
                        "is shown only to whom the restriction admitted.")
    lines += [f"  {f['kind']} {f['index']} {f['filename']}: {f['sha256']} ({f['size']})"
              for f in d["files"]]
    return lines


def csv_lines(rows: Iterator[tuple[str, ...]]) -> Iterator[str]:
    """The header and one CSV line per row, produced as they are read."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    yield buf.getvalue()
    for row in rows:
        buf.seek(0)
        buf.truncate()
        # Camera serials and file names come from devices: no cell a spreadsheet would run.
        writer.writerow([reports.csv_cell(v) for v in row])
        yield buf.getvalue()


def audit_export(session: Session, *, clock: Clock, actor: Actor, via: str,
                 filters: dict[str, str]) -> None:
    """The export names deleted recordings: who read them is itself a record."""
    record(session, clock=clock, actor=actor, action="tombstones.exported",
           object_type="tombstone", details={"via": via, "filters": filters})
