"""Media probing on real and broken files: facts or a reason, never an exception."""

from __future__ import annotations

import datetime as dt
import io
import os
import random
from pathlib import Path

import av
import pytest
from PIL import Image

from evidence_locker.catalogue.probe import Probed, Unreadable, make_poster, probe_media
from evidence_locker.simulate.camera import simulate_camera


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cam")
    return simulate_camera(serial="P-1", officer="1", out=out, recordings=1, seconds=2.5,
                           resolution=(320, 180), fps=12)[0].clips[0]


def test_a_real_clip_is_probed(clip: Path) -> None:
    facts = probe_media(clip)
    assert isinstance(facts, Probed)
    assert (facts.video_codec, facts.audio_codec) == ("h264", "aac")
    assert (facts.width, facts.height) == (320, 180)
    assert facts.frame_rate == 12
    assert facts.duration_seconds is not None and abs(facts.duration_seconds - 2.5) < 0.3


@pytest.mark.parametrize("content", [b"", b"plain text\n", os.urandom(50_000), "half"])
def test_broken_files_are_unreadable_with_a_reason(clip: Path, tmp_path: Path,
                                                   content: bytes | str) -> None:
    path = tmp_path / "bad.mp4"
    data = clip.read_bytes()
    path.write_bytes(data[: len(data) // 2] if content == "half" else content)  # type: ignore[arg-type]
    result = probe_media(path)
    assert isinstance(result, Unreadable)
    assert result.reason
    assert str(tmp_path) not in result.reason  # reasons are shown to users: no server paths
    assert make_poster(path) is None


def test_poster_is_a_scaled_jpeg(clip: Path) -> None:
    jpeg = make_poster(clip, max_width=160)
    assert jpeg is not None
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG"
    assert image.size == (160, 90)


def _faststart_copy(src: Path, dst: Path) -> None:
    """Remux with the index (moov) first, as some cameras write: a cut-off copy then opens."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4",
                                             options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


def test_probe_reads_creation_time_and_frame_count_facts(clip: Path) -> None:
    facts = probe_media(clip)
    assert isinstance(facts, Probed)
    with av.open(str(clip)) as container:
        stamped = dt.datetime.fromisoformat(container.metadata["creation_time"])
    assert facts.created_at == stamped
    assert facts.created_at is not None and facts.created_at.utcoffset() == dt.timedelta(0)


def test_a_truncated_faststart_clip_is_unreadable(clip: Path, tmp_path: Path) -> None:
    whole = tmp_path / "faststart.mp4"
    _faststart_copy(clip, whole)
    assert isinstance(probe_media(whole), Probed)
    data = whole.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    result = probe_media(cut)
    assert isinstance(result, Unreadable)
    assert "truncated" in result.reason


def test_a_clip_without_its_index_is_unreadable(clip: Path, tmp_path: Path) -> None:
    data = clip.read_bytes()
    moov = data.rindex(b"moov") - 4  # the moov box header starts 4 bytes before its type
    path = tmp_path / "no-index.mp4"
    path.write_bytes(data[:moov])  # a camera that lost power before finalising the clip
    result = probe_media(path)
    assert isinstance(result, Unreadable)
    assert "moov" in result.reason


def test_things_that_are_not_files_are_unreadable(tmp_path: Path) -> None:
    missing = probe_media(tmp_path / "missing.mp4")
    assert isinstance(missing, Unreadable) and str(tmp_path) not in missing.reason
    assert isinstance(probe_media(tmp_path), Unreadable)
    assert make_poster(tmp_path / "missing.mp4") is None


def test_damaged_clips_never_raise(clip: Path, tmp_path: Path) -> None:
    rng = random.Random(1)
    data = clip.read_bytes()
    for n in range(25):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 20)):
            at = rng.randrange(len(damaged))
            damaged[at : at + rng.randint(1, 64)] = rng.randbytes(rng.randint(1, 64))
        if n % 3 == 0:
            damaged = damaged[: rng.randrange(1, len(damaged))]
        path = tmp_path / f"damaged-{n}.mp4"
        path.write_bytes(bytes(damaged))
        assert isinstance(probe_media(path), Probed | Unreadable)
        poster = make_poster(path)
        assert poster is None or poster.startswith(b"\xff\xd8")


def test_an_audio_only_file_has_no_video_facts(tmp_path: Path) -> None:
    path = tmp_path / "voice.m4a"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=48_000, layout="mono")
        for i in range(20):
            frame = av.AudioFrame(format="s16", layout="mono", samples=1024)
            frame.planes[0].update(bytes(2048))
            frame.sample_rate = 48_000
            frame.pts = i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    facts = probe_media(path)
    assert isinstance(facts, Probed)
    assert (facts.video_codec, facts.audio_codec, facts.width, facts.frame_rate) == (
        None, "aac", None, None)
    assert make_poster(path) is None


def test_poster_is_never_upscaled_and_short_clips_still_get_one(tmp_path: Path) -> None:
    short = simulate_camera(serial="P-2", officer="1", out=tmp_path, recordings=1, seconds=0.4,
                            resolution=(96, 54), fps=10)[0].clips[0]
    jpeg = make_poster(short)
    assert jpeg is not None
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG" and image.size == (96, 54)
    image.load()  # the whole image decodes, not only its header
