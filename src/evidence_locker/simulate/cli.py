"""`locker simulate camera`: fill a folder with what a docked camera's storage holds."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated

import typer

from evidence_locker.simulate.camera import simulate_camera

app = typer.Typer(help="Simulated cameras for tests, demos and benchmarks.", no_args_is_help=True)


@app.callback()
def _simulate() -> None:
    """Simulated cameras for tests, demos and benchmarks."""


def _resolution(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{2,5})x(\d{2,5})", value.strip().lower())
    if not match:
        raise typer.BadParameter("use WxH, e.g. 640x360")
    width, height = int(match.group(1)), int(match.group(2))
    if width % 2 or height % 2:
        raise typer.BadParameter("width and height must be even (H.264 4:2:0)")
    return width, height


def _start(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter("use an ISO time, e.g. 2026-11-22T08:15:00+00:00") from exc


@app.command()
def camera(
    serial: Annotated[str, typer.Option(help="camera serial")],
    officer: Annotated[str, typer.Option(help="collar number of the officer wearing it")],
    out: Annotated[Path, typer.Option(help="folder to write into (the camera's storage)")],
    recordings: Annotated[int, typer.Option(min=1, max=1000)] = 3,
    seconds: Annotated[float, typer.Option(min=0.5, max=36000)] = 10.0,
    start: Annotated[str | None, typer.Option(help="ISO time of the first recording")] = None,
    resolution: Annotated[str, typer.Option(help="WxH")] = "640x360",
    fps: Annotated[int, typer.Option(min=1, max=60)] = 15,
    clip_seconds: Annotated[float, typer.Option(min=1, help="split longer recordings")] = 300.0,
    bitrate: Annotated[int, typer.Option(min=10_000, help="video bits per second")] = 500_000,
    seed: Annotated[int, typer.Option(help="same seed, same footage")] = 0,
) -> None:
    """Write RECORDINGS recordings of SECONDS each: H.264/AAC clips, a GPS track, a sidecar."""
    try:
        made = simulate_camera(serial=serial, officer=officer, out=out, recordings=recordings,
                               seconds=seconds, start=_start(start),
                               resolution=_resolution(resolution), fps=fps,
                               clip_seconds=clip_seconds, video_bitrate=bitrate, seed=seed)
    except ValueError as exc:
        typer.echo(f"cannot simulate: {exc}", err=True)
        raise typer.Exit(2) from exc
    for rec in made:
        typer.echo(f"{rec.recording_id}: {len(rec.clips)} clip(s), {rec.sidecar.name}")
