"""The retention sweep: deletes exactly what the rule allows, through the lifecycle credential,
leaves a tombstone and an audit event, keeps what a flag or hold protects, and resumes a
deletion a crash interrupted."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from cat_helpers import record_camera, send, sidecar
from evidence_locker.audit.models import AuditEvent
from evidence_locker.catalogue.models import Blob, Recording, RecordingFile
from evidence_locker.catalogue.service import late_recording_id, names_recording
from evidence_locker.db import transaction
from evidence_locker.dock.client import TusClient, upload_camera_folder
from evidence_locker.ingest.tus import RECORDING_RE
from evidence_locker.lifecycle.models import Tombstone
from evidence_locker.lifecycle.service import lock_recording
from evidence_locker.lifecycle.sweep import decide, plan, run_sweep
from evidence_locker.simulate.camera import simulate_camera
from life_helpers import bearer, configure, flag, hold, release, retention

DAY = dt.timedelta(days=1)


def sweep(runtime, store):
    return run_sweep(runtime.sessions, clock=runtime.clock, settings=runtime.settings,
                     store=store, batch=2)


def shas_of(runtime, rid: str) -> list[str]:
    with transaction(runtime.sessions) as s:
        rows = s.execute(select(RecordingFile.sha256, RecordingFile.poster_sha256).where(
            RecordingFile.recording_id == uuid.UUID(rid))).all()
    return sorted({a for a, _ in rows} | {b for _, b in rows if b})


def exists(runtime, rid: str) -> bool:
    with transaction(runtime.sessions) as s:
        return s.get(Recording, uuid.UUID(rid)) is not None


def events(runtime, action: str, rid: str) -> int:
    with transaction(runtime.sessions) as s:
        return int(s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == action, AuditEvent.object_id == rid)) or 0)


def _rec(client, force, name: str, clip: bytes | None = None, device: str = "CAM-1") -> str:
    return record_camera(client, force.dock_token, device=device, recording=name,
                         clip=clip if clip is not None else b"clip of " + name.encode())


def test_unflagged_footage_goes_on_time_with_a_tombstone(client, runtime, force, clock,
                                                         lifecycle_store) -> None:
    configure(runtime)
    rid = _rec(client, force, "R1")
    shas = shas_of(runtime, rid)
    deadline = dt.datetime.fromisoformat(retention(client, force.tokens["officer1"], rid)[
        "delete_after"])
    clock.advance(deadline - clock.now() - dt.timedelta(seconds=1))
    assert sweep(runtime, lifecycle_store).deleted == 0
    with transaction(runtime.sessions) as s:
        assert [d.recording_id for d in plan(s, now=clock.now(), days=1)] == [uuid.UUID(rid)]
    clock.advance(dt.timedelta(seconds=1))
    result = sweep(runtime, lifecycle_store)
    assert (result.deleted, result.failed) == (1, [])
    assert not exists(runtime, rid)
    for sha in shas:
        assert not runtime.store.exists(sha)
    with transaction(runtime.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Blob).where(Blob.sha256.in_(shas))) == 0
        tomb = s.scalars(select(Tombstone)).one()
        assert str(tomb.recording_id) == rid and tomb.finished_at == clock.now()
        assert tomb.device_serial == "CAM-1" and tomb.rule.startswith("unflagged")
        assert sorted(f["sha256"] for f in json.loads(tomb.files)) == shas
        assert tomb.total_size == sum(f["size"] for f in json.loads(tomb.files))
    assert events(runtime, "recording.deletion_decided", rid) == 1
    assert events(runtime, "recording.deleted", rid) == 1
    # Gone is gone, and says so; a second sweep finds nothing to do.
    assert flag(client, force.tokens["officer1"], rid).status_code == 410
    assert flag(client, force.tokens["officer2"], rid).status_code == 404  # never theirs
    again = sweep(runtime, lifecycle_store)
    assert (again.deleted, again.resumed) == (0, 0)


def test_flags_and_holds_keep_footage(client, runtime, force, clock, lifecycle_store) -> None:
    configure(runtime)
    plain, flagged, held = (_rec(client, force, n) for n in ("P", "F", "H"))
    assert flag(client, force.tokens["officer1"], flagged, category="training").status_code == 201
    h = hold(client, force.tokens["standards"], held)
    assert h.status_code == 201
    clock.advance(60 * DAY)
    sweep(runtime, lifecycle_store)
    assert (exists(runtime, plain), exists(runtime, flagged), exists(runtime, held)) == (
        False, True, True)
    clock.advance(400 * DAY)
    sweep(runtime, lifecycle_store)
    assert (exists(runtime, flagged), exists(runtime, held)) == (False, True)
    r = release(client, force.tokens["standards"], held, h.json()["id"])
    assert r.status_code == 200
    # Released, it is kept a review window more (on the due list, so it can be flagged).
    window = dt.timedelta(days=runtime.settings.retention_review_window_days)
    assert dt.datetime.fromisoformat(
        retention(client, force.tokens["officer1"], held)["delete_after"]) == clock.now() + window
    clock.advance(window - dt.timedelta(seconds=1))
    sweep(runtime, lifecycle_store)
    assert exists(runtime, held)
    clock.advance(dt.timedelta(seconds=1))
    sweep(runtime, lifecycle_store)
    assert not exists(runtime, held)


def test_the_rule_is_checked_again_under_the_lock(client, runtime, force, clock,
                                                  lifecycle_store) -> None:
    """A hold that committed after the stored date was computed (here: a stale date written
    behind the service's back) still wins: the sweep re-checks and stores the true date."""
    configure(runtime)
    rid = _rec(client, force, "R1")
    assert hold(client, force.tokens["standards"], rid).status_code == 201
    clock.advance(60 * DAY)
    with transaction(runtime.sessions) as s:
        rec = s.get(Recording, uuid.UUID(rid))
        assert rec is not None
        rec.delete_after = clock.now() - DAY
    result = sweep(runtime, lifecycle_store)
    assert (result.deleted, result.kept) == (0, 1)
    assert exists(runtime, rid)
    assert retention(client, force.tokens["standards"], rid)["delete_after"] is None


def test_a_flag_after_the_decision_finds_it_gone(client, runtime, force, clock) -> None:
    configure(runtime)
    rid = _rec(client, force, "R1")
    clock.advance(60 * DAY)
    with transaction(runtime.sessions) as s:
        rec = lock_recording(s, uuid.UUID(rid))
        assert rec is not None
        assert decide(s, clock=clock, settings=runtime.settings, rec=rec)
    r = flag(client, force.tokens["officer1"], rid)
    assert r.status_code == 410, r.text
    assert hold(client, force.tokens["standards"], rid).status_code == 410
    r = client.get(f"/api/v1/recordings/{rid}", headers=bearer(force.tokens["officer1"]))
    assert r.status_code == 404
    # Nor does search list it while its bytes go (another recording of the officer's does).
    other = _rec(client, force, "R2")
    for who in ("officer1", "standards"):
        r = client.get("/api/v1/recordings", headers=bearer(force.tokens[who]))
        assert r.status_code == 200
        assert [x["id"] for x in r.json()["items"]] == [other], who


def test_a_crash_half_way_is_resumed(client, runtime, force, clock, lifecycle_store,
                                     tmp_path: Path) -> None:
    """Decided and one blob gone, then the process died: the next run finishes, and storage
    and catalogue agree. Real clips, so posters are deleted too."""
    configure(runtime)
    folder = tmp_path / "CAM-1"
    simulate_camera(serial="CAM-1", officer="1001", out=folder, recordings=1, seconds=3,
                    resolution=(160, 90), fps=5, clip_seconds=2)
    tus = TusClient(str(client.base_url), force.dock_token, http=client)
    rid = upload_camera_folder(tus, folder, log_line=lambda _: None)[-1].recording_id
    runtime.jobs.run_pending()
    shas = shas_of(runtime, rid)
    with transaction(runtime.sessions) as s:
        posters = s.scalars(select(RecordingFile.poster_sha256).where(
            RecordingFile.recording_id == uuid.UUID(rid),
            RecordingFile.poster_sha256.is_not(None))).all()
    assert len(posters) == 2 and set(posters) <= set(shas)
    clock.advance(60 * DAY)
    with transaction(runtime.sessions) as s:
        rec = lock_recording(s, uuid.UUID(rid))
        assert rec is not None and decide(s, clock=clock, settings=runtime.settings, rec=rec)
    lifecycle_store.delete(shas[0], bypass_governance=True)
    result = sweep(runtime, lifecycle_store)
    assert (result.resumed, result.deleted, result.failed) == (1, 1, [])
    assert not exists(runtime, rid)
    assert [sha for sha in shas if runtime.store.exists(sha)] == []
    with transaction(runtime.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Blob).where(Blob.sha256.in_(shas))) == 0
        assert s.scalars(select(Tombstone.finished_at)).one() is not None
    assert events(runtime, "recording.deleted", rid) == 1


def test_files_docked_after_the_decision_are_kept_apart(client, runtime, force, clock,
                                                        lifecycle_store) -> None:
    """A camera docks a second clip, and again the first clip's bytes (a retried upload), of a
    recording the sweep has decided to delete: neither is added to it (its deletion would take
    them with it, unseen); both are kept, marked, under a recording of their own."""
    configure(runtime)
    first = b"first clip"
    rid = _rec(client, force, "R1", clip=first)
    clock.advance(60 * DAY)
    with transaction(runtime.sessions) as s:
        rec = lock_recording(s, uuid.UUID(rid))
        assert rec is not None and decide(s, clock=clock, settings=runtime.settings, rec=rec)
    second = b"second clip, docked late"
    late = [send(client, force.dock_token, data, device="CAM-1", recording="R1", kind="clip",
                 index=str(i), filename=f"R1_00{i}.mp4").headers["locker-recording"]
            for i, data in ((2, second), (1, first))]
    sc = sidecar(device="CAM-1", recording="R1", files=[("clip", 2, "R1_002.mp4", second)])
    late.append(send(client, force.dock_token, sc, device="CAM-1", recording="R1",
                     kind="sidecar", filename="R1.json").headers["locker-recording"])
    assert late[0] == late[1] == late[2] != rid
    assert (sweep(runtime, lifecycle_store).deleted, exists(runtime, rid)) == (1, False)
    with transaction(runtime.sessions) as s:
        kept = s.get(Recording, uuid.UUID(late[0]))
        assert kept is not None and kept.retention_state == "live"
        assert (kept.device_serial, kept.camera_recording_id) == ("CAM-1", "R1~late")
        assert kept.attribution_issues == f"arrived after recording {rid} was decided for deletion"
        assert kept.sidecar_state == "parsed"  # the camera's own id, not a mismatch
        # Recorded long ago, received now: a review window from now for someone to look.
        assert kept.delete_after == clock.now() + dt.timedelta(
            days=runtime.settings.retention_review_window_days)
        shas = sorted(f.sha256 for f in kept.files)
        tomb = s.scalars(select(Tombstone)).one()
        assert hashlib.sha256(second).hexdigest() not in tomb.files
    assert shas == sorted(hashlib.sha256(d).hexdigest() for d in (first, second, sc))
    assert all(runtime.store.exists(sha) for sha in shas)
    r = client.get(f"/api/v1/recordings/{late[0]}", headers=bearer(force.tokens["officer1"]))
    assert r.status_code == 200, r.text


def test_late_ids_fit_and_name_no_camera_id() -> None:
    longest = ["A" * 127 + "1", "A" * 127 + "2"]
    ids = [late_recording_id(x) for x in longest]
    assert all(len(x) <= 128 and "~late" in x for x in ids) and ids[0] != ids[1]
    assert late_recording_id("R1") == "R1~late"
    assert names_recording("R1", "R1") and names_recording("R1", "R1~late~late")
    assert names_recording(longest[0], late_recording_id(ids[0]))
    assert not names_recording("R1", "R2~late") and not names_recording("R1~late", "R1")
    assert not RECORDING_RE.match("R1~late")  # no camera can send it


def test_a_blob_shared_with_a_kept_recording_stays(client, runtime, force, clock,
                                                   lifecycle_store) -> None:
    configure(runtime)
    gone = _rec(client, force, "A", clip=b"same bytes")
    kept = _rec(client, force, "B", clip=b"same bytes")
    assert hold(client, force.tokens["standards"], kept).status_code == 201
    shared = [s for s in shas_of(runtime, gone) if s in shas_of(runtime, kept)]
    own = [s for s in shas_of(runtime, gone) if s not in shared]
    assert shared and own  # the clip and track are the same bytes; the sidecars differ
    clock.advance(60 * DAY)
    assert sweep(runtime, lifecycle_store).deleted == 1
    assert not exists(runtime, gone)
    assert all(runtime.store.exists(s) for s in shared)
    assert not any(runtime.store.exists(s) for s in own)
    r = client.get(f"/api/v1/recordings/{kept}", headers=bearer(force.tokens["officer1"]))
    assert r.status_code == 200


def test_recordings_sharing_a_blob_deleted_together_free_it(client, runtime, force, clock,
                                                            lifecycle_store) -> None:
    """Both decided before either finishes (as two sweeps in parallel would): the shared blob
    is still deleted, not left for the other."""
    configure(runtime)
    a = _rec(client, force, "A", clip=b"same bytes")
    b = _rec(client, force, "B", clip=b"same bytes")
    shared = [s for s in shas_of(runtime, a) if s in shas_of(runtime, b)]
    assert shared
    clock.advance(60 * DAY)
    with transaction(runtime.sessions) as s:
        for rid in (a, b):
            rec = lock_recording(s, uuid.UUID(rid))
            assert rec is not None and decide(s, clock=clock, settings=runtime.settings, rec=rec)
    result = sweep(runtime, lifecycle_store)
    assert (result.resumed, result.failed) == (2, [])
    assert not any(runtime.store.exists(s) for s in shared)
    with transaction(runtime.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Blob).where(
            Blob.sha256.in_(shared))) == 0


@pytest.mark.embedded_only  # SQLite's EXPLAIN QUERY PLAN; PostgreSQL: bench/retention.py
def test_every_sweep_query_is_indexed(client, runtime, force, clock, lifecycle_store) -> None:
    """A sweep runs a few queries per batch of a catalogue of millions of recordings: each must
    find its rows through an index, never by scanning a table (a scan per batch makes a sweep's
    cost grow with the square of the catalogue)."""
    configure(runtime)
    for name in ("A", "B", "C"):
        _rec(client, force, name)
    clock.advance(60 * DAY)
    seen: list[tuple[str, Any]] = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:
        if not executemany and statement.split()[0].upper() in ("SELECT", "UPDATE", "DELETE"):
            seen.append((statement, parameters))

    event.listen(runtime.engine, "before_cursor_execute", keep)
    try:
        assert sweep(runtime, lifecycle_store).deleted == 3
    finally:
        event.remove(runtime.engine, "before_cursor_execute", keep)
    assert len(seen) > 10
    scans = []
    with runtime.engine.connect() as conn:
        for statement, parameters in seen:
            plan = [row[3] for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters)]
            scans += [(step, statement) for step in plan if step.startswith("SCAN ")]
    assert scans == [], "\n".join(sorted({f"{s}: {q[:90]}" for s, q in scans}))
