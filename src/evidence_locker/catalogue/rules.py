"""Catalogue rules as plain functions: camera time, completeness."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class CameraTime:
    started_at: dt.datetime  # UTC, corrected for measured drift
    stopped_at: dt.datetime | None
    suspect: bool
    note: str | None


def correct_camera_time(
    *,
    started_at: dt.datetime,
    stopped_at: dt.datetime | None,
    received_at: dt.datetime,
    drift_seconds: float | None,
    floor_year: int,
    future_tolerance: dt.timedelta,
) -> CameraTime:
    """Camera clocks drift and get reset. Correct by the drift the dock measured (camera minus
    true time), and flag a time that is implausible rather than trusting it."""
    if started_at.tzinfo is None:
        # A camera that writes no offset: treat as UTC, and say so.
        started_at = started_at.replace(tzinfo=dt.UTC)
        notes = ["camera time had no UTC offset; read as UTC"]
    else:
        notes = []
    shift = dt.timedelta(seconds=drift_seconds or 0)
    start = started_at.astimezone(dt.UTC) - shift
    stop = None
    if stopped_at is not None:
        if stopped_at.tzinfo is None:
            stopped_at = stopped_at.replace(tzinfo=dt.UTC)
        stop = stopped_at.astimezone(dt.UTC) - shift
    if drift_seconds:
        notes.append(f"corrected by measured camera clock drift of {drift_seconds:+.1f} s")
    suspect = False
    if start.year < floor_year:
        suspect = True
        notes.append(f"camera clock reads {start:%Y-%m-%d}, before {floor_year}: clock reset?")
    if start > received_at + future_tolerance:
        suspect = True
        notes.append("camera clock reads a time after the server received the file")
    if stop is not None and stop < start:
        suspect = True
        notes.append("recording stops before it starts")
    return CameraTime(start, stop, suspect, "; ".join(notes) or None)


Slot = tuple[str, int, str]  # (kind, index, sha256)


def missing_files(expected: list[Slot], present: set[Slot]) -> list[Slot]:
    """Files the sidecar lists that have not arrived (with exactly those bytes)."""
    return [slot for slot in expected if slot not in present]
