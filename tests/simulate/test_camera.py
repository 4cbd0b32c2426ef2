"""The camera simulator writes what a real camera's storage holds."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from evidence_locker.catalogue.sidecar import Sidecar, Track
from evidence_locker.cli import app
from evidence_locker.simulate.camera import simulate_camera


def test_clips_are_real_h264_aac_and_long_recordings_are_split(tmp_path: Path) -> None:
    start = dt.datetime(2026, 11, 21, 8, 0, tzinfo=dt.UTC)
    made = simulate_camera(serial="BWV-1", officer="4521", out=tmp_path, recordings=2,
                           seconds=5, start=start, resolution=(160, 90), fps=10,
                           clip_seconds=2, seed=3)
    assert len(made) == 2
    for rec in made:
        assert len(rec.clips) == 3  # 5 s in clips of at most 2 s
        total = 0.0
        for clip in rec.clips:
            with av.open(str(clip)) as container:
                v, a = container.streams.video[0], container.streams.audio[0]
                assert v.codec_context.name == "h264" and a.codec_context.name == "aac"
                assert (v.codec_context.width, v.codec_context.height) == (160, 90)
                assert container.duration is not None
                total += container.duration / av.time_base
        assert abs(total - 5) < 0.6


def test_sidecar_and_track_describe_the_files_exactly(tmp_path: Path) -> None:
    start = dt.datetime(2026, 11, 21, 8, 0, tzinfo=dt.UTC)
    rec = simulate_camera(serial="BWV-2", officer="4522", out=tmp_path, recordings=1,
                          seconds=3, start=start, resolution=(160, 90), fps=10)[0]
    sc = Sidecar.model_validate_json(rec.sidecar.read_bytes())
    assert sc.device.serial == "BWV-2" and sc.officer == "4522"
    assert sc.recording_id == rec.recording_id
    assert sc.started_at == start
    assert sc.trigger is not None and sc.trigger.on.at >= sc.started_at
    assert sc.stopped_at is not None and sc.stopped_at > sc.started_at
    listed = {(f.kind, f.filename): (f.sha256, f.size) for f in sc.files}
    for path, kind in [(c, "clip") for c in rec.clips] + [(rec.track, "track")]:
        data = path.read_bytes()
        assert listed[(kind, path.name)] == (hashlib.sha256(data).hexdigest(), len(data))
    track = Track.model_validate_json(rec.track.read_bytes())
    assert len(track.points) >= 3
    assert all(51 < p.lat < 52 for p in track.points)


def test_cli_writes_a_camera_folder_and_refuses_nonsense(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["simulate", "camera", "--serial", "BWV-3", "--officer", "1",
                             "--out", str(tmp_path), "--recordings", "2", "--seconds", "1",
                             "--resolution", "160x90", "--start", "2026-11-21T08:00:00Z"])
    assert ok.exit_code == 0, ok.output
    assert len(list(tmp_path.glob("*.mp4"))) == 2
    for bad in (["--resolution", "abc"], ["--resolution", "161x90"], ["--seconds", "-1"],
                ["--start", "yesterday"]):
        r = runner.invoke(app, ["simulate", "camera", "--serial", "BWV-3", "--officer", "1",
                                "--out", str(tmp_path / "x"), *bad])
        assert r.exit_code != 0, bad


def test_impossible_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        simulate_camera(serial="../evil", officer="1", out=tmp_path)
