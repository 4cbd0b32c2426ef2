"""Media facts and poster frames, from PyAV. Pure functions over a file path, no database.

Camera files are untrusted: anything PyAV cannot open, or that has no decodable video, is
`Unreadable` with the reason — never an exception, and never a reason to drop the file.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import av
from av.error import FFmpegError


@dataclass(frozen=True)
class Probed:
    duration_seconds: float | None
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None
    frame_rate: float | None
    created_at: dt.datetime | None


@dataclass(frozen=True)
class Unreadable:
    reason: str


def _creation_time(metadata: dict[str, str]) -> dt.datetime | None:
    raw = metadata.get("creation_time")
    if not raw:
        return None
    try:
        when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def probe_media(path: Path) -> Probed | Unreadable:
    """Open the container, read its streams, and decode the first video frame to be sure."""
    try:
        if path.stat().st_size == 0:
            return Unreadable("empty file")
        with av.open(str(path), mode="r", timeout=30) as container:
            video = next(iter(container.streams.video), None)
            audio = next(iter(container.streams.audio), None)
            if video is None:
                return Unreadable("no video stream")
            first = None
            for frame in container.decode(video=0):
                first = frame
                break
            if first is None:
                return Unreadable("no decodable video frame")
            duration = None
            if container.duration is not None:
                duration = container.duration / av.time_base
            elif video.duration is not None and video.time_base is not None:
                duration = float(video.duration * video.time_base)
            rate = video.average_rate or video.base_rate
            return Probed(
                duration_seconds=round(duration, 3) if duration is not None else None,
                video_codec=video.codec_context.name,
                audio_codec=audio.codec_context.name if audio is not None else None,
                width=video.codec_context.width or first.width,
                height=video.codec_context.height or first.height,
                frame_rate=round(float(rate), 3) if rate else None,
                created_at=_creation_time(dict(container.metadata)),
            )
    except (FFmpegError, OSError, ValueError, IndexError, StopIteration) as exc:
        # The reason is shown to users: say what is wrong, never where the file lives.
        detail = getattr(exc, "strerror", None) or str(exc).replace(str(path), "<file>")
        return Unreadable(f"{exc.__class__.__name__}: {detail}"[:500])


def make_poster(path: Path, *, max_width: int = 640, at_seconds: float = 1.0) -> bytes | None:
    """A JPEG of the frame about `at_seconds` in (the first frame of a shorter clip)."""
    try:
        with av.open(str(path), mode="r", timeout=30) as container:
            if not container.streams.video:
                return None

            chosen = None
            for frame in container.decode(video=0):
                chosen = frame
                if frame.time is not None and frame.time >= at_seconds:
                    break
            if chosen is None:
                return None
            image = chosen.to_image()
    except (FFmpegError, OSError, ValueError, IndexError):
        return None
    if image.width > max_width:
        height = max(1, round(image.height * max_width / image.width))
        image = image.resize((max_width, height))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=80)
    return out.getvalue()
