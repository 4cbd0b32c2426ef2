"""A year in seconds with the injected clock: recordings every few days, flags, withdrawals,
holds and releases (seeded pseudo-random, so the run is the same every time), a sweep every
step; every recording's fate checked against the rule of deletion after every sweep, and at the
end storage holds exactly the blobs of the recordings still kept."""

from __future__ import annotations

import datetime as dt
import random
import uuid

from sqlalchemy import select

from cat_helpers import record_camera
from evidence_locker.catalogue.models import Recording, RecordingFile
from evidence_locker.db import transaction
from evidence_locker.lifecycle import rules
from evidence_locker.lifecycle.models import Tombstone
from evidence_locker.lifecycle.sweep import run_sweep
from life_helpers import CATEGORIES, Model, configure, flag, hold, release, unflag

STEP = dt.timedelta(days=3)


def test_a_year_of_footage(client, runtime, force, clock, lifecycle_store) -> None:
    configure(runtime)
    rng = random.Random(6)
    officer, ps = force.tokens["officer1"], force.tokens["standards"]
    policy = rules.Policy(runtime.settings.retention_unflagged_days,
                          runtime.settings.retention_review_window_days)
    kinds = {c.name: (c.kind, c.days) for c in CATEGORIES}
    models: list[Model] = []
    blobs: dict[str, set[str]] = {}
    deleted = 0
    for step in range(122):
        now = clock.now()
        # Late docking: some footage arrives weeks after it was recorded.
        late = dt.timedelta(days=rng.choice([0, 0, 0, 20, 45]))
        rid = record_camera(client, force.dock_token, device="CAM-1", recording=f"Y{step}",
                            clip=uuid.uuid4().bytes,
                            started_at=(now - late).isoformat())
        with transaction(runtime.sessions) as s:
            rec = s.get(Recording, uuid.UUID(rid))
            assert rec is not None
            models.append(Model(rid, rec.sort_at, rec.received_at))
            blobs[rid] = set(s.scalars(select(RecordingFile.sha256).where(
                RecordingFile.recording_id == rec.id)))
        for m in rng.sample(models, min(3, len(models))):
            if m.gone:
                continue
            action = rng.choice(["flag", "flag", "unflag", "hold", "release", "none", "none"])
            if action == "flag":
                name = rng.choice(sorted(kinds))
                r = flag(client, officer, m.rid, category=name)
                assert r.status_code == 201, r.text
                m.flags[r.json()["id"]] = rules.FlagFacts(*kinds[name])
            elif action == "unflag" and any(f.withdrawn_at is None for f in m.flags.values()):
                fid = next(i for i, f in m.flags.items() if f.withdrawn_at is None)
                assert unflag(client, officer, m.rid, fid).status_code == 200
                f = m.flags[fid]
                m.flags[fid] = rules.FlagFacts(f.kind, f.days, withdrawn_at=clock.now())
            elif action == "hold":
                r = hold(client, ps, m.rid)
                assert r.status_code == 201, r.text
                m.holds[r.json()["id"]] = rules.HoldFacts()
            elif action == "release" and any(h.active for h in m.holds.values()):
                hid = next(i for i, h in m.holds.items() if h.active)
                assert release(client, ps, m.rid, hid).status_code == 200
                m.holds[hid] = rules.HoldFacts(released_at=clock.now())
        clock.advance(STEP)
        result = run_sweep(runtime.sessions, clock=clock, settings=runtime.settings,
                           store=lifecycle_store, batch=7)
        assert result.failed == []
        deleted += result.deleted
        with transaction(runtime.sessions) as s:
            alive = {str(i) for i in s.scalars(select(Recording.id))}
        for m in models:
            allowed = rules.may_delete(policy, m.facts(), clock.now())
            assert (m.rid in alive) == (not allowed), (m, clock.now())
            m.gone = m.rid not in alive
    kept = [m for m in models if not m.gone]
    assert deleted == len(models) - len(kept) and 0 < len(kept) < len(models)
    kept_blobs = set().union(*(blobs[m.rid] for m in kept))
    for m in models:
        for sha in blobs[m.rid]:
            assert runtime.store.exists(sha) == (sha in kept_blobs), (m.rid, sha)
    with transaction(runtime.sessions) as s:
        tombs = {str(t.recording_id): t for t in s.scalars(select(Tombstone))}
    assert sorted(tombs) == sorted(m.rid for m in models if m.gone)
    assert all(t.finished_at is not None for t in tombs.values())
