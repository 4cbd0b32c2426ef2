"""What the person at the dock sees: a progress bar per bay on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

log = logging.getLogger("evidence_locker.dock")


class Reporter(Protocol):
    def docked(self, bay: int, serial: str, total_bytes: int, files: int) -> None: ...
    def progress(self, bay: int, done_bytes: int) -> None: ...
    def status(self, bay: int, text: str) -> None: ...
    def file_done(self, bay: int, name: str, outcome: str) -> None: ...
    def undocked(self, bay: int, serial: str, why: str) -> None: ...
    def close(self) -> None: ...


class PlainReporter:
    """One log line per event; progress only as files finish (a log is not an animation)."""

    def __init__(self) -> None:
        self._last_status: dict[int, str] = {}

    def docked(self, bay: int, serial: str, total_bytes: int, files: int) -> None:
        log.info("bay %d: camera %s docked, %d file(s), %d bytes to upload", bay, serial, files,
                 total_bytes)

    def progress(self, bay: int, done_bytes: int) -> None:
        pass

    def status(self, bay: int, text: str) -> None:
        if self._last_status.get(bay) != text:
            self._last_status[bay] = text
            log.info("bay %d: %s", bay, text)

    def file_done(self, bay: int, name: str, outcome: str) -> None:
        log.info("bay %d: %s %s, deleted from the camera", bay, name, outcome)

    def undocked(self, bay: int, serial: str, why: str) -> None:
        self._last_status.pop(bay, None)
        log.info("bay %d: camera %s %s", bay, serial, why)

    def close(self) -> None:
        pass


class RichReporter:
    """A `rich` Progress with one task per bay; log lines print above it."""

    def __init__(self, bays: int) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]bay {task.fields[bay]:>2}[/] {task.fields[serial]:<14}"),
            BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[state]}"), transient=False)
        self._tasks = {b: self._progress.add_task("", total=None, bay=b, serial="(empty)",
                                                  state="") for b in range(1, bays + 1)}
        self._base: dict[int, int] = {}
        self._lock = threading.Lock()
        self._progress.start()

    def docked(self, bay: int, serial: str, total_bytes: int, files: int) -> None:
        with self._lock:
            self._progress.reset(self._tasks[bay], total=max(total_bytes, 1), completed=0,
                                 bay=bay, serial=serial, state=f"{files} file(s)")

    def progress(self, bay: int, done_bytes: int) -> None:
        self._progress.update(self._tasks[bay], completed=done_bytes)

    def status(self, bay: int, text: str) -> None:
        self._progress.update(self._tasks[bay], state=text)

    def file_done(self, bay: int, name: str, outcome: str) -> None:
        self._progress.console.log(f"bay {bay}: {name} {outcome}, deleted from the camera")

    def undocked(self, bay: int, serial: str, why: str) -> None:
        self._progress.console.log(f"bay {bay}: camera {serial} {why}")
        self._progress.reset(self._tasks[bay], total=None, completed=0, bay=bay,
                             serial="(empty)", state="")

    def close(self) -> None:
        self._progress.stop()
