"""The retention sweep: delete exactly what the rule of deletion allows, leaving a tombstone.

Per recording, in three steps, so a crash anywhere is resumed by the next run:

1. *Decide*, in one transaction with the recording row locked (PostgreSQL: `FOR UPDATE SKIP
   LOCKED`, so sweeps in parallel take different rows; a flag or hold being written holds the
   same lock): check the rule again on the current flags and holds; if it still allows deletion,
   write the tombstone (unfinished), mark the recording `deleting` and audit the decision. A flag
   or hold that committed first wins; one that comes after finds the recording `deleting` and is
   refused (409), since the decision was taken on the facts as they were.
2. *Remove the bytes*: every blob of its files and their posters that no other recording's file
   refers to, through the store opened with the LIFECYCLE credential (governance retention
   bypassed; a storage legal hold left over from a hold already released in the catalogue is
   lifted first), in one transaction holding those blobs' rows locked, as ingest does while
   it installs identical bytes, so footage docked meanwhile is never left without them.
   Deleting a missing blob is not an error, so this step can run twice.
3. *Finish*, in one transaction: remove the recording's catalogue rows, finish the tombstone
   and audit the deletion. The audit chain itself is never touched.

The sweep uses the runtime's clock; `locker retention run` has only the real one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass, field

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from evidence_locker.audit.service import Actor, record
from evidence_locker.catalogue.models import (
    AccessGrant,
    Blob,
    Recording,
    RecordingFile,
    RecordingRestriction,
    RestrictionAccess,
)
from evidence_locker.clock import Clock
from evidence_locker.config import Settings
from evidence_locker.db import transaction
from evidence_locker.fleet.models import AttributionConflict
from evidence_locker.ingest.models import Upload
from evidence_locker.lifecycle import rules
from evidence_locker.lifecycle.models import (
    EvidenceFlag,
    Hold,
    IdempotencyKey,
    ReviewDecision,
    SubjectTold,
    Tombstone,
)
from evidence_locker.lifecycle.service import facts_of, policy_of
from evidence_locker.storage.base import BlobLocked, BlobStore

log = logging.getLogger(__name__)
SWEEP = Actor(type="system", name="retention sweep")
IDEMPOTENCY_KEEP = dt.timedelta(hours=24)


@dataclass
class SweepResult:
    deleted: int = 0
    kept: int = 0  # due by the stored date, but the rule said no (date recomputed)
    resumed: int = 0
    failed: list[str] = field(default_factory=list)
    bytes_deleted: int = 0


def _due(session: Session, *, now: dt.datetime, batch: int) -> list[Recording]:
    query = (select(Recording).where(Recording.delete_after <= now,
                                     Recording.retention_state == "live")
             .order_by(Recording.delete_after).limit(batch))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def decide(session: Session, *, clock: Clock, settings: Settings, rec: Recording,
           actor: Actor = SWEEP) -> bool:
    """With the row locked: delete it (tombstone, `deleting`, audit) if the rule still allows,
    else store its true deadline. Returns whether it was decided for deletion."""
    policy = policy_of(settings)
    f = facts_of(session, rec)
    now = clock.now()
    if not rules.may_delete(policy, f.facts, now):
        rec.delete_after = rules.delete_after(policy, f.facts)
        return False
    files = [{"kind": x.kind, "index": x.index, "filename": x.filename, "sha256": x.sha256,
              "size": x.size, "poster_sha256": x.poster_sha256} for x in rec.files]
    rule = rules.rule_name(policy, f.facts, f.categories)
    deadline = rules.deadline(policy, f.facts)
    session.add(Tombstone(
        recording_id=rec.id, device_serial=rec.device_serial,
        camera_recording_id=rec.camera_recording_id, officer_id=rec.officer_id,
        unit_id=rec.unit_id, started_at=rec.started_at, stopped_at=rec.stopped_at,
        received_at=rec.received_at, files=json.dumps(files),
        total_size=sum(int(x["size"] or 0) for x in files), rule=rule, deadline=deadline,
        decided_at=now))
    rec.retention_state = "deleting"
    record(session, clock=clock, actor=actor, action="recording.deletion_decided",
           object_type="recording", object_id=str(rec.id), reason=rule,
           details={"deadline": deadline.isoformat() if deadline else None,
                    "files": len(files), "categories": list(f.categories)})
    return True


def _shas_of(session: Session, rec_id: uuid.UUID) -> list[str]:
    """The blobs of a recording's files and their posters."""
    mine = session.execute(select(RecordingFile.sha256, RecordingFile.poster_sha256).where(
        RecordingFile.recording_id == rec_id)).all()
    return sorted({s for s, _ in mine} | {p for _, p in mine if p})


def _blobs_to_delete(session: Session, rec_id: uuid.UUID) -> list[str]:
    """This recording's blobs and posters that no live recording's file refers to (files of
    recordings also being deleted do not count, so two sweeps finishing recordings that share a
    blob cannot each leave it to the other)."""
    out = []
    for sha in _shas_of(session, rec_id):
        shared = session.scalar(select(exists().where(
            RecordingFile.recording_id != rec_id,
            RecordingFile.recording_id == Recording.id, Recording.retention_state == "live",
            (RecordingFile.sha256 == sha) | (RecordingFile.poster_sha256 == sha))))
        if not shared:
            out.append(sha)
    return out


def _remove(store: BlobStore, sha: str) -> None:
    try:
        store.delete(sha, bypass_governance=True)
    except BlobLocked:
        # The catalogue has no active hold (checked under the lock): a storage legal hold is a
        # leftover mirror of one already released, so the lifecycle credential lifts it.
        store.set_legal_hold(sha, False)
        store.delete(sha, bypass_governance=True)


def finish(sessions: sessionmaker[Session], *, clock: Clock, store: BlobStore,
           recording_id: uuid.UUID, actor: Actor = SWEEP) -> int | None:
    """Steps 2 and 3 for a recording marked `deleting`; returns the bytes it freed (None if
    another sweep finished it first)."""
    with transaction(sessions) as session:
        # The bytes go under their blob rows' locks (taken in one order, so two sweeps cannot
        # deadlock), the lock ingest holds from installing identical bytes until the file that
        # uses them commits (catalogue.service.lock_blob): a file that committed first keeps
        # the blob; an upload that comes after finds the bytes gone and installs its own.
        session.execute(select(Blob.sha256).where(Blob.sha256.in_(_shas_of(
            session, recording_id))).order_by(Blob.sha256).with_for_update()).all()
        shas = _blobs_to_delete(session, recording_id)
        sizes: dict[str, int] = {sha: size for sha, size in session.execute(
            select(Blob.sha256, Blob.size).where(Blob.sha256.in_(shas)))} if shas else {}
        for sha in shas:
            _remove(store, sha)
    with transaction(sessions) as session:
        rec = session.scalars(select(Recording).where(Recording.id == recording_id)
                              .with_for_update()).one_or_none()
        if rec is None or rec.retention_state != "deleting":
            return None
        file_ids = select(RecordingFile.id).where(RecordingFile.recording_id == rec.id)
        session.execute(update(Upload).where(Upload.file_id.in_(file_ids))
                        .values(file_id=None))
        session.execute(delete(RecordingFile).where(RecordingFile.recording_id == rec.id))
        for model in (AccessGrant, RestrictionAccess, ReviewDecision, SubjectTold, EvidenceFlag,
                      Hold, AttributionConflict):
            session.execute(delete(model).where(model.recording_id == rec.id))
        session.execute(delete(RecordingRestriction).where(
            RecordingRestriction.recording_id == rec.id))
        session.flush()
        # Blob rows go with their bytes, unless another file arrived for them meanwhile (its
        # upload holds the row's lock until it commits, so take the lock before looking).
        session.execute(select(Blob.sha256).where(Blob.sha256.in_(shas))
                        .order_by(Blob.sha256).with_for_update()).all()
        for sha in shas:
            if not session.scalar(select(exists().where(RecordingFile.sha256 == sha))):
                session.execute(delete(Blob).where(Blob.sha256 == sha))
        session.expunge(rec)
        session.execute(delete(Recording).where(Recording.id == recording_id))
        tomb = session.scalars(select(Tombstone).where(
            Tombstone.recording_id == recording_id)).one()
        tomb.finished_at = clock.now()
        freed = sum(sizes.values())
        record(session, clock=clock, actor=actor, action="recording.deleted",
               object_type="recording", object_id=str(recording_id), reason=tomb.rule,
               details={"tombstone": tomb.id, "blobs_deleted": len(shas),
                        "bytes_deleted": freed, "total_size": tomb.total_size})
    return freed


def run_sweep(sessions: sessionmaker[Session], *, clock: Clock, settings: Settings,
              store: BlobStore, batch: int | None = None,
              max_batches: int | None = None) -> SweepResult:
    """Resume unfinished deletions, then delete due recordings batch by batch until none is
    left (or `max_batches`)."""
    result = SweepResult()
    batch = batch or settings.retention_batch
    with transaction(sessions) as session:
        # Retried POSTs come back within minutes; a day of keys is plenty.
        session.execute(delete(IdempotencyKey).where(
            IdempotencyKey.created_at < clock.now() - IDEMPOTENCY_KEEP))
    with transaction(sessions) as session:
        unfinished = list(session.scalars(select(Recording.id).where(
            Recording.retention_state == "deleting")))
    for rid in unfinished:
        _finish_one(sessions, clock=clock, store=store, rid=rid, result=result)
        result.resumed += 1
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        with transaction(sessions) as session:
            due = _due(session, now=clock.now(), batch=batch)
            decided = []
            for rec in due:
                if decide(session, clock=clock, settings=settings, rec=rec):
                    decided.append(rec.id)
                else:
                    result.kept += 1
        for rid in decided:
            _finish_one(sessions, clock=clock, store=store, rid=rid, result=result)
        if len(due) < batch:
            break
    return result


def _finish_one(sessions: sessionmaker[Session], *, clock: Clock, store: BlobStore,
                rid: uuid.UUID, result: SweepResult) -> None:
    try:
        freed = finish(sessions, clock=clock, store=store, recording_id=rid)
        if freed is not None:
            result.bytes_deleted += freed
            result.deleted += 1
    except Exception as exc:  # noqa: BLE001 - one recording's storage failure must not stop the rest
        log.exception("retention sweep: recording %s left deleting", rid)
        result.failed.append(f"{rid}: {exc}")


@dataclass(frozen=True)
class Due:
    recording_id: uuid.UUID
    delete_after: dt.datetime
    unit_id: int | None
    officer_id: int | None


def plan(session: Session, *, now: dt.datetime, days: int, limit: int = 10_000) -> list[Due]:
    """What the stored deadlines say will go in the next `days` days (the sweep re-checks)."""
    until = now + dt.timedelta(days=days)
    rows = session.execute(
        select(Recording.id, Recording.delete_after, Recording.unit_id, Recording.officer_id)
        .where(Recording.delete_after <= until, Recording.retention_state == "live")
        .order_by(Recording.delete_after).limit(limit)).all()
    return [Due(r[0], r[1], r[2], r[3]) for r in rows if r[1] is not None]

