"""`locker retention` in real processes, on the real clock: footage seeded with past times
through the services, then holds placed from this process while the sweep runs in another.
Whatever the interleaving, a hold that was granted kept its recording whole, and everything
else due went, leaving storage and catalogue in agreement."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid

from sqlalchemy import select

from cat_helpers import record_camera
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


def test_reviews_lists_the_queue(client, runtime, force, clock, deployment, scale_out) -> None:
    """`locker retention reviews [--days N]`: the flags due for review, soonest first."""
    from evidence_locker.config import RetentionCategory
    from life_helpers import CATEGORIES, configure, flag

    short = RetentionCategory(name="short review", kind="review", days=30)
    configure(runtime, [*CATEGORIES, short])
    old, new = (record_camera(client, force.dock_token, device="CAM-1", recording=name,
                              clip=name.encode(),
                              started_at=(clock.now() - dt.timedelta(days=ago)).isoformat())
                for name, ago in (("DUE", 40), ("SOON", 25)))  # due 10 days ago; in 5 days
    ids = [flag(client, force.tokens["officer1"], rid, category=short.name,
                reference=f"CRIME/2026/{i}").json()["id"] for i, rid in enumerate((old, new))]
    env = locker_env(runtime, deployment, scale_out)
    r = locker(env, "retention", "reviews")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == "1 flags due for review now"
    assert f"\tU1\t{old}\tflag {ids[0]}\tshort review\tCRIME/2026/0" in lines[0]
    r = locker(env, "retention", "reviews", "--days", "10")
    assert r.returncode == 0, r.stderr
    assert [line.split("\t")[2] for line in r.stdout.splitlines()[:-1]] == [old, new]
    assert r.stdout.splitlines()[-1] == "2 flags due for review in the next 10 days"
    r = locker(env, "retention", "reviews", "--days", "-1")
    assert r.returncode != 0
