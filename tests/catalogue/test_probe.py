"""Media probing on real and broken files: facts or a reason, never an exception."""

from __future__ import annotations

import io
import os
from pathlib import Path

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
