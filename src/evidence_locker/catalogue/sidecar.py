"""The sidecar a camera writes beside each recording, and the GPS track file.

Both are untrusted device input: parsed strictly, and a file that does not parse is kept and
marked unreadable, never dropped.

Sidecar (`<recording>.json`)::

    {
      "schema": "evidence-locker.camera-sidecar/1",
      "recording_id": "20261122T081500-0001",
      "device": {"serial": "BWV-0001", "model": "EL-SIM-1", "firmware": "1.4.2"},
      "officer": "4521",                      # collar number of the officer logged on
      "timezone": "Europe/London",            # IANA zone the camera was set to
      "started_at": "2026-11-22T08:14:30+00:00",   # camera clock, includes pre-event buffer
      "stopped_at": "2026-11-22T08:16:00+00:00",
      "pre_event_seconds": 30,
      "trigger": {"on":  {"reason": "button", "at": "2026-11-22T08:15:00+00:00"},
                  "off": {"reason": "button", "at": "2026-11-22T08:16:00+00:00"}},
      "files": [{"kind": "clip", "index": 1, "filename": "..._001.mp4",
                 "sha256": "<hex>", "size": 123456},
                {"kind": "track", "index": 1, "filename": "....track.json",
                 "sha256": "<hex>", "size": 789}],
      "bookmarks": [{"at": "...", "category": "use-of-force", "note": ""}]
    }

The sidecar lists every file of the recording except itself. Track (`<recording>.track.json`)::

    {"schema": "evidence-locker.gps-track/1",
     "points": [{"t": "2026-11-22T08:14:30+00:00", "lat": 51.5, "lon": -0.12, "ele": 20.0}]}
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SIDECAR_SCHEMA = "evidence-locker.camera-sidecar/1"
TRACK_SCHEMA = "evidence-locker.gps-track/1"

FileKind = Literal["clip", "sidecar", "track"]
HEX64 = r"^[0-9a-f]{64}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DeviceInfo(_Model):
    serial: str = Field(min_length=1, max_length=64)
    model: str | None = Field(default=None, max_length=100)
    firmware: str | None = Field(default=None, max_length=64)


class TriggerEvent(_Model):
    reason: str = Field(max_length=64)
    at: dt.datetime


class Trigger(_Model):
    on: TriggerEvent
    off: TriggerEvent | None = None


class ListedFile(_Model):
    kind: Literal["clip", "track"]
    index: int = Field(ge=1, le=10_000)
    filename: str = Field(min_length=1, max_length=255)
    sha256: str = Field(pattern=HEX64)
    size: int = Field(ge=0)


class Bookmark(_Model):
    at: dt.datetime
    category: str = Field(max_length=64)
    note: str = Field(default="", max_length=2000)


class Sidecar(_Model):
    schema_: Literal["evidence-locker.camera-sidecar/1"] = Field(alias="schema")
    recording_id: str = Field(min_length=1, max_length=128)
    device: DeviceInfo
    officer: str | None = Field(default=None, max_length=64)
    timezone: str | None = Field(default=None, max_length=64)
    started_at: dt.datetime
    stopped_at: dt.datetime | None = None
    pre_event_seconds: float = Field(default=0, ge=0, le=3600)
    trigger: Trigger | None = None
    files: list[ListedFile] = Field(max_length=10_000)
    bookmarks: list[Bookmark] = Field(default_factory=list, max_length=10_000)


class TrackPoint(_Model):
    t: dt.datetime
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    ele: float | None = None


class Track(_Model):
    schema_: Literal["evidence-locker.gps-track/1"] = Field(alias="schema")
    points: list[TrackPoint] = Field(max_length=1_000_000)
