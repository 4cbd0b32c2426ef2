"""POST /api/v1/docks/heartbeat: the contract with the dock agent, and who may call it."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any

import pytest
from fleet_support import beat, camera, sign_in
from sqlalchemy import func, select

from evidence_locker.audit.models import AuditEvent
from evidence_locker.audit.service import Actor
from evidence_locker.db import transaction
from evidence_locker.fleet import service
from evidence_locker.fleet.health import MAX_CAMERAS
from evidence_locker.fleet.models import CameraObservation, CameraStatus, Device, Dock
from support import bearer

URL = "/api/v1/docks/heartbeat"


def observations(runtime: Any) -> int:
    with transaction(runtime.sessions) as s:
        return int(s.scalar(select(func.count()).select_from(CameraObservation)) or 0)


def test_heartbeat_is_stored(client, runtime, force) -> None:
    now = runtime.clock.now()
    r = client.post(URL, json=beat(camera("CAM-1", firmware="1.5.0", files_waiting=3,
                                          bytes_waiting=3000),
                                   camera("NEW-9", bay=2, model="W200", battery_percent=None,
                                          free_bytes=None, clock_drift_seconds=None),
                                   sent_at=now - dt.timedelta(seconds=2)),
                    headers=bearer(force.dock_token))
    assert r.status_code == 200, r.text
    assert r.json() == {"dock": "dock-1", "received_at": now.isoformat()}
    with transaction(runtime.sessions) as s:
        dock = service.dock_by_name(s, "dock-1")
        assert dock is not None
        assert (dock.last_seen_at, dock.last_sent_at, dock.agent_version, dock.reported_bays) \
            == (now, now - dt.timedelta(seconds=2), "locker-dock 0.1", 8)
        cam1 = service.device_by_serial(s, "CAM-1")
        assert cam1 is not None and cam1.firmware == "1.5.0"
        status = s.get(CameraStatus, cam1.id)
        assert status is not None
        assert (status.dock_id, status.bay, status.battery_percent, status.files_waiting,
                status.bytes_waiting, status.clock_drift_seconds) == (dock.id, 1, 80, 3, 3000, 1.5)
        new = service.device_by_serial(s, "NEW-9")
        assert new is not None and new.needs_review and new.model == "W200"
        events = {e.action: json.loads(e.details) for e in s.scalars(select(AuditEvent))}
    assert events["device.firmware_changed"]["firmware"] == [None, "1.5.0"]
    assert events["device.discovered"] == {"via": "heartbeat", "dock": "dock-1", "bay": 2}
    assert observations(runtime) == 2


def test_history_is_thinned(client, runtime, force) -> None:
    body = beat(camera("CAM-1"))
    for _ in range(3):
        assert client.post(URL, json=body, headers=bearer(force.dock_token)).status_code == 200
    assert observations(runtime) == 1  # one per hour while it stays docked
    runtime.clock.advance(dt.timedelta(minutes=61))
    assert client.post(URL, json=body, headers=bearer(force.dock_token)).status_code == 200
    assert observations(runtime) == 2
    # Moved to another dock: observed at once.
    assert client.post(URL, json=body, headers=bearer(force.other_dock_token)).status_code == 200
    assert observations(runtime) == 3
    # Latest status follows every heartbeat.
    runtime.clock.advance(dt.timedelta(minutes=5))
    body = beat(camera("CAM-1", battery_percent=12))
    assert client.post(URL, json=body, headers=bearer(force.dock_token)).status_code == 200
    with transaction(runtime.sessions) as s:
        status = s.scalars(select(CameraStatus)).one()
        assert status.battery_percent == 12 and status.seen_at == runtime.clock.now()
    assert observations(runtime) == 4


def test_an_empty_dock_still_beats(client, runtime, force) -> None:
    r = client.post(URL, json=beat(), headers=bearer(force.dock_token))
    assert r.status_code == 200 and r.json()["dock"] == "dock-1"


def _bad(**change: Any) -> dict[str, Any]:
    body = beat(camera("CAM-1"))
    body.update(change)
    return body


def _bad_camera(**change: Any) -> dict[str, Any]:
    return beat({**camera("CAM-1"), **change})


@pytest.mark.parametrize("body", [
    pytest.param({"bays": 8, "sent_at": "2025-03-01T09:00:00+00:00", "cameras": []},
                 id="no agent_version"),
    pytest.param(_bad(sent_at="2025-03-01T09:00:00"), id="sent_at without offset"),
    pytest.param(_bad(sent_at="yesterday"), id="sent_at not a time"),
    pytest.param(_bad(bays="8"), id="bays as string"),
    pytest.param(_bad(bays=0), id="no bays"),
    pytest.param(_bad(cameras=[camera(f"C-{i}", bay=i) for i in range(MAX_CAMERAS + 1)]),
                 id="too many cameras"),
    pytest.param(_bad(cameras=[camera("CAM-1", bay=1), camera("CAM-1", bay=2)]),
                 id="serial twice"),
    pytest.param(_bad(cameras=[camera("CAM-1", bay=1), camera("CAM-2", bay=1)]),
                 id="bay twice"),
    pytest.param(_bad_camera(bay=9), id="bay the dock lacks"),
    pytest.param(_bad_camera(battery_percent=101), id="battery over 100"),
    pytest.param(_bad_camera(battery_percent=-1), id="battery negative"),
    pytest.param(_bad_camera(files_waiting=-1), id="negative waiting"),
    pytest.param(_bad_camera(serial="CAM 1/../x"), id="serial with odd characters"),
    pytest.param(_bad_camera(serial=""), id="empty serial"),
    pytest.param(_bad_camera(free_bytes=1.5), id="float bytes"),
    pytest.param(_bad_camera(files_waiting=None), id="null waiting"),
    pytest.param([1, 2], id="not an object"),
])
def test_bad_heartbeats_are_refused(client, runtime, force, body: Any) -> None:
    r = client.post(URL, json=body, headers=bearer(force.dock_token))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"]
    with transaction(runtime.sessions) as s:
        dock = service.dock_by_name(s, "dock-1")
        assert dock is not None and dock.last_seen_at is None  # nothing of it was kept


@pytest.mark.parametrize(("raw", "content_type", "status"), [
    (b"{not json", "application/json", 422),
    (b'{"agent_version":"x","bays":8,"sent_at":"2025-03-01T09:00:00Z","cameras":[{"bay":1,'
     b'"serial":"CAM-1","files_waiting":0,"bytes_waiting":0,"clock_drift_seconds":NaN}]}',
     "application/json", 422),
    (b"agent_version=x", "application/x-www-form-urlencoded", 415),
    (b"{" + b" " * 70_000 + b"}", "application/json", 413),
])
def test_unparseable_heartbeats(client, force, raw: bytes, content_type: str,
                                status: int) -> None:
    r = client.post(URL, content=raw, headers={**bearer(force.dock_token),
                                               "Content-Type": content_type})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_only_dock_tokens_may_beat(client, runtime, force) -> None:
    body = beat(camera("CAM-1"))
    r = client.post(URL, json=body)
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert client.post(URL, json=body, headers=bearer("elk_nonsense")).status_code == 401
    for user in ("fleetadmin", "officer1", "admin"):
        r = client.post(URL, json=body, headers=bearer(force.tokens[user]))
        assert r.status_code == 403, user
        assert r.headers["content-type"] == "application/problem+json"
    # A user's token with the upload scope (for `locker upload`) is still not a dock.
    from evidence_locker.accounts.service import create_api_token, user_by_username

    with transaction(runtime.sessions) as s:
        user = user_by_username(s, "officer1")
        assert user is not None
        uploader = create_api_token(s, clock=runtime.clock, actor=Actor(type="system"),
                                    user=user, scopes={"upload"})
    assert client.post(URL, json=body, headers=bearer(uploader)).status_code == 403
    # A signed-in web session, with or without its CSRF token, is not a dock either.
    sign_in(client, "fleetadmin", force.passwords["fleetadmin"])
    assert client.post(URL, json=body).status_code == 403
    with transaction(runtime.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Device).where(
            Device.needs_review.is_(True))) == 0
        assert all(d.last_seen_at is None for d in s.scalars(select(Dock)))


def _meta(recording: str, data: bytes) -> str:
    values = {"device": "CAM-1", "recording": recording, "kind": "clip", "index": "1",
              "filename": f"{recording}.mp4", "sha256": hashlib.sha256(data).hexdigest()}
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def test_revoked_and_rotated_dock_tokens(client, runtime, force) -> None:
    """A revoked token's uploads and heartbeats are refused (401 problem+json); rotating gives
    the dock a new token, and an upload begun with the old one resumes with the new one."""
    admin = Actor(type="system", name="test-admin")
    data = b"x" * 1000
    r = client.post("/api/v1/uploads/", headers={
        **bearer(force.dock_token), "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
        "Upload-Metadata": _meta("R1", data)})
    assert r.status_code == 201, r.text
    location = r.headers["location"]
    with transaction(runtime.sessions) as s:
        assert service.revoke_dock(s, clock=runtime.clock, actor=admin, name="dock-1") == 1
    head = client.head(location, headers={**bearer(force.dock_token), "Tus-Resumable": "1.0.0"})
    assert head.status_code == 401
    refused = client.post(URL, json=beat(), headers=bearer(force.dock_token))
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    refused = client.patch(location, content=data, headers={
        **bearer(force.dock_token), "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream"})
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    r = client.post("/api/v1/uploads/", content=b"y", headers={
        **bearer(force.dock_token), "Tus-Resumable": "1.0.0", "Upload-Length": "1",
        "Upload-Metadata": _meta("R2", b"y"),
        "Content-Type": "application/offset+octet-stream"})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    with transaction(runtime.sessions) as s:
        with pytest.raises(service.FleetError, match="no live token"):
            service.revoke_dock(s, clock=runtime.clock, actor=admin, name="dock-1")
        new = service.rotate_dock(s, clock=runtime.clock, actor=admin, name="dock-1")
    head = client.head(location, headers={**bearer(new), "Tus-Resumable": "1.0.0"})
    assert head.status_code == 200 and head.headers["upload-offset"] == "0"
    done = client.patch(location, content=data, headers={
        **bearer(new), "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream"})
    assert done.status_code == 204, done.text
    assert client.post(URL, json=beat(), headers=bearer(new)).status_code == 200
    with transaction(runtime.sessions) as s:
        acts = [a for a in s.scalars(select(AuditEvent.action)) if a.startswith("dock.")]
        assert acts == ["dock.registered", "dock.registered", "dock.revoked", "dock.rotated"]
        # Rotating again revokes the token just issued: one live token at a time.
        newer = service.rotate_dock(s, clock=runtime.clock, actor=admin, name="dock-1")
        assert [d.live_tokens for d in service.list_docks(s)] == [1, 1]
    assert client.post(URL, json=beat(), headers=bearer(new)).status_code == 401
    assert client.post(URL, json=beat(), headers=bearer(newer)).status_code == 200


def test_metrics_show_silent_docks_and_waiting_footage(client, runtime, force, clock) -> None:
    """/metrics: each active dock's last heartbeat (0 until it calls in) and what the cameras
    docked in the last minutes still hold; a camera that left the dock stops counting."""
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        text = client.get("/metrics", headers=bearer(force.tokens["admin"])).text
        return {f.name: {tuple(sorted(s.labels.items())): s.value for s in f.samples}
                for f in text_string_to_metric_families(text)}

    before = scrape()
    assert before["locker_docks_active"][()] == 2
    assert before["locker_dock_last_heartbeat_timestamp_seconds"] == {
        (("dock", "dock-1"),): 0.0, (("dock", "dock-2"),): 0.0}
    assert before["locker_cameras_docked"][()] == 0
    now = clock.now()
    assert client.post(URL, json=beat(camera("CAM-1", files_waiting=3, bytes_waiting=3000),
                                      camera("CAM-2", bay=2, files_waiting=1,
                                             bytes_waiting=500)),
                       headers=bearer(force.dock_token)).status_code == 200
    after = scrape()
    assert after["locker_dock_last_heartbeat_timestamp_seconds"][(("dock", "dock-1"),)] == \
        now.timestamp()
    assert after["locker_dock_last_heartbeat_timestamp_seconds"][(("dock", "dock-2"),)] == 0.0
    assert (after["locker_cameras_docked"][()], after["locker_camera_files_waiting"][()],
            after["locker_camera_bytes_waiting"][()]) == (2, 4, 3500)
    clock.advance(dt.timedelta(minutes=11))  # no heartbeat since: the cameras left the dock
    assert scrape()["locker_cameras_docked"][()] == 0
