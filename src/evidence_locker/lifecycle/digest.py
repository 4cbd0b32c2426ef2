"""The weekly digest per unit: what the retention sweep will delete from that unit in the next
week, so its supervisors can flag evidence in time.

One plain-text message per unit with anything due (its own recordings, not its sub-units', which
get their own), soonest first, written as files under `retention_digest_dir/<date>/<unit>.txt`
(atomically: a temporary name, fsync, rename) and logged, until a mail transport is configured.
Restricted recordings are left out: the digest goes to a unit's whole supervision, and a
restriction exists to keep a recording from them (professional standards see those on
/retention/due). Writing the digests is one audit event, in the transaction that read them.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evidence_locker.audit.service import Actor, record
from evidence_locker.catalogue.models import Recording, RecordingRestriction
from evidence_locker.clock import Clock
from evidence_locker.config import Settings
from evidence_locker.fleet.models import Officer, Unit

log = logging.getLogger(__name__)
DIGEST = Actor(type="system", name="retention digest")
#: Recordings listed per unit; the count beyond is given ("and N more": the page has them all).
LISTED_MAX = 500


@dataclass
class UnitDigest:
    code: str
    name: str
    total: int
    until: dt.datetime
    items: list[tuple[dt.datetime, dt.datetime, str, str, str]] = field(default_factory=list)
    # (delete_after, recorded, officer, camera, recording id)


def _due(until: dt.datetime) -> list[Any]:
    unrestricted = ~select(RecordingRestriction.recording_id).where(
        RecordingRestriction.recording_id == Recording.id).exists()
    return [Recording.delete_after <= until, Recording.retention_state == "live", unrestricted]


def unit_digests(session: Session, *, now: dt.datetime, days: int = 7,
                 listed_max: int = LISTED_MAX) -> list[UnitDigest]:
    """Each unit with unrestricted recordings due for deletion by now + `days`, by unit code."""
    until = now + dt.timedelta(days=days)
    conds = _due(until)
    counts = dict(session.execute(select(Recording.unit_id, func.count(Recording.id))
                                  .where(Recording.unit_id.is_not(None), *conds)
                                  .group_by(Recording.unit_id)).all())
    out = []
    for unit in session.scalars(select(Unit).where(Unit.id.in_(list(counts)))
                                .order_by(Unit.code)):
        digest = UnitDigest(unit.code, unit.name, counts[unit.id], until)
        rows = session.execute(
            select(Recording.delete_after, Recording.sort_at, Officer.collar, Officer.name,
                   Recording.device_serial, Recording.id)
            .outerjoin(Officer, Officer.id == Recording.officer_id)
            .where(Recording.unit_id == unit.id, *conds)
            .order_by(Recording.delete_after, Recording.id).limit(listed_max)).all()
        for due, recorded, collar, name, device, rid in rows:
            assert due is not None  # the filter compares it
            who = f"{name} ({collar})" if collar else "unknown officer"
            digest.items.append((due, recorded, who, device, str(rid)))
        out.append(digest)
    return out


def render(digest: UnitDigest, *, force_name: str, zone: str) -> str:
    """The message, as a mail body would carry it."""
    tz = ZoneInfo(zone)

    def local(when: dt.datetime) -> str:
        return when.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")

    lines = [f"{force_name}: due for deletion, {digest.code} ({digest.name})", "",
             f"{digest.total} recording(s) of {digest.code} will be deleted by the retention "
             f"sweep on or before {local(digest.until)} unless flagged as evidence or held.",
             "Open a recording's evidence page to flag it: /recordings/<id>/evidence "
             f"(the full list: /retention/due?unit={digest.code}).", "",
             "Deleted after        Recorded             Officer / camera / recording"]
    for due, recorded, who, device, rid in digest.items:
        lines.append(f"{local(due):<20} {local(recorded):<20} {who} / {device} / {rid}")
    if digest.total > len(digest.items):
        lines.append(f"... and {digest.total - len(digest.items)} more.")
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_digests(session: Session, *, clock: Clock, settings: Settings, days: int = 7,
                  out_dir: Path | None = None, actor: Actor = DIGEST) -> list[Path]:
    """Render every unit's digest into `out_dir/<local date>/<unit>.txt` (default: the
    configured directory) and audit it; returns the files written."""
    now = clock.now()
    base = (out_dir or settings.resolved_retention_digest_dir) / \
        now.astimezone(ZoneInfo(settings.timezone)).date().isoformat()
    base.mkdir(parents=True, exist_ok=True)
    digests = unit_digests(session, now=now, days=days)
    paths = []
    for d in digests:
        path = base / f"{_safe(d.code)}.txt"
        _write(path, render(d, force_name=settings.force_name, zone=settings.timezone))
        paths.append(path)
        log.info("retention digest: %s, %d due, written to %s", d.code, d.total, path)
    record(session, clock=clock, actor=actor, action="retention.digest_written",
           object_type="unit", details={"days": days, "directory": str(base),
                                        "units": {d.code: d.total for d in digests}})
    return paths


def _safe(code: str) -> str:
    """A unit code as a file name (codes are the force's, but a path is no place to trust)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in code).lstrip(".") or "_"
