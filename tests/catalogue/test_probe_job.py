"""The probe job on real footage from the simulator, through the real ingest path and queue."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from cat_helpers import grant_for
from evidence_locker.dock.client import TusClient, upload_camera_folder
from evidence_locker.simulate.camera import simulate_camera
from support import bearer


def test_real_clips_are_probed_and_get_a_poster(client, runtime, force, tmp_path: Path) -> None:
    folder = tmp_path / "CAM-1"
    made = simulate_camera(serial="CAM-1", officer="1001", out=folder, recordings=1, seconds=3,
                           resolution=(320, 180), fps=10, clip_seconds=2)
    tus = TusClient(str(client.base_url), force.dock_token, http=client)
    uploaded = upload_camera_folder(tus, folder, log_line=lambda _: None)
    rid = uploaded[-1].recording_id
    assert runtime.jobs.run_pending() >= len(made[0].clips)
    body = client.get(f"/api/v1/recordings/{rid}", headers=bearer(force.tokens["sergeant1"]))
    data = body.json()
    assert data["state"] == "complete"
    clips = [f for f in data["files"] if f["kind"] == "clip"]
    assert len(clips) == 2  # 3 s with a 2 s clip limit: split as a camera does
    for clip in clips:
        assert clip["media_state"] == "ready"
        assert (clip["video_codec"], clip["audio_codec"]) == ("h264", "aac")
        assert (clip["width"], clip["height"]) == (320, 180)
        assert clip["has_poster"] is True
    assert abs(sum(c["duration_seconds"] for c in clips) - 3.0) < 0.5
    grant = grant_for(client, force.tokens["sergeant1"], rid)
    poster = client.get(f"/api/v1/recordings/{rid}/poster", params={"clip": 2, "grant": grant},
                        headers=bearer(force.tokens["sergeant1"]))
    assert poster.status_code == 200
    assert poster.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(poster.content)).size[0] == 320


def test_a_corrupt_mp4_is_kept_and_marked_unreadable(client, runtime, force,
                                                     tmp_path: Path) -> None:
    folder = tmp_path / "CAM-2"
    made = simulate_camera(serial="CAM-2", officer="1002", out=folder, recordings=1, seconds=2,
                           resolution=(320, 180), fps=10)
    clip = made[0].clips[0]
    whole = clip.read_bytes()
    clip.write_bytes(whole[: len(whole) // 3])  # the camera's card failed mid-write
    tus = TusClient(str(client.base_url), force.dock_token, http=client)
    meta = {"device": "CAM-2", "recording": made[0].recording_id, "kind": "clip", "index": "1",
            "filename": clip.name}
    done = tus.upload_file(clip, meta)
    assert done.outcome == "stored"
    runtime.jobs.run_pending()
    data = client.get(f"/api/v1/recordings/{done.recording_id}",
                      headers=bearer(force.tokens["standards"])).json()
    f = data["files"][0]
    assert f["media_state"] == "unreadable"
    assert f["unreadable_reason"]
    assert runtime.store.exists(f["sha256"])
    grant = grant_for(client, force.tokens["standards"], done.recording_id)
    media = client.get(f"/api/v1/recordings/{done.recording_id}/media", params={"grant": grant},
                       headers=bearer(force.tokens["standards"]))
    assert media.content == whole[: len(whole) // 3]  # still there, byte for byte
