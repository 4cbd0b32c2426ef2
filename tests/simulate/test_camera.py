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


def test_times_are_in_the_camera_zone_and_recordings_follow_each_other(tmp_path: Path) -> None:
    # Naive start = camera clock; July in London is BST, UTC+1.
    made = simulate_camera(serial="BWV-4", officer="4524", out=tmp_path, recordings=3,
                           seconds=4, start=dt.datetime(2026, 7, 1, 9, 30), resolution=(64, 36),
                           fps=5, pre_event_seconds=30, gap_seconds=60)
    cars = [Sidecar.model_validate_json(rec.sidecar.read_bytes()) for rec in made]
    assert [rec.recording_id for rec in made] == [
        "20260701T093000-0001", "20260701T093104-0002", "20260701T093208-0003"]
    assert '"started_at": "2026-07-01T09:30:00+01:00"' in made[0].sidecar.read_text()
    for n, sc in enumerate(cars):
        assert sc.timezone == "Europe/London"
        assert sc.started_at == dt.datetime(2026, 7, 1, 8, 30, tzinfo=dt.UTC) + n * dt.timedelta(
            seconds=64)
        assert sc.stopped_at == sc.started_at + dt.timedelta(seconds=4)
        assert sc.trigger is not None and sc.trigger.off is not None
        # The pre-event buffer cannot be longer than the recording: capped at half of it.
        assert sc.pre_event_seconds == 2
        assert sc.trigger.on.at == sc.started_at + dt.timedelta(seconds=2)
        assert sc.trigger.off.at == sc.stopped_at
        assert [(f.kind, f.index) for f in sc.files] == [("clip", 1), ("track", 1)]
        for mark in sc.bookmarks:
            assert sc.trigger.on.at <= mark.at <= sc.stopped_at
        track = Track.model_validate_json(made[n].track.read_bytes())
        assert [p.t for p in track.points] == [
            sc.started_at + dt.timedelta(seconds=s) for s in range(5)]
    names = sorted(p.name for p in tmp_path.iterdir())
    expected = sorted(
        name for rec in made
        for name in (rec.sidecar.name, rec.track.name, *(c.name for c in rec.clips)))
    assert names == expected  # nothing else: no temporary files left behind


def test_clip_names_and_creation_times_follow_the_split(tmp_path: Path) -> None:
    start = dt.datetime(2026, 11, 21, 8, 0, tzinfo=dt.UTC)
    rec = simulate_camera(serial="BWV-5", officer="1", out=tmp_path, recordings=1, seconds=2.5,
                          start=start, resolution=(64, 36), fps=10, clip_seconds=1)[0]
    assert [c.name for c in rec.clips] == [f"{rec.recording_id}_{i:03d}.mp4" for i in (1, 2, 3)]
    for i, clip in enumerate(rec.clips):
        with av.open(str(clip)) as container:
            created = dt.datetime.fromisoformat(container.metadata["creation_time"])
            assert created == start + dt.timedelta(seconds=i)
            assert container.streams.video[0].frames == (10 if i < 2 else 5)


def test_the_same_seed_makes_the_same_content(tmp_path: Path) -> None:
    def run(folder: str, seed: int) -> tuple[str, list[object]]:
        rec = simulate_camera(serial="BWV-6", officer="1", out=tmp_path / folder, recordings=1,
                              seconds=3, start=dt.datetime(2026, 11, 21, 8, 0, tzinfo=dt.UTC),
                              resolution=(64, 36), fps=5, seed=seed)[0]
        sc = Sidecar.model_validate_json(rec.sidecar.read_bytes())
        return rec.track.read_text(), [sc.trigger, sc.bookmarks]

    assert run("a", 7) == run("b", 7)
    assert run("c", 8)[0] != run("a", 7)[0]


def test_the_bit_rate_sets_the_size(tmp_path: Path) -> None:
    start = dt.datetime(2026, 11, 21, 8, 0, tzinfo=dt.UTC)
    sizes = []
    for bitrate in (100_000, 1_000_000):
        rec = simulate_camera(serial="BWV-7", officer="1", out=tmp_path / str(bitrate),
                              recordings=1, seconds=2, start=start, resolution=(160, 90), fps=10,
                              video_bitrate=bitrate)[0]
        sizes.append(rec.clips[0].stat().st_size)
    # Constant bit rate with filler: about bitrate × seconds / 8 bytes of video.
    assert 150_000 < sizes[1] < 350_000
    assert sizes[1] > 5 * sizes[0]


def test_no_recordings_is_no_files(tmp_path: Path) -> None:
    assert simulate_camera(serial="BWV-8", officer="1", out=tmp_path / "cam", recordings=0) == []
    assert list((tmp_path / "cam").iterdir()) == []


@pytest.mark.parametrize("bad", [
    {"seconds": -1.0}, {"seconds": 0.0}, {"resolution": (161, 90)}, {"resolution": (0, 0)},
    {"fps": 0}, {"clip_seconds": 0.0}, {"timezone": "Mars/Olympus_Mons"}, {"serial": ""},
    {"recordings": -1}, {"video_bitrate": 0}, {"pre_event_seconds": -5.0},
])
def test_each_impossible_argument_is_refused(tmp_path: Path, bad: dict[str, object]) -> None:
    kwargs: dict[str, object] = {"serial": "BWV-9", "officer": "1", "out": tmp_path / "cam"}
    kwargs.update(bad)
    with pytest.raises(ValueError):
        simulate_camera(**kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "cam").exists()  # refused before touching the disk


def test_the_simulate_app_on_its_own_prints_a_line_per_recording(tmp_path: Path) -> None:
    from evidence_locker.simulate.cli import app as simulate_app

    runner = CliRunner()
    ok = runner.invoke(simulate_app, ["camera", "--serial", "BWV-10", "--officer", "1",
                                      "--out", str(tmp_path), "--recordings", "2",
                                      "--seconds", "1", "--resolution", "64x36", "--fps", "5",
                                      "--clip-seconds", "0.6", "--bitrate", "50000",
                                      "--seed", "4", "--start", "2026-11-21T08:00:00"])
    assert ok.exit_code == 0, ok.output
    lines = ok.output.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("20261121T080000-0001")
    assert len(list(tmp_path.glob("*.mp4"))) == 4
    bad = runner.invoke(simulate_app, ["camera", "--serial", "BWV-10", "--officer", "1",
                                       "--out", str(tmp_path / "x"), "--resolution", "abc"])
    assert bad.exit_code == 2
    assert "--resolution" in bad.output and "WIDTHxHEIGHT" in bad.output
    bad = runner.invoke(simulate_app, ["camera", "--serial", "BWV-10", "--officer", "1",
                                       "--out", str(tmp_path / "x"), "--seconds", "-3"])
    assert bad.exit_code == 2 and "--seconds" in bad.output
    assert not (tmp_path / "x").exists()


def test_a_docked_camera_reports_its_health_and_clock(tmp_path: Path) -> None:
    from evidence_locker.dock.camera import read_camera_clock, read_device_status

    made = simulate_camera(serial="BWV-11", officer="1", out=tmp_path, recordings=1, seconds=1,
                           resolution=(64, 36), fps=5, clock_offset_seconds=-75.0,
                           battery_percent=64, capacity_bytes=10**9, device_status=True)
    status = read_device_status(tmp_path)
    assert status is not None
    assert (status.serial, status.model, status.firmware) == ("BWV-11", "EL-SIM-1", "1.4.2")
    assert status.battery_percent == 64 and status.capacity_bytes == 10**9
    held = sum(p.stat().st_size for p in tmp_path.iterdir() if p.name != "device.json")
    assert status.free_bytes == 10**9 - held
    camera_now = read_camera_clock(status)
    assert camera_now is not None
    assert abs((camera_now - dt.datetime.now(dt.UTC)).total_seconds() + 75) < 5
    # Without a start, the recordings end about *camera* now: 75 s behind true time.
    sc = Sidecar.model_validate_json(made[0].sidecar.read_bytes())
    assert sc.stopped_at is not None
    assert abs((sc.stopped_at - camera_now).total_seconds()) < 10
    # Without device_status the folder holds only the recordings, as before.
    plain = simulate_camera(serial="BWV-12", officer="1", out=tmp_path / "p", recordings=1,
                            seconds=1, resolution=(64, 36), fps=5)
    assert not (tmp_path / "p" / "device.json").exists() and plain


def test_the_cli_writes_device_status_on_request(tmp_path: Path) -> None:
    import json

    ok = CliRunner().invoke(app, ["simulate", "camera", "--serial", "BWV-13", "--officer", "1",
                                  "--out", str(tmp_path), "--recordings", "1", "--seconds", "1",
                                  "--resolution", "64x36", "--fps", "5", "--device-status",
                                  "--clock-offset", "12.5", "--battery", "40"])
    assert ok.exit_code == 0, ok.output
    doc = json.loads((tmp_path / "device.json").read_text())
    assert doc["schema"] == "evidence-locker.camera-device/1"
    assert doc["clock_offset_seconds"] == 12.5 and doc["battery_percent"] == 40
