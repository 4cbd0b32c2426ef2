"""Restricted footage through the API: invisible (404) to everyone but the access list and, for
a `restricted` one, professional standards; managed by professional standards only, every change
audited with its reason."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from cat_helpers import grant_for, record_camera
from evidence_locker.audit.models import AuditEvent
from evidence_locker.db import transaction
from support import add_user, bearer

REASON = "Covert operation NIGHTJAR: footage limited to the operation team"


def restrict(client: Any, token: str, rid: str, kind: str = "restricted",
             reason: str = REASON) -> Any:
    return client.post(f"/api/v1/recordings/{rid}/restriction", headers=bearer(token),
                       json={"kind": kind, "reason": reason})


def listing(client: Any, token: str, rid: str, username: str, reason: str = REASON) -> Any:
    return client.post(f"/api/v1/recordings/{rid}/restriction/access", headers=bearer(token),
                       json={"username": username, "reason": reason})


def unlisting(client: Any, token: str, rid: str, username: str, reason: str = REASON) -> Any:
    return client.request("DELETE", f"/api/v1/recordings/{rid}/restriction/access/{username}",
                          headers=bearer(token), json={"reason": reason})


def sees(client: Any, token: str, rid: str) -> bool:
    """Detail and search agree on whether the caller can see the recording."""
    detail = client.get(f"/api/v1/recordings/{rid}", headers=bearer(token))
    listed = client.get("/api/v1/recordings", headers=bearer(token))
    assert listed.status_code == 200, listed.text
    found = rid in [i["id"] for i in listed.json()["items"]]
    assert detail.status_code in (200, 404), detail.text
    assert found == (detail.status_code == 200), (found, detail.status_code)
    return found


def events(runtime: Any, action: str) -> list[AuditEvent]:
    with transaction(runtime.sessions) as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)))
        s.expunge_all()
    return rows


def test_a_restricted_recording_is_invisible_outside_its_list(client, runtime, force) -> None:
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="R1", clip=b"c" * 300)
    other = record_camera(client, force.dock_token, device="CAM-2", recording="R2",
                          clip=b"d" * 300)
    t = force.tokens
    # A grant taken before the restriction is no use after it.
    early = grant_for(client, t["sergeant1"], rid)
    for user in ("officer1", "sergeant1", "evidence1", "standards"):
        assert sees(client, t[user], rid), user
    r = restrict(client, t["standards"], rid)
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "restricted" and r.json()["access_list"] == []
    for user in ("officer1", "sergeant1", "evidence1"):
        assert not sees(client, t[user], rid), user
        # The rest of the unit is untouched.
        assert sees(client, t[user], other) == (user != "officer1"), user
        assert client.post(f"/api/v1/recordings/{rid}/access", headers=bearer(t[user]),
                           json={"purpose": "investigation", "reason": REASON}).status_code == 404
    # The recording's own officer too: a restriction overrides "own footage".
    assert client.get(f"/api/v1/recordings/{rid}/media",
                      headers=bearer(t["officer1"])).status_code == 404
    assert client.get(f"/api/v1/recordings/{rid}/media?grant={early}",
                      headers=bearer(t["sergeant1"])).status_code == 404
    assert client.get(f"/api/v1/recordings/{rid}/poster",
                      headers=bearer(t["sergeant1"])).status_code == 404
    # A search that names the recording's unit, officer or file still does not show it.
    for query in ("unit=U1", "officer=1001", "device=CAM-1"):
        items = client.get(f"/api/v1/recordings?{query}", headers=bearer(t["sergeant1"])).json()
        assert rid not in [i["id"] for i in items["items"]]
    # Professional standards see a `restricted` recording without being listed.
    body = client.get(f"/api/v1/recordings/{rid}", headers=bearer(t["standards"])).json()
    assert body["restriction"] == "restricted"
    # On the list: seen, and played under a grant like any other footage not one's own.
    assert listing(client, t["standards"], rid, "sergeant1").status_code == 201
    assert sees(client, t["sergeant1"], rid)
    assert not sees(client, t["evidence1"], rid)
    assert client.get(f"/api/v1/recordings/{rid}/media",
                      headers=bearer(t["sergeant1"])).status_code == 403
    grant = grant_for(client, t["sergeant1"], rid)
    media = client.get(f"/api/v1/recordings/{rid}/media?grant={grant}",
                       headers=bearer(t["sergeant1"]))
    assert media.status_code == 200 and media.content == b"c" * 300
    assert unlisting(client, t["standards"], rid, "sergeant1").status_code == 200
    assert not sees(client, t["sergeant1"], rid)
    # Released: everyone in scope sees it again.
    r = client.request("DELETE", f"/api/v1/recordings/{rid}/restriction",
                       headers=bearer(t["standards"]), json={"reason": "Operation concluded"})
    assert r.status_code == 204, r.text
    for user in ("officer1", "sergeant1", "evidence1"):
        assert sees(client, t[user], rid), user
    # Every change is one audit event with its reason.
    placed, = events(runtime, "recording.restricted")
    assert placed.object_id == rid and placed.reason == REASON and placed.actor_name == "standards"
    assert json.loads(placed.details)["kind"] == "restricted"
    added, = events(runtime, "recording.access_listed")
    assert json.loads(added.details)["username"] == "sergeant1" and added.reason == REASON
    removed, = events(runtime, "recording.access_unlisted")
    assert json.loads(removed.details)["username"] == "sergeant1"
    released, = events(runtime, "recording.unrestricted")
    assert released.reason == "Operation concluded"


def test_post_incident_admits_its_list_only(client, runtime, force) -> None:
    rid = record_camera(client, force.dock_token, device="CAM-3", recording="R9", clip=b"p" * 200)
    t = force.tokens
    wd = add_user(runtime, "iopc1", "watchdog")
    ps2 = add_user(runtime, "standards2", "professional-standards", "F")
    assert not sees(client, wd, rid)  # the watchdog sees nothing it is not given
    r = restrict(client, t["standards"], rid, "post-incident",
                 "Death following police contact, referral to the IOPC")
    assert r.status_code == 201, r.text
    # Whoever places it is listed, so someone can still manage it.
    assert [e["username"] for e in r.json()["access_list"]] == ["standards"]
    assert sees(client, t["standards"], rid)
    assert not sees(client, ps2, rid)
    for user in ("officer2", "evidence1"):
        assert not sees(client, t[user], rid)
    # Unlisted professional standards cannot manage it either: it does not exist for them.
    assert listing(client, ps2, rid, "standards2").status_code == 404
    assert client.get(f"/api/v1/recordings/{rid}/restriction",
                      headers=bearer(ps2)).status_code == 404
    assert listing(client, t["standards"], rid, "iopc1").status_code == 201
    assert sees(client, wd, rid)
    grant = grant_for(client, wd, rid)
    assert client.get(f"/api/v1/recordings/{rid}/media?grant={grant}",
                      headers=bearer(wd)).content == b"p" * 200
    # The last professional standards member cannot leave the list.
    assert unlisting(client, t["standards"], rid, "standards").status_code == 409
    assert listing(client, t["standards"], rid, "standards2").status_code == 201
    assert sees(client, ps2, rid)
    assert unlisting(client, ps2, rid, "standards").status_code == 200
    assert not sees(client, t["standards"], rid)
    # Back to `restricted`: all professional standards see it again, the list stays.
    r = restrict(client, ps2, rid, "restricted", "IOPC investigation closed, covert review goes on")
    assert r.status_code == 201, r.text
    assert sees(client, t["standards"], rid) and sees(client, wd, rid)
    body = client.get(f"/api/v1/recordings/{rid}/restriction", headers=bearer(ps2)).json()
    assert {e["username"] for e in body["access_list"]} == {"iopc1", "standards2"}
    changes = [json.loads(e.details) for e in events(runtime, "recording.restricted")]
    assert [(c["kind"], c["previous"]) for c in changes] == [
        ("post-incident", None), ("restricted", "post-incident")]
    # Released: the watchdog's grant came from the list, and goes with it.
    assert client.request("DELETE", f"/api/v1/recordings/{rid}/restriction", headers=bearer(ps2),
                          json={"reason": "Released after review"}).status_code == 204
    assert not sees(client, wd, rid)
    assert sees(client, t["officer2"], rid)


def test_only_professional_standards_manage_restrictions(client, runtime, force) -> None:
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="R5", clip=b"x" * 50)
    t = force.tokens
    for user in ("officer1", "sergeant1", "evidence1", "auditor", "admin", "fleetadmin"):
        assert restrict(client, t[user], rid).status_code == 403, user
        assert listing(client, t[user], rid, "sergeant1").status_code == 403, user
        assert client.get(f"/api/v1/recordings/{rid}/restriction",
                          headers=bearer(t[user])).status_code == 403, user
    assert client.post(f"/api/v1/recordings/{rid}/restriction",
                       json={"kind": "restricted", "reason": REASON}).status_code == 401
    ps = t["standards"]
    assert restrict(client, ps, rid, "secret").status_code == 422
    assert restrict(client, ps, rid, reason="too short").status_code == 422
    assert restrict(client, ps, "not-a-uuid").status_code == 404
    assert listing(client, ps, rid, "sergeant1").status_code == 409  # not restricted yet
    assert client.get(f"/api/v1/recordings/{rid}/restriction",
                      headers=bearer(ps)).status_code == 404
    assert restrict(client, ps, rid).status_code == 201
    assert restrict(client, ps, rid).status_code == 409  # already restricted
    add_user(runtime, "cps1", "prosecutor")
    for who in ("auditor", "admin", "fleetadmin", "cps1"):
        assert listing(client, ps, rid, who).status_code == 422, who
    assert listing(client, ps, rid, "nobody").status_code == 422
    assert listing(client, ps, rid, "sergeant1").status_code == 201
    assert listing(client, ps, rid, "sergeant1").status_code == 409
    assert unlisting(client, ps, rid, "evidence1").status_code == 409
    assert unlisting(client, ps, rid, "sergeant1", reason="").status_code == 422
    # Nothing refused was recorded as a change.
    assert len(events(runtime, "recording.restricted")) == 1
    assert len(events(runtime, "recording.access_listed")) == 1
