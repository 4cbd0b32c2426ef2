"""Cataloguing files into recordings: attribution, sidecars, completeness, and the probe job."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from evidence_locker.audit.service import Actor, record
from evidence_locker.catalogue.models import Blob, Recording, RecordingFile
from evidence_locker.catalogue.rules import Slot, correct_camera_time, missing_files
from evidence_locker.catalogue.sidecar import Sidecar, Track
from evidence_locker.clock import Clock
from evidence_locker.config import Settings
from evidence_locker.fleet.models import AttributionConflict, Device, Officer, Unit
from evidence_locker.fleet.rules import attribution_instant
from evidence_locker.fleet.service import assignment_at
from evidence_locker.storage.base import BlobStore

log = logging.getLogger(__name__)

MAX_SIDECAR_BYTES = 1024 * 1024
MAX_TRACK_BYTES = 64 * 1024 * 1024


def ensure_blob(session: Session, *, sha256: str, size: int, now: dt.datetime) -> None:
    """Insert the blob row unless another file already brought the same bytes."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(Blob).values(sha256=sha256, size=size, stored_at=now)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["sha256"]))


def lock_blob(session: Session, *, sha256: str, size: int, now: dt.datetime) -> Blob:
    """The blob's row, inserted if missing and locked until the transaction ends (PostgreSQL:
    FOR UPDATE; SQLite's BEGIN IMMEDIATE serialises writers). Ingest holds it while it installs
    bytes and links a file to them; the retention sweep holds it while it deletes them."""
    ensure_blob(session, sha256=sha256, size=size, now=now)
    return session.scalars(select(Blob).where(Blob.sha256 == sha256).with_for_update()).one()


@dataclass(frozen=True)
class Attached:
    file: RecordingFile
    recording: Recording
    duplicate: bool
    new_recording: bool


def _note(recording: Recording, note: str) -> None:
    notes = [n for n in recording.attribution_issues.split("; ") if n]
    if note not in notes:
        notes.append(note)
    recording.attribution_issues = "; ".join(notes)


#: Appended to a camera's recording id for files that arrive after the sweep decided to delete
#: that recording. `~` is not allowed in a camera's ids (ingest/tus.py), so it names no other.
LATE_SUFFIX = "~late"


def late_recording_id(camera_recording_id: str) -> str:
    """The id the late files of a recording being deleted are kept under (<= 128 characters)."""
    late = camera_recording_id + LATE_SUFFIX
    if len(late) <= 128:
        return late
    digest = hashlib.sha256(camera_recording_id.encode()).hexdigest()[:16]
    return f"{camera_recording_id[:100]}{LATE_SUFFIX}-{digest}"


def names_recording(camera_recording_id: str, stored: str) -> bool:
    """Whether a camera's recording id names the stored one: itself, or the recording its late
    files are kept under (a few generations: each needs a sweep deciding while files dock)."""
    for _ in range(4):
        if camera_recording_id == stored:
            return True
        camera_recording_id = late_recording_id(camera_recording_id)
    return False


def _find_recording(session: Session, *, device_serial: str,
                    camera_recording_id: str) -> Recording | None:
    """The recording, its row locked if live (PostgreSQL: FOR UPDATE; SQLite serialises writers,
    so one read does) so that the sweep cannot decide on it while a file is attached. A
    recording already being deleted is not locked (the sweep's last step holds it, then its
    blobs: taking it while holding a blob's lock could deadlock); its files are not added to it."""
    def query() -> Any:
        return (select(Recording).where(Recording.device_serial == device_serial)
                .where(Recording.camera_recording_id == camera_recording_id))
    rec = session.scalars(query()).one_or_none()
    if (rec is None or rec.retention_state != "live"
            or session.get_bind().dialect.name != "postgresql"):
        return rec
    return session.scalars(query().with_for_update()
                           .execution_options(populate_existing=True)).one_or_none()


def _get_or_create_recording(
    session: Session, *, clock: Clock, actor: Actor, device_serial: str, camera_recording_id: str
) -> tuple[Recording, bool]:
    rec = _find_recording(session, device_serial=device_serial,
                          camera_recording_id=camera_recording_id)
    deleting: Recording | None = None
    while rec is not None and rec.retention_state != "live":
        # The sweep decided on the files it saw; bytes docked since are footage nobody has
        # looked at. They are kept under a recording of their own (a fresh review window from
        # now), marked, never added to the one whose files are being deleted.
        deleting = rec
        camera_recording_id = late_recording_id(camera_recording_id)
        rec = _find_recording(session, device_serial=device_serial,
                              camera_recording_id=camera_recording_id)
    if rec is not None:
        return rec, False
    now = clock.now()
    rec = Recording(
        device_serial=device_serial,
        camera_recording_id=camera_recording_id,
        received_at=now,
        sort_at=now,
        state="incomplete",
        sidecar_state="missing",
        attribution_issues="",
    )
    device = session.scalars(select(Device).where(Device.serial == device_serial)).one_or_none()
    if device is None:
        # Unknown cameras are accepted and shown to the fleet administrator, never dropped.
        device = Device(serial=device_serial, mount="body", status="active", needs_review=True)
        session.add(device)
        session.flush()
        record(session, clock=clock, actor=actor, action="device.discovered",
               object_type="device", object_id=device_serial,
               details={"via": "ingest", "recording": camera_recording_id})
    if device.needs_review:
        _note(rec, f"device {device_serial} is not in the fleet register")
    if deleting is not None:
        _note(rec, f"arrived after recording {deleting.id} was decided for deletion")
    rec.device_id = device.id
    session.add(rec)
    session.flush()
    # Until the sidecar says when it recorded, the assignment at receipt attributes it.
    attribute(session, clock=clock, actor=actor, rec=rec, audited=False)
    details = {"device": device_serial, "camera_recording_id": camera_recording_id,
               "officer_id": rec.officer_id}
    if deleting is not None:
        details["late_for"] = str(deleting.id)
    record(session, clock=clock, actor=actor, action="recording.created",
           object_type="recording", object_id=str(rec.id), details=details)
    return rec, True


# Notes that attribution writes (never containing "; ", which separates notes), replaced each
# time it is worked out again.
_ATTRIBUTION_PREFIXES = ("camera says officer ", "no assignment in the register covers ",
                         "camera clock suspect: attributed ")
_UNKNOWN_OFFICER = " named by the camera is not in the register"


def _drop_attribution_notes(rec: Recording) -> None:
    notes = [n for n in rec.attribution_issues.split("; ") if n]
    rec.attribution_issues = "; ".join(
        n for n in notes
        if not (n.startswith(_ATTRIBUTION_PREFIXES) or n.endswith(_UNKNOWN_OFFICER)))


def attribute(session: Session, *, clock: Clock, actor: Actor, rec: Recording,
              audited: bool = True) -> bool:
    """Attribute a recording to the officer who had the camera when it recorded: the register's
    assignment at the corrected start (at receipt while the start is unknown or the clock is
    suspect). The register wins over the camera's sidecar; a disagreement, or a camera naming
    an officer when the register names no one, is noted on the recording and kept as an
    attribution conflict for the fleet administrator. Idempotent: worked out again whenever the
    time or the register changes. Returns whether the officer changed."""
    at, basis = attribution_instant(started_at=rec.started_at, clock_suspect=rec.clock_suspect,
                                    received_at=rec.received_at)
    assignment = (None if rec.device_id is None
                  else assignment_at(session, device_id=rec.device_id, at=at))
    said = rec.reported_officer
    camera = (session.scalars(select(Officer).where(Officer.collar == said)).one_or_none()
              if said else None)
    _drop_attribution_notes(rec)
    if said and camera is None:
        _note(rec, f"officer {said}{_UNKNOWN_OFFICER}")
    conflict: tuple[str, str] | None = None
    officer_id: int | None
    if assignment is not None:
        officer_id = assignment.officer_id
        if said and (camera is None or camera.id != officer_id):
            holder = session.get(Officer, officer_id)
            text = (f"camera says officer {said}, the register says "
                    f"{holder.collar if holder else officer_id} had it at {at.isoformat()}")
            conflict = ("mismatch", text)
    elif camera is not None:
        officer_id = camera.id
        text = (f"no assignment in the register covers {at.isoformat()}, "
                f"attributed to {said} as the camera says")
        conflict = ("unassigned", text)
    else:
        officer_id = None
    if conflict is not None:
        _note(rec, conflict[1])
    if basis == "clock-suspect" and officer_id is not None:
        _note(rec, "camera clock suspect: attributed by who had the camera when it was received")
    previous = rec.officer_id
    officer = None if officer_id is None else session.get(Officer, officer_id)
    rec.officer_id = None if officer is None else officer.id
    rec.unit_id = None if officer is None else officer.unit_id
    _keep_conflict(session, clock=clock, actor=actor, rec=rec, conflict=conflict,
                   register_officer_id=None if assignment is None else assignment.officer_id,
                   at=at)
    changed = previous != rec.officer_id
    if changed and audited:
        record(session, clock=clock, actor=actor, action="recording.attributed",
               object_type="recording", object_id=str(rec.id),
               details={"officer_id": [previous, rec.officer_id], "basis": basis,
                        "at": at.isoformat(),
                        "assignment_id": None if assignment is None else assignment.id})
    return changed


def _keep_conflict(session: Session, *, clock: Clock, actor: Actor, rec: Recording,
                   conflict: tuple[str, str] | None, register_officer_id: int | None,
                   at: dt.datetime) -> None:
    row = session.scalars(select(AttributionConflict)
                          .where(AttributionConflict.recording_id == rec.id)).one_or_none()
    if conflict is None:
        if row is not None:
            session.delete(row)
            record(session, clock=clock, actor=actor, action="recording.attribution_agreed",
                   object_type="recording", object_id=str(rec.id),
                   details={"conflict_id": row.id, "kind": row.kind})
        return
    kind, text = conflict
    if row is None:
        row = AttributionConflict(recording_id=rec.id, detected_at=clock.now())
        session.add(row)
    elif (row.kind, row.register_officer_id, row.camera_officer, row.note) == (
            kind, register_officer_id, rec.reported_officer, text):
        return
    row.device_id = rec.device_id
    row.kind = kind
    row.register_officer_id = register_officer_id
    row.camera_officer = rec.reported_officer
    row.recorded_at = at
    row.note = text
    session.flush()
    record(session, clock=clock, actor=actor, action="recording.attribution_conflict",
           object_type="recording", object_id=str(rec.id),
           details={"conflict_id": row.id, "kind": kind, "camera_officer": rec.reported_officer,
                    "register_officer_id": register_officer_id, "at": at.isoformat()})


def reattribute_device(session: Session, *, clock: Clock, actor: Actor, device: Device,
                       since: dt.datetime, until: dt.datetime | None) -> int:
    """Attribute again the recordings of one camera whose attributing instant may lie in
    [since, until) after its assignments changed. Bounded by one camera's recordings (found
    through the (device_serial, camera_recording_id) index). Returns how many changed hands."""
    def window(col: Any) -> Any:
        return (col >= since) if until is None else ((col >= since) & (col < until))

    recs = session.scalars(
        select(Recording).where(Recording.device_serial == device.serial)
        .where(window(Recording.started_at) | window(Recording.received_at))
        .order_by(Recording.received_at)).all()
    return sum(attribute(session, clock=clock, actor=actor, rec=rec) for rec in recs)


def attach_file(
    session: Session,
    *,
    clock: Clock,
    actor: Actor,
    store: BlobStore,
    settings: Settings,
    device_serial: str,
    camera_recording_id: str,
    kind: str,
    index: int,
    filename: str,
    sha256: str,
    size: int,
    upload_id: str | None,
    dock_id: int | None,
    clock_drift_seconds: float | None = None,
) -> Attached:
    """Link durable bytes to their recording. The same bytes again for the same slot are a
    duplicate; different bytes for a slot that is filled are kept and flagged as a conflict."""
    now = clock.now()
    ensure_blob(session, sha256=sha256, size=size, now=now)
    rec, new_recording = _get_or_create_recording(
        session, clock=clock, actor=actor, device_serial=device_serial,
        camera_recording_id=camera_recording_id,
    )
    if clock_drift_seconds is not None:
        rec.clock_drift_seconds = clock_drift_seconds
    same_slot = session.scalars(
        select(RecordingFile)
        .where(RecordingFile.recording_id == rec.id)
        .where(RecordingFile.kind == kind)
        .where(RecordingFile.index == index)
        .where(RecordingFile.deleted_at.is_(None))
    ).all()
    for existing in same_slot:
        if existing.sha256 == sha256:
            record(session, clock=clock, actor=actor, action="upload.duplicate",
                   object_type="recording", object_id=str(rec.id),
                   details={"file_id": existing.id, "kind": kind, "index": index,
                            "sha256": sha256, "upload_id": upload_id})
            return Attached(existing, rec, duplicate=True, new_recording=False)
    file = RecordingFile(
        recording_id=rec.id,
        kind=kind,
        index=index,
        filename=filename,
        sha256=sha256,
        size=size,
        received_at=now,
        upload_id=upload_id,
        dock_id=dock_id,
        conflict=bool(same_slot),
        # Clips and tracks wait for the probe job; a sidecar is read right here.
        media_state="pending" if kind in ("clip", "track") else "n/a",
    )
    session.add(file)
    session.flush()
    details: dict[str, Any] = {"file_id": file.id, "kind": kind, "index": index,
                               "sha256": sha256, "size": size, "upload_id": upload_id}
    record(session, clock=clock, actor=actor, action="upload.completed",
           object_type="recording", object_id=str(rec.id), details=details)
    if same_slot:
        _note(rec, f"{kind} {index} arrived twice with different bytes; both kept")
        record(session, clock=clock, actor=actor, action="recording.file_conflict",
               object_type="recording", object_id=str(rec.id), details=details)
    if kind == "sidecar":
        apply_sidecar(session, clock=clock, actor=actor, store=store, settings=settings,
                      rec=rec, file=file)
    if rec.clock_drift_seconds is not None and rec.sidecar_state == "parsed":
        _apply_times_from_sidecar(session, store=store, settings=settings, rec=rec)
        attribute(session, clock=clock, actor=actor, rec=rec)  # the corrected time may differ
    refresh_state(session, clock=clock, actor=actor, rec=rec)
    # The retention deadline follows the recording's time, which the sidecar may just have set.
    from evidence_locker.lifecycle.service import refresh as refresh_deadline

    refresh_deadline(session, settings=settings, rec=rec)
    return Attached(file, rec, duplicate=False, new_recording=new_recording)


def _read_small(store: BlobStore, sha256: str, limit: int) -> bytes | None:
    if store.size(sha256) > limit:
        return None
    return b"".join(store.read_range(sha256))


def _load_sidecar(store: BlobStore, file: RecordingFile) -> Sidecar | str:
    raw = _read_small(store, file.sha256, MAX_SIDECAR_BYTES)
    if raw is None:
        return f"sidecar larger than {MAX_SIDECAR_BYTES} bytes"
    try:
        return Sidecar.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"sidecar does not parse: {where}: {first.get('msg')}"


def apply_sidecar(
    session: Session,
    *,
    clock: Clock,
    actor: Actor,
    store: BlobStore,
    settings: Settings,
    rec: Recording,
    file: RecordingFile,
) -> None:
    parsed = _load_sidecar(store, file)
    if isinstance(parsed, str):
        file.media_state = "unreadable"
        file.unreadable_reason = parsed
        if rec.sidecar_state != "parsed":
            rec.sidecar_state = "unreadable"
        record(session, clock=clock, actor=actor, action="recording.sidecar_unreadable",
               object_type="recording", object_id=str(rec.id),
               details={"file_id": file.id, "reason": parsed})
        return
    sc = parsed
    problems = []
    if sc.device.serial != rec.device_serial:
        problems.append(
            f"sidecar names device {sc.device.serial}, upload named {rec.device_serial}")
    if not names_recording(sc.recording_id, rec.camera_recording_id):
        problems.append(f"sidecar names recording {sc.recording_id}")
    for p in problems:
        _note(rec, p)
    file.media_state = "ready"
    rec.sidecar_state = "parsed"
    rec.model = sc.device.model
    rec.firmware = sc.device.firmware
    rec.camera_timezone = sc.timezone
    rec.camera_started_at = sc.started_at.isoformat()
    rec.pre_event_seconds = sc.pre_event_seconds
    if sc.trigger is not None:
        rec.trigger_on_reason = sc.trigger.on.reason
        rec.trigger_off_reason = sc.trigger.off.reason if sc.trigger.off else None
    rec.bookmarks = json.dumps([b.model_dump(mode="json") for b in sc.bookmarks])
    from evidence_locker.lifecycle.service import apply_camera_bookmarks

    apply_camera_bookmarks(session, clock=clock, actor=actor, rec=rec, bookmarks=[
        (b.at.isoformat(), b.category, b.note) for b in sc.bookmarks])
    rec.expected_files = json.dumps(
        [f.model_dump(mode="json") for f in sc.files] + [
            {"kind": "sidecar", "index": 1, "filename": file.filename, "sha256": file.sha256,
             "size": file.size}
        ]
    )
    rec.reported_officer = sc.officer
    _apply_times(rec, sc, settings)
    # Now the recording's time is known: who had the camera then (the register wins).
    attribute(session, clock=clock, actor=actor, rec=rec)
    record(session, clock=clock, actor=actor, action="recording.sidecar_applied",
           object_type="recording", object_id=str(rec.id),
           details={"file_id": file.id, "officer": sc.officer, "files": len(sc.files),
                    "clock_suspect": rec.clock_suspect})


def _apply_times(rec: Recording, sc: Sidecar, settings: Settings) -> None:
    t = correct_camera_time(
        started_at=sc.started_at,
        stopped_at=sc.stopped_at,
        received_at=rec.received_at,
        drift_seconds=rec.clock_drift_seconds,
        floor_year=settings.clock_floor_year,
        future_tolerance=dt.timedelta(seconds=settings.clock_future_tolerance_seconds),
    )
    rec.started_at = t.started_at
    rec.stopped_at = t.stopped_at
    rec.clock_suspect = t.suspect
    rec.clock_note = t.note
    # A suspect clock must not bury the recording decades back or float it into the future.
    rec.sort_at = rec.received_at if t.suspect else t.started_at


def _apply_times_from_sidecar(
    session: Session, *, store: BlobStore, settings: Settings, rec: Recording
) -> None:
    sidecar = next((f for f in rec.files if f.kind == "sidecar" and f.media_state == "ready"), None)
    if sidecar is None:
        return
    parsed = _load_sidecar(store, sidecar)
    if isinstance(parsed, Sidecar):
        _apply_times(rec, parsed, settings)


def expected_slots(rec: Recording) -> list[Slot]:
    if not rec.expected_files:
        return []
    return [(f["kind"], int(f["index"]), f["sha256"]) for f in json.loads(rec.expected_files)]


def present_slots(session: Session, rec: Recording) -> set[Slot]:
    rows = session.execute(
        select(RecordingFile.kind, RecordingFile.index, RecordingFile.sha256)
        .where(RecordingFile.recording_id == rec.id)
        .where(RecordingFile.deleted_at.is_(None))
    ).all()
    return {(k, int(i), s) for k, i, s in rows}


def refresh_state(session: Session, *, clock: Clock, actor: Actor, rec: Recording) -> None:
    """Complete when the sidecar is read and every file it lists has arrived, byte for byte."""
    if rec.state == "complete" or rec.sidecar_state != "parsed":
        return
    if missing_files(expected_slots(rec), present_slots(session, rec)):
        return
    rec.state = "complete"
    rec.completed_at = clock.now()
    record(session, clock=clock, actor=actor, action="recording.completed",
           object_type="recording", object_id=str(rec.id))


@dataclass(frozen=True)
class _Facts:
    result: Any  # Probed | Unreadable
    poster: bytes | None


def probe_job(sessions: Any, *, clock: Clock, store: BlobStore, file_id: int) -> None:
    """Media facts and a poster for a clip, or the first GPS fix of a track. The media is read
    outside any transaction (an S3 clip is downloaded first), so no lock is held meanwhile.
    Idempotent: a file already probed is left alone."""
    from evidence_locker.db import transaction

    with transaction(sessions) as session:
        file = session.get(RecordingFile, file_id)
        if file is None or file.deleted_at is not None or file.media_state != "pending":
            return
        kind, sha256 = file.kind, file.sha256
    facts = None
    if kind == "clip":
        from evidence_locker.catalogue.probe import Unreadable, make_poster, probe_media

        with store.local_path(sha256) as path:
            result = probe_media(path)
            poster = None if isinstance(result, Unreadable) else make_poster(path)
        facts = _Facts(result, poster)
    with transaction(sessions) as session:
        _store_probe(session, clock=clock, store=store, file_id=file_id,
                     facts=facts or _Facts(None, None))


def _store_probe(session: Session, *, clock: Clock, store: BlobStore, file_id: int,
                 facts: _Facts) -> None:
    from evidence_locker.catalogue.probe import Unreadable

    file = session.get(RecordingFile, file_id)
    if file is None or file.deleted_at is not None or file.media_state != "pending":
        return  # another worker finished it meanwhile
    rec = file.recording
    if file.kind == "track":
        _apply_track(session, clock=clock, store=store, rec=rec, file=file)
        return
    if file.kind != "clip":
        return
    result = facts.result
    if isinstance(result, Unreadable):
        file.media_state = "unreadable"
        file.unreadable_reason = result.reason
        record(session, clock=clock, actor=Actor(type="system", name="probe"),
               action="media.unreadable", object_type="recording", object_id=str(rec.id),
               details={"file_id": file.id, "reason": result.reason})
        return
    file.media_state = "ready"
    file.duration_seconds = result.duration_seconds
    file.video_codec = result.video_codec
    file.audio_codec = result.audio_codec
    file.width = result.width
    file.height = result.height
    file.frame_rate = result.frame_rate
    file.media_created_at = result.created_at
    if facts.poster is not None:
        sha = store.put_bytes(facts.poster)
        ensure_blob(session, sha256=sha, size=len(facts.poster), now=clock.now())
        file.poster_sha256 = sha
    record(session, clock=clock, actor=Actor(type="system", name="probe"),
           action="media.probed", object_type="recording", object_id=str(rec.id),
           details={"file_id": file.id, "duration": result.duration_seconds,
                    "video": result.video_codec, "audio": result.audio_codec,
                    "resolution": f"{result.width}x{result.height}"})


def _apply_track(
    session: Session, *, clock: Clock, store: BlobStore, rec: Recording, file: RecordingFile
) -> None:
    if file.media_state != "pending":
        return
    raw = _read_small(store, file.sha256, MAX_TRACK_BYTES)
    reason: str | None = None
    track: Track | None = None
    if raw is None:
        reason = f"track larger than {MAX_TRACK_BYTES} bytes"
    else:
        try:
            track = Track.model_validate_json(raw)
        except ValidationError as exc:
            reason = f"track does not parse: {exc.errors()[0].get('msg')}"
    if track is None:
        file.media_state = "unreadable"
        file.unreadable_reason = reason
        return
    file.media_state = "ready"
    if track.points and rec.lat is None:
        rec.lat = track.points[0].lat
        rec.lon = track.points[0].lon


def unit_path(session: Session, unit_id: int | None) -> str | None:
    if unit_id is None:
        return None
    unit = session.get(Unit, unit_id)
    return unit.path if unit else None


def requeue_stalled(session: Session, *, clock: Clock, older_than: dt.timedelta,
                    batch: int = 1000) -> list[int]:
    """Files still waiting for their probe long after they arrived: the job was lost (a worker
    killed mid-job, a queue restarted). The jobs are idempotent, so sending them again is safe."""
    cutoff = clock.now() - older_than
    return list(session.scalars(
        select(RecordingFile.id)
        .where(RecordingFile.media_state == "pending")
        .where(RecordingFile.received_at < cutoff)
        .where(RecordingFile.deleted_at.is_(None))
        .order_by(RecordingFile.id).limit(batch)))
