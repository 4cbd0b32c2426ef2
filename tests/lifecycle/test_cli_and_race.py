"""`locker retention` in real processes, on the real clock: footage seeded with past times
through the services, then holds placed from this process while the sweep runs in another.
Whatever the interleaving, a hold that was granted kept its recording whole, and everything
else due went, leaving storage and catalogue in agreement."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from sqlalchemy import select

from evidence_locker.catalogue.models import Recording, RecordingFile
from evidence_locker.db import transaction
from evidence_locker.lifecycle.models import Tombstone
from life_helpers import hold, locker, locker_env, seed_past


def test_categories_apply_and_plan(client, runtime, force, clock, deployment, scale_out) -> None:
    cats = [{"name": "use of force", "kind": "fixed", "days": 730}]
    env = locker_env(runtime, deployment, scale_out,
                     LOCKER_RETENTION_CATEGORIES=json.dumps(cats))
    r = locker(env, "retention", "categories", "apply")
    assert r.returncode == 0, r.stderr
    assert "use of force: fixed 730 days (new; 0 flagged)" in r.stdout
    seed_past(client, force, clock, 2, days_ago=30)
    r = locker(env, "retention", "plan", "--days", "7")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-2:] == ["U1\t2", "2 recordings due for deletion in the next "
                                          "7 days"]
    r = locker(env, "retention", "plan", "--days", "0")
    assert r.stdout.strip() == "0 recordings due for deletion in the next 0 days"


def test_holds_race_the_sweep_in_another_process(client, runtime, force, clock, deployment,
                                                 scale_out) -> None:
    rids = seed_past(client, force, clock, 16)
    with transaction(runtime.sessions) as s:
        blobs = {rid: sorted(set(s.scalars(select(RecordingFile.sha256).where(
            RecordingFile.recording_id == uuid.UUID(rid))))) for rid in rids}
    env = locker_env(runtime, deployment, scale_out)
    sweep = subprocess.Popen([sys.executable, "-m", "evidence_locker", "retention", "run",
                              "--batch", "2"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    # Start racing once the sweep has begun deleting (or has finished), so both sides act.
    while sweep.poll() is None:
        with transaction(runtime.sessions) as s:
            if s.scalars(select(Tombstone.id)).first() is not None:
                break
    outcome = {rid: hold(client, force.tokens["standards"], rid).status_code
               for rid in reversed(rids)}
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err
    # 201: the hold won. The sweep won: 409 while its recording is being deleted (decided,
    # bytes going), 410 once it is gone. Whichever, the checks below hold each side to it.
    assert set(outcome.values()) <= {201, 409, 410}, outcome
    # A second run (the real clock again) finds nothing left to do.
    again = locker(env, "retention", "run")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("retention: 0 deleted (0 resumed)"), again.stdout
    # Blobs that recordings share (every seeded track is the same bytes) stay while one is kept.
    kept = {sha for rid, status in outcome.items() if status == 201 for sha in blobs[rid]}
    with transaction(runtime.sessions) as s:
        for rid, status in outcome.items():
            rec = s.get(Recording, uuid.UUID(rid))
            tomb = s.scalars(select(Tombstone).where(
                Tombstone.recording_id == uuid.UUID(rid))).one_or_none()
            if status == 201:  # the hold won: nothing of it was touched
                assert rec is not None and rec.retention_state == "live" and tomb is None
                assert all(runtime.store.exists(sha) for sha in blobs[rid]), rid
            else:  # the sweep won: gone from catalogue and storage, tombstone finished
                assert rec is None and tomb is not None and tomb.finished_at is not None
                for sha in blobs[rid]:
                    assert runtime.store.exists(sha) == (sha in kept), (rid, sha)
