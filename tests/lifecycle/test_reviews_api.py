"""The review queue and its decisions through the API: who may, only from the review date,
retain moves the review, dispose lets the sweep delete, bad input changes nothing, every
decision audited, retried POSTs act once."""

from __future__ import annotations

import datetime as dt
import uuid

from cat_helpers import record_camera
from evidence_locker.catalogue.models import Recording
from evidence_locker.config import RetentionCategory
from evidence_locker.db import transaction
from evidence_locker.lifecycle.models import ReviewDecision
from evidence_locker.lifecycle.sweep import run_sweep
from life_helpers import CATEGORIES, bearer, configure, flag, hold, retention, review
from support import count_events, count_rows

STARTED = dt.datetime(2026, 11, 21, 8, 15, tzinfo=dt.UTC)  # the test sidecar's start
SHORT = RetentionCategory(name="crime - short review", kind="review", days=30)
DUE = STARTED + dt.timedelta(days=30)


def _setup(client, runtime, force, recording: str = "R1", device: str = "CAM-1",
           ) -> tuple[str, int]:
    if not runtime.settings.retention_categories:
        configure(runtime, [*CATEGORIES, SHORT])
    rid = record_camera(client, force.dock_token, device=device, recording=recording,
                        clip=b"clip " + recording.encode())
    r = flag(client, force.tokens["officer1" if device != "CAM-3" else "officer2"], rid,
             category=SHORT.name)
    assert r.status_code == 201, r.text
    assert dt.datetime.fromisoformat(r.json()["review_due_at"]) == DUE
    return rid, r.json()["id"]


def _queue(client, token: str, **params: object):
    return client.get("/api/v1/reviews", headers=bearer(token), params=params)


def _to_due(clock) -> None:
    clock.advance(DUE - clock.now() + dt.timedelta(hours=1))


def test_a_review_flag_keeps_and_comes_due(client, runtime, force, clock) -> None:
    rid, fid = _setup(client, runtime, force)
    ev = force.tokens["evidence1"]
    state = retention(client, ev, rid)
    assert state["delete_after"] is None  # kept until a dispose decision
    assert state["flags"][0]["review_due_at"] == DUE.isoformat()
    assert _queue(client, ev).json()["items"] == []
    soon = _queue(client, ev, days=(DUE - clock.now()).days + 1).json()["items"]
    assert [(i["recording_id"], i["flag_id"]) for i in soon] == [(rid, fid)]
    # Not due yet: no decision either way, nothing recorded.
    assert review(client, ev, rid, fid, "dispose", next_review_days=None).status_code == 409
    assert review(client, ev, rid, fid).status_code == 409
    assert count_rows(runtime, ReviewDecision) == 0
    _to_due(clock)
    due = _queue(client, ev).json()["items"]
    assert [i["flag_id"] for i in due] == [fid]
    assert due[0]["unit"] == "U1" and due[0]["officer"] == "1001"
    assert count_events(runtime, "evidence.review_queue_read") == 3


def test_who_may_review(client, runtime, force, clock) -> None:
    rid, fid = _setup(client, runtime, force)
    _to_due(clock)
    for user in ("officer1", "sergeant1", "standards", "auditor", "admin", "fleetadmin"):
        assert review(client, force.tokens[user], rid, fid).status_code == 403, user
        assert _queue(client, force.tokens[user]).status_code == 403, user
    # An evidence officer of another command sees neither the flag nor the recording.
    from support import add_user
    other = add_user(runtime, "evidence2", "evidence-officer", "U2")
    assert _queue(client, other).json()["items"] == []
    assert review(client, other, rid, fid).status_code == 404
    assert count_rows(runtime, ReviewDecision) == 0
    r = review(client, force.tokens["evidence1"], rid, fid)
    assert r.status_code == 200, r.text
    assert r.json()["decided_role"] == "evidence-officer"


def test_retain_moves_the_review_and_dispose_lets_it_go(client, runtime, force, clock,
                                                        lifecycle_store) -> None:
    rid, fid = _setup(client, runtime, force)
    ev = force.tokens["evidence1"]
    _to_due(clock)
    r = review(client, ev, rid, fid, "retain", next_review_days=365)
    assert r.status_code == 200, r.text
    next_review = clock.now() + dt.timedelta(days=365)
    assert dt.datetime.fromisoformat(r.json()["next_review_at"]) == next_review
    assert dt.datetime.fromisoformat(r.json()["review_due_at"]) == next_review
    assert r.json()["delete_after"] is None
    assert _queue(client, ev).json()["items"] == []
    assert review(client, ev, rid, fid, "dispose", next_review_days=None).status_code == 409
    clock.advance(dt.timedelta(days=366))
    assert [i["flag_id"] for i in _queue(client, ev).json()["items"]] == [fid]
    assert _queue(client, ev).json()["items"][0]["last_decision"]["decision"] == "retain"
    run_sweep(runtime.sessions, clock=clock, settings=runtime.settings, store=lifecycle_store)
    with transaction(runtime.sessions) as s:
        assert s.get(Recording, uuid.UUID(rid)) is not None  # still no dispose
    r = review(client, ev, rid, fid, "dispose", next_review_days=None)
    assert r.status_code == 200, r.text
    assert dt.datetime.fromisoformat(r.json()["delete_after"]) == clock.now()
    state = retention(client, ev, rid)
    assert [d["decision"] for d in state["flags"][0]["reviews"]] == ["retain", "dispose"]
    assert state["flags"][0]["review_due_at"] is None
    assert review(client, ev, rid, fid).status_code == 409  # decided for good
    assert _queue(client, ev).json()["items"] == []
    assert (count_events(runtime, "evidence.retained"),
            count_events(runtime, "evidence.disposed")) == (1, 1)
    result = run_sweep(runtime.sessions, clock=clock, settings=runtime.settings,
                       store=lifecycle_store)
    assert result.deleted == 1 and result.failed == []
    assert review(client, ev, rid, fid).status_code == 410


def test_a_dispose_does_not_beat_a_hold_or_another_flag(client, runtime, force, clock,
                                                        lifecycle_store) -> None:
    rid, fid = _setup(client, runtime, force)
    ev = force.tokens["evidence1"]
    assert hold(client, force.tokens["standards"], rid).status_code == 201
    assert flag(client, force.tokens["officer1"], rid, category="use of force").status_code \
        == 201
    _to_due(clock)
    assert review(client, ev, rid, fid, "dispose", next_review_days=None).status_code == 200
    state = retention(client, ev, rid)
    assert state["held"] and state["delete_after"] is None
    assert dt.datetime.fromisoformat(state["deadline"]) == STARTED + dt.timedelta(days=730)
    run_sweep(runtime.sessions, clock=clock, settings=runtime.settings, store=lifecycle_store)
    assert retention(client, ev, rid)["flags"][0]["disposed_at"] is not None


def test_bad_review_decisions_change_nothing(client, runtime, force, clock) -> None:
    rid, fid = _setup(client, runtime, force)
    ev = force.tokens["evidence1"]
    _to_due(clock)
    before = retention(client, ev, rid)
    for r in (review(client, ev, rid, fid, "keep"),
              review(client, ev, rid, fid, "retain", next_review_days=None),
              review(client, ev, rid, fid, "retain", next_review_days=29),
              review(client, ev, rid, fid, "retain", next_review_days=3651),
              review(client, ev, rid, fid, "retain", reason="short"),
              review(client, ev, rid, fid, "dispose", next_review_days=365),
              review(client, ev, rid, fid, "dispose", reason="", next_review_days=None)):
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    assert review(client, ev, rid, 999).status_code == 404
    fixed = flag(client, force.tokens["officer1"], rid, category="use of force").json()["id"]
    assert review(client, ev, rid, fixed).status_code == 409  # no review date
    assert count_rows(runtime, ReviewDecision) == 0
    after = retention(client, ev, rid)
    assert after["flags"][0] == before["flags"][0]
    assert _queue(client, ev, cursor="not-a-cursor").status_code == 400
    assert _queue(client, ev, days=-1).status_code == 422


def test_review_decision_idempotency_key_acts_once(client, runtime, force, clock) -> None:
    rid, fid = _setup(client, runtime, force)
    ev = force.tokens["evidence1"]
    _to_due(clock)
    first = review(client, ev, rid, fid, **{"Idempotency-Key": "r-1"})
    again = review(client, ev, rid, fid, **{"Idempotency-Key": "r-1"})
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    other = review(client, ev, rid, fid, next_review_days=400, **{"Idempotency-Key": "r-1"})
    assert other.status_code == 422
    assert count_rows(runtime, ReviewDecision) == 1


def test_the_queue_pages_in_review_date_order(client, runtime, force, clock) -> None:
    made = []
    for i in range(5):
        clock.advance(dt.timedelta(minutes=1))
        made.append(_setup(client, runtime, force, recording=f"Q{i}"))
    _to_due(clock)
    ev = force.tokens["evidence1"]
    # All five share the sidecar's start time, so the queue is ordered by flag id within it.
    seen, cursor = [], None
    while True:
        body = _queue(client, ev, limit=2, **({"cursor": cursor} if cursor else {})).json()
        seen += [i["flag_id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(fid for _, fid in made)
