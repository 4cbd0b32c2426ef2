"""Cataloguing through the real ingest path, and /api/v1/recordings: search, detail, media."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from sqlalchemy import select

from cat_helpers import grant_for, record_camera, send, sidecar, track
from evidence_locker.audit.models import AuditEvent
from evidence_locker.db import transaction
from support import bearer


def test_recording_is_incomplete_until_every_listed_file_arrives(client, runtime, force) -> None:
    clip, trk = b"clip-bytes" * 50, track()
    sc = sidecar(device="CAM-1", recording="R1",
                 files=[("clip", 1, "R1_001.mp4", clip), ("track", 1, "R1.track.json", trk)])
    r = send(client, force.dock_token, sc, device="CAM-1", recording="R1", kind="sidecar",
             filename="R1.json")
    rid = r.headers["locker-recording"]
    token = force.tokens["standards"]
    body = client.get(f"/api/v1/recordings/{rid}", headers=bearer(token)).json()
    assert body["state"] == "incomplete"
    assert {(m["kind"], m["index"]) for m in body["missing"]} == {("clip", 1), ("track", 1)}
    send(client, force.dock_token, clip, device="CAM-1", recording="R1", kind="clip")
    body = client.get(f"/api/v1/recordings/{rid}", headers=bearer(token)).json()
    assert [(m["kind"], m["index"]) for m in body["missing"]] == [("track", 1)]
    send(client, force.dock_token, trk, device="CAM-1", recording="R1", kind="track")
    body = client.get(f"/api/v1/recordings/{rid}", headers=bearer(token)).json()
    assert body["state"] == "complete"
    assert body["missing"] == []
    assert body["trigger"] == {"on": "button", "off": "button"}
    assert body["started_at"] == "2026-11-21T08:15:00+00:00"
    assert body["camera_timezone"] == "Europe/London"
    assert body["bookmarks"][0]["category"] == "use-of-force"
    assert body["officer"]["collar"] == "1001"  # the register: CAM-1 is issued to 1001
    assert body["unit"]["code"] == "U1"


def test_a_listed_file_with_other_bytes_does_not_complete_the_recording(client, force) -> None:
    clip = b"the real clip"
    sc = sidecar(device="CAM-1", recording="R2", files=[("clip", 1, "c.mp4", clip)])
    rid = send(client, force.dock_token, sc, device="CAM-1", recording="R2",
               kind="sidecar").headers["locker-recording"]
    send(client, force.dock_token, b"corrupted in transit", device="CAM-1", recording="R2",
         kind="clip")
    body = client.get(f"/api/v1/recordings/{rid}", headers=bearer(force.tokens["standards"]))
    assert body.json()["state"] == "incomplete"


def test_unparseable_sidecar_is_kept_marked_and_listed(client, runtime, force) -> None:
    junk = b"{this is not json"
    r = send(client, force.dock_token, junk, device="CAM-1", recording="R3", kind="sidecar")
    rid = r.headers["locker-recording"]
    body = client.get(f"/api/v1/recordings/{rid}", headers=bearer(force.tokens["standards"]))
    data = body.json()
    assert data["sidecar_state"] == "unreadable"
    f = data["files"][0]
    assert f["media_state"] == "unreadable" and "does not parse" in f["unreadable_reason"]
    assert f["sha256"] == hashlib.sha256(junk).hexdigest()
    assert runtime.store.exists(f["sha256"])
    listed = client.get("/api/v1/recordings", headers=bearer(force.tokens["standards"])).json()
    assert rid in [i["id"] for i in listed["items"]]


def test_a_reset_camera_clock_is_flagged_not_trusted(client, force) -> None:
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="R-1970",
                        clip=b"x" * 100, started_at="1970-01-01T00:00:05+00:00")
    body = client.get(f"/api/v1/recordings/{rid}",
                      headers=bearer(force.tokens["standards"])).json()
    assert body["clock_suspect"] is True
    assert "1970" in body["clock_note"]
    # Listed by when it arrived, not buried 56 years back.
    listed = client.get("/api/v1/recordings", params={"limit": 1},
                        headers=bearer(force.tokens["standards"])).json()
    assert listed["items"][0]["id"] == rid


def test_measured_clock_drift_corrects_recording_times(client, force) -> None:
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="R-DRIFT",
                        clip=b"y" * 100, started_at="2026-11-21T08:15:00+00:00",
                        clock_drift="90")
    body = client.get(f"/api/v1/recordings/{rid}",
                      headers=bearer(force.tokens["standards"])).json()
    assert body["started_at"] == "2026-11-21T08:13:30+00:00"
    assert body["clock_drift_seconds"] == 90
    assert body["camera_started_at"] == "2026-11-21T08:15:00+00:00"


@pytest.fixture
def three_cameras(client, force) -> dict[str, str]:
    return {
        cam: record_camera(client, force.dock_token, device=cam, recording=f"R-{cam}",
                           clip=f"clip of {cam}".encode() * 20,
                           started_at=f"2026-11-21T0{n}:00:00+00:00")
        for n, cam in enumerate(("CAM-1", "CAM-2", "CAM-3"), start=1)
    }


@pytest.mark.parametrize(("user", "sees"), [
    ("officer1", {"CAM-1"}),  # own footage only
    ("officer2", {"CAM-3"}),
    ("sergeant1", {"CAM-1", "CAM-2"}),  # their unit
    ("evidence1", {"CAM-1", "CAM-2"}),  # their command
    ("standards", {"CAM-1", "CAM-2", "CAM-3"}),  # everything
])
def test_each_role_sees_exactly_its_footage(client, force, three_cameras, user, sees) -> None:
    token = force.tokens[user]
    listed = client.get("/api/v1/recordings", headers=bearer(token)).json()["items"]
    assert {i["device"] for i in listed} == sees
    own = {"officer1": "CAM-1", "officer2": "CAM-3"}.get(user)
    for cam, rid in three_cameras.items():
        detail = client.get(f"/api/v1/recordings/{rid}", headers=bearer(token))
        media = client.get(f"/api/v1/recordings/{rid}/media", headers=bearer(token))
        if cam not in sees:
            assert (detail.status_code, media.status_code) == (404, 404), cam
            assert client.post(f"/api/v1/recordings/{rid}/access", headers=bearer(token),
                               json={"purpose": "investigation",
                                     "reason": "just looking around"}).status_code == 404
            continue
        assert detail.status_code == 200, cam
        if cam == own:  # one's own footage plays without a justification
            assert media.status_code == 200, cam
            continue
        assert media.status_code == 403, cam
        assert media.json()["title"] == "Justification required"
        granted = client.get(f"/api/v1/recordings/{rid}/media", headers=bearer(token),
                             params={"grant": grant_for(client, token, rid)})
        assert granted.status_code == 200, cam


@pytest.mark.parametrize("user", ["admin", "auditor", "fleetadmin"])
def test_people_who_run_the_system_cannot_see_footage(client, force, three_cameras,
                                                      user) -> None:
    token = force.tokens[user]
    assert client.get("/api/v1/recordings", headers=bearer(token)).status_code == 403
    rid = three_cameras["CAM-1"]
    for path in ("", "/media", "/poster"):
        r = client.get(f"/api/v1/recordings/{rid}{path}", headers=bearer(token))
        assert r.status_code == 403, path


def test_docks_and_strangers_cannot_read(client, force, three_cameras) -> None:
    rid = three_cameras["CAM-1"]
    assert client.get("/api/v1/recordings", headers=bearer(force.dock_token)).status_code == 403
    assert client.get(f"/api/v1/recordings/{rid}/media").status_code == 401
    assert client.get("/api/v1/recordings", headers=bearer("elk_forged")).status_code == 401


def test_filters(client, force, three_cameras) -> None:
    token = bearer(force.tokens["standards"])

    def devices(**params: str) -> set[str]:
        r = client.get("/api/v1/recordings", params=params, headers=token)
        assert r.status_code == 200, r.text
        return {i["device"] for i in r.json()["items"]}

    assert devices(officer="1002") == {"CAM-2"}
    assert devices(unit="C1") == {"CAM-1", "CAM-2"}  # a unit includes its sub-units
    assert devices(unit="U2") == {"CAM-3"}
    assert devices(unit="NOPE") == set()
    assert devices(device="CAM-3") == {"CAM-3"}
    assert devices(state="complete") == {"CAM-1", "CAM-2", "CAM-3"}
    assert devices(state="incomplete") == set()
    assert devices(**{"from": "2026-11-21T02:00:00Z", "to": "2026-11-21T03:00:00Z"}) == {"CAM-2"}
    clip_sha = hashlib.sha256(b"clip of CAM-3" * 20).hexdigest()
    assert devices(sha256=clip_sha) == {"CAM-3"}


def test_bad_filters_are_clear_400s(client, force) -> None:
    token = bearer(force.tokens["standards"])
    for params in ({"state": "lost"}, {"cursor": "garbage!"}, {"from": "2026-11-21T02:00:00"}):
        r = client.get("/api/v1/recordings", params=params, headers=token)
        assert r.status_code == 400, params
        assert r.headers["content-type"] == "application/problem+json"
    for params in ({"limit": "0"}, {"limit": "100000"}, {"sha256": "xyz"}):
        assert client.get("/api/v1/recordings", params=params, headers=token).status_code == 422


def test_filter_values_are_data_not_sql(client, force, three_cameras) -> None:
    token = bearer(force.tokens["standards"])
    for value in ("' OR 1=1 --", "CAM-1' OR '1'='1", "%", "_"):
        for key in ("officer", "device", "unit"):
            r = client.get("/api/v1/recordings", params={key: value}, headers=token)
            assert r.status_code == 200
            assert r.json()["items"] == [], (key, value)


def test_keyset_pagination_walks_every_recording_once(client, force) -> None:
    ids = {
        record_camera(client, force.dock_token, device="CAM-1", recording=f"P{n}",
                      clip=f"page clip {n}".encode(),
                      started_at=f"2026-11-20T{n:02d}:00:00+00:00")
        for n in range(7)
    }
    token = bearer(force.tokens["standards"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/recordings", params=params, headers=token).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == ids
    starts = [client.get(f"/api/v1/recordings/{i}", headers=token).json()["started_at"]
              for i in seen]
    assert starts == sorted(starts, reverse=True)


def test_media_serves_ranges_under_one_grant_and_one_audit_event(client, runtime, force,
                                                                 three_cameras) -> None:
    rid = three_cameras["CAM-1"]
    clip = b"clip of CAM-1" * 20
    token = bearer(force.tokens["evidence1"])
    grant = {"grant": grant_for(client, force.tokens["evidence1"], rid)}
    whole = client.get(f"/api/v1/recordings/{rid}/media", headers=token, params=grant)
    assert whole.status_code == 200 and whole.content == clip
    assert whole.headers["accept-ranges"] == "bytes"
    part = client.get(f"/api/v1/recordings/{rid}/media", params=grant,
                      headers={**token, "Range": "bytes=5-14"})
    assert part.status_code == 206
    assert part.content == clip[5:15]
    assert part.headers["content-range"] == f"bytes 5-14/{len(clip)}"
    tail = client.get(f"/api/v1/recordings/{rid}/media", params=grant,
                      headers={**token, "Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == clip[-7:]
    past = client.get(f"/api/v1/recordings/{rid}/media", params=grant,
                      headers={**token, "Range": f"bytes={len(clip)}-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{len(clip)}"
    dl = client.get(f"/api/v1/recordings/{rid}/media", params={**grant, "download": "true"},
                    headers=token)
    assert dl.headers["content-disposition"].startswith("attachment;")
    assert client.get(f"/api/v1/recordings/{rid}/media", params={**grant, "clip": 2},
                      headers=token).status_code == 404
    # The owner plays their own footage without a grant: each read is its own event.
    own = bearer(force.tokens["officer1"])
    assert client.get(f"/api/v1/recordings/{rid}/media", headers=own).status_code == 200
    with transaction(runtime.sessions) as s:
        reads = s.scalars(select(AuditEvent).where(AuditEvent.action.in_(
            ["recording.access_granted", "media.stream", "media.download"]))
            .order_by(AuditEvent.id)).all()
    # One event for the grant (with its purpose and reason), none per Range request, one per
    # download (a copy leaves the system), one for the owner's unjustified read.
    assert [(e.action, e.actor_name) for e in reads] == [
        ("recording.access_granted", "evidence1"), ("media.download", "evidence1"),
        ("media.stream", "officer1")]
    assert all(e.object_id == rid for e in reads)
    details = json.loads(reads[0].details)
    assert details["purpose"] == "investigation" and "arrest" in details["reason"]
    assert json.loads(reads[1].details)["grant_id"] == details["grant_id"]


def test_a_grant_is_for_one_person_one_recording_and_a_short_time(client, runtime, clock,
                                                                  force, three_cameras) -> None:
    rid, other = three_cameras["CAM-1"], three_cameras["CAM-2"]
    grant = grant_for(client, force.tokens["evidence1"], rid)
    media = f"/api/v1/recordings/{rid}/media"
    assert client.get(media, params={"grant": grant},
                      headers=bearer(force.tokens["sergeant1"])).status_code == 403
    assert client.get(f"/api/v1/recordings/{other}/media", params={"grant": grant},
                      headers=bearer(force.tokens["evidence1"])).status_code == 403
    assert client.get(f"/api/v1/recordings/{rid}/poster", params={"grant": "forged"},
                      headers=bearer(force.tokens["evidence1"])).status_code == 403
    assert client.get(media, params={"grant": grant}).status_code == 401  # still signed in
    assert client.get(media, params={"grant": grant},
                      headers=bearer(force.tokens["evidence1"])).status_code == 200
    clock.advance(dt.timedelta(minutes=runtime.settings.access_grant_minutes, seconds=1))
    assert client.get(media, params={"grant": grant},
                      headers=bearer(force.tokens["evidence1"])).status_code == 403


@pytest.mark.parametrize(("body", "why"), [
    ({"purpose": "curiosity", "reason": "I wanted to see what happened"}, "purpose must be"),
    ({"purpose": "investigation", "reason": "  because  "}, "reason of 10"),
    ({"purpose": "investigation"}, "reason of 10"),
    ({"reason": "Reviewing the arrest for the file"}, "purpose must be"),
])
def test_a_justification_needs_a_listed_purpose_and_a_reason(client, runtime, force,
                                                             three_cameras, body, why) -> None:
    rid = three_cameras["CAM-1"]
    r = client.post(f"/api/v1/recordings/{rid}/access", json=body,
                    headers=bearer(force.tokens["evidence1"]))
    assert r.status_code == 422 and why in r.json()["detail"], r.text
    with transaction(runtime.sessions) as s:
        assert s.scalars(select(AuditEvent).where(
            AuditEvent.action == "recording.access_granted")).first() is None


def test_non_video_clip_is_kept_hashed_and_marked_unreadable(client, runtime, force) -> None:
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="R-TEXT",
                        clip=b"this is a text file a camera should never have written\n")
    assert runtime.jobs.run_pending() >= 1  # the probe job, from the real queue
    body = client.get(f"/api/v1/recordings/{rid}",
                      headers=bearer(force.tokens["standards"])).json()
    clip = next(f for f in body["files"] if f["kind"] == "clip")
    assert clip["media_state"] == "unreadable"
    assert clip["unreadable_reason"]
    assert runtime.store.exists(clip["sha256"])
    track_file = next(f for f in body["files"] if f["kind"] == "track")
    assert track_file["media_state"] == "ready"
    assert body["place"] == {"lat": 51.5, "lon": -0.12}
    listed = client.get("/api/v1/recordings", headers=bearer(force.tokens["standards"])).json()
    item = next(i for i in listed["items"] if i["id"] == rid)
    assert item["unreadable"] is True


def test_jobs_are_enqueued_only_after_commit(runtime) -> None:
    with transaction(runtime.sessions) as s:
        runtime.jobs.enqueue_after_commit(s, "probe_file", 1)
        assert runtime.jobs.pending() == 0
    assert runtime.jobs.pending() == 1
    try:
        with transaction(runtime.sessions) as s:
            runtime.jobs.enqueue_after_commit(s, "probe_file", 2)
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert runtime.jobs.pending() == 1
