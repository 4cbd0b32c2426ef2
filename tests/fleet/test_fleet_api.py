"""Fleet API and pages: rollout by command and unit, one camera, conflicts; who may read."""

from __future__ import annotations

import datetime as dt

import pytest
from fleet_support import beat, camera, dock_recording, sign_in

from cat_helpers import send
from evidence_locker.audit.service import Actor
from evidence_locker.db import transaction
from evidence_locker.fleet import service
from support import bearer

ROLLOUT = "/api/v1/fleet/rollout"
ENDPOINTS = [ROLLOUT, "/api/v1/fleet/devices/CAM-1", "/api/v1/fleet/conflicts"]
REFUSED = ["officer1", "officer2", "evidence1", "standards", "admin", "auditor"]


@pytest.mark.parametrize("url", ENDPOINTS)
def test_who_may_read(client, force, url: str) -> None:
    r = client.get(url)
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    for user in REFUSED:
        r = client.get(url, headers=bearer(force.tokens[user]))
        assert r.status_code == 403, (user, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert client.get(url, headers=bearer(force.dock_token)).status_code == 403
    assert client.get(url, headers=bearer(force.tokens["fleetadmin"])).status_code == 200
    assert client.get(url, headers=bearer(force.tokens["sergeant1"])).status_code == 200


def test_rollout(client, runtime, force) -> None:
    """CAM-1 (U1) seen by a dock with footage waiting, CAM-2 (U1) uploaded, CAM-3 (U2) never
    docked; dock-2 never heard from."""
    assert client.post("/api/v1/docks/heartbeat",
                       json=beat(camera("CAM-1", files_waiting=4, bytes_waiting=4_000_000)),
                       headers=bearer(force.dock_token)).status_code == 200
    send(client, force.other_dock_token, b"clip", device="CAM-2", recording="R1", kind="clip")
    r = client.get(ROLLOUT, params={"not_docked_days": 3, "silent_hours": 1},
                   headers=bearer(force.tokens["fleetadmin"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scope"] == "/" and body["totals"] == {
        "issued": 3, "docked_24h": 2, "files_waiting": 4, "bytes_waiting": 4_000_000,
        "not_docked": 1}
    by_code = {c["code"]: c for c in body["commands"]}
    assert sorted(by_code) == ["C1", "U2"]
    assert by_code["C1"]["issued"] == 2 and by_code["C1"]["docked_24h"] == 2
    assert [(u["code"], u["issued"], u["files_waiting"]) for u in by_code["C1"]["units"]] == [
        ("U1", 2, 4)]
    assert by_code["U2"]["not_docked"] == 1
    assert [(d["serial"], d["officer"], d["last_heartbeat_at"]) for d in body["not_docked"]] == [
        ("CAM-3", "2001", None)]
    assert [d["name"] for d in body["silent_docks"]] == ["dock-2"]
    assert body["unassigned"] == {"devices": 0, "needs_review": 0, "docked_24h": 0,
                                  "files_waiting": 0, "bytes_waiting": 0}

    # Two days on: nothing docked in 24 h; after four days everything is "not docked" for 3.
    runtime.clock.advance(dt.timedelta(days=2))
    body = client.get(ROLLOUT, params={"not_docked_days": 3, "silent_hours": 1},
                      headers=bearer(force.tokens["fleetadmin"])).json()
    assert body["totals"]["docked_24h"] == 0 and body["totals"]["not_docked"] == 1
    assert [d["name"] for d in body["silent_docks"]] == ["dock-2", "dock-1"]
    runtime.clock.advance(dt.timedelta(days=2))
    body = client.get(ROLLOUT, params={"not_docked_days": 3},
                      headers=bearer(force.tokens["fleetadmin"])).json()
    listed = {d["serial"]: d for d in body["not_docked"]}
    assert sorted(listed) == ["CAM-1", "CAM-2", "CAM-3"]
    assert listed["CAM-2"]["last_upload_at"] is not None
    assert listed["CAM-1"]["last_heartbeat_at"] is not None

    # A spare camera (no assignment) and a discovered one count apart, at force scope only.
    with transaction(runtime.sessions) as s:
        service.end_assignment(s, clock=runtime.clock, actor=Actor(type="system"),
                               serial="CAM-3")
    client.post("/api/v1/docks/heartbeat", json=beat(camera("NEW-1")),
                headers=bearer(force.dock_token))
    body = client.get(ROLLOUT, headers=bearer(force.tokens["fleetadmin"])).json()
    assert body["totals"]["issued"] == 2
    assert body["unassigned"]["devices"] == 2 and body["unassigned"]["needs_review"] == 1
    assert body["unassigned"]["docked_24h"] == 1


def test_supervisors_see_their_unit_only(client, force) -> None:
    sgt = bearer(force.tokens["sergeant1"])  # supervisor of U1 (under C1)
    body = client.get(ROLLOUT, params={"silent_hours": 1}, headers=sgt).json()
    assert body["scope"] == "/F/C1/U1/" and body["unassigned"] is None
    assert [c["code"] for c in body["commands"]] == ["C1"]
    assert body["totals"]["issued"] == 2
    assert body["silent_docks"] == []  # docks with no unit belong to the force
    r = client.get(ROLLOUT, params={"unit": "U2"}, headers=sgt)
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert client.get(ROLLOUT, params={"unit": "NOPE"}, headers=sgt).status_code == 404
    assert client.get(ROLLOUT, params={"unit": "U1"}, headers=sgt).status_code == 200
    assert client.get("/api/v1/fleet/devices/CAM-3", headers=sgt).status_code == 404
    assert client.get("/api/v1/fleet/devices/CAM-2", headers=sgt).status_code == 200
    admin = bearer(force.tokens["fleetadmin"])
    body = client.get(ROLLOUT, params={"unit": "U2"}, headers=admin).json()
    assert body["scope"] == "/F/U2/" and body["totals"]["issued"] == 1


def test_device_history(client, runtime, force) -> None:
    now = runtime.clock.now()
    admin = Actor(type="system", name="test-admin")
    with transaction(runtime.sessions) as s:
        service.assign_device(s, clock=runtime.clock, actor=admin, serial="CAM-1",
                              collar="1002", starts_at=now - dt.timedelta(hours=2),
                              note="swap")
    client.post("/api/v1/docks/heartbeat", json=beat(camera("CAM-1", battery_percent=55)),
                headers=bearer(force.dock_token))
    dock_recording(client, force.other_dock_token, device="CAM-1", recording="R1",
                   started_at=now - dt.timedelta(hours=1), officer="1001")
    r = client.get("/api/v1/fleet/devices/CAM-1", headers=bearer(force.tokens["fleetadmin"]))
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["holder"] == {"collar": "1002", "name": "PC 1002", "unit": "U1"}
    assert [(a["officer"], a["note"], a["ends_at"] is None) for a in d["assignments"]] == [
        ("1002", "swap", True), ("1001", "issued at registration", False)]
    assert d["latest"]["battery_percent"] == 55 and d["latest"]["dock"] == "dock-1"
    assert [o["battery_percent"] for o in d["observations"]] == [55]
    assert {k["dock"] for k in d["docks"]} == {"dock-1", "dock-2"}
    assert d["uploads"]["recordings_30d"] == 1 and d["attribution_conflicts"] == 1
    assert "recording" not in str(d["assignments"])  # no footage, no recording ids here
    assert client.get("/api/v1/fleet/devices/NOPE",
                      headers=bearer(force.tokens["fleetadmin"])).status_code == 404

    c = client.get("/api/v1/fleet/conflicts", headers=bearer(force.tokens["fleetadmin"])).json()
    assert [(i["device"], i["kind"], i["camera_officer"], i["register_officer"], i["unit"])
            for i in c["items"]] == [("CAM-1", "mismatch", "1001", "1002", "U1")]
    assert c["next_before"] is None
    sgt = client.get("/api/v1/fleet/conflicts", headers=bearer(force.tokens["sergeant1"]))
    assert len(sgt.json()["items"]) == 1
    # Supervisor of another unit sees nothing of it.
    from evidence_locker.accounts.service import Passwords, create_api_token, create_user

    with transaction(runtime.sessions) as s:
        user, _ = create_user(s, clock=runtime.clock, actor=admin, passwords=Passwords(1, 1024),
                              username="sergeant2", role="supervisor", unit_code="U2")
        token = create_api_token(s, clock=runtime.clock, actor=admin, user=user,
                                 scopes={"api"})
    assert client.get("/api/v1/fleet/conflicts", headers=bearer(token)).json()["items"] == []
    assert client.get("/api/v1/fleet/devices/CAM-1", headers=bearer(token)).status_code == 404


def test_pages(client, runtime, force) -> None:
    r = client.get("/fleet", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    sign_in(client, "officer1", force.passwords["officer1"])
    assert client.get("/fleet").status_code == 403
    assert client.get("/fleet/devices/CAM-1").status_code == 403
    client.cookies.clear()
    client.post("/api/v1/docks/heartbeat",
                json=beat(camera("CAM-1"), camera("NEW-X", bay=2, model="<script>x</script>")),
                headers=bearer(force.dock_token))
    sign_in(client, "fleetadmin", force.passwords["fleetadmin"])
    page = client.get("/fleet", params={"silent_hours": 1})
    assert page.status_code == 200
    assert 'data-code="U1"' in page.text and "dock-2" in page.text and "CAM-3" in page.text
    device = client.get("/fleet/devices/CAM-1")
    assert device.status_code == 200 and "PC 1001" in device.text and "dock-1" in device.text
    assert client.get("/fleet/devices/NOPE").status_code == 404
    discovered = client.get("/fleet/devices/NEW-X")
    assert "&lt;script&gt;x&lt;/script&gt;" in discovered.text and "<script>" not in discovered.text
    assert "not in the asset register" in discovered.text
    assert client.get("/fleet", params={"not_docked_days": 0}).status_code == 400
