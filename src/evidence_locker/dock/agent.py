"""The dock agent: cameras docked in its bays upload themselves, and nothing is lost.

A docking-station host mounts each docked camera as a folder under one directory. The agent
polls that directory (portable, and cheap for a few dozen bays): a folder appearing is a camera
docked, a folder disappearing is a camera pulled. Each camera gets a bay worker (a thread: the
work is network and disk bound), which reads the camera's health and clock, then for each
recording hashes every file, uploads clips, track and then the sidecar over tus, and deletes
each file from the camera only once the server has confirmed it (the 204 of its final PATCH, or
a HEAD reporting every byte). The journal makes every step resumable; the server's de-duplication
makes a camera moved to another dock (with another journal) safe too.

The agent is a plain class with an injected clock, wait and HTTP client; the `locker dock`
command is a thin shell around it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from evidence_locker.dock.camera import (
    CameraFile,
    DeviceStatus,
    clock_drift,
    read_camera_clock,
    read_device_status,
    scan_camera,
)
from evidence_locker.dock.client import file_sha256
from evidence_locker.dock.journal import Journal
from evidence_locker.dock.pacing import RetryPolicy, TokenBucket
from evidence_locker.dock.progress import PlainReporter, Reporter
from evidence_locker.dock.transfer import (
    Confirmed,
    Hooks,
    Pulled,
    Refused,
    Result,
    Stopped,
    Transfer,
    headers,
)

log = logging.getLogger("evidence_locker.dock")

AGENT_VERSION = "0.1.0"
MiB = 1024 * 1024


class InsecureServer(ValueError):
    """Plain HTTP to anything but this machine: footage and the dock token would cross the
    network in clear."""


def check_server_url(url: str) -> str:
    """The server's base URL if it is safe to use: https anywhere, http only to loopback."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme != "http" or not parts.hostname:
        raise InsecureServer(f"{url!r} is not an http(s) URL")
    host = parts.hostname
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if not loopback:
        raise InsecureServer(
            f"refusing plain http:// to {host}: footage and the dock token would travel "
            "unencrypted. Use https:// (with --ca-file for the force's own CA); plain http is "
            "only for 127.0.0.1, ::1 or localhost")
    return url.rstrip("/")


def tls_verify(ca_file: Path | None) -> ssl.SSLContext | bool:
    """Certificates are always verified: against the system's CAs, or the force's own CA."""
    if ca_file is None:
        return True
    return ssl.create_default_context(cafile=str(ca_file))


def make_http(server: str, token: str, *, bays: int, ca_file: Path | None = None,
              timeout: float = 60.0) -> httpx.Client:
    check_server_url(server)
    client = httpx.Client(
        verify=tls_verify(ca_file),
        timeout=httpx.Timeout(timeout, connect=10.0),
        limits=httpx.Limits(max_connections=bays + 2, max_keepalive_connections=bays + 2))
    client.headers.update(headers(token))
    client.headers["User-Agent"] = f"evidence-locker-dock/{AGENT_VERSION}"
    return client


def default_journal() -> Path:
    """Under the dock's state directory: systemd's StateDirectory, else XDG, else ~/.local."""
    base = os.environ.get("STATE_DIRECTORY") or os.environ.get("XDG_STATE_HOME")
    root = Path(base) if base else Path.home() / ".local" / "state"
    if not os.environ.get("STATE_DIRECTORY"):
        root = root / "evidence-locker-dock"
    return root / "journal.sqlite3"


@dataclass
class DockConfig:
    watch: Path
    server: str
    bays: int = 8
    max_mbps: float | None = None
    once: bool = False
    poll_interval: float = 1.0
    heartbeat_interval: float = 60.0
    chunk_size: int = 4 * MiB
    policy: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class BayView:
    """What a bay knows about its camera: for the heartbeat and the display."""

    bay: int
    folder: Path
    serial: str
    status: DeviceStatus | None = None
    drift: float | None = None
    files_waiting: int = 0
    bytes_waiting: int = 0
    left_behind: int = 0


@dataclass
class Summary:
    """What a run did: for `--once` and the benchmark."""

    confirmed: int = 0
    duplicates: int = 0
    bytes_confirmed: int = 0
    refused: int = 0
    left_behind: int = 0
    pulled: int = 0


class _Docking:
    """One camera in one bay, from docking to pulling (or, with --once, to empty)."""

    def __init__(self, agent: DockAgent, bay: int, folder: Path, ident: tuple[int, int]) -> None:
        self.agent = agent
        self.bay = bay
        self.folder = folder
        self.ident = ident
        self.view = BayView(bay, folder, folder.name)
        self.refused: set[tuple[str, int, int]] = set()
        self.thread = threading.Thread(target=self._run, name=f"bay-{bay}", daemon=True)
        self.finished = False

    def docked(self) -> bool:
        try:
            st = os.stat(self.folder)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.ident

    def _run(self) -> None:
        try:
            self._dock()
        except Exception:  # one camera's surprise must not take the other bays down
            log.exception("bay %d: unexpected error; footage stays on the camera", self.bay)
        finally:
            self.finished = True

    def _dock(self) -> None:
        a = self.agent
        status = read_device_status(self.folder)
        self.view.status = status
        if status is not None:
            self.view.serial = status.serial
        # The camera's RTC against the dock's (NTP-disciplined) clock, read once at docking.
        self.view.drift = clock_drift(read_camera_clock(status), a.clock())
        a.heartbeat_soon.set()
        announced = False
        while not a.stopping.is_set():
            if not self.docked():
                self._pulled()
                return
            try:
                contents = scan_camera(self.folder)
            except OSError:
                a.wait(a.config.poll_interval)  # pulled (checked above) or a passing read error
                continue
            todo = [f for f in contents.files
                    if (str(f.path), f.size, f.mtime_ns) not in self.refused]
            self.view.files_waiting = len(contents.files)
            self.view.bytes_waiting = sum(f.size for f in contents.files)
            self.view.left_behind = len(contents.files) - len(todo)
            if todo and self.view.status is None:
                self.view.serial = todo[0].serial  # no device.json: the sidecar names it
            if not announced:
                a.reporter.docked(self.bay, self.view.serial, self.view.bytes_waiting, len(todo))
                for p in contents.unlisted:
                    log.warning("bay %d: %s is in no sidecar: uploaded as a recording of its "
                                "own, for the server to keep and mark", self.bay, p.name)
                for p in contents.unreadable_sidecars:
                    log.error("bay %d: sidecar %s does not parse: it and the files it meant to "
                              "list are uploaded to be kept and marked", self.bay, p.name)
                announced = True
            if not todo:
                a.reporter.status(self.bay, "done" if not self.view.left_behind
                                  else f"done, {self.view.left_behind} file(s) left on camera")
                if a.config.once:
                    with a.lock:
                        a.summary.left_behind += self.view.left_behind
                    return
                a.wait(max(a.config.poll_interval, 5.0))
                continue
            done_before = 0
            for f in todo:
                result = self._file(f, done_before)
                if isinstance(result, Pulled):
                    self._pulled()
                    return
                if isinstance(result, Stopped):
                    return
                done_before += f.size
            # Scan again: anything refused is skipped, anything confirmed is gone.

    def _pulled(self) -> None:
        with self.agent.lock:
            self.agent.summary.pulled += 1
        self.agent.reporter.undocked(self.bay, self.view.serial,
                                     "pulled from the dock; unconfirmed files stay on it")

    def _file(self, f: CameraFile, done_before: int) -> Result | None:
        a = self.agent
        entry = a.journal.find(serial=f.serial, path=f.path, size=f.size, mtime_ns=f.mtime_ns)
        if entry is None:
            a.reporter.status(self.bay, f"hashing {f.path.name}")
            try:
                sha = file_sha256(f.path)
            except OSError:
                return Pulled() if not self.docked() else None
            entry = a.journal.record_hashed(serial=f.serial, recording=f.recording, kind=f.kind,
                                            index=f.index, path=f.path, size=f.size,
                                            mtime_ns=f.mtime_ns, sha256=sha)
        if entry.state not in ("confirmed", "deleted"):
            meta = {"device": f.serial, "recording": f.recording, "kind": f.kind,
                    "index": str(f.index), "filename": f.path.name, "sha256": entry.sha256}
            if self.view.drift is not None:
                meta["clock_drift"] = f"{self.view.drift:.3f}"
            a.reporter.status(self.bay, f"uploading {f.path.name}")
            hooks = Hooks(
                docked=self.docked, stopping=a.stopping.is_set, wait=a.wait,
                on_url=lambda url: a.journal.set_url(entry.id, url),
                on_sent=lambda n: a.reporter.progress(self.bay, done_before + n),
                on_state=lambda text: a.reporter.status(self.bay, text))
            try:
                result: Result = Transfer(
                    a.http, a.endpoint, policy=a.config.policy, chunk_size=a.config.chunk_size,
                    bucket=a.bucket, hooks=hooks,
                ).run(f.path, length=f.size, metadata=meta, url=entry.upload_url)
            except OSError:
                # The camera's storage failed under us (pulled mid-read): keep everything.
                return Pulled() if not self.docked() else None
            if isinstance(result, Refused):
                a.journal.refuse(entry.id, f"{result.status} {result.detail}")
                self.refused.add((str(f.path), f.size, f.mtime_ns))
                log.error("bay %d: the server refused %s (%d %s): left on the camera",
                          self.bay, f.path.name, result.status, result.detail)
                with a.lock:
                    a.summary.refused += 1
                return result
            if not isinstance(result, Confirmed):
                return result
            a.journal.confirm(entry.id, result.outcome)
            with a.lock:
                a.summary.confirmed += 1
                a.summary.bytes_confirmed += f.size
                a.summary.duplicates += result.outcome == "duplicate"
            outcome = result.outcome
        else:
            outcome = f"already {entry.outcome or 'confirmed'}"
        self._delete(f, entry.id)
        a.reporter.file_done(self.bay, f.path.name, outcome)
        a.on_confirmed(f, outcome)
        return Confirmed(entry.upload_url or "", outcome, None)

    def _delete(self, f: CameraFile, entry_id: int) -> None:
        """Only the very file that was confirmed (same size and modification time)."""
        try:
            st = f.path.stat()
        except FileNotFoundError:
            self.agent.journal.deleted(entry_id)
            return
        if (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns):
            log.error("bay %d: %s changed after it was confirmed: not deleted", self.bay,
                      f.path.name)
            return
        f.path.unlink()
        self.agent.journal.deleted(entry_id)
        # What the heartbeat reports between scans: the camera holds one file fewer now.
        self.view.files_waiting = max(0, self.view.files_waiting - 1)
        self.view.bytes_waiting = max(0, self.view.bytes_waiting - f.size)


class DockAgent:
    """Watches the bays, runs one worker per docked camera, and reports the dock's heartbeat."""

    def __init__(self, config: DockConfig, *, http: httpx.Client, journal: Journal,
                 reporter: Reporter | None = None,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 on_confirmed: Callable[[CameraFile, str], None] | None = None) -> None:
        self.config = config
        self.http = http
        self.journal = journal
        self.reporter: Reporter = reporter or PlainReporter()
        self.clock = clock
        base = config.server.rstrip("/")
        self.endpoint = base + "/api/v1/uploads/"
        self.heartbeat_url = base + "/api/v1/docks/heartbeat"
        self.bucket = (TokenBucket(config.max_mbps * 1_000_000 / 8)
                       if config.max_mbps else None)
        self.stopping = threading.Event()
        self.heartbeat_soon = threading.Event()
        self.lock = threading.Lock()
        self.summary = Summary()
        self.dockings: dict[int, _Docking] = {}
        self._on_confirmed = on_confirmed
        self._heartbeat_missing_logged = False

    def on_confirmed(self, f: CameraFile, outcome: str) -> None:
        if self._on_confirmed is not None:
            self._on_confirmed(f, outcome)

    def wait(self, seconds: float) -> None:
        """Sleep, but wake at once when the agent stops."""
        self.stopping.wait(max(0.0, seconds))

    def stop(self) -> None:
        self.stopping.set()

    # --- bays --------------------------------------------------------------------------------

    def _present(self) -> dict[tuple[int, int], Path]:
        found: dict[tuple[int, int], Path] = {}
        try:
            entries = list(os.scandir(self.config.watch))
        except OSError as exc:
            log.warning("cannot read %s: %s", self.config.watch, exc)
            return found
        for e in sorted(entries, key=lambda e: e.name):
            if e.name.startswith("."):
                continue
            try:
                if e.is_dir():
                    st = e.stat()
                    found[(st.st_dev, st.st_ino)] = Path(e.path)
            except OSError:
                continue
        return found

    def run(self) -> Summary:
        """Until stopped (or, with `once`, until every docked camera is empty)."""
        beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        beat.start()
        handled: set[tuple[int, int]] = set()
        try:
            while not self.stopping.is_set():
                present = self._present()
                for bay, d in list(self.dockings.items()):
                    if d.finished:
                        d.thread.join()
                        del self.dockings[bay]
                        if not self.config.once:
                            handled.discard(d.ident)  # rescanned when it comes round again
                active = {d.ident for d in self.dockings.values()}
                for ident, folder in present.items():
                    if ident in active or ident in handled:
                        continue
                    free = self._free_bay()
                    if free is None:
                        break  # every bay busy: the rest wait their turn
                    d = _Docking(self, free, folder, ident)
                    self.dockings[free] = d
                    handled.add(ident)
                    d.thread.start()
                if not self.config.once:
                    handled &= set(present) | {d.ident for d in self.dockings.values()}
                if self.config.once and not self.dockings and handled >= set(present):
                    break
                self.wait(self.config.poll_interval)
        finally:
            self.stopping.set()
            for d in list(self.dockings.values()):
                d.thread.join(timeout=30)
            self.heartbeat_soon.set()
            beat.join(timeout=5)
            # The last word: what is still on the cameras as the agent stops, so the fleet
            # register does not show the counts of a minute before.
            self.send_heartbeat()
        return self.summary

    def _free_bay(self) -> int | None:
        for bay in range(1, self.config.bays + 1):
            if bay not in self.dockings:
                return bay
        return None

    # --- heartbeat ---------------------------------------------------------------------------

    def heartbeat_body(self) -> dict[str, object]:
        cameras = []
        for d in sorted(self.dockings.values(), key=lambda d: d.bay):
            v, s = d.view, d.view.status
            cameras.append({
                "bay": v.bay, "serial": v.serial,
                "model": s.model if s else None,
                "battery_percent": s.battery_percent if s else None,
                "firmware": s.firmware if s else None,
                "free_bytes": s.free_bytes if s else None,
                "clock_drift_seconds": v.drift,
                "files_waiting": v.files_waiting, "bytes_waiting": v.bytes_waiting})
        return {"agent_version": AGENT_VERSION, "bays": self.config.bays,
                "sent_at": self.clock().isoformat(), "cameras": cameras}

    def send_heartbeat(self) -> bool:
        """One heartbeat. Its failure is logged and never stops an upload."""
        try:
            r = self.http.post(self.heartbeat_url, json=self.heartbeat_body(), timeout=10)
        except httpx.HTTPError as exc:
            log.warning("heartbeat failed: %s", exc)
            return False
        if r.status_code == 200:
            return True
        if r.status_code == 404:
            if not self._heartbeat_missing_logged:
                log.info("the server has no heartbeat endpoint (404); uploads go on")
                self._heartbeat_missing_logged = True
        elif r.status_code in (401, 403):
            log.error("heartbeat refused (%d): is this dock's token revoked?", r.status_code)
        else:
            log.warning("heartbeat answered %d", r.status_code)
        return False

    def _heartbeat_loop(self) -> None:
        while not self.stopping.is_set():
            self.send_heartbeat()
            self.heartbeat_soon.wait(self.config.heartbeat_interval)
            self.heartbeat_soon.clear()
