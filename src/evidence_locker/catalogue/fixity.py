"""Fixity: re-read stored media in batches and compare its SHA-256 with the catalogue, as digital
preservation practice asks. A mismatch or a missing object raises an alert and an audit event.

Claiming marks a batch as checked now (rows locked with SKIP LOCKED on PostgreSQL, so several
workers share the sweep); the bytes are then read outside any transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field

from sqlalchemy import or_, select, update

from evidence_locker.audit.service import Actor, record
from evidence_locker.catalogue.models import Blob, RecordingFile
from evidence_locker.db import transaction
from evidence_locker.runtime import Runtime
from evidence_locker.storage.base import BlobNotFound, StorageError

log = logging.getLogger(__name__)
FIXITY = Actor(type="system", name="fixity")


@dataclass
class FixityReport:
    checked: int = 0
    ok: int = 0
    bytes_read: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (sha256, mismatch|missing)


def _claim(runtime: Runtime, *, batch: int, cutoff: dt.datetime) -> list[tuple[str, int]]:
    now = runtime.clock.now()
    with transaction(runtime.sessions) as session:
        stmt = (
            select(Blob.sha256, Blob.size)
            .where(or_(Blob.fixity_checked_at.is_(None), Blob.fixity_checked_at < cutoff))
            .order_by(Blob.fixity_checked_at.asc().nulls_first(), Blob.sha256)
            .limit(batch)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = [(sha, int(size)) for sha, size in session.execute(stmt)]
        if rows:
            session.execute(update(Blob).where(Blob.sha256.in_([r[0] for r in rows]))
                            .values(fixity_checked_at=now))
    return rows


def _check(runtime: Runtime, sha256: str, size: int) -> tuple[str, int]:
    hasher = hashlib.sha256()
    read = 0
    try:
        for chunk in runtime.store.read_range(sha256, 0, None, chunk_size=8 * 1024 * 1024):
            hasher.update(chunk)
            read += len(chunk)
    except BlobNotFound:
        return "missing", read
    if hasher.hexdigest() != sha256 or read != size:
        return "mismatch", read
    return "ok", read


def fixity_sweep(runtime: Runtime, *, batch: int = 100, max_age: dt.timedelta,
                 max_batches: int = 1) -> FixityReport:
    """Check up to `batch × max_batches` blobs not checked within `max_age` of the sweep's start
    (so one sweep never checks a blob twice)."""
    report = FixityReport()
    cutoff = runtime.clock.now() - max_age
    for _ in range(max_batches):
        claimed = _claim(runtime, batch=batch, cutoff=cutoff)
        if not claimed:
            break
        for sha256, size in claimed:
            try:
                state, read = _check(runtime, sha256, size)
            except StorageError as exc:
                log.warning("fixity: cannot read %s now (%s); it stays due", sha256, exc)
                _unclaim(runtime, sha256)
                continue
            report.checked += 1
            report.bytes_read += read
            _record(runtime, sha256, size, state)
            if state == "ok":
                report.ok += 1
            else:
                report.failures.append((sha256, state))
    return report


def _unclaim(runtime: Runtime, sha256: str) -> None:
    """A blob that could not be read was not checked: make it due again at once."""
    with transaction(runtime.sessions) as session:
        session.execute(update(Blob).where(Blob.sha256 == sha256)
                        .values(fixity_checked_at=None))


def _record(runtime: Runtime, sha256: str, size: int, state: str) -> None:
    with transaction(runtime.sessions) as session:
        blob = session.get(Blob, sha256)
        if blob is None:
            return
        previous = blob.fixity_state
        blob.fixity_state = state
        if state == "ok":
            if previous in ("mismatch", "missing"):
                record(session, clock=runtime.clock, actor=FIXITY, action="fixity.restored",
                       object_type="blob", object_id=sha256, details={"was": previous})
            return
        files = session.execute(
            select(RecordingFile.id, RecordingFile.recording_id)
            .where(RecordingFile.sha256 == sha256)).all()
        log.error("FIXITY FAILURE: blob %s is %s (%d file(s) refer to it)", sha256, state,
                  len(files))
        record(session, clock=runtime.clock, actor=FIXITY, action="fixity.failed",
               object_type="blob", object_id=sha256,
               details={"state": state, "size": size,
                        "files": [{"file_id": f, "recording_id": str(r)} for f, r in files]})


def fixity_failures(runtime: Runtime) -> int:
    from sqlalchemy import func

    with transaction(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(Blob).where(
            Blob.fixity_state.in_(["mismatch", "missing"]))) or 0)
