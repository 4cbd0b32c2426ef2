"""Fleet benchmark: D docks × 8 bays uploading small recordings into one `locker serve`.

    .venv/bin/python bench/fleet.py                       # 2 docks, 30 s of docking
    .venv/bin/python bench/fleet.py --docks 4 --seconds 60 --clip-size 1MiB

Each dock is a real `locker dock` process (its own journal and token) watching its own bay
directory. A feeder per dock keeps every bay busy like a shift change: when a camera is empty
(the agent deleted every confirmed file) it is taken out and a new camera is docked (a folder
renamed into the bay directory: it appears whole). Each camera holds --recordings recordings of
one clip (--clip-size of random bytes), a GPS track and a sidecar, plus device.json.

Printed, from the same run:
* recordings/s and MB/s through the whole path (hash at the dock, tus, fsync and SHA-256 at the
  server, catalogue), over the docking window;
* p50/p95 dock-to-visible latency: from the moment a camera appeared in a bay to the moment its
  recording is listed complete by GET /api/v1/recordings (a professional-standards token polls);
* errors (ERROR/WARNING lines in the dock logs, 5xx in the server log) and lost files: every
  file a camera held is either still on the camera or stored on the server under its SHA-256 —
  anything else is lost and must be 0;
* peak RSS of the server and of each dock agent (VmHWM);
* the limit: the same number of files of the same sizes written, fsync'd and SHA-256'd on the
  same disk by one process (files/s and MB/s), measured right after the run.

Not part of `make test`. Needs only the project's virtualenv.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from benchlib import cpu_seconds, parse_size, proc_status  # noqa: E402

from evidence_locker.simulate.camera import write_device_status  # noqa: E402

MB = 1_000_000
BAYS = 8


def say(msg: str) -> None:
    print(msg, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def locker(*args: str, env: dict[str, str]) -> str:
    r = subprocess.run([sys.executable, "-m", "evidence_locker", *args], env=env,
                       capture_output=True, text=True, timeout=120, check=True)
    return r.stdout.strip().splitlines()[-1]


@dataclass
class Recording:
    serial: str
    recording: str
    docked_at: float = 0.0
    visible_at: float | None = None
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (sha, size)


@dataclass
class Camera:
    folder: Path
    recordings: list[Recording]


class Feeder(threading.Thread):
    """Keeps a dock's bays full: an empty camera leaves, a new one arrives."""

    def __init__(self, dock: int, watch: Path, staging: Path, args: argparse.Namespace,
                 ledger: list[Recording], stop: threading.Event) -> None:
        super().__init__(daemon=True, name=f"feeder-{dock}")
        self.dock, self.watch, self.staging, self.args = dock, watch, staging, args
        self.ledger, self.stop_feeding = ledger, stop
        self.bays: dict[int, Camera | None] = dict.fromkeys(range(BAYS))
        self.count = 0
        self.lock = threading.Lock()

    def make_camera(self) -> Camera:
        self.count += 1
        serial = f"D{self.dock}-C{self.count:05d}"
        folder = self.staging / serial
        folder.mkdir(parents=True)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        recs = []
        for n in range(1, self.args.recordings + 1):
            rid = f"{now:%Y%m%dT%H%M%S}-{n:04d}"
            clip = os.urandom(self.args.clip_size)
            track = json.dumps({"schema": "evidence-locker.gps-track/1", "points": [
                {"t": now.isoformat(), "lat": 51.5, "lon": -0.12}]}).encode()
            rec = Recording(serial, rid)
            listed = []
            for kind, name, data in (("clip", f"{rid}_001.mp4", clip),
                                     ("track", f"{rid}.track.json", track)):
                (folder / name).write_bytes(data)
                sha = hashlib.sha256(data).hexdigest()
                rec.files[name] = (sha, len(data))
                listed.append({"kind": kind, "index": 1, "filename": name, "sha256": sha,
                               "size": len(data)})
            started = now - dt.timedelta(seconds=60 * (self.args.recordings - n + 1))
            sidecar = json.dumps({
                "schema": "evidence-locker.camera-sidecar/1", "recording_id": rid,
                "device": {"serial": serial, "model": "EL-SIM-1", "firmware": "1.4.2"},
                "started_at": started.isoformat(),
                "stopped_at": (started + dt.timedelta(seconds=30)).isoformat(),
                "files": listed}).encode()
            (folder / f"{rid}.json").write_bytes(sidecar)
            rec.files[f"{rid}.json"] = (hashlib.sha256(sidecar).hexdigest(), len(sidecar))
            recs.append(rec)
        write_device_status(folder, serial=serial, battery_percent=80)
        return Camera(folder, recs)

    def run(self) -> None:
        while not self.stop_feeding.is_set():
            for bay, cam in self.bays.items():
                if self.stop_feeding.is_set():
                    break
                if cam is not None:
                    held = [p for p in cam.folder.iterdir() if p.name != "device.json"]
                    if held:
                        continue
                    shutil.rmtree(cam.folder)  # empty: the officer takes it out
                new = self.make_camera()
                target = self.watch / new.folder.name
                new.folder.rename(target)  # docked: the folder appears whole
                at = time.monotonic()
                new.folder = target
                for rec in new.recordings:
                    rec.docked_at = at
                with self.lock:
                    self.ledger.extend(new.recordings)
                self.bays[bay] = new
            time.sleep(0.05)


def poll_catalogue(url: str, token: str, ledger: list[Recording], lock: threading.Lock,
                   done: threading.Event, wall0: float) -> None:
    """Marks each recording visible the first time it is listed complete."""
    http = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    while not done.is_set():
        with lock:
            unseen = [r for r in ledger if r.visible_at is None]
        if unseen:
            since = dt.datetime.fromtimestamp(wall0 - 3600, dt.UTC)
            cursor = None
            index = {(r.serial, r.recording): r for r in unseen}
            while True:
                params = {"from": since.isoformat(), "state": "complete", "limit": "200"}
                if cursor:
                    params["cursor"] = cursor
                try:
                    body = http.get(f"{url}/api/v1/recordings", params=params).json()
                except httpx.HTTPError:
                    break
                now = time.monotonic()
                stop_paging = True
                for item in body.get("items", []):
                    rec = index.pop((item["device"], item["camera_recording_id"]), None)
                    if rec is not None:
                        rec.visible_at = now
                    stop_paging = not index
                cursor = body.get("next_cursor")
                if not cursor or stop_paging:
                    break
        done.wait(0.2)


def limit(workdir: Path, sizes: list[int]) -> tuple[float, float]:
    """The same files written, fsync'd and hashed on the same disk: (files/s, MB/s)."""
    out = workdir / "limit"
    out.mkdir()
    blobs = {n: os.urandom(n) for n in set(sizes)}
    t0 = time.monotonic()
    for i, n in enumerate(sizes):
        data = blobs[n]
        path = out / f"{i}.bin"
        with open(path, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        hashlib.sha256(data).hexdigest()
        os.replace(path, out / f"{i}.done")
    dfd = os.open(out, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    seconds = time.monotonic() - t0
    shutil.rmtree(out)
    return len(sizes) / seconds, sum(sizes) / seconds / MB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--docks", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=30.0, help="how long cameras keep docking")
    ap.add_argument("--recordings", type=int, default=2, help="recordings per camera")
    ap.add_argument("--clip-size", type=parse_size, default=parse_size("256KiB"))
    ap.add_argument("--drain", type=float, default=120.0, help="most seconds to finish uploads")
    ap.add_argument("--workdir", type=Path, default=REPO / "bench" / ".work")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    run_dir = args.workdir / f"fleet-{time.strftime('%Y%m%d-%H%M%S')}"
    data = run_dir / "var"
    data.mkdir(parents=True)
    env = {**os.environ, "LOCKER_DATA_DIR": str(data), "LOCKER_MIN_FREE_BYTES": "0",
           "LOCKER_ARGON2_TIME_COST": "1", "LOCKER_ARGON2_MEMORY_COST": "1024"}
    for key in ("LOCKER_DATABASE_URL", "LOCKER_STORAGE_URL", "LOCKER_QUEUE_URL"):
        env.pop(key, None)
    locker("db", "upgrade", env=env)
    tokens = [locker("docks", "register", f"bench-dock-{d}", env=env) for d in range(args.docks)]
    locker("users", "create", "watcher", "--role", "professional-standards", env=env)
    viewer = locker("tokens", "create", "--user", "watcher", env=env)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = open(run_dir / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([sys.executable, "-m", "evidence_locker", "serve", "--port",
                               str(port)], env=env, stdout=server_log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the server did not start; see " + str(run_dir / "server.log"))
        time.sleep(0.1)

    ledger: list[Recording] = []
    ledger_lock = threading.Lock()
    stop_feeding = threading.Event()
    docks: list[subprocess.Popen[bytes]] = []
    feeders: list[Feeder] = []
    for d, token in enumerate(tokens):
        base = run_dir / f"dock-{d}"
        watch, staging = base / "bays", base / "staging"
        watch.mkdir(parents=True)
        staging.mkdir()
        (base / "token").write_text(token)
        feeder = Feeder(d, watch, staging, args, ledger, stop_feeding)
        feeder.lock = ledger_lock
        feeders.append(feeder)
        log = open(base / "dock.log", "wb")  # noqa: SIM115
        docks.append(subprocess.Popen(
            [sys.executable, "-m", "evidence_locker", "dock", "--watch", str(watch), "--server",
             url, "--token-file", str(base / "token"), "--journal", str(base / "journal.db"),
             "--bays", str(BAYS), "--no-progress", "--poll-seconds", "0.1",
             "--heartbeat-seconds", "10", "--retry-base", "0.1", "--retry-cap", "2"],
            env=env, stdout=log, stderr=subprocess.STDOUT))

    seen_done = threading.Event()
    poller = threading.Thread(target=poll_catalogue, daemon=True, args=(
        url, viewer, ledger, ledger_lock, seen_done, time.time()))
    peak_rss: dict[int, int] = {}
    sampling = threading.Event()

    cpu: dict[int, float] = {}

    def sample() -> None:
        while not sampling.is_set():
            for p in [server, *docks]:
                peak_rss[p.pid] = max(peak_rss.get(p.pid, 0), proc_status(p.pid, "VmRSS"))
                cpu[p.pid] = max(cpu.get(p.pid, 0.0), cpu_seconds(p.pid))
            sampling.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    poller.start()
    say(f"fleet: {args.docks} dock(s) × {BAYS} bays, {args.recordings} recording(s) of "
        f"{args.clip_size} B per camera, docking for {args.seconds:.0f} s; workdir {run_dir}")
    t0 = time.monotonic()
    for f in feeders:
        f.start()
    time.sleep(args.seconds)
    stop_feeding.set()
    for f in feeders:
        f.join()
    docking_end = time.monotonic()

    # Drain: every docked camera uploads what it holds (bounded by --drain).
    def pending() -> int:
        with ledger_lock:
            return sum(1 for r in ledger if r.visible_at is None)

    drain_deadline = time.monotonic() + args.drain
    while pending() and time.monotonic() < drain_deadline:
        time.sleep(0.2)
    t_end = time.monotonic()
    seen_done.set()
    poller.join()
    for p in docks:
        p.send_signal(signal.SIGTERM)
    for p in docks:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    hwm = {p.pid: proc_status(server.pid, "VmHWM") if p is server else 0 for p in [server]}
    sampling.set()
    sampler.join()
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()

    # Lost files: on neither the camera nor the server.
    db = sqlite3.connect(str(data / "locker.db"))
    stored = {(s, r, n) for s, r, n in db.execute(
        "SELECT r.device_serial, r.camera_recording_id, f.sha256 FROM recording_files f "
        "JOIN recordings r ON r.id = f.recording_id")}
    db.close()
    on_cameras: set[tuple[str, str]] = set()
    for f in feeders:
        for cam in f.bays.values():
            if cam is not None and cam.folder.exists():
                on_cameras |= {(cam.folder.name, p.name) for p in cam.folder.iterdir()}
    lost = 0
    files = 0
    total_bytes = 0
    for rec in ledger:
        for name, (sha, size) in rec.files.items():
            files += 1
            total_bytes += size
            if (rec.serial, rec.recording, sha) not in stored and (rec.serial, name) \
                    not in on_cameras:
                lost += 1
    visible = [r for r in ledger if r.visible_at is not None]
    latencies = sorted(r.visible_at - r.docked_at for r in visible)  # type: ignore[operator]
    vis_bytes = sum(size for r in visible for (_s, size) in r.files.values())
    elapsed = (max(r.visible_at for r in visible) - t0) if visible else 0.0  # type: ignore[type-var]
    errors = 0
    for d in range(args.docks):
        text = (run_dir / f"dock-{d}" / "dock.log").read_text(errors="replace")
        errors += sum(1 for line in text.splitlines() if " ERROR " in line or " WARNING " in line)
    server_text = (run_dir / "server.log").read_text(errors="replace")
    server_5xx = sum(1 for line in server_text.splitlines() if '" 5' in line)
    sizes = [size for r in ledger for (_s, size) in r.files.values()]
    lim_files, lim_mbs = limit(run_dir, sizes)

    def p(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    say("")
    say(f"docked {len(ledger)} recordings ({files} files, {total_bytes / MB:.1f} MB) in "
        f"{docking_end - t0:.1f} s; visible complete: {len(visible)} "
        f"(drained {t_end - docking_end:.1f} s after docking stopped)")
    rps = len(visible) / elapsed if elapsed else 0.0
    fps_ = sum(len(r.files) for r in visible) / elapsed if elapsed else 0.0
    mbs = vis_bytes / elapsed / MB if elapsed else 0.0
    say(f"{'figure':<34}{'fleet':>12}{'limit':>12}{'ratio':>8}")
    say(f"{'recordings/s':<34}{rps:>12.1f}")
    say(f"{'files/s':<34}{fps_:>12.1f}{lim_files:>12.1f}{fps_ / lim_files:>8.2f}")
    say(f"{'MB/s':<34}{mbs:>12.2f}{lim_mbs:>12.2f}{mbs / lim_mbs:>8.2f}")
    say(f"{'dock→visible p50 / p95 (s)':<34}{p(0.5):>6.2f} / {p(0.95):.2f}")
    say(f"{'errors (dock WARN/ERROR, 5xx)':<34}{errors:>12} {server_5xx}")
    say(f"{'lost files (must be 0)':<34}{lost:>12}")
    server_rss = max(peak_rss.get(server.pid, 0), hwm[server.pid]) / 1024 / 1024
    say(f"{'peak RSS server (MB)':<34}{server_rss:>12.0f}")
    dock_rss = [peak_rss.get(p_.pid, 0) / 1024 / 1024 for p_ in docks]
    say(f"{'peak RSS per dock agent (MB)':<34}{max(dock_rss):>12.0f}")
    say(f"{'CPU s: server / all dock agents':<34}{cpu.get(server.pid, 0):>12.1f} / "
        f"{sum(cpu.get(p_.pid, 0) for p_ in docks):.1f}  (wall {t_end - t0:.1f} s, "
        f"{os.cpu_count()} cores)")
    say("limit: the same files (sizes as uploaded) written, fsync'd and SHA-256'd by one process "
        "on the same disk.")
    if not args.keep:
        shutil.rmtree(data / "media", ignore_errors=True)
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
