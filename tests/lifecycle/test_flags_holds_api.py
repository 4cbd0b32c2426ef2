"""Flags and holds through the API: who may, what changes, bad input changes nothing, every
change audited, retried POSTs act once."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from cat_helpers import record_camera
from evidence_locker.config import RetentionCategory
from evidence_locker.db import transaction
from evidence_locker.lifecycle.models import EvidenceFlag, Hold
from evidence_locker.lifecycle.service import LifecycleRefused
from life_helpers import bearer, configure, flag, hold, release, retention, unflag
from support import count_events, count_rows


def _rec(client, force, recording: str = "R1", device: str = "CAM-1") -> str:
    return record_camera(client, force.dock_token, device=device, recording=recording,
                         clip=b"clip " + recording.encode())


def test_unflagged_deadline_and_a_flag_extends_it(client, runtime, force) -> None:
    configure(runtime)
    rid = _rec(client, force)
    before = retention(client, force.tokens["officer1"], rid)
    started = dt.datetime(2026, 11, 21, 8, 15, tzinfo=dt.UTC)
    expected = max(started + dt.timedelta(days=31), runtime.clock.now() + dt.timedelta(days=7))
    assert dt.datetime.fromisoformat(before["delete_after"]) == expected
    r = flag(client, force.tokens["officer1"], rid)
    assert r.status_code == 201, r.text
    assert r.json()["category_version"] == 1
    after = retention(client, force.tokens["officer1"], rid)
    assert dt.datetime.fromisoformat(after["delete_after"]) == started + dt.timedelta(days=730)
    assert count_events(runtime, "evidence.flagged") == 1


def test_who_may_flag(client, runtime, force) -> None:
    configure(runtime)
    rid = _rec(client, force)  # officer1's (unit U1, command C1)
    assert flag(client, force.tokens["officer2"], rid).status_code == 404  # not theirs to see
    for user in ("officer1", "sergeant1", "evidence1"):
        assert flag(client, force.tokens[user], rid).status_code == 201, user
    for user in ("standards", "auditor", "admin"):
        assert flag(client, force.tokens[user], rid).status_code == 403, user
    assert count_rows(runtime, EvidenceFlag) == 3


def test_bad_flags_change_nothing(client, runtime, force) -> None:
    configure(runtime)
    rid = _rec(client, force)
    tok = force.tokens["officer1"]
    before = retention(client, tok, rid)
    for r in (flag(client, tok, rid, category="no such thing"),
              flag(client, tok, rid, reference="x"),
              flag(client, tok, rid, reference="bad reference; DROP"),
              flag(client, tok, rid, note="n" * 5000)):
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    assert flag(client, tok, "00000000-0000-0000-0000-000000000000").status_code == 404
    assert retention(client, tok, rid) == before
    assert count_rows(runtime, EvidenceFlag) == 0
    assert count_events(runtime, "evidence.flagged") == 0


def test_withdrawal_keeps_at_least_the_review_window(client, runtime, force, clock) -> None:
    configure(runtime)
    rid = _rec(client, force)
    tok = force.tokens["sergeant1"]
    fid = flag(client, tok, rid).json()["id"]
    clock.advance(dt.timedelta(days=100))
    assert unflag(client, tok, rid, fid, reason="short").status_code == 422
    r = unflag(client, tok, rid, fid)
    assert r.status_code == 200, r.text
    after = retention(client, tok, rid)
    assert dt.datetime.fromisoformat(after["delete_after"]) == (
        clock.now() + dt.timedelta(days=7))
    assert unflag(client, tok, rid, fid).status_code == 409
    assert unflag(client, tok, rid, 999).status_code == 404
    assert count_events(runtime, "evidence.flag_withdrawn") == 1


def test_holds_block_and_release(client, runtime, force) -> None:
    configure(runtime)
    rid = _rec(client, force)
    ps = force.tokens["standards"]
    for user in ("officer1", "sergeant1", "evidence1"):
        assert hold(client, force.tokens[user], rid).status_code == 403, user
    assert hold(client, ps, rid, kind="whim").status_code == 422
    assert hold(client, ps, rid, reason="").status_code == 422
    r = hold(client, ps, rid)
    assert r.status_code == 201, r.text
    hid = r.json()["id"]
    state = retention(client, ps, rid)
    assert state["held"] and state["delete_after"] is None
    assert release(client, ps, rid, hid, reason="").status_code == 422
    assert release(client, force.tokens["evidence1"], rid, hid).status_code == 403
    assert retention(client, ps, rid)["held"]
    r = release(client, ps, rid, hid)
    assert r.status_code == 200, r.text
    assert r.json()["released_role"] == "professional-standards"
    state = retention(client, ps, rid)
    assert not state["held"] and state["delete_after"] is not None
    assert release(client, ps, rid, hid).status_code == 409
    assert (count_events(runtime, "hold.placed"), count_events(runtime, "hold.released")) == (1, 1)


def test_idempotency_key_acts_once(client, runtime, force) -> None:
    configure(runtime)
    rid = _rec(client, force)
    tok, ps = force.tokens["officer1"], force.tokens["standards"]
    first = flag(client, tok, rid, **{"Idempotency-Key": "k-1"})
    again = flag(client, tok, rid, **{"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    other = flag(client, tok, rid, reference="CRIME/2026/0002", **{"Idempotency-Key": "k-1"})
    assert other.status_code == 422
    assert count_rows(runtime, EvidenceFlag) == 1
    h1 = hold(client, ps, rid, **{"Idempotency-Key": "k-1"})  # keys are per person
    h2 = hold(client, ps, rid, **{"Idempotency-Key": "k-1"})
    assert (h1.status_code, h2.status_code) == (201, 201) and h1.json() == h2.json()
    assert count_rows(runtime, Hold) == 1
    assert count_events(runtime, "hold.placed") == 1


def test_shortening_a_flagged_category_needs_a_decision(client, runtime, force) -> None:
    configure(runtime)
    rid = _rec(client, force)
    assert flag(client, force.tokens["officer1"], rid).status_code == 201
    shorter = [RetentionCategory(name="use of force", kind="fixed", days=365)]
    try:
        configure(runtime, shorter)
    except LifecycleRefused as exc:
        assert "use of force (1 flagged)" in str(exc)
    else:
        raise AssertionError("a shortening was applied without a decision")
    assert retention(client, force.tokens["officer1"], rid)["flags"][0]["category_version"] == 1
    configure(runtime, shorter, decision="Policy review 2026/14 reduced use-of-force retention")
    state = retention(client, force.tokens["officer1"], rid)
    assert state["flags"][0]["category_version"] == 2
    started = dt.datetime(2026, 11, 21, 8, 15, tzinfo=dt.UTC)
    assert dt.datetime.fromisoformat(state["delete_after"]) == started + dt.timedelta(days=365)
    longer = [RetentionCategory(name="use of force", kind="fixed", days=3000)]
    configure(runtime, longer)  # lengthening needs no decision
    assert retention(client, force.tokens["officer1"], rid)["flags"][0]["category_version"] == 3


def test_camera_bookmarks_arrive_as_flags(client, runtime, force) -> None:
    """The test sidecar bookmarks `use-of-force`: with a category of that name configured, the
    recording arrives flagged (no reference, no person), and the flag counts for retention."""
    configure(runtime, [RetentionCategory(name="use-of-force", kind="fixed", days=1000)])
    rid = _rec(client, force)
    state = retention(client, force.tokens["officer1"], rid)
    assert [(f["category"], f["reference"]) for f in state["flags"]] == [("use-of-force", "")]
    started = dt.datetime(2026, 11, 21, 8, 15, tzinfo=dt.UTC)
    assert dt.datetime.fromisoformat(state["delete_after"]) == started + dt.timedelta(days=1000)
    with transaction(runtime.sessions) as s:
        assert s.scalars(select(EvidenceFlag.flagged_by)).all() == [None]


def test_a_post_incident_hold_also_controls_viewing(client, runtime, force) -> None:
    configure(runtime)
    rid = _rec(client, force)
    ps, own = force.tokens["standards"], force.tokens["officer1"]
    assert client.get(f"/api/v1/recordings/{rid}", headers=bearer(own)).status_code == 200
    r = hold(client, ps, rid, kind="post-incident")
    assert r.status_code == 201, r.text
    assert r.json()["restricted"] is True
    for user in ("officer1", "sergeant1", "evidence1"):
        r = client.get(f"/api/v1/recordings/{rid}", headers=bearer(force.tokens[user]))
        assert r.status_code == 404, user
    restriction = client.get(f"/api/v1/recordings/{rid}/restriction", headers=bearer(ps))
    assert restriction.status_code == 200
    assert restriction.json()["kind"] == "post-incident"
    assert count_events(runtime, "recording.restricted") == 1
    assert retention(client, ps, rid)["held"]


def test_ids_out_of_range_are_bad_input(client, runtime, force) -> None:
    configure(runtime)
    rid = _rec(client, force)
    huge = "99999999999999999999999"
    r = client.request("DELETE", f"/api/v1/recordings/{rid}/flags/{huge}",
                       headers=bearer(force.tokens["officer1"]), json={"reason": "x" * 20})
    assert r.status_code == 422, r.text
    r = client.post(f"/api/v1/recordings/{rid}/holds/{huge}/release",
                    headers=bearer(force.tokens["standards"]), json={"reason": "x" * 20})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
