"""Ingest over tus: uploads whose state lives in the database and whose bytes live in the blob
store's partials, so any process can resume any upload, even after a crash.

The contract with a dock: `Upload-Offset` acknowledges only bytes that are fsync'd, and the 204
that answers the last PATCH (or a HEAD that reports `Upload-Offset == Upload-Length`) means the
file is durable, its declared SHA-256 checked, and it is catalogued. Only then may a camera's copy
be erased.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from evidence_locker.accounts.roles import Principal
from evidence_locker.audit.service import Actor, record
from evidence_locker.catalogue.service import attach_file, lock_blob
from evidence_locker.db import transaction
from evidence_locker.ingest.lease import Lease, leased
from evidence_locker.ingest.models import Upload
from evidence_locker.ingest.tus import Checksum, FileMetadata, TusError, parse_file_metadata
from evidence_locker.runtime import Runtime
from evidence_locker.storage.base import PartialBlob, PartialLocked, PartialNotFound

log = logging.getLogger(__name__)

FLUSH_BYTES = 1024 * 1024
LIVE = "receiving"
DONE = ("completed", "duplicate")


# --- typed outcomes of finishing an upload -------------------------------------------------


@dataclass(frozen=True)
class Stored:
    upload_id: str
    file_id: int
    recording_id: str


@dataclass(frozen=True)
class Duplicate:
    upload_id: str
    file_id: int
    recording_id: str


@dataclass(frozen=True)
class Rejected:
    upload_id: str
    reason: str


Finished = Stored | Duplicate | Rejected


# --- running SHA-256 per upload ------------------------------------------------------------

_HASHERS: OrderedDict[str, tuple[int, Any]] = OrderedDict()
_HASHERS_LOCK = threading.Lock()
_HASHERS_MAX = 1024


def _take_hasher(upload_id: str, offset: int) -> Any | None:
    with _HASHERS_LOCK:
        item = _HASHERS.pop(upload_id, None)
    if item is not None and item[0] == offset:
        return item[1]
    return None


def _keep_hasher(upload_id: str, offset: int, hasher: Any) -> None:
    with _HASHERS_LOCK:
        _HASHERS[upload_id] = (offset, hasher)
        while len(_HASHERS) > _HASHERS_MAX:
            _HASHERS.popitem(last=False)


def _rehash(partial: PartialBlob) -> Any:
    """hashlib state cannot be saved, so after a restart the running hash is rebuilt from the
    durable bytes of the partial."""
    hasher = hashlib.sha256()
    for chunk in partial.read():
        hasher.update(chunk)
    return hasher


# --- creation, lookup, termination ---------------------------------------------------------


def check_space(runtime: Runtime) -> None:
    free = runtime.store.free_bytes()
    if free is not None and free < runtime.settings.min_free_bytes:
        raise TusError(507, "Insufficient Storage",
                       "the server is below its free-space floor and accepts nothing new")


def create_upload(
    runtime: Runtime, *, principal: Principal, actor: Actor, length: int, metadata_header: str
) -> tuple[Upload, FileMetadata]:
    meta = parse_file_metadata(metadata_header)
    if length > runtime.settings.tus_max_size:
        raise TusError(413, "Upload too large",
                       f"Upload-Length exceeds Tus-Max-Size {runtime.settings.tus_max_size}")
    check_space(runtime)
    now = runtime.clock.now()
    upload = Upload(
        id=uuid.uuid4().hex,
        length=length,
        offset=0,
        metadata_json=json.dumps({"header": metadata_header}),
        device_serial=meta.device,
        camera_recording_id=meta.recording,
        kind=meta.kind,
        index=meta.index,
        filename=meta.filename,
        declared_sha256=meta.sha256,
        token_id=principal.token_id,
        dock_id=principal.dock_id,
        state=LIVE,
        created_at=now,
        updated_at=now,
        expires_at=now + dt.timedelta(hours=runtime.settings.upload_expiry_hours),
    )
    runtime.store.create_partial(upload.id)
    with transaction(runtime.sessions) as session:
        session.add(upload)
        record(session, clock=runtime.clock, actor=actor, action="upload.created",
               object_type="upload", object_id=upload.id,
               details={"device": meta.device, "recording": meta.recording, "kind": meta.kind,
                        "index": meta.index, "filename": meta.filename, "length": length,
                        "sha256": meta.sha256})
    return upload, meta


def _owned(upload: Upload, principal: Principal) -> bool:
    if principal.dock_id is not None:
        return upload.dock_id == principal.dock_id
    return upload.token_id is not None and upload.token_id == principal.token_id


def get_upload(runtime: Runtime, *, principal: Principal, upload_id: str) -> Upload:
    if len(upload_id) != 32 or not all(c in "0123456789abcdef" for c in upload_id):
        raise TusError(404, "Upload not found")
    with transaction(runtime.sessions) as session:
        upload = session.get(Upload, upload_id)
    if upload is None or not _owned(upload, principal):
        raise TusError(404, "Upload not found")
    if upload.state in ("terminated", "rejected", "expired"):
        raise TusError(410, "Upload gone", f"upload was {upload.state}: {upload.failure or ''}")
    if upload.state == LIVE and upload.expires_at <= runtime.clock.now():
        raise TusError(410, "Upload expired")
    return upload


def head_upload(runtime: Runtime, *, principal: Principal, actor: Actor, upload_id: str) -> Upload:
    """A HEAD that finds every byte durable but the upload not yet finished (the process died
    between the two) finishes it first, so offset == length always means verified and stored."""
    upload = get_upload(runtime, principal=principal, upload_id=upload_id)
    if upload.state == LIVE and upload.offset == upload.length:
        outcome = finish_upload(runtime, upload_id=upload_id, actor=actor)
        if isinstance(outcome, Rejected):
            raise TusError(410, "Upload gone", outcome.reason)
        upload = get_upload(runtime, principal=principal, upload_id=upload_id)
    return upload


def terminate_upload(runtime: Runtime, *, principal: Principal, actor: Actor,
                     upload_id: str) -> None:
    upload = get_upload(runtime, principal=principal, upload_id=upload_id)
    if upload.state in DONE:
        raise TusError(409, "Upload complete",
                       "a completed upload is stored evidence and is not deleted through tus")
    with leased(runtime, upload_id), _partial(runtime, upload_id), \
            transaction(runtime.sessions) as session:
        row = session.get(Upload, upload_id)
        assert row is not None
        if row.state != LIVE:
            raise TusError(410, "Upload gone")
        row.state = "terminated"
        row.updated_at = runtime.clock.now()
        record(session, clock=runtime.clock, actor=actor, action="upload.terminated",
               object_type="upload", object_id=upload_id,
               details={"offset": row.offset, "length": row.length})
    runtime.store.discard_partial(upload_id)


@contextmanager
def _partial(runtime: Runtime, upload_id: str) -> Iterator[PartialBlob]:
    """The upload's bytes, locked for this request alone."""
    try:
        with runtime.store.open_partial(upload_id) as partial:
            yield partial
    except PartialLocked as exc:
        raise TusError(423, "Upload locked",
                       "another request is writing to this upload; retry shortly") from exc


# --- receiving bytes -----------------------------------------------------------------------


class Receiver:
    """Takes one PATCH body: appends, hashes, and acknowledges only what is fsync'd.

    Its methods are blocking and run in a worker thread; the web layer feeds it buffers.
    """

    def __init__(self, runtime: Runtime, *, principal: Principal, actor: Actor, upload_id: str,
                 offset: int, checksum: Checksum | None, content_length: int | None) -> None:
        self.runtime = runtime
        self.principal = principal
        self.actor = actor
        self.upload_id = upload_id
        self.client_offset = offset
        self.checksum = checksum
        self.content_length = content_length
        self._stack = ExitStack()
        self.lease: Lease | None = None
        self.partial: PartialBlob | None = None
        self.start = 0
        self.length = 0
        self.received = 0
        self.hasher: Any = None
        self._before: Any = None
        self.chunk_hasher: Any = None

    def open(self) -> None:
        upload = get_upload(self.runtime, principal=self.principal, upload_id=self.upload_id)
        if upload.state in DONE:
            raise TusError(409, "Upload complete", "this upload already finished")
        if upload.offset != self.client_offset:
            raise TusError(409, "Offset mismatch",
                           f"Upload-Offset is {upload.offset}, request said {self.client_offset}")
        if self.content_length is not None and upload.offset + self.content_length > upload.length:
            raise TusError(413, "Body too large", "the body would exceed Upload-Length")
        check_space(self.runtime)
        try:
            self.lease = self._stack.enter_context(leased(self.runtime, self.upload_id))
            self.partial = self._stack.enter_context(_partial(self.runtime, self.upload_id))
            # The row as it stands under the lease: another process may have written since.
            assert self.lease.upload is not None
            upload = self.lease.upload
            if upload.state != LIVE:
                raise TusError(409 if upload.state in DONE else 410, "Upload not open",
                               f"the upload is {upload.state}")
            if upload.offset != self.client_offset:
                raise TusError(409, "Offset mismatch", f"Upload-Offset is {upload.offset}")
            if self.partial.size > upload.offset:
                # Bytes written but never acknowledged (a crash before fsync+commit): forget them.
                self.partial.truncate(upload.offset)
            elif self.partial.size < upload.offset:
                raise TusError(500, "Upload damaged",
                               "stored bytes are fewer than acknowledged; start the upload again")
            self.start = upload.offset
            self.length = upload.length
            self.hasher = _take_hasher(self.upload_id, self.start) or _rehash(self.partial)
            self._before = self.hasher.copy()
            self.chunk_hasher = self.checksum.new_hasher() if self.checksum else None
        except PartialNotFound as exc:
            self.close()
            raise TusError(409, "Upload finishing",
                           "the upload is being finished; HEAD it") from exc
        except BaseException:
            self.close()
            raise

    def room(self) -> int:
        return self.length - self.start - self.received

    def write(self, data: bytes) -> None:
        assert self.partial is not None
        if len(data) > self.room():
            raise TusError(413, "Body too large", "the body exceeds Upload-Length")
        if self.lease is not None:
            self.lease.renew_if_due()
        self.hasher.update(data)
        if self.chunk_hasher is not None:
            self.chunk_hasher.update(data)
        self.partial.append(data)
        self.received += len(data)

    def abort(self) -> None:
        """Something failed mid-body: forget this PATCH's bytes, acknowledge nothing new."""
        if self.partial is not None and self.received:
            self._rollback_body()

    def _rollback_body(self) -> None:
        assert self.partial is not None
        self.partial.truncate(self.start)
        self.hasher = self._before
        self.received = 0

    def commit(self, *, body_complete: bool) -> Finished | None:
        """fsync, then acknowledge. A PATCH with a checksum is all or nothing; without one, the
        bytes of an interrupted body are kept and acknowledged (the tus core behaviour)."""
        assert self.partial is not None
        if self.checksum is not None:
            if not body_complete:
                self._rollback_body()
                return None
            if self.chunk_hasher.digest() != self.checksum.digest:
                self._rollback_body()
                raise TusError(460, "Checksum Mismatch",
                               f"the {self.checksum.algorithm} of this PATCH body does not match")
        if self.received:
            self.partial.sync()
        new_offset = self.start + self.received
        if new_offset != self.start:
            values: dict[str, Any] = {"offset": new_offset,
                                      "updated_at": self.runtime.clock.now()}
            last = new_offset == self.length
            if not last and self.lease is not None:
                # Acknowledge and let go of the upload in one write (one fsync of the log, not
                # two); the last PATCH keeps its lease until the upload is finished.
                values.update(lease_owner=None, lease_until=None)
            with transaction(self.runtime.sessions) as session:
                stmt = (update(Upload).where(Upload.id == self.upload_id)
                        .where(Upload.offset == self.start).where(Upload.state == LIVE))
                if self.lease is not None:
                    stmt = stmt.where(Upload.lease_owner == self.lease.owner)
                result = session.execute(stmt.values(**values))
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    raise TusError(409, "Offset mismatch", "the upload changed underneath")
            if not last and self.lease is not None:
                self.lease.until = None  # released with the acknowledgement
        self.start = new_offset
        self.received = 0
        if new_offset == self.length:
            try:
                return _finish(self.runtime, upload_id=self.upload_id, actor=self.actor,
                               hasher=self.hasher, partial=self.partial)
            finally:
                self.close()
        _keep_hasher(self.upload_id, new_offset, self.hasher.copy())
        return None

    def close(self) -> None:
        self._stack.close()
        self.partial = None
        self.lease = None


# --- finishing -----------------------------------------------------------------------------


def finish_upload(runtime: Runtime, *, upload_id: str, actor: Actor) -> Finished:
    """Finish an upload whose every byte is durable (after a crash, from HEAD or a sweep)."""
    with leased(runtime, upload_id):
        try:
            with _partial(runtime, upload_id) as partial:
                return _finish(runtime, upload_id=upload_id, actor=actor, hasher=None,
                               partial=partial)
        except PartialNotFound:
            return _finish(runtime, upload_id=upload_id, actor=actor, hasher=None,
                           partial=None)


def _finish(runtime: Runtime, *, upload_id: str, actor: Actor, hasher: Any | None,
            partial: PartialBlob | None) -> Finished:
    """Verify the declared SHA-256, make the blob durable, catalogue it: the ingest pipeline.

    Runs with the partial locked (or gone). Idempotent: safe to run again after a crash at any
    step, because the blob is installed only after verification and cataloguing checks state.
    """
    with transaction(runtime.sessions) as session:
        upload = session.get(Upload, upload_id)
        assert upload is not None
    if upload.state in DONE:
        return _outcome_of(runtime, upload)
    if upload.state != LIVE:
        return Rejected(upload_id, upload.failure or upload.state)
    declared = upload.declared_sha256
    if partial is not None:
        digest = (hasher or _rehash(partial)).hexdigest()
        if digest != declared:
            return _reject(runtime, upload, actor=actor, digest=digest)
    # else: the partial is gone because a previous attempt verified and installed the blob,
    # then died before cataloguing; _catalogue checks the installed bytes are there.
    return _catalogue(runtime, upload_id=upload_id, actor=actor)


def _install(runtime: Runtime, upload_id: str, sha256: str) -> bool:
    """Put the verified partial in place as its blob (fsync, rename, fsync directory), or, if a
    previous attempt did so already, check the blob is there."""
    try:
        runtime.store.commit_partial(upload_id, sha256)
        return True
    except PartialNotFound:
        return runtime.store.exists(sha256)


def _reject(runtime: Runtime, upload: Upload, *, actor: Actor, digest: str | None) -> Rejected:
    declared = upload.declared_sha256
    if digest is None:
        reason = "the received bytes were lost before they could be verified; upload again"
    else:
        reason = f"SHA-256 of the received bytes is {digest}, the client declared {declared}"
    runtime.store.discard_partial(upload.id)
    with transaction(runtime.sessions) as session:
        row = session.get(Upload, upload.id)
        assert row is not None
        row.state = "rejected"
        row.failure = reason
        row.updated_at = runtime.clock.now()
        record(session, clock=runtime.clock, actor=actor, action="upload.rejected",
               object_type="upload", object_id=upload.id,
               details={"reason": reason, "declared": declared, "received": digest,
                        "device": upload.device_serial, "recording": upload.camera_recording_id})
    return Rejected(upload.id, reason)


class _BytesLost(Exception):
    """The verified bytes of an upload are no longer where they were installed."""


def _catalogue(runtime: Runtime, *, upload_id: str, actor: Actor) -> Finished:
    lost = False
    for attempt in range(3):
        try:
            with transaction(runtime.sessions) as session:
                upload = session.scalars(
                    select(Upload).where(Upload.id == upload_id).with_for_update()
                ).one()
                if upload.state in DONE:
                    break
                # The blob row stays locked from before the bytes are put in place until the
                # file that uses them commits. The retention sweep deletes a blob's bytes only
                # with that row locked and no live file using it, so identical bytes arriving
                # while the sweep deletes the blob are either kept by it (this file committed
                # first) or installed afresh (the sweep finished first), never lost.
                lock_blob(session, sha256=upload.declared_sha256, size=upload.length,
                          now=runtime.clock.now())
                if not _install(runtime, upload_id, upload.declared_sha256):
                    raise _BytesLost(upload_id)  # roll back: no blob row without its bytes
                meta = json.loads(upload.metadata_json)
                parsed = parse_file_metadata(meta["header"])
                attached = attach_file(
                    session, clock=runtime.clock, actor=actor, store=runtime.store,
                    settings=runtime.settings, device_serial=upload.device_serial,
                    camera_recording_id=upload.camera_recording_id, kind=upload.kind,
                    index=upload.index, filename=upload.filename, sha256=upload.declared_sha256,
                    size=upload.length, upload_id=upload.id, dock_id=upload.dock_id,
                    clock_drift_seconds=parsed.clock_drift_seconds,
                )
                upload.state = "duplicate" if attached.duplicate else "completed"
                upload.file_id = attached.file.id
                upload.completed_at = runtime.clock.now()
                upload.updated_at = upload.completed_at
                if not attached.duplicate and upload.kind in ("clip", "track"):
                    runtime.jobs.enqueue_after_commit(session, "probe_file", attached.file.id)
            break
        except _BytesLost:
            lost = True
            break
        except IntegrityError:
            # Two uploads of the same recording raced to create it; the loser retries.
            if attempt == 2:
                raise
    with transaction(runtime.sessions) as session:
        done = session.get(Upload, upload_id)
        assert done is not None
    if lost:
        return _reject(runtime, done, actor=actor, digest=None)
    return _outcome_of(runtime, done)


def _outcome_of(runtime: Runtime, upload: Upload) -> Finished:
    from evidence_locker.catalogue.models import RecordingFile

    with transaction(runtime.sessions) as session:
        file = session.get(RecordingFile, upload.file_id)
        assert file is not None
        rec_id = str(file.recording_id)
    if upload.state == "duplicate":
        return Duplicate(upload.id, file.id, rec_id)
    return Stored(upload.id, file.id, rec_id)


def expire_uploads(runtime: Runtime, *, batch: int = 500) -> int:
    """Forget uploads nobody resumed before their expiry: the partial bytes go, the row stays."""
    now = runtime.clock.now()
    with transaction(runtime.sessions) as session:
        ids = session.scalars(
            select(Upload.id).where(Upload.state == LIVE).where(Upload.expires_at <= now)
            .where(Upload.offset < Upload.length).limit(batch)
        ).all()
    for upload_id in ids:
        try:
            with leased(runtime, upload_id), _partial(runtime, upload_id), \
                    transaction(runtime.sessions) as session:
                row = session.get(Upload, upload_id)
                if row is None or row.state != LIVE:
                    continue
                row.state = "expired"
                row.updated_at = now
                record(session, clock=runtime.clock, actor=Actor(type="system", name="expiry"),
                       action="upload.expired", object_type="upload", object_id=upload_id,
                       details={"offset": row.offset, "length": row.length})
        except (TusError, PartialNotFound):
            continue  # being written or finished right now: not abandoned after all
        runtime.store.discard_partial(upload_id)
    return len(ids)


def recover_uploads(runtime: Runtime, *, batch: int = 500) -> int:
    """Finish uploads whose bytes were all durable when a process died before finishing them."""
    with transaction(runtime.sessions) as session:
        ids = session.scalars(
            select(Upload.id).where(Upload.state == LIVE).where(Upload.offset == Upload.length)
            .where(Upload.length > 0).limit(batch)
        ).all()
    done = 0
    for upload_id in ids:
        try:
            finish_upload(runtime, upload_id=upload_id, actor=Actor(type="system", name="recovery"))
            done += 1
        except TusError:
            continue  # someone is finishing it right now
    return done


def metadata_header_of(upload: Upload) -> str:
    header: str = json.loads(upload.metadata_json)["header"]
    return header
