"""A year in seconds with the injected clock: recordings every few days, flags, withdrawals,
holds and releases, recordings linked to cases and the cases closed and reopened (seeded
pseudo-random, so the run is the same every time), a sweep every step; every recording's fate
checked against the rule of deletion after every sweep, and at the end storage holds exactly the
blobs of the recordings still kept."""

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
from life_helpers import (
    CASE_CATEGORY,
    CATEGORIES,
    Model,
    configure,
    flag,
    hold,
    link,
    open_case,
    release,
    set_status,
    unflag,
)

STEP = dt.timedelta(days=3)


def test_a_year_of_footage(client, runtime, force, clock, lifecycle_store) -> None:
    configure(runtime, [*CATEGORIES, CASE_CATEGORY])
    rng = random.Random(6)
    officer, ps = force.tokens["officer1"], force.tokens["standards"]
    policy = rules.Policy(runtime.settings.retention_unflagged_days,
                          runtime.settings.retention_review_window_days)
    kinds = {c.name: (c.kind, c.days) for c in (*CATEGORIES, CASE_CATEGORY)}
    cases: dict[int, dt.datetime | None] = {}  # case id: when it closed (None: open)
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
            action = rng.choice(["flag", "flag", "unflag", "hold", "release", "case", "none",
                                 "none"])
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
            elif action == "case":
                open_ = [c for c, closed in cases.items() if closed is None and c not in m.cases]
                if not open_:
                    r = open_case(client, ps, f"CRIME/2026/{step:04d}", unit="F")
                    assert r.status_code == 201, r.text
                    cases[r.json()["id"]] = None
                    open_ = [r.json()["id"]]
                cid = rng.choice(open_)
                assert link(client, ps, cid, m.rid).status_code == 201
                m.cases[cid] = rules.CaseFacts()
        if step % 9 == 8 and cases:
            # Close an open case, or reopen a closed one; its recordings' facts follow.
            cid = rng.choice(sorted(cases))
            status = "open" if cases[cid] is not None else "closed"
            assert set_status(client, ps, cid, status).status_code == 200
            cases[cid] = clock.now() if status == "closed" else None
            for m in models:
                if cid in m.cases and not m.gone:  # what is gone stays judged as it went
                    m.cases[cid] = rules.CaseFacts(closed_at=cases[cid])
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
    # The year exercised the cases: some footage went after its case closed.
    assert any(m.gone and m.cases for m in models) and any(m.cases and not m.gone for m in models)
    kept_blobs = set().union(*(blobs[m.rid] for m in kept))
    for m in models:
        for sha in blobs[m.rid]:
            assert runtime.store.exists(sha) == (sha in kept_blobs), (m.rid, sha)
    with transaction(runtime.sessions) as s:
        tombs = {str(t.recording_id): t for t in s.scalars(select(Tombstone))}
    assert sorted(tombs) == sorted(m.rid for m in models if m.gone)
    assert all(t.finished_at is not None for t in tombs.values())
