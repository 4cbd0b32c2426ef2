"""Media facts and poster frames, read from a file with PyAV (FFmpeg).

Camera files are untrusted input and a file that cannot be read is kept and marked, never
dropped, so these functions never raise over a file's contents: :func:`probe_media` answers
:class:`Unreadable` with a reason a person can act on, :func:`make_poster` answers ``None``.
They are pure functions of the file, with no database, so jobs, the CLI and tests share them.
"""

from __future__ import annotations

import datetime as dt
import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from PIL import Image

# Local files do not block like network streams, but a FUSE mount or a dying disk can;
# FFmpeg's interrupt callback turns a stalled open or read into an error after this long.
OPEN_TIMEOUT_SECONDS = 30.0
READ_TIMEOUT_SECONDS = 30.0
# How far to look for a first decodable frame before calling the stream undecodable.
MAX_PACKETS_TO_FIRST_FRAME = 600
# How many frames to decode looking for the poster frame.
MAX_FRAMES_TO_POSTER = 600
POSTER_AT_SECONDS = 1.0
POSTER_JPEG_QUALITY = 80

# Top-level ISO BMFF / QuickTime boxes whose presence at the start marks an MP4-family file.
_MP4_LEADING_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp"}
_MAX_TOP_LEVEL_BOXES = 100_000


@dataclass(frozen=True)
class Probed:
    """Facts about a readable media file; ``None`` where the file does not say."""

    duration_seconds: float | None
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None
    frame_rate: float | None
    created_at: dt.datetime | None


@dataclass(frozen=True)
class Unreadable:
    """A file that is not playable media, and why (shown to people, stored with the file)."""

    reason: str


def probe_media(path: Path) -> Probed | Unreadable:
    """Read a file's media facts, decoding its first frame to prove it really plays."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        return Unreadable(f"cannot read file: {_without_path(exc.strerror or str(exc), path)}")
    if not path.is_file():
        return Unreadable("not a regular file")
    if size == 0:
        return Unreadable("empty file (0 bytes)")
    try:
        problem = _mp4_structure_problem(path, size)
        if problem is not None:
            return Unreadable(problem)
        with _open(path) as container:
            return _probe(container)
    except av.FFmpegError as exc:
        return Unreadable(f"not readable as media: {_without_path(_ffmpeg_message(exc), path)}")
    except OSError as exc:
        return Unreadable(f"cannot read file: {_without_path(exc.strerror or str(exc), path)}")
    except Exception as exc:  # noqa: BLE001 - device input must never crash the catalogue
        detail = _without_path(f"{type(exc).__name__}: {exc}", path)
        return Unreadable(f"not readable as media: {detail}"[:500])


def make_poster(
    path: Path, *, max_width: int = 640, at_seconds: float = POSTER_AT_SECONDS
) -> bytes | None:
    """JPEG of the frame ``at_seconds`` in (the first, if shorter), at most ``max_width`` wide.

    A second in rather than the first frame, which is often black or still adjusting exposure.
    Returns ``None`` when the file has no decodable picture.
    """
    if max_width < 1:
        raise ValueError("max_width must be positive")
    try:
        with _open(path) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            picture = _poster_frame(container, stream, at_seconds)
            if picture is None:
                return None
            image = picture.to_image()
            sar = stream.codec_context.sample_aspect_ratio
            display_width = image.width
            if sar is not None and sar > 0 and sar != 1:
                display_width = max(1, round(image.width * float(sar)))
            width = min(max_width, display_width)
            height = max(1, round(image.height * width / display_width))
            if (width, height) != image.size:
                image = image.resize((width, height), Image.Resampling.BILINEAR)
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=POSTER_JPEG_QUALITY)
            return buffer.getvalue()
    except Exception:  # noqa: BLE001 - a missing poster is fine; a crashed job is not
        return None


def _open(path: Path) -> av.container.InputContainer:
    return av.open(
        str(path),
        mode="r",
        timeout=(OPEN_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
        metadata_errors="replace",
    )


def _probe(container: av.container.InputContainer) -> Probed | Unreadable:
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    if video is None and audio is None:
        return Unreadable(f"no audio or video stream (container {container.format.name})")

    first = _first_frame(container, video if video is not None else audio)
    if first is None:
        kind = "video" if video is not None else "audio"
        return Unreadable(f"no decodable {kind} frame (stream is corrupt or truncated)")

    width = height = None
    frame_rate = None
    if video is not None:
        width = video.codec_context.width or getattr(first, "width", None) or None
        height = video.codec_context.height or getattr(first, "height", None) or None
        rate = video.average_rate or video.guessed_rate
        frame_rate = float(rate) if rate else None
    return Probed(
        duration_seconds=_duration(container, video if video is not None else audio),
        video_codec=video.codec_context.name if video is not None else None,
        audio_codec=audio.codec_context.name if audio is not None else None,
        width=width,
        height=height,
        frame_rate=frame_rate,
        created_at=_creation_time(container),
    )


def _first_frame(container: av.container.InputContainer, stream: Any) -> Any | None:
    """Decode until the stream yields a frame, giving up after a bounded number of packets."""
    for count, packet in enumerate(container.demux(stream)):
        if count >= MAX_PACKETS_TO_FIRST_FRAME:
            return None
        try:
            frames = packet.decode()
        except av.InvalidDataError:
            continue  # a damaged packet; a later one may still decode
        if frames:
            return frames[0]
    return None


def _poster_frame(
    container: av.container.InputContainer, stream: Any, at_seconds: float
) -> Any | None:
    """The first frame at or after ``at_seconds``; the first frame of a shorter clip.

    Decodes from the start rather than seeking: a second of video is a few dozen frames, and
    decoding is robust where seeking in a damaged or unindexed file is not.
    """
    first = None
    start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
    try:
        for count, frame in enumerate(container.decode(stream)):
            if first is None:
                first = frame
            at = frame.time
            if at is not None and at - start >= at_seconds:
                return frame
            if count >= MAX_FRAMES_TO_POSTER:
                break
    except av.FFmpegError:
        pass  # damage after a good frame still leaves us a poster
    return first


def _duration(container: av.container.InputContainer, stream: Any) -> float | None:
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    if stream is not None and stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _creation_time(container: av.container.InputContainer) -> dt.datetime | None:
    """The container's ``creation_time`` (camera clock), in UTC; streams as a fallback."""
    candidates = [container.metadata.get("creation_time")]
    candidates += [stream.metadata.get("creation_time") for stream in container.streams]
    for value in candidates:
        parsed = _parse_time(value)
        if parsed is not None:
            return parsed
    return None


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)  # FFmpeg writes UTC
    if parsed.year < 1971:
        return None  # MP4's zero time (1904) or the Unix epoch: the clock was never set
    return parsed.astimezone(dt.UTC)


def _without_path(message: str, path: Path) -> str:
    """Reasons are shown to users and stored: they say what is wrong, never where files live."""
    return message.replace(str(path), "<file>")


def _ffmpeg_message(exc: av.FFmpegError) -> str:
    """FFmpeg's own words without the file path, which the caller already knows."""
    message = getattr(exc, "strerror", None) or str(exc)
    return str(message)[:300]


def _mp4_structure_problem(path: Path, size: int) -> str | None:
    """Walk an MP4's top-level boxes: cheap, and catches a clip cut short by a dying battery.

    FFmpeg opens a file whose index (``moov``) came first but whose data was cut off and
    decodes its first frame happily; only the box sizes show that the file is incomplete.
    Returns ``None`` for files that are not MP4-family, leaving them to FFmpeg.
    """
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8 or head[4:8] not in _MP4_LEADING_BOXES:
            return None
        offset = 0
        seen: set[bytes] = set()
        for _ in range(_MAX_TOP_LEVEL_BOXES):
            if offset == size:
                break
            handle.seek(offset)
            header = handle.read(16)
            if len(header) < 8:
                break  # a few stray bytes of padding; FFmpeg ignores them too
            box_size, box_type = struct.unpack(">I4s", header[:8])
            if not _is_box_type(box_type):
                break  # trailing junk, not a box: leave the verdict to FFmpeg
            name = box_type.decode("ascii")
            if box_size == 1:
                if len(header) < 16:
                    return f"truncated: '{name}' box header at byte {offset} is cut off"
                box_size = struct.unpack(">Q", header[8:16])[0]
                header_size = 16
            elif box_size == 0:
                box_size = size - offset  # the last box runs to the end of the file
                header_size = 8
            else:
                header_size = 8
            if box_size < header_size:
                return f"corrupt: '{name}' box at byte {offset} has impossible size {box_size}"
            if offset + box_size > size:
                return (
                    f"truncated: '{name}' box at byte {offset} needs {box_size} bytes "
                    f"but the file ends after {size - offset} (incomplete copy or recording)"
                )
            seen.add(box_type)
            offset += box_size
        if b"moov" not in seen and b"moof" not in seen and b"ftyp" in seen:
            return "no 'moov' index box: the recording was never finalised"
    return None


def _is_box_type(box_type: bytes) -> bool:
    """Box types are four printable ASCII characters (a few use (c), which we do not need)."""
    return all(0x20 <= byte < 0x7F for byte in box_type)
