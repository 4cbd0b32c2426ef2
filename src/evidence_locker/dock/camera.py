"""What a docked camera exposes to its dock: its recordings, and its health and clock.

A camera that mounts as storage shows one folder per bay. Besides each recording's clips, GPS
track and sidecar (:mod:`evidence_locker.catalogue.sidecar`), the folder holds ``device.json``,
the camera's own report, refreshed by the camera when it is docked::

    {
      "schema": "evidence-locker.camera-device/1",
      "serial": "BWV-0001", "model": "EL-SIM-1", "firmware": "1.4.2",
      "battery_percent": 87,
      "capacity_bytes": 68719476736, "free_bytes": 61203124224,
      "clock_offset_seconds": 12.5,     # simulation only: the camera RTC minus true time
      "written_at": "2026-11-22T18:01:02+00:00"   # camera clock
    }

A real dock reads the camera's real-time clock over USB at dock time; the simulated camera
cannot run a clock of its own, so it records how far its RTC is off and :func:`read_camera_clock`
adds that to the host's clock. Either way the dock compares the camera's clock with its own
(NTP-disciplined) clock and sends the difference (camera minus dock) with every upload.

Everything here is untrusted device input: parsed strictly, and what does not parse is reported,
never acted on (and never deleted).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evidence_locker.catalogue.sidecar import Sidecar

DEVICE_SCHEMA = "evidence-locker.camera-device/1"
DEVICE_FILE = "device.json"


class DeviceStatus(BaseModel):
    """The camera's own report of itself (``device.json``)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    schema_: str = Field(default=DEVICE_SCHEMA, alias="schema")
    serial: str = Field(min_length=1, max_length=64)
    model: str | None = Field(default=None, max_length=100)
    firmware: str | None = Field(default=None, max_length=64)
    battery_percent: int | None = Field(default=None, ge=0, le=100)
    capacity_bytes: int | None = Field(default=None, ge=0)
    free_bytes: int | None = Field(default=None, ge=0)
    clock_offset_seconds: float | None = Field(default=None, ge=-10 * 365 * 86400,
                                               le=10 * 365 * 86400)
    written_at: dt.datetime | None = None


def read_device_status(folder: Path) -> DeviceStatus | None:
    """The camera's report, or None if it has none or it does not parse (an old firmware)."""
    try:
        return DeviceStatus.model_validate_json((folder / DEVICE_FILE).read_bytes())
    except (OSError, ValidationError, ValueError):
        return None


def read_camera_clock(status: DeviceStatus | None,
                      true_now: float | None = None) -> dt.datetime | None:
    """The camera's clock now, as a dock reads its RTC at dock time; None if unknown."""
    if status is None or status.clock_offset_seconds is None:
        return None
    now = time.time() if true_now is None else true_now
    return dt.datetime.fromtimestamp(now + status.clock_offset_seconds, dt.UTC)


def clock_drift(camera_now: dt.datetime | None, dock_now: dt.datetime) -> float | None:
    """Seconds the camera is ahead of the dock (negative: behind), to the millisecond."""
    if camera_now is None:
        return None
    return round((camera_now - dock_now).total_seconds(), 3)


@dataclass(frozen=True)
class CameraFile:
    """One file to upload, in the order it must go (clips, track, then the sidecar)."""

    path: Path
    serial: str
    recording: str
    kind: str  # clip | track | sidecar
    index: int
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class CameraContents:
    """What a camera folder holds now: files to upload, and what the dock cannot make sense of
    (kept on the camera and reported)."""

    files: list[CameraFile]
    unreadable_sidecars: list[Path]
    unlisted: list[Path]


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _sidecars(folder: Path) -> Iterator[Path]:
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        name = entry.name
        if (entry.is_file() and name.endswith(".json") and not name.startswith(".")
                and not name.endswith(".track.json") and name != DEVICE_FILE):
            yield Path(entry.path)


def scan_camera(folder: Path) -> CameraContents:
    """Every recording in the folder, sidecar-driven: a sidecar is written last, so the files it
    lists are complete. A listed file already gone was confirmed and deleted earlier (the dock
    deletes nothing unconfirmed); files no sidecar explains come last, as recordings of their
    own."""
    files: list[CameraFile] = []
    unreadable: list[Path] = []
    listed: set[str] = {DEVICE_FILE}
    for sidecar_path in _sidecars(folder):
        listed.add(sidecar_path.name)
        try:
            sc = Sidecar.model_validate_json(sidecar_path.read_bytes())
        except (OSError, ValidationError, ValueError):
            unreadable.append(sidecar_path)
            continue
        items: list[tuple[Path, str, int]] = [
            (folder / f.filename, f.kind, f.index) for f in sc.files
                 if "/" not in f.filename and "\\" not in f.filename]
        items.append((sidecar_path, "sidecar", 1))
        for path, kind, index in items:
            listed.add(path.name)
            st = _stat(path)
            if st is None:
                continue
            files.append(CameraFile(path, sc.device.serial, sc.recording_id, kind, index,
                                    st.st_size, st.st_mtime_ns))
    unlisted = sorted(Path(e.path) for e in os.scandir(folder)
                      if e.is_file() and not e.name.startswith(".") and e.name not in listed)
    # Footage is never dropped: what no sidecar explains goes up too, each file as its own
    # recording, for the server to keep and mark (incomplete, unreadable, or a sidecar that
    # does not parse). Uploaded last, so a readable recording is never held up by them.
    serial = files[0].serial if files else _serial_of(folder)
    for path, kind in [*((p, "sidecar") for p in unreadable), *((p, "clip") for p in unlisted)]:
        st = _stat(path)
        if st is not None:
            files.append(CameraFile(path, serial, unexplained_recording_id(path.name), kind, 1,
                                    st.st_size, st.st_mtime_ns))
    return CameraContents(files, unreadable, unlisted)


def unexplained_recording_id(name: str) -> str:
    """A recording id for a file no sidecar explains: its name, in the characters the server
    accepts (`[A-Za-z0-9._:-]`, at most 128), so the same file always maps to the same id."""
    safe = re.sub(r"[^A-Za-z0-9._:-]", "_", name)
    if len(safe) > 100:
        safe = safe[:60] + "-" + hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"unexplained-{safe}"


def _serial_of(folder: Path) -> str:
    """The camera's serial without a readable sidecar: device.json, else the folder's name."""
    status = read_device_status(folder)
    return status.serial if status is not None else folder.name
