"""A body-worn camera simulator: writes what a docked camera's storage holds.

Development, demos, tests and benchmarks need footage that looks like a real camera's without
anybody filming anything. For each recording the simulator writes real H.264/AAC MP4 clips (a
moving test pattern with the camera's clock and serial burnt in, and a tone), a GPS track and a
sidecar in the formats of :mod:`evidence_locker.catalogue.sidecar`. The sidecar is written last,
as a camera closes a recording, so anything that sees it can rely on the files it lists.

The video is encoded at constant bit rate with filler, so ``video_bitrate`` predicts the file
size: tests make kilobyte clips, benchmarks make gigabyte ones from the same code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import random
from array import array
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import av
from PIL import Image, ImageDraw, ImageFont

from evidence_locker.catalogue.sidecar import SIDECAR_SCHEMA, TRACK_SCHEMA

AUDIO_RATE = 48_000
AUDIO_BITRATE = 64_000
AUDIO_FRAME = 1024

_TRIGGER_ON_REASONS = ("button", "button", "button", "holster-sensor", "taser-armed")
_BOOKMARK_CATEGORIES = ("use-of-force", "arrest", "stop-and-search", "domestic-abuse", "traffic")
_BARS = (
    (192, 192, 192),
    (192, 192, 0),
    (0, 192, 192),
    (0, 192, 0),
    (192, 0, 192),
    (192, 0, 0),
    (0, 0, 192),
)
_LONDON = (51.5074, -0.1278)
_METRES_PER_DEGREE = 111_320.0


@dataclass(frozen=True)
class SimulatedRecording:
    """What one simulated recording left on the camera's storage."""

    recording_id: str
    sidecar: Path
    clips: list[Path]
    track: Path


def simulate_camera(
    *,
    serial: str,
    officer: str,
    out: Path,
    recordings: int = 3,
    seconds: float = 10.0,
    start: dt.datetime | None = None,
    resolution: tuple[int, int] = (640, 360),
    fps: int = 15,
    clip_seconds: float = 300.0,
    video_bitrate: int = 500_000,
    model: str = "EL-SIM-1",
    firmware: str = "1.4.2",
    timezone: str = "Europe/London",
    pre_event_seconds: float = 30.0,
    seed: int = 0,
    gap_seconds: float = 120.0,
    clock_offset_seconds: float = 0.0,
    battery_percent: int | None = None,
    capacity_bytes: int = 64 * 1024**3,
    device_status: bool = False,
) -> list[SimulatedRecording]:
    """Write ``recordings`` recordings of ``seconds`` each into ``out`` and describe them.

    Recording *n* (from 0) starts at ``start + n * (seconds + gap_seconds)``; its sidecar's
    ``started_at`` is that instant and includes the pre-event buffer, which is capped at half
    the recording so that there is footage on both sides of the trigger. A naive ``start`` is
    read in the camera's ``timezone``; without one the recordings end about now. A recording
    longer than ``clip_seconds`` is split into several clips, as real cameras do.

    Content (pattern, tone, GPS walk, trigger reasons, bookmarks) depends only on ``seed``,
    ``serial`` and the arguments; the files are not guaranteed to be byte-identical across
    library versions. Raises ``ValueError`` for arguments no camera could produce.

    The camera's clock runs ``clock_offset_seconds`` ahead of true time (negative: behind): the
    default recordings end about *camera* now. With ``device_status`` the folder also holds
    ``device.json`` (the camera's health and clock, :mod:`evidence_locker.dock.camera`), as a
    docked camera shows it to its dock.
    """
    zone = _validate(
        serial=serial,
        officer=officer,
        recordings=recordings,
        seconds=seconds,
        resolution=resolution,
        fps=fps,
        clip_seconds=clip_seconds,
        video_bitrate=video_bitrate,
        timezone=timezone,
        pre_event_seconds=pre_event_seconds,
        gap_seconds=gap_seconds,
    )
    step = dt.timedelta(seconds=seconds + gap_seconds)
    if not math.isfinite(clock_offset_seconds) or abs(clock_offset_seconds) > 10 * 365 * 86400:
        raise ValueError("clock_offset_seconds must be within ten years")
    if battery_percent is not None and not 0 <= battery_percent <= 100:
        raise ValueError("battery_percent must be between 0 and 100")
    if start is None:
        now = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=clock_offset_seconds)).replace(
            microsecond=0)
        first = now - recordings * step + dt.timedelta(seconds=gap_seconds)
    elif start.tzinfo is None:
        first = start.replace(tzinfo=zone).astimezone(dt.UTC)
    else:
        first = start.astimezone(dt.UTC)

    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}:{serial}")  # noqa: S311 - simulation, not security
    walker = _Walker(rng)
    camera = _Camera(
        serial=serial,
        officer=officer,
        model=model,
        firmware=firmware,
        zone=zone,
        timezone=timezone,
        width=resolution[0],
        height=resolution[1],
        fps=fps,
        video_bitrate=video_bitrate,
    )
    written: list[SimulatedRecording] = []
    for n in range(recordings):
        if n:
            walker.wander(gap_seconds)
        written.append(
            camera.record(
                number=n + 1,
                started_at=first + n * step,
                seconds=seconds,
                clip_seconds=clip_seconds,
                pre_event_seconds=min(pre_event_seconds, seconds / 2),
                out=out,
                rng=rng,
                walker=walker,
            )
        )
    if device_status:
        write_device_status(
            out, serial=serial, model=model, firmware=firmware,
            battery_percent=(battery_percent if battery_percent is not None
                             else rng.randint(20, 100)),
            capacity_bytes=capacity_bytes, clock_offset_seconds=clock_offset_seconds)
    return written


def write_device_status(
    out: Path,
    *,
    serial: str,
    model: str | None = "EL-SIM-1",
    firmware: str | None = "1.4.2",
    battery_percent: int | None = None,
    capacity_bytes: int = 64 * 1024**3,
    clock_offset_seconds: float = 0.0,
) -> Path:
    """Write ``device.json``, the camera's report of itself that a dock reads at docking.

    Free space is the capacity less what the folder holds now.
    """
    from evidence_locker.dock.camera import DEVICE_FILE, DEVICE_SCHEMA

    used = sum(e.stat().st_size for e in os.scandir(out)
               if e.is_file() and e.name != DEVICE_FILE)
    camera_now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=clock_offset_seconds)
    doc = {
        "schema": DEVICE_SCHEMA,
        "serial": serial,
        "model": model,
        "firmware": firmware,
        "battery_percent": battery_percent,
        "capacity_bytes": capacity_bytes,
        "free_bytes": max(0, capacity_bytes - used),
        "clock_offset_seconds": clock_offset_seconds,
        "written_at": camera_now.replace(microsecond=0).isoformat(),
    }
    path = out / DEVICE_FILE
    _write_atomically(path, (json.dumps(doc, indent=2) + "\n").encode())
    return path


def _validate(
    *,
    serial: str,
    officer: str,
    recordings: int,
    seconds: float,
    resolution: tuple[int, int],
    fps: int,
    clip_seconds: float,
    video_bitrate: int,
    timezone: str,
    pre_event_seconds: float,
    gap_seconds: float,
) -> ZoneInfo:
    """Reject arguments early, with messages a CLI user can act on."""
    if not serial or len(serial) > 64 or "/" in serial:
        raise ValueError("serial must be 1-64 characters without '/'")
    if len(officer) > 64:
        raise ValueError("officer must be at most 64 characters")
    if recordings < 0:
        raise ValueError("recordings must not be negative")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("seconds must be a positive number")
    width, height = resolution
    if width < 16 or height < 16 or width > 7680 or height > 4320:
        raise ValueError("resolution must be between 16x16 and 7680x4320")
    if width % 2 or height % 2:
        raise ValueError("resolution must have an even width and height (H.264 4:2:0)")
    if not 1 <= fps <= 240:
        raise ValueError("fps must be between 1 and 240")
    if not math.isfinite(clip_seconds) or clip_seconds <= 0:
        raise ValueError("clip_seconds must be a positive number")
    if video_bitrate < 10_000:
        raise ValueError("video_bitrate must be at least 10000 bit/s")
    if not math.isfinite(pre_event_seconds) or not 0 <= pre_event_seconds <= 3600:
        raise ValueError("pre_event_seconds must be between 0 and 3600")
    if not math.isfinite(gap_seconds) or gap_seconds < 0:
        raise ValueError("gap_seconds must not be negative")
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {timezone!r}") from exc


@dataclass
class _Camera:
    """One camera's fixed settings; records one recording at a time."""

    serial: str
    officer: str
    model: str
    firmware: str
    zone: ZoneInfo
    timezone: str
    width: int
    height: int
    fps: int
    video_bitrate: int

    def record(
        self,
        *,
        number: int,
        started_at: dt.datetime,
        seconds: float,
        clip_seconds: float,
        pre_event_seconds: float,
        out: Path,
        rng: random.Random,
        walker: _Walker,
    ) -> SimulatedRecording:
        """Write one recording's clips, track and (last) sidecar."""
        local_start = started_at.astimezone(self.zone)
        recording_id = f"{local_start:%Y%m%dT%H%M%S}-{number:04d}"
        stopped_at = started_at + dt.timedelta(seconds=seconds)
        trigger_on = started_at + dt.timedelta(seconds=pre_event_seconds)
        tone_hz = rng.choice((330, 440, 550, 660))

        total_frames = max(1, round(seconds * self.fps))
        # Floor: a clip never runs over clip_seconds (the epsilon forgives float noise).
        frames_per_clip = max(1, math.floor(clip_seconds * self.fps + 1e-9))
        clips: list[Path] = []
        for index, first_frame in enumerate(range(0, total_frames, frames_per_clip), start=1):
            clip = out / f"{recording_id}_{index:03d}.mp4"
            self._write_clip(
                clip,
                started_at=started_at,
                first_frame=first_frame,
                frames=min(frames_per_clip, total_frames - first_frame),
                tone_hz=tone_hz,
            )
            clips.append(clip)

        track = out / f"{recording_id}.track.json"
        points = walker.walk(started_at, seconds, self.zone)
        _write_atomically(
            track,
            json.dumps({"schema": TRACK_SCHEMA, "points": points}, separators=(",", ":")).encode(),
        )

        bookmarks: list[dict[str, Any]] = []
        if rng.random() < 0.4:
            at = trigger_on + dt.timedelta(seconds=rng.uniform(0, seconds - pre_event_seconds))
            bookmarks.append(
                {
                    "at": _iso(at, self.zone),
                    "category": rng.choice(_BOOKMARK_CATEGORIES),
                    "note": "",
                }
            )
        files = [_listed("clip", i, path) for i, path in enumerate(clips, start=1)]
        files.append(_listed("track", 1, track))
        sidecar_doc = {
            "schema": SIDECAR_SCHEMA,
            "recording_id": recording_id,
            "device": {"serial": self.serial, "model": self.model, "firmware": self.firmware},
            "officer": self.officer,
            "timezone": self.timezone,
            "started_at": _iso(started_at, self.zone),
            "stopped_at": _iso(stopped_at, self.zone),
            "pre_event_seconds": pre_event_seconds,
            "trigger": {
                "on": {
                    "reason": rng.choice(_TRIGGER_ON_REASONS),
                    "at": _iso(trigger_on, self.zone),
                },
                "off": {"reason": "button", "at": _iso(stopped_at, self.zone)},
            },
            "files": files,
            "bookmarks": bookmarks,
        }
        sidecar = out / f"{recording_id}.json"
        _write_atomically(sidecar, (json.dumps(sidecar_doc, indent=2) + "\n").encode())
        return SimulatedRecording(
            recording_id=recording_id, sidecar=sidecar, clips=clips, track=track
        )

    def _write_clip(
        self,
        path: Path,
        *,
        started_at: dt.datetime,
        first_frame: int,
        frames: int,
        tone_hz: int,
    ) -> None:
        """Encode frames ``first_frame`` .. ``+frames`` of the recording as one MP4 clip."""
        clip_start = started_at + dt.timedelta(seconds=first_frame / self.fps)
        partial = path.with_name(f".{path.name}.part")
        pattern = _Pattern(self, started_at)
        tone = _tone(tone_hz)
        audio_total = frames * AUDIO_RATE // self.fps
        audio_done = 0
        rate = str(self.video_bitrate)
        with av.open(str(partial), mode="w", format="mp4") as container:
            container.metadata["creation_time"] = clip_start.astimezone(dt.UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ"
            )
            container.metadata["comment"] = f"{self.serial} {self.model} {self.firmware}"
            video = container.add_stream(
                "libx264",
                rate=self.fps,
                options={
                    "preset": "ultrafast",
                    # Constant bit rate with filler: file size follows video_bitrate.
                    "x264-params": "nal-hrd=cbr:force-cfr=1",
                    "minrate": rate,
                    "maxrate": rate,
                    "bufsize": rate,
                    "g": str(2 * self.fps),
                },
            )
            video.width = self.width
            video.height = self.height
            video.pix_fmt = "yuv420p"
            video.bit_rate = self.video_bitrate
            audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
            audio.bit_rate = AUDIO_BITRATE
            video_time_base = Fraction(1, self.fps)
            audio_time_base = Fraction(1, AUDIO_RATE)

            for i in range(frames):
                frame = av.VideoFrame.from_image(pattern.frame(first_frame + i))
                frame.pts = i
                frame.time_base = video_time_base
                container.mux(video.encode(frame))
                # Keep audio level with video so the muxer interleaves without buffering.
                audio_due = min(audio_total, (i + 1) * AUDIO_RATE // self.fps)
                while audio_done < audio_due:
                    count = min(AUDIO_FRAME, audio_due - audio_done)
                    samples = av.AudioFrame(format="s16", layout="mono", samples=count)
                    offset = ((first_frame * AUDIO_RATE // self.fps) + audio_done) % AUDIO_RATE
                    samples.planes[0].update(tone[offset * 2 : (offset + count) * 2])
                    samples.sample_rate = AUDIO_RATE
                    samples.pts = audio_done
                    samples.time_base = audio_time_base
                    container.mux(audio.encode(samples))
                    audio_done += count
            container.mux(video.encode(None))
            container.mux(audio.encode(None))
        with partial.open("rb+") as handle:
            os.fsync(handle.fileno())
        partial.replace(path)


class _Pattern:
    """Sliding colour bars with the camera's clock, serial and officer burnt in."""

    def __init__(self, camera: _Camera, started_at: dt.datetime) -> None:
        self._camera = camera
        self._started_at = started_at
        width, height = camera.width, camera.height
        self._bars = Image.new("RGB", (2 * width, height))
        draw = ImageDraw.Draw(self._bars)
        bar = width / len(_BARS)
        for i in range(2 * len(_BARS)):
            colour = _BARS[i % len(_BARS)]
            draw.rectangle((int(i * bar), 0, int((i + 1) * bar), height), fill=colour)
        # A grey ramp along the bottom so the picture is not only flat colour.
        ramp_top = height - max(2, height // 8)
        for x in range(2 * width):
            level = int(255 * (x % width) / max(1, width - 1))
            draw.line((x, ramp_top, x, height), fill=(level, level, level))
        self._font = _font(max(10, height // 22))
        self._label_second: int | None = None
        self._label = Image.new("RGB", (1, 1))

    def frame(self, index: int) -> Image.Image:
        """The picture for frame ``index`` of the recording."""
        width = self._camera.width
        offset = (index * max(1, width // 160)) % width
        image = self._bars.crop((offset, 0, offset + width, self._camera.height))
        second = index // self._camera.fps
        if second != self._label_second:
            self._label = self._render_label(second)
            self._label_second = second
        margin = max(2, self._camera.height // 60)
        image.paste(self._label, (margin, margin))
        return image

    def _render_label(self, second: int) -> Image.Image:
        """Render the overlay once per second of footage; pasting it is cheap."""
        camera = self._camera
        at = (self._started_at + dt.timedelta(seconds=second)).astimezone(camera.zone)
        text = f"{at:%Y-%m-%d %H:%M:%S %z}\n{camera.serial}  {camera.officer}"
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        left, top, right, bottom = probe.multiline_textbbox((0, 0), text, font=self._font)
        pad = 3
        label = Image.new(
            "RGB",
            (
                min(camera.width, int(right - left) + 2 * pad),
                min(camera.height, int(bottom - top) + 2 * pad),
            ),
        )
        ImageDraw.Draw(label).multiline_text(
            (pad - left, pad - top), text, fill=(255, 255, 255), font=self._font
        )
        return label


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font: no font files to ship or find."""
    return ImageFont.load_default(size=size)


_TONES: dict[int, bytes] = {}


def _tone(hz: int) -> bytes:
    """Two seconds of signed 16-bit mono: a 1 kHz pip each second, then a quiet tone.

    Two seconds, so that any frame-sized slice starting within the first second is contiguous.
    """
    cached = _TONES.get(hz)
    if cached is None:
        samples = array("h")
        for i in range(AUDIO_RATE):
            t = i / AUDIO_RATE
            if i < AUDIO_RATE // 10:
                value = 0.3 * math.sin(2 * math.pi * 1000 * t)
            else:
                value = 0.1 * math.sin(2 * math.pi * hz * t)
            samples.append(int(32767 * value))
        cached = samples.tobytes() * 2
        _TONES[hz] = cached
    return cached


class _Walker:
    """An officer on foot in central London: a smooth random walk, continued between recordings."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.lat = _LONDON[0] + rng.uniform(-0.03, 0.03)
        self.lon = _LONDON[1] + rng.uniform(-0.05, 0.05)
        self.ele = rng.uniform(8, 35)
        self._heading = rng.uniform(0, 2 * math.pi)
        self._speed = rng.uniform(1.0, 1.8)

    def _step(self, metres: float) -> None:
        self._heading += self._rng.gauss(0, 0.25)
        self.lat += metres * math.cos(self._heading) / _METRES_PER_DEGREE
        self.lon += (
            metres
            * math.sin(self._heading)
            / (_METRES_PER_DEGREE * math.cos(math.radians(self.lat)))
        )
        self.ele = min(60.0, max(0.0, self.ele + self._rng.gauss(0, 0.05)))

    def wander(self, seconds: float) -> None:
        """Move on between recordings, without a point per second."""
        steps = min(60, max(1, int(seconds // 10)))
        for _ in range(steps):
            self._step(self._speed * seconds / steps)

    def walk(self, started_at: dt.datetime, seconds: float, zone: ZoneInfo) -> list[dict[str, Any]]:
        """One fix a second from start to stop inclusive, as GPS receivers log them."""
        points = []
        for second in range(int(seconds) + 1):
            if second:
                self._step(self._speed)
            points.append(
                {
                    "t": _iso(started_at + dt.timedelta(seconds=second), zone),
                    "lat": round(self.lat, 6),
                    "lon": round(self.lon, 6),
                    "ele": round(self.ele, 1),
                }
            )
        return points


def _iso(at: dt.datetime, zone: ZoneInfo) -> str:
    """ISO 8601 in the camera's zone with its UTC offset, as the camera's clock shows it."""
    local = at.astimezone(zone)
    return local.isoformat(timespec="milliseconds" if local.microsecond else "seconds")


def _listed(kind: str, index: int, path: Path) -> dict[str, Any]:
    digest, size = _sha256(path)
    return {"kind": kind, "index": index, "filename": path.name, "sha256": digest, "size": size}


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _write_atomically(path: Path, data: bytes) -> None:
    """Write beside, fsync, rename: a reader never sees half a file under the final name."""
    partial = path.with_name(f".{path.name}.part")
    with partial.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)
