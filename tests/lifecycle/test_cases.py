"""Cases through the API: who may open, change and read one; bad input changes nothing; an open
case holds its recordings against the sweep and a closed one starts its `case-closed` flags'
days; reopening holds them again; a watchdog sees a case's unrestricted recordings while its
grant lasts, and nothing else."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from test_sweep import exists

from cat_helpers import record_camera
from evidence_locker.catalogue.models import Recording
from evidence_locker.db import transaction
from evidence_locker.lifecycle.case_models import Case, CaseGrant, CaseRecording
from evidence_locker.lifecycle.sweep import decide, run_sweep
from life_helpers import (
    CASE_CATEGORY,
    CATEGORIES,
    REASON,
    configure,
    flag,
    grant,
    link,
    open_case,
    retention,
    revoke,
    set_status,
    unlink,
)
from support import add_user, bearer, count_events, count_rows

DAY = dt.timedelta(days=1)


def _rec(client, force, name: str = "R1", device: str = "CAM-1") -> str:
    return record_camera(client, force.dock_token, device=device, recording=name,
                         clip=b"clip of " + name.encode())


def _sweep(runtime, store):
    result = run_sweep(runtime.sessions, clock=runtime.clock, settings=runtime.settings,
                       store=store)
    assert result.failed == []
    return result


def test_who_may_open_a_case(client, runtime, force) -> None:
    configure(runtime)
    for user in ("officer1", "sergeant1"):
        r = open_case(client, force.tokens[user], "CRIME/2026/0100")
        assert r.status_code == 403, (user, r.text)
    for user in ("auditor", "admin", "fleetadmin"):
        r = open_case(client, force.tokens[user], "CRIME/2026/0100")
        assert r.status_code == 403, (user, r.text)
        assert client.get("/api/v1/cases", headers=bearer(force.tokens[user])).status_code == 403
    assert client.post("/api/v1/cases", json={"reference": "CRIME/2026/0100",
                                              "title": "x"}).status_code == 401
    # An evidence officer opens cases in their own command only.
    assert open_case(client, force.tokens["evidence1"], "CRIME/2026/0100",
                     unit="U2").status_code == 403
    assert count_rows(runtime, Case) == 0 and count_events(runtime, "case.opened") == 0
    r = open_case(client, force.tokens["evidence1"], "CRIME/2026/0100")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["status"], body["open"], body["unit"], body["opened_by"]) == (
        "open", True, "C1", "evidence1")
    r = open_case(client, force.tokens["standards"], "CRIME/2026/0101", unit="U2")
    assert r.status_code == 201, r.text
    assert count_events(runtime, "case.opened") == 2


def test_bad_cases_change_nothing(client, runtime, force) -> None:
    configure(runtime)
    tok = force.tokens["evidence1"]
    assert open_case(client, tok, "CRIME/2026/0100").status_code == 201
    for r in (open_case(client, tok, "not a reference"),
              open_case(client, tok, "CRIME/2026/0101'; DROP TABLE cases; --"),
              open_case(client, tok, "CRIME/2026/0102", title="   "),
              open_case(client, tok, "CRIME/2026/0103", title="t" * 401),
              open_case(client, tok, "CRIME/2026/0104", unit="NOPE"),
              client.post("/api/v1/cases", headers=bearer(tok), json={"title": "no ref"})):
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    r = open_case(client, tok, "CRIME/2026/0100")  # the reference is taken
    assert r.status_code == 409, r.text
    assert count_rows(runtime, Case) == 1 and count_events(runtime, "case.opened") == 1
    case_id = client.get("/api/v1/cases", headers=bearer(tok)).json()["items"][0]["id"]
    for status, reason in (("shelved", REASON), ("closed", ""), ("closed", "short")):
        assert set_status(client, tok, case_id, status, reason=reason).status_code == 422
    assert set_status(client, tok, case_id, "open").status_code == 409  # it is open already
    assert set_status(client, tok, 9999, "closed").status_code == 404
    assert link(client, tok, case_id, "00000000-0000-0000-0000-000000000000").status_code == 404
    assert link(client, tok, case_id, "../../etc/passwd").status_code == 404
    with transaction(runtime.sessions) as s:
        case = s.scalars(select(Case)).one()
        assert (case.status, case.closed_at) == ("open", None)
    assert count_events(runtime, "case.status_changed") == 0
    assert count_rows(runtime, CaseRecording) == 0


def test_only_managers_change_a_case_and_others_do_not_see_it(client, runtime, force) -> None:
    configure(runtime)
    rid = _rec(client, force)  # officer1's, in U1 under C1
    case_id = open_case(client, force.tokens["evidence1"], "CRIME/2026/0100").json()["id"]
    # Not an owner and not the command's evidence officer: the case does not exist for them.
    for user in ("officer1", "officer2", "sergeant1"):
        tok = force.tokens[user]
        assert client.get(f"/api/v1/cases/{case_id}", headers=bearer(tok)).status_code == 404
        assert client.get("/api/v1/cases", headers=bearer(tok)).json()["items"] == []
        assert link(client, tok, case_id, rid).status_code == 404, user
    assert count_rows(runtime, CaseRecording) == 0
    # Made an owner, the supervisor may link their unit's footage.
    r = client.post(f"/api/v1/cases/{case_id}/owners", headers=bearer(force.tokens["evidence1"]),
                    json={"username": "sergeant1"})
    assert r.status_code == 201, r.text
    assert link(client, force.tokens["sergeant1"], case_id, rid).status_code == 201
    # Officer2 owns it too now, but may only link what they can see (not officer1's footage).
    assert client.post(f"/api/v1/cases/{case_id}/owners",
                       headers=bearer(force.tokens["sergeant1"]),
                       json={"username": "officer2"}).status_code == 201
    assert unlink(client, force.tokens["officer2"], case_id, rid).status_code == 404
    assert count_rows(runtime, CaseRecording) == 1
    assert count_events(runtime, "case.owner_added") == 2
    assert count_events(runtime, "case.recording_added") == 1


def test_an_open_case_holds_and_closing_starts_the_clock(client, runtime, force, clock,
                                                         lifecycle_store) -> None:
    configure(runtime, [*CATEGORIES, CASE_CATEGORY])
    ps = force.tokens["standards"]
    flagged = _rec(client, force, "FLAGGED")
    plain = _rec(client, force, "PLAIN")
    outside = _rec(client, force, "OUTSIDE")
    r = flag(client, force.tokens["officer1"], flagged, category=CASE_CATEGORY.name)
    assert r.status_code == 201, r.text
    # In no case, a case-closed flag keeps the recording indefinitely (no deadline yet).
    assert retention(client, ps, flagged)["delete_after"] is None
    case_id = open_case(client, ps, "CRIME/2026/0100", unit="C1").json()["id"]
    for rid in (flagged, plain):
        r = link(client, ps, case_id, rid)
        assert r.status_code == 201, r.text
        state = retention(client, ps, rid)
        assert (state["held"], state["open_cases"], state["delete_after"]) == (True, 1, None)
    assert link(client, ps, case_id, plain).status_code == 409  # already in it
    clock.advance(100 * DAY)
    _sweep(runtime, lifecycle_store)
    assert not exists(runtime, outside)  # its 31 days are long gone
    assert exists(runtime, flagged) and exists(runtime, plain)  # the open case holds them
    # Charging keeps the hold; closing lets them go on their deadlines.
    assert set_status(client, ps, case_id, "charged").status_code == 200
    assert retention(client, ps, plain)["held"]
    r = set_status(client, ps, case_id, "closed")
    assert r.status_code == 200, r.text
    closed_at = clock.now()
    changed = {c["recording_id"]: c["delete_after"] for c in r.json()["delete_after_changed"]}
    assert set(changed) == {flagged, plain}
    assert dt.datetime.fromisoformat(changed[flagged]) == closed_at + dt.timedelta(days=365)
    state = retention(client, ps, plain)
    assert not state["held"]
    # Its 31 days are long past: it goes a review window after the closing.
    window = dt.timedelta(days=runtime.settings.retention_review_window_days)
    assert dt.datetime.fromisoformat(state["delete_after"]) == closed_at + window
    assert link(client, ps, case_id, outside).status_code == 404  # it is gone
    clock.advance(window - dt.timedelta(seconds=1))
    _sweep(runtime, lifecycle_store)
    assert exists(runtime, plain)
    clock.advance(dt.timedelta(seconds=1))
    _sweep(runtime, lifecycle_store)
    assert not exists(runtime, plain) and exists(runtime, flagged)
    # Reopened, the case holds what is left in it again; closed again, the days restart.
    clock.advance(200 * DAY)
    assert set_status(client, ps, case_id, "open").status_code == 200
    assert retention(client, ps, flagged)["delete_after"] is None
    clock.advance(200 * DAY)  # past the first closing + 365 days
    _sweep(runtime, lifecycle_store)
    assert exists(runtime, flagged)
    assert set_status(client, ps, case_id, "closed").status_code == 200
    assert dt.datetime.fromisoformat(retention(client, ps, flagged)["delete_after"]) == (
        clock.now() + dt.timedelta(days=365))
    assert count_events(runtime, "case.status_changed") == 4


def test_unlinking_lets_the_deadline_apply_again(client, runtime, force, clock,
                                                 lifecycle_store) -> None:
    configure(runtime)
    ps = force.tokens["standards"]
    rid = _rec(client, force)
    case_id = open_case(client, ps, "CRIME/2026/0100", unit="C1").json()["id"]
    assert link(client, ps, case_id, rid).status_code == 201
    clock.advance(60 * DAY)
    _sweep(runtime, lifecycle_store)
    assert exists(runtime, rid)
    assert unlink(client, ps, case_id, rid, reason="").status_code == 422
    assert exists(runtime, rid) and retention(client, ps, rid)["held"]
    r = unlink(client, ps, case_id, rid)
    assert r.status_code == 200, r.text
    # Out of the case, overdue on its own deadline, it is kept a review window more (as when a
    # hold is released), so it shows on the due list.
    window = dt.timedelta(days=runtime.settings.retention_review_window_days)
    assert dt.datetime.fromisoformat(r.json()["delete_after"]) == clock.now() + window
    assert unlink(client, ps, case_id, rid).status_code == 404  # not in it any more
    detail = client.get(f"/api/v1/cases/{case_id}", headers=bearer(ps)).json()
    assert detail["recordings"] == []
    assert [x["recording_id"] for x in detail["removed_recordings"]] == [rid]
    _sweep(runtime, lifecycle_store)
    assert exists(runtime, rid)
    clock.advance(window)
    _sweep(runtime, lifecycle_store)
    assert not exists(runtime, rid)


def test_a_recording_the_sweep_has_decided_on_cannot_be_linked(client, runtime, force,
                                                               clock) -> None:
    configure(runtime)
    ps = force.tokens["standards"]
    rid = _rec(client, force)
    case_id = open_case(client, ps, "CRIME/2026/0100", unit="C1").json()["id"]
    clock.advance(60 * DAY)
    with transaction(runtime.sessions) as s:
        rec = s.get(Recording, uuid.UUID(rid))
        assert rec is not None
        assert decide(s, clock=clock, settings=runtime.settings, rec=rec)
    r = link(client, ps, case_id, rid)
    assert r.status_code == 404, r.text  # a recording being deleted is not found
    assert count_rows(runtime, CaseRecording) == 0


def test_a_retried_link_acts_once(client, runtime, force) -> None:
    configure(runtime)
    ps = force.tokens["standards"]
    rid = _rec(client, force)
    case_id = open_case(client, ps, "CRIME/2026/0100", unit="C1").json()["id"]
    first = link(client, ps, case_id, rid, **{"Idempotency-Key": "link-1"})
    again = link(client, ps, case_id, rid, **{"Idempotency-Key": "link-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = _rec(client, force, "R2")
    assert link(client, ps, case_id, other, **{"Idempotency-Key": "link-1"}).status_code == 422
    assert count_rows(runtime, CaseRecording) == 1
    assert count_events(runtime, "case.recording_added") == 1


def test_a_watchdog_sees_what_its_grant_gives_and_nothing_else(client, runtime, force) -> None:
    configure(runtime)
    ps = force.tokens["standards"]
    watchdog = add_user(runtime, "watchdog1", "watchdog")
    add_user(runtime, "prosecutor1", "prosecutor")
    in_case = _rec(client, force, "IN")
    secret = _rec(client, force, "SECRET")
    elsewhere = _rec(client, force, "ELSEWHERE")
    r = client.post(f"/api/v1/recordings/{secret}/restriction", headers=bearer(ps),
                    json={"kind": "restricted", "reason": REASON})
    assert r.status_code == 201, r.text
    case_id = open_case(client, ps, "CMP/2026/0007", unit="C1").json()["id"]
    for rid in (in_case, secret):
        assert link(client, ps, case_id, rid).status_code == 201

    def sees(rid: str) -> bool:
        r = client.get(f"/api/v1/recordings/{rid}", headers=bearer(watchdog))
        assert r.status_code in (200, 404), r.text
        return r.status_code == 200

    def found() -> set[str]:
        r = client.get("/api/v1/recordings", headers=bearer(watchdog))
        assert r.status_code == 200, r.text
        return {x["id"] for x in r.json()["items"]}

    assert not any(sees(x) for x in (in_case, secret, elsewhere)) and found() == set()
    assert client.get(f"/api/v1/cases/{case_id}", headers=bearer(watchdog)).status_code == 404
    # Only professional standards grant, and only to a watchdog, with a reason.
    for user in ("evidence1", "sergeant1", "officer1", "auditor"):
        assert grant(client, force.tokens[user], case_id, "watchdog1").status_code == 403, user
    assert grant(client, ps, case_id, "prosecutor1").status_code == 422
    assert grant(client, ps, case_id, "nobody").status_code == 422
    assert grant(client, ps, case_id, "watchdog1", reason="").status_code == 422
    assert count_rows(runtime, CaseGrant) == 0
    r = grant(client, ps, case_id, "watchdog1")
    assert r.status_code == 201, r.text
    grant_id = r.json()["id"]
    assert grant(client, ps, case_id, "watchdog1").status_code == 409
    # The case's unrestricted recordings, nothing restricted, nothing outside the case.
    assert (sees(in_case), sees(secret), sees(elsewhere)) == (True, False, False)
    assert found() == {in_case}
    detail = client.get(f"/api/v1/cases/{case_id}", headers=bearer(watchdog))
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert [x["id"] for x in body["recordings"]] == [in_case]
    assert "grants" not in body and not body["may_manage"]
    # A watchdog reads; it does not change the case.
    assert link(client, watchdog, case_id, elsewhere).status_code == 403
    assert set_status(client, watchdog, case_id, "closed").status_code == 403
    # Unlinked from the case, a recording leaves the grant.
    assert unlink(client, ps, case_id, in_case).status_code == 200
    assert not sees(in_case)
    assert link(client, ps, case_id, in_case).status_code == 201
    assert sees(in_case)
    assert revoke(client, force.tokens["evidence1"], case_id, grant_id).status_code == 403
    assert revoke(client, ps, case_id, grant_id, reason="").status_code == 422
    assert sees(in_case)
    assert revoke(client, ps, case_id, grant_id).status_code == 200
    assert revoke(client, ps, case_id, grant_id).status_code == 409
    assert not sees(in_case) and found() == set()
    assert client.get(f"/api/v1/cases/{case_id}", headers=bearer(watchdog)).status_code == 404
    assert (count_events(runtime, "case.grant_placed"),
            count_events(runtime, "case.grant_revoked")) == (
        1, 1)


def test_reading_a_case_is_audited(client, runtime, force) -> None:
    configure(runtime)
    tok = force.tokens["evidence1"]
    rid = _rec(client, force)
    case_id = open_case(client, tok, "CRIME/2026/0100").json()["id"]
    assert link(client, tok, case_id, rid).status_code == 201
    before = (count_events(runtime, "case.viewed"), count_events(runtime, "cases.listed"))
    detail = client.get(f"/api/v1/cases/{case_id}", headers=bearer(tok))
    assert detail.status_code == 200
    assert [x["id"] for x in detail.json()["recordings"]] == [rid]
    listed = client.get("/api/v1/cases?status=open&reference=CRIME/2026",
                        headers=bearer(tok)).json()["items"]
    assert [c["id"] for c in listed] == [case_id]
    assert client.get("/api/v1/cases?status=closed", headers=bearer(tok)).json()["items"] == []
    assert client.get("/api/v1/cases?status=bogus", headers=bearer(tok)).status_code == 422
    assert (count_events(runtime, "case.viewed"), count_events(runtime, "cases.listed")) == (
        before[0] + 1, before[1] + 2)
