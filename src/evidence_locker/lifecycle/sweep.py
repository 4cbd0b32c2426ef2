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
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from evidence_locker.audit.service import Actor, record
from evidence_locker.catalogue.models import (
    AccessGrant,
    Blob,
    Recording,
    RecordingFile,
    RecordingRestriction,
    RestrictionAccess,
)
from evidence_locker.catalogue.restrictions import Restriction, restrictions_of
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
    TombstoneAccess,
)
from evidence_locker.lifecycle.service import Facts, facts_of, facts_of_many, policy_of
from evidence_locker.storage.base import BlobLocked, BlobStore, StorageError

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
             .order_by(Recording.delete_after).limit(batch)
             .options(selectinload(Recording.files)))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Recording)
    return list(session.scalars(query))


def decide(session: Session, *, clock: Clock, settings: Settings, rec: Recording,
           actor: Actor = SWEEP, facts: Facts | None = None,
           restricted: dict[uuid.UUID, Restriction] | None = None) -> bool:
    """With the row locked: delete it (tombstone, `deleting`, audit) if the rule still allows,
    else store its true deadline. Returns whether it was decided for deletion. `facts`: the
    recording's facts read under the lock (`facts_of_many`), else read here; `restricted`: the
    batch's restrictions (`restrictions_of`), else read here. A restricted recording's
    tombstone keeps the restriction and its access list, so it is shown to whom the recording
    was."""
    policy = policy_of(settings)
    f = facts if facts is not None else facts_of(session, rec)
    now = clock.now()
    if not rules.may_delete(policy, f.facts, now):
        rec.delete_after = rules.delete_after(policy, f.facts)
        return False
    files = [{"kind": x.kind, "index": x.index, "filename": x.filename, "sha256": x.sha256,
              "size": x.size, "poster_sha256": x.poster_sha256} for x in rec.files]
    rule = rules.rule_name(policy, f.facts, f.categories)
    deadline = rules.deadline(policy, f.facts)
    restriction = (restrictions_of(session, [rec.id]) if restricted is None
                   else restricted).get(rec.id)
    tombstone = Tombstone(
        recording_id=rec.id, device_serial=rec.device_serial,
        camera_recording_id=rec.camera_recording_id, officer_id=rec.officer_id,
        unit_id=rec.unit_id, started_at=rec.started_at, stopped_at=rec.stopped_at,
        received_at=rec.received_at, files=json.dumps(files),
        total_size=sum(int(x["size"] or 0) for x in files), rule=rule, deadline=deadline,
        decided_at=now, restriction=None if restriction is None else restriction.kind)
    session.add(tombstone)
    if restriction is not None and restriction.access_list:
        session.flush()  # the tombstone's id (rare: restricted recordings only)
        session.add_all(TombstoneAccess(tombstone_id=tombstone.id, user_id=user_id)
                        for user_id in sorted(restriction.access_list))
    rec.retention_state = "deleting"
    record(session, clock=clock, actor=actor, action="recording.deletion_decided",
           object_type="recording", object_id=str(rec.id), reason=rule,
           details={"deadline": deadline.isoformat() if deadline else None,
                    "files": len(files), "categories": list(f.categories)})
    return True


_File = tuple[uuid.UUID, str, str | None]


def _files_of(session: Session, rec_ids: list[uuid.UUID]) -> list[_File]:
    """(recording, blob, poster) for every file of these recordings."""
    return [(rid, sha, poster) for rid, sha, poster in session.execute(
        select(RecordingFile.recording_id, RecordingFile.sha256, RecordingFile.poster_sha256)
        .where(RecordingFile.recording_id.in_(rec_ids)))]


def _blobs_to_delete(session: Session, rec_ids: list[uuid.UUID],
                     mine: list[_File]) -> dict[uuid.UUID, list[str]]:
    """Per recording, its blobs and posters (from `mine`, its files) that no live recording's
    file refers to (files of recordings also being deleted do not count, so two sweeps
    finishing recordings that share a blob cannot each leave it to the other). A blob two of
    these recordings share is listed under the first only."""
    shas = {s for _, s, _ in mine} | {p for _, _, p in mine if p}
    shared: set[str] = set()
    if shas:
        def live(column: Any) -> Any:
            return (select(column).join(Recording, Recording.id == RecordingFile.recording_id)
                    .where(Recording.retention_state == "live",
                           RecordingFile.recording_id.not_in(rec_ids), column.in_(sorted(shas))))
        shared.update(session.scalars(live(RecordingFile.sha256)))
        shared.update(p for p in session.scalars(live(RecordingFile.poster_sha256)) if p)
    out: dict[uuid.UUID, list[str]] = {rid: [] for rid in rec_ids}
    taken: set[str] = set()
    per: dict[uuid.UUID, set[str]] = {}
    for rid, sha, poster in mine:
        per.setdefault(rid, set()).update({sha} | ({poster} if poster else set()))
    for rid in rec_ids:
        for sha in sorted(per.get(rid, set()) - shared - taken):
            out[rid].append(sha)
            taken.add(sha)
    return out


def _lock_blobs(session: Session, shas: Iterable[str]) -> dict[str, int]:
    """Lock these blob rows until the transaction ends, in sha order (PostgreSQL; SQLite
    serialises writers on its own); returns each locked blob's size."""
    wanted = sorted(set(shas))
    if not wanted:
        return {}
    return {sha: size for sha, size in session.execute(
        select(Blob.sha256, Blob.size).where(Blob.sha256.in_(wanted))
        .order_by(Blob.sha256).with_for_update())}


def _remove(store: BlobStore, sha: str) -> None:
    try:
        store.delete(sha, bypass_governance=True)
    except BlobLocked:
        # The catalogue has no active hold (checked under the lock): a storage legal hold is a
        # leftover mirror of one already released, so the lifecycle credential lifts it.
        store.set_legal_hold(sha, False)
        store.delete(sha, bypass_governance=True)


#: Blob deletions in flight at once: S3 round trips and directory fsyncs overlap.
DELETE_THREADS = 8


def finish_many(sessions: sessionmaker[Session], *, clock: Clock, store: BlobStore,
                recording_ids: list[uuid.UUID], actor: Actor = SWEEP,
                failed: dict[uuid.UUID, str] | None = None) -> dict[uuid.UUID, int]:
    """Steps 2 and 3 for recordings marked `deleting`, a batch at a time: the bytes each one
    freed, for those this call finished (another sweep may have finished some first). A
    recording whose blobs could not all be deleted stays `deleting` (put in `failed`) for the
    next run; the others are finished in one transaction, each with its own audit event."""
    if not recording_ids:
        return {}
    errors: dict[str, BaseException] = {}
    with transaction(sessions) as session:
        # The bytes go under their blob rows' locks (taken in one order, so two sweeps cannot
        # deadlock), the lock ingest holds from installing identical bytes until the file that
        # uses them commits (catalogue.service.lock_blob): a file that committed first keeps
        # the blob; an upload that comes after finds the bytes gone and installs its own.
        files = _files_of(session, recording_ids)
        sizes = _lock_blobs(session, [s for _, s, _ in files] + [p for _, _, p in files if p])
        blobs = _blobs_to_delete(session, recording_ids, files)
        every = sorted({sha for shas in blobs.values() for sha in shas})
        if every:
            with ThreadPoolExecutor(max_workers=min(DELETE_THREADS, len(every))) as pool:
                futures = {sha: pool.submit(_remove, store, sha) for sha in every}
            for sha, fut in futures.items():
                exc = fut.exception()
                if exc is not None:
                    errors[sha] = exc
    ready = []
    for rid in recording_ids:
        bad = [sha for sha in blobs[rid] if sha in errors]
        if bad:
            log.error("retention sweep: recording %s left deleting: %s", rid, errors[bad[0]])
            if failed is not None:
                failed[rid] = f"{bad[0]}: {errors[bad[0]]}"
        else:
            ready.append(rid)
    if not ready:
        return {}
    freed: dict[uuid.UUID, int] = {}
    with transaction(sessions) as session:
        locked = session.execute(select(Recording.id, Recording.retention_state)
                                 .where(Recording.id.in_(ready)).with_for_update()).all()
        ids = [rid for rid, state in locked if state == "deleting"]
        if not ids:
            return {}
        file_ids = select(RecordingFile.id).where(RecordingFile.recording_id.in_(ids))
        session.execute(update(Upload).where(Upload.file_id.in_(file_ids))
                        .values(file_id=None))
        session.execute(delete(RecordingFile).where(RecordingFile.recording_id.in_(ids)))
        for model in (AccessGrant, RestrictionAccess, ReviewDecision, SubjectTold, EvidenceFlag,
                      Hold, AttributionConflict):
            session.execute(delete(model).where(model.recording_id.in_(ids)))
        session.execute(delete(RecordingRestriction).where(
            RecordingRestriction.recording_id.in_(ids)))
        # Blob rows go with their bytes, unless another file arrived for them meanwhile (its
        # upload holds the row's lock until it commits, so take the lock before looking).
        mine = sorted({sha for rid in ids for sha in blobs[rid]})
        if mine:
            _lock_blobs(session, mine)
            session.execute(delete(Blob).where(
                Blob.sha256.in_(mine),
                ~exists().where(RecordingFile.sha256 == Blob.sha256)))
        session.execute(delete(Recording).where(Recording.id.in_(ids)))
        now = clock.now()
        session.execute(update(Tombstone).where(Tombstone.recording_id.in_(ids))
                        .values(finished_at=now))
        tombs = {t.recording_id: t for t in session.scalars(
            select(Tombstone).where(Tombstone.recording_id.in_(ids)))}
        for rid in ids:
            tomb = tombs[rid]
            freed[rid] = sum(sizes.get(sha, 0) for sha in blobs[rid])
            record(session, clock=clock, actor=actor, action="recording.deleted",
                   object_type="recording", object_id=str(rid), reason=tomb.rule,
                   details={"tombstone": tomb.id, "blobs_deleted": len(blobs[rid]),
                            "bytes_deleted": freed[rid], "total_size": tomb.total_size})
    return freed


def finish(sessions: sessionmaker[Session], *, clock: Clock, store: BlobStore,
           recording_id: uuid.UUID, actor: Actor = SWEEP) -> int | None:
    """Steps 2 and 3 for one recording marked `deleting`; returns the bytes it freed (None if
    another sweep finished it first). A storage failure is raised."""
    failed: dict[uuid.UUID, str] = {}
    freed = finish_many(sessions, clock=clock, store=store, recording_ids=[recording_id],
                        actor=actor, failed=failed)
    if failed:
        raise StorageError(failed[recording_id])
    return freed.get(recording_id)


def run_sweep(sessions: sessionmaker[Session], *, clock: Clock, settings: Settings,
              store: BlobStore, batch: int | None = None,
              max_batches: int | None = None) -> SweepResult:
    """Resume unfinished deletions, then delete due recordings batch by batch until none is
    left (or `max_batches`): each batch decided in one transaction (rows locked, the rule
    re-checked per recording, a tombstone and an audit event each), its blobs deleted together,
    then finished in one transaction."""
    result = SweepResult()
    batch = batch or settings.retention_batch
    with transaction(sessions) as session:
        # Retried POSTs come back within minutes; a day of keys is plenty.
        session.execute(delete(IdempotencyKey).where(
            IdempotencyKey.created_at < clock.now() - IDEMPOTENCY_KEEP))
    with transaction(sessions) as session:
        unfinished = list(session.scalars(select(Recording.id).where(
            Recording.retention_state == "deleting")))
    for start in range(0, len(unfinished), batch):
        _finish_batch(sessions, clock=clock, store=store, ids=unfinished[start:start + batch],
                      result=result)
        result.resumed += len(unfinished[start:start + batch])
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        with transaction(sessions) as session:
            due = _due(session, now=clock.now(), batch=batch)
            facts = facts_of_many(session, due)
            restricted = restrictions_of(session, [rec.id for rec in due])
            decided = []
            for rec in due:
                if decide(session, clock=clock, settings=settings, rec=rec, facts=facts[rec.id],
                          restricted=restricted):
                    decided.append(rec.id)
                else:
                    result.kept += 1
        _finish_batch(sessions, clock=clock, store=store, ids=decided, result=result)
        if len(due) < batch:
            break
    return result


def _finish_batch(sessions: sessionmaker[Session], *, clock: Clock, store: BlobStore,
                  ids: list[uuid.UUID], result: SweepResult) -> None:
    failed: dict[uuid.UUID, str] = {}
    try:
        freed = finish_many(sessions, clock=clock, store=store, recording_ids=ids,
                            failed=failed)
    except Exception as exc:  # noqa: BLE001 - one batch's failure must not stop the rest
        log.exception("retention sweep: %d recordings left deleting", len(ids))
        result.failed += [f"{rid}: {exc}" for rid in ids]
        return
    result.failed += [f"{rid}: {why}" for rid, why in failed.items()]
    result.deleted += len(freed)
    result.bytes_deleted += sum(freed.values())


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

