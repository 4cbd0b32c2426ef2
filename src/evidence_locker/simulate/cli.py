"""`locker simulate ...`: make device output for development, demos and benchmarks."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Simulate devices: write what they would produce, without any hardware.",
    no_args_is_help=True,
)


@app.callback()
def _simulate() -> None:
    """Simulate devices: write what they would produce, without any hardware."""
    # A callback keeps `camera` a sub-command even while it is the only one.


def _resolution(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*", value)
    if match is None:
        raise typer.BadParameter(
            f"{value!r} is not WIDTHxHEIGHT, e.g. 640x360", param_hint="'--resolution'"
        )
    return int(match.group(1)), int(match.group(2))


def _start(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time, e.g. 2026-11-22T08:15:00+00:00",
            param_hint="'--start'",
        ) from None


@app.command()
def camera(
    serial: Annotated[str, typer.Option(help="Device serial, e.g. BWV-0001.")],
    officer: Annotated[str, typer.Option(help="Collar number of the officer logged on.")],
    out: Annotated[Path, typer.Option(help="Directory to write into (the camera's storage).")],
    recordings: Annotated[int, typer.Option(min=0, help="How many recordings.")] = 3,
    seconds: Annotated[float, typer.Option(help="Length of each recording.")] = 10.0,
    start: Annotated[
        str | None,
        typer.Option(help="Start of the first recording, ISO 8601; naive = camera's zone."),
    ] = None,
    resolution: Annotated[str, typer.Option(help="WIDTHxHEIGHT, both even.")] = "640x360",
    fps: Annotated[int, typer.Option(min=1, max=240, help="Frames per second.")] = 15,
    clip_seconds: Annotated[
        float, typer.Option(help="Longest clip; longer recordings are split.")
    ] = 300.0,
    bitrate: Annotated[
        int, typer.Option(min=10_000, help="Video bit rate (bit/s); sets the file size.")
    ] = 500_000,
    timezone: Annotated[str, typer.Option(help="IANA zone the camera is set to.")] = (
        "Europe/London"
    ),
    gap_seconds: Annotated[float, typer.Option(min=0, help="Pause between recordings.")] = 120.0,
    seed: Annotated[int, typer.Option(help="Seed for the GPS walk, triggers, bookmarks.")] = 0,
    clock_offset: Annotated[
        float, typer.Option(help="Seconds the camera's clock runs ahead of true time.")
    ] = 0.0,
    battery: Annotated[
        int | None, typer.Option(min=0, max=100, help="Battery percent in device.json.")
    ] = None,
    device_status: Annotated[
        bool, typer.Option(help="Also write device.json: health and clock, as when docked.")
    ] = False,
) -> None:
    """Write recordings (MP4 clips, GPS track, sidecar) as a body-worn camera stores them."""
    if not seconds > 0:
        raise typer.BadParameter("must be a positive number of seconds", param_hint="'--seconds'")
    if not clip_seconds > 0:
        raise typer.BadParameter(
            "must be a positive number of seconds", param_hint="'--clip-seconds'"
        )
    # PyAV (FFmpeg) is loaded only when footage is made: `locker serve` need not carry it.
    from evidence_locker.simulate.camera import simulate_camera

    try:
        written = simulate_camera(
            serial=serial,
            officer=officer,
            out=out,
            recordings=recordings,
            seconds=seconds,
            start=_start(start),
            resolution=_resolution(resolution),
            fps=fps,
            clip_seconds=clip_seconds,
            video_bitrate=bitrate,
            timezone=timezone,
            gap_seconds=gap_seconds,
            seed=seed,
            clock_offset_seconds=clock_offset,
            battery_percent=battery,
            device_status=device_status,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for recording in written:
        typer.echo(f"{recording.recording_id}  {len(recording.clips)} clip(s)  {recording.sidecar}")
