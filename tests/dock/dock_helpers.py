"""Camera folders made by hand (fast, any size) and `locker dock` as a real process."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from evidence_locker.simulate.camera import write_device_status

MiB = 1024 * 1024


def make_camera(folder: Path, *, serial: str = "CAM-1", recording: str = "R1",
                clip_sizes: tuple[int, ...] = (64 * 1024,), clock_offset: float = 0.0,
                officer: str = "1001", seed: bytes | None = None) -> dict[str, bytes]:
    """A camera folder with one recording: random clips, a track, a sidecar listing them, and
    device.json. Returns every file's bytes by name (to compare with what the server stored)."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    listed = []
    for i, size in enumerate(clip_sizes, start=1):
        name = f"{recording}_{i:03d}.mp4"
        data = (hashlib.sha256(seed + bytes([i])).digest() * (size // 32 + 1))[:size] if seed \
            else os.urandom(size)
        files[name] = data
        listed.append({"kind": "clip", "index": i, "filename": name,
                       "sha256": hashlib.sha256(data).hexdigest(), "size": size})
    track_name = f"{recording}.track.json"
    track = json.dumps({"schema": "evidence-locker.gps-track/1", "points": [
        {"t": "2026-11-21T10:00:00+00:00", "lat": 51.5, "lon": -0.12}]}).encode()
    files[track_name] = track
    listed.append({"kind": "track", "index": 1, "filename": track_name,
                   "sha256": hashlib.sha256(track).hexdigest(), "size": len(track)})
    sidecar = json.dumps({"schema": "evidence-locker.camera-sidecar/1", "recording_id": recording,
                          "device": {"serial": serial, "model": "EL-SIM-1", "firmware": "1.4.2"},
                          "officer": officer, "started_at": "2026-11-21T10:00:00+00:00",
                          "stopped_at": "2026-11-21T10:05:00+00:00", "files": listed}).encode()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    files[f"{recording}.json"] = sidecar
    (folder / f"{recording}.json").write_bytes(sidecar)
    write_device_status(folder, serial=serial, battery_percent=77,
                        clock_offset_seconds=clock_offset)
    return files


def footage(folder: Path) -> set[str]:
    """What the camera still holds, its own report aside."""
    if not folder.exists():
        return set()
    return {p.name for p in folder.iterdir() if p.name != "device.json"}


def journal_rows(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    db = sqlite3.connect(str(path), timeout=10)
    try:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM files ORDER BY id")]
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        db.close()


def wait_for(what: str, check: Callable[[], object], timeout: float = 60.0) -> object:
    """Poll a condition (never a sleep standing in for an assertion); fail with `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class DockProcess:
    """`locker dock` in a real process that a test may SIGKILL and start again."""

    def __init__(self, *, watch: Path, server: str, token: str, state: Path,
                 env: dict[str, str], extra: tuple[str, ...] = ()) -> None:
        self.watch = watch
        self.server = server
        self.state = state
        state.mkdir(parents=True, exist_ok=True)
        self.token_file = state / "token"
        self.token_file.write_text(token + "\n")
        self.journal = state / "journal.sqlite3"
        self.log = state / "dock.log"
        self.env = env
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *more: str) -> None:
        logf = open(self.log, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "evidence_locker", "dock", "--watch", str(self.watch),
             "--server", self.server, "--token-file", str(self.token_file),
             "--journal", str(self.journal), "--no-progress", "--poll-seconds", "0.1",
             "--heartbeat-seconds", "5", *self.extra, *more],
            env=self.env, stdout=logf, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def wait(self, timeout: float = 120) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"dock did not finish: {self.output()[-3000:]}") from None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def rows(self) -> list[dict[str, object]]:
        return journal_rows(self.journal)
