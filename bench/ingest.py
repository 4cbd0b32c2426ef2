"""Ingest benchmark: one large upload over tus on loopback, beside the limit and a peer.

    .venv/bin/python bench/ingest.py                  # 1 GiB, 3 runs of everything
    .venv/bin/python bench/ingest.py --size 256MiB --runs 1 --no-peer
    .venv/bin/python bench/ingest.py --profile        # also py-spy the server during an upload

Every figure is measured in the same run, on the same disk (everything lives under --workdir):

* limit: the same bytes written with fsync while hashed by `openssl dgst -sha256`
  (`tee out.bin < in.bin | openssl dgst -sha256`, then fsync(out.bin), all inside the timing),
  measured again just before every upload so that each upload has a limit from the same minute
  and disk state; context rows: openssl alone, Python hashlib alone, write+fsync alone (dd);
* locker: `locker serve` (fresh data dir per upload) taking POST + one PATCH from curl, POST + 8 MiB
  PATCHes from a keep-alive Python client (bench/patch_client.py) and from one curl per PATCH;
  the final 204 means fsync'd, SHA-256 verified and catalogued;
* peer: the reference Node.js tus server (@tus/server + @tus/file-store, bench/tus_peer.mjs;
  no hashing, no fsync) taking the same uploads from the same clients;
* client ceilings: the same clients against bench/null_sink.py, which discards the bytes.

Two things make loopback figures on a small shared VM lie, and both are controlled:
* other processes (someone's test suite): each sample waits for a quiet machine and is measured
  again if processes outside the benchmark used more than --max-other-cpu meanwhile;
* the disk state (--disk): on a thin-provisioned virtual disk a write into just-freed blocks can
  run several times faster than one into fresh blocks; see prepare_disk().

MB = 10^6 bytes. Each figure is run --runs times (default 3); the table shows the median, min and
max. Peak RSS is the largest of VmHWM and the polled VmRSS sum of the server's process tree.
Not part of `make test`. Standard library only (py-spy for --profile).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import mmap
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from benchlib import parse_size, proc_status

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
PEER_PREFIX = BENCH / ".work" / "peer"
MB = 1_000_000
MIB = 1024 * 1024
TUS = "1.0.0"
OFFSET_CT = "application/offset+octet-stream"
RSS_TARGET = 150 * MB
LIMIT_TARGET = 0.8


# --- small helpers -----------------------------------------------------------------------------


def human(n: float) -> str:
    for unit, div in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f} B"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run(cmd: list[str] | str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)  # type: ignore


def say(msg: str) -> None:
    print(msg, flush=True)


# --- the process tree of a server: RSS and CPU -------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError):
                    todo.extend(int(c) for c in
                                Path(f"/proc/{p}/task/{task}/children").read_text().split())
    return out


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


class RssSampler:
    """Polls the VmRSS sum of a process tree; peak() also takes each process's VmHWM."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.max_sum = 0
        self.baseline = sum(proc_status(p, "VmRSS") for p in tree(pid))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.max_sum = max(self.max_sum, sum(proc_status(p, "VmRSS") for p in tree(self.pid)))
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        hwm = max(proc_status(p, "VmHWM") for p in tree(self.pid))
        return max(self.max_sum, hwm)


# --- servers -----------------------------------------------------------------------------------

@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    create_url: str
    token: str | None
    files_dir: Path
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, method: str = "GET",
               timeout: float = 60) -> None:
    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}; see {log}:\n"
                             + log.read_text()[-3000:])
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
            conn.request(method, parts.path, headers={"Tus-Resumable": TUS})
            status = conn.getresponse().status
            conn.close()
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server did not answer {url} within {timeout}s; see {log}")


def start_locker(cfg: Config, tag: str) -> Server:
    data = cfg.workdir / f"locker-{tag}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    log = cfg.logs / f"locker-{tag}.log"
    env = {**os.environ, "LOCKER_DATA_DIR": str(data), "LOCKER_MIN_FREE_BYTES": "0"}
    try:
        run([*cfg.locker_cmd, "db", "upgrade"], env=env, cwd=REPO)
        out = run([*cfg.locker_cmd, "docks", "register", "bench-dock"], env=env, cwd=REPO).stdout
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"`{shlex.join(exc.cmd)}` failed:\n{exc.stdout}\n{exc.stderr}") from None
    token = out.strip().splitlines()[-1].strip()
    port = free_port()
    proc = subprocess.Popen([*cfg.locker_cmd, "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    server = Server("locker", proc, f"http://127.0.0.1:{port}/api/v1/uploads/", token,
                    data, log)
    cfg.live.append(server)
    _wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
    return server


def ensure_peer_installed() -> None:
    if (PEER_PREFIX / "node_modules" / "@tus" / "file-store").is_dir() and \
            (PEER_PREFIX / "node_modules" / "@tus" / "server").is_dir():
        return
    say(f"installing the peer: npm install --prefix {PEER_PREFIX.relative_to(REPO)} "
        "@tus/server @tus/file-store")
    PEER_PREFIX.mkdir(parents=True, exist_ok=True)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(PEER_PREFIX),
                    "@tus/server", "@tus/file-store"], check=True, cwd=REPO)


def peer_versions() -> str:
    out = []
    for name in ("server", "file-store"):
        pkg = PEER_PREFIX / "node_modules" / "@tus" / name / "package.json"
        with contextlib.suppress(OSError, ValueError):
            out.append(f"@tus/{name} {json.loads(pkg.read_text())['version']}")
    return ", ".join(out)


def start_peer(cfg: Config, tag: str) -> Server:
    files = cfg.workdir / f"peer-{tag}"
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir(parents=True)
    log = cfg.logs / f"peer-{tag}.log"
    port = free_port()
    proc = subprocess.Popen(["node", str(BENCH / "tus_peer.mjs"), "--port", str(port),
                             "--dir", str(files), "--modules", str(PEER_PREFIX / "node_modules")],
                            cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    server = Server("peer", proc, f"http://127.0.0.1:{port}/files", None, files, log)
    cfg.live.append(server)
    _wait_http(server.create_url, proc, log, method="OPTIONS")
    return server


def start_sink(cfg: Config) -> Server:
    log = cfg.logs / "sink.log"
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(BENCH / "null_sink.py"), "--port", str(port)],
                            cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    server = Server("sink", proc, f"http://127.0.0.1:{port}/files", None, cfg.workdir, log)
    cfg.live.append(server)
    deadline = time.monotonic() + 10
    while "listening" not in log.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"null sink did not start; see {log}")
        time.sleep(0.05)
    return server


# --- clients -----------------------------------------------------------------------------------

@dataclass
class Upload:
    seconds: float
    client_cpu: float
    headers: dict[str, str]
    location: str


def metadata(sha256: str) -> str:
    pairs = {"device": "BENCH-1", "recording": f"R-{uuid.uuid4()}", "kind": "clip", "index": "1",
             "filename": "bench.bin", "sha256": sha256}
    return ",".join(f"{k} {b64encode(v.encode()).decode()}" for k, v in pairs.items())


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def tus_create(create_url: str, token: str | None, size: int, meta: str) -> str:
    parts = urlsplit(create_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("POST", parts.path, headers={"Tus-Resumable": TUS, "Upload-Length": str(size),
                                              "Upload-Metadata": meta, **_auth(token)})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    if resp.status != 201:
        raise SystemExit(f"POST {create_url} answered {resp.status}: {body[:500]!r}")
    return urljoin(create_url, resp.getheader("Location") or "")


def _curl_headers(cfg: Config, offset: int, token: str | None) -> Path:
    """Headers in a file (curl -H @file), so the token stays off the command line."""
    path = cfg.workdir / "curl-headers.txt"
    lines = ["Expect:", f"Content-Type: {OFFSET_CT}", f"Upload-Offset: {offset}",
             f"Tus-Resumable: {TUS}"] + [f"{k}: {v}" for k, v in _auth(token).items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def _parse_headers(path: Path) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in path.read_text("latin-1").splitlines():
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        elif line.startswith("HTTP/"):
            headers = {":status": line.split()[1]}
    return headers


def curl_one_patch(cfg: Config, server: Server, meta: str) -> Upload:
    """POST, then the whole file in one PATCH from curl (-T streams it from the file)."""
    hdr_in = _curl_headers(cfg, 0, server.token)
    hdr_out = cfg.workdir / "curl-response.txt"
    c0, t0 = children_cpu(), time.perf_counter()
    location = tus_create(server.create_url, server.token, cfg.size, meta)
    subprocess.run(["curl", "-sS", "--fail-with-body", "-X", "PATCH", "-T", str(cfg.input),
                    "-H", f"@{hdr_in}", "-o", "/dev/null", "-D", str(hdr_out), location],
                   check=True)
    t1, c1 = time.perf_counter(), children_cpu()
    return Upload(t1 - t0, c1 - c0, _parse_headers(hdr_out), location)


def curl_per_patch(cfg: Config, server: Server, meta: str) -> Upload:
    """POST, then one `dd | curl --data-binary @-` process pair (and connection) per PATCH."""
    hdr_out = cfg.workdir / "curl-response.txt"
    c0, t0 = children_cpu(), time.perf_counter()
    location = tus_create(server.create_url, server.token, cfg.size, meta)
    offset, headers, index = 0, {}, 0
    while offset < cfg.size:
        n = min(cfg.patch_size, cfg.size - offset)
        hdr_in = _curl_headers(cfg, offset, server.token)
        dd = subprocess.Popen(["dd", f"if={cfg.input}", f"bs={cfg.patch_size}", f"skip={index}",
                               "count=1", "status=none"], stdout=subprocess.PIPE)
        subprocess.run(["curl", "-sS", "--fail-with-body", "-X", "PATCH", "--data-binary", "@-",
                        "-H", f"@{hdr_in}", "-o", "/dev/null", "-D", str(hdr_out), location],
                       stdin=dd.stdout, check=True)
        assert dd.stdout is not None
        dd.stdout.close()
        dd.wait()
        headers = _parse_headers(hdr_out)
        if headers.get("upload-offset") != str(offset + n):
            raise SystemExit(f"PATCH at {offset} acknowledged {headers.get('upload-offset')}")
        offset, index = offset + n, index + 1
    t1, c1 = time.perf_counter(), children_cpu()
    return Upload(t1 - t0, c1 - c0, headers, location)


def python_patches(cfg: Config, server: Server, meta: str) -> Upload:
    """POST + PATCHes of --patch-size on one keep-alive connection (bench/patch_client.py)."""
    env = {**os.environ, "BENCH_TOKEN": server.token or ""}
    out = subprocess.run([sys.executable, str(BENCH / "patch_client.py"), "--create",
                          server.create_url, "--file", str(cfg.input), "--patch-size",
                          str(cfg.patch_size), "--metadata", meta],
                         env=env, check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    return Upload(result["seconds"], result["cpu_seconds"], result["headers"], result["location"])


CLIENTS: dict[str, tuple[str, Callable[[Config, Server, str], Upload]]] = {
    "one": ("1 PATCH (curl -T)", curl_one_patch),
    "py": ("8 MiB PATCHes (keep-alive Python client)", python_patches),
    "curl": ("8 MiB PATCHes (one curl per PATCH)", curl_per_patch),
}


# --- a shared machine: other processes' CPU ------------------------------------------------------

def proc_table() -> dict[int, tuple[int, float, str, int]]:
    """pid -> (start time, CPU seconds, name, bytes read+written on storage) of every user-space
    process (the I/O needs /proc/<pid>/io, readable as root or for one's own processes)."""
    out: dict[int, tuple[int, float, str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        f = raw.rsplit(")", 1)[1].split()
        if entry == "2" or f[1] == "2":  # kernel threads
            continue
        io = 0
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{entry}/io").read_text().splitlines():
                if line.startswith(("read_bytes:", "write_bytes:")):
                    io += int(line.split()[1])
        out[int(entry)] = (int(f[19]), (int(f[11]) + int(f[12])) / CLK_TCK, name, io)
    return out


def others(before: dict[int, tuple[int, float, str, int]],
           after: dict[int, tuple[int, float, str, int]], wall: float) -> tuple[float, float, str]:
    """What processes that are not this benchmark's did between two snapshots `wall` seconds
    apart: cores used on average, storage MB/s, and the busiest of them."""
    ours = set(tree(os.getpid()))
    per: dict[str, float] = {}
    io = 0
    for pid, (start, cpu, name, nbytes) in after.items():
        if pid in ours:
            continue
        prev = before.get(pid)
        same = prev is not None and prev[0] == start
        used = cpu - (prev[1] if same else 0.0)  # type: ignore[index]
        io += nbytes - (prev[3] if same else 0)  # type: ignore[index]
        if used > 0:
            per[name] = per.get(name, 0.0) + used
    top = ", ".join(f"{n} {100 * v / wall:.0f}%" for n, v in
                    sorted(per.items(), key=lambda kv: -kv[1])[:3])
    return sum(per.values()) / wall, max(io, 0) / wall / MB, top


def wait_quiet(cfg: Config) -> None:
    """Measure only when nothing else on the machine is busy (others' test suites, builds)."""
    deadline = time.monotonic() + cfg.quiet_wait
    announced = False
    while True:
        a, t0 = proc_table(), time.monotonic()
        time.sleep(1.0)
        used, io, top = others(a, proc_table(), time.monotonic() - t0)
        if used < cfg.max_other_cpu / 2 and io < cfg.max_other_io / 2:
            return
        if time.monotonic() > deadline:
            say(f"    machine still busy after {cfg.quiet_wait:.0f} s ({top}; {io:.0f} MB/s of "
                "storage I/O); measuring anyway")
            return
        if not announced:
            say(f"    waiting for a quiet machine: other processes busy ({top} of a core; "
                f"{io:.0f} MB/s of storage I/O)")
            announced = True


def measured(cfg: Config, what: str, fn: Callable[[], Sample],
             setup: Callable[[], None] | None = None,
             teardown: Callable[[], None] | None = None) -> Sample:
    """Run fn on a quiet machine; if other processes used more than --max-other-cpu meanwhile,
    throw the sample away and run it again (at most --retries times)."""
    for attempt in range(cfg.retries + 1):
        if setup is not None:
            setup()
        try:
            wait_quiet(cfg)
            before, t0 = proc_table(), time.monotonic()
            sample = fn()
            used, io, top = others(before, proc_table(), time.monotonic() - t0)
        finally:
            if teardown is not None:
                teardown()
        sample.other_cpu, sample.other_io = used, io
        sample.attempts = attempt + 1
        if used <= cfg.max_other_cpu and io <= cfg.max_other_io:
            return sample
        if attempt < cfg.retries:
            say(f"    {what}: disturbed (others used {100 * used:.0f}% of a core: {top}; "
                f"{io:.0f} MB/s of storage I/O); measuring again")
        else:
            say(f"    {what}: disturbed on every attempt; keeping the last one (flagged *)")
    return sample


# --- measurements --------------------------------------------------------------------------------

@dataclass
class Sample:
    seconds: float
    rss: int | None = None
    rss_idle: int | None = None  # the server's RSS just before the upload
    server_cpu: float | None = None
    client_cpu: float | None = None
    other_cpu: float = 0.0
    other_io: float = 0.0
    attempts: int = 1
    limit: Sample | None = None  # the limit, measured just before this upload


@dataclass
class Figure:
    key: str
    label: str
    group: str
    samples: list[Sample] = field(default_factory=list)

    def mbps(self) -> list[float]:
        return [CFG.size / s.seconds / MB for s in self.samples]

    def median(self) -> float:
        return statistics.median(self.mbps())

    def paired_ratios(self) -> list[float]:
        return [s.limit.seconds / s.seconds for s in self.samples if s.limit is not None]


@dataclass
class Config:
    size: int
    runs: int
    patch_size: int
    workdir: Path
    keep: bool
    peer: bool
    curl_loop: bool
    sink: bool
    profile: bool
    locker_cmd: list[str]
    disk: str = "recycled"
    settle: float = 15.0
    max_other_cpu: float = 0.10
    max_other_io: float = 10.0
    quiet_wait: float = 600.0
    retries: int = 3
    last_free: float = 0.0
    input: Path = Path()
    sha256: str = ""
    logs: Path = Path()
    live: list[Server] = field(default_factory=list)


CFG: Config


def discard(cfg: Config, path: Path) -> None:
    """Delete a big file or directory and note when (see prepare_disk)."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    cfg.last_free = time.monotonic()


def prepare_disk(cfg: Config, target_dir: Path) -> None:
    """Put the disk in the same state before every timed write, outside the timing.

    On this VM (ext4 mounted with `discard` on a thin-provisioned virtio disk) a write into blocks
    freed a few seconds earlier ran at ~1.3 GB/s and one into fresh blocks at ~260 MB/s, until the
    host had processed the trim (~10 s). Left alone, each figure gets whatever state the previous
    step left behind, so every timed write is preceded by one of:
      recycled (default): write, fsync and delete a scratch file of the same size next to the
                target, so the timed write lands in just-freed blocks (a fast disk: the figures
                show CPU and pipeline limits);
      fresh:    wait until --settle seconds have passed since the last delete (the disk's own
                speed for new data; every fsync'd figure is then disk-bound).
    """
    os.sync()
    if cfg.disk == "fresh":
        wait = cfg.last_free + cfg.settle - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    else:
        scratch = target_dir / ".recycle.bin"
        run(["dd", f"if={cfg.input}", f"of={scratch}", "bs=8M", "conv=fsync", "status=none"])
        discard(cfg, scratch)
        os.sync()
    time.sleep(0.2)


def quiesce() -> None:
    """Write back whatever the previous step left dirty (no big write follows), outside timing."""
    os.sync()
    time.sleep(0.2)


def measure_limit(cfg: Config) -> Sample:
    """tee writes the file while openssl hashes the same stream; then fsync. All timed."""
    out = cfg.workdir / "limit-out.bin"
    prepare_disk(cfg, cfg.workdir)
    c0, t0 = children_cpu(), time.perf_counter()
    res = subprocess.run(["bash", "-o", "pipefail", "-c",
                          'tee "$1" < "$2" | openssl dgst -sha256 -r', "limit", str(out),
                          str(cfg.input)], check=True, capture_output=True, text=True)
    fd = os.open(out, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    t1, c1 = time.perf_counter(), children_cpu()
    digest = res.stdout.split()[0]
    discard(cfg, out)
    if digest != cfg.sha256:
        raise SystemExit(f"limit pipeline hashed {digest}, expected {cfg.sha256}")
    return Sample(t1 - t0, client_cpu=c1 - c0)


def measure_openssl(cfg: Config) -> Sample:
    quiesce()
    c0, t0 = children_cpu(), time.perf_counter()
    res = run(["openssl", "dgst", "-sha256", "-r", str(cfg.input)])
    t1, c1 = time.perf_counter(), children_cpu()
    assert res.stdout.split()[0] == cfg.sha256
    return Sample(t1 - t0, client_cpu=c1 - c0)


def measure_hashlib(cfg: Config) -> Sample:
    """What the server's Receiver does per buffer: hashlib.sha256().update(1 MiB)."""
    with open(cfg.input, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        view = memoryview(mm)
        t0 = time.perf_counter()
        h = hashlib.sha256()
        for off in range(0, cfg.size, MIB):
            h.update(view[off:off + MIB])
        t1 = time.perf_counter()
        view.release()
    assert h.hexdigest() == cfg.sha256
    return Sample(t1 - t0, client_cpu=t1 - t0)


def measure_dd(cfg: Config) -> Sample:
    out = cfg.workdir / "limit-out.bin"
    prepare_disk(cfg, cfg.workdir)
    c0, t0 = children_cpu(), time.perf_counter()
    run(["dd", f"if={cfg.input}", f"of={out}", "bs=8M", "conv=fsync", "status=none"])
    t1, c1 = time.perf_counter(), children_cpu()
    discard(cfg, out)
    return Sample(t1 - t0, client_cpu=c1 - c0)


def upload_once(cfg: Config, server: Server, client: str) -> Sample:
    """One upload to a freshly started server, RSS and CPU watched; checks what was stored."""
    target = server.files_dir / "media" / "partial" if server.name == "locker" else \
        server.files_dir
    prepare_disk(cfg, target if target.is_dir() else server.files_dir)
    sampler = RssSampler(server.pid)
    cpu0 = cpu_seconds(server.pid)
    up = CLIENTS[client][1](cfg, server, metadata(cfg.sha256))
    cpu1 = cpu_seconds(server.pid)
    rss = sampler.stop()
    offset = up.headers.get("upload-offset")
    if offset != str(cfg.size):
        raise SystemExit(f"{server.name}: final Upload-Offset {offset}, expected {cfg.size}")
    if server.name == "locker" and up.headers.get("locker-outcome") != "stored":
        raise SystemExit(f"locker: outcome {up.headers.get('locker-outcome')!r}, expected "
                         f"'stored'; headers {up.headers}")
    if server.name == "peer":
        stored = server.files_dir / urlsplit(up.location).path.rsplit("/", 1)[-1]
        if stored.stat().st_size != cfg.size:
            raise SystemExit(f"peer stored {stored.stat().st_size} bytes")
    return Sample(up.seconds, rss=rss, rss_idle=sampler.baseline, server_cpu=cpu1 - cpu0,
                  client_cpu=up.client_cpu)


def measure_upload(cfg: Config, kind: str, client: str, tag: str) -> Sample:
    """The limit, then the upload, back to back on a quiet machine: a pair with a ratio."""
    box: dict[str, Server] = {}

    def setup() -> None:
        box["server"] = start_locker(cfg, tag) if kind == "locker" else start_peer(cfg, tag)

    def teardown() -> None:
        server = box.pop("server")
        server.stop()
        cfg.live.remove(server)
        if not cfg.keep:
            discard(cfg, server.files_dir)

    def pair() -> Sample:
        limit = measure_limit(cfg)
        sample = upload_once(cfg, box["server"], client)
        sample.limit = limit
        return sample

    return measured(cfg, f"{kind} {client}", pair, setup, teardown)


def measure_sink(cfg: Config, client: str) -> Sample:
    box: dict[str, Server] = {}

    def setup() -> None:
        box["sink"] = start_sink(cfg)

    def teardown() -> None:
        sink = box.pop("sink")
        sink.stop()
        cfg.live.remove(sink)

    def once() -> Sample:
        sink = box["sink"]
        quiesce()
        cpu0 = cpu_seconds(sink.pid)
        up = CLIENTS[client][1](cfg, sink, metadata(cfg.sha256))
        cpu1 = cpu_seconds(sink.pid)
        if up.headers.get("upload-offset") != str(cfg.size):
            raise SystemExit(f"null sink: final Upload-Offset {up.headers.get('upload-offset')}")
        return Sample(up.seconds, server_cpu=cpu1 - cpu0, client_cpu=up.client_cpu)

    return measured(cfg, f"sink {client}", once, setup, teardown)


# --- profile -------------------------------------------------------------------------------------

def profile(cfg: Config, client: str) -> None:
    """py-spy record (raw collapsed stacks, per thread) of a locker server during one upload."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        say("  py-spy not found: `.venv/bin/pip install py-spy` (not a project dependency)")
        return
    server = start_locker(cfg, f"profile-{client}")
    out = cfg.logs / f"pyspy-{client}.txt"
    rate = 250
    try:
        wait_quiet(cfg)
        spy = subprocess.Popen([pyspy, "record", "--pid", str(server.pid), "--rate", str(rate),
                                "--format", "raw", "--threads", "--nonblocking", "--output",
                                str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        sample = upload_once(cfg, server, client)
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
    finally:
        server.stop()
        cfg.live.remove(server)
        if not cfg.keep:
            discard(cfg, server.files_dir)
    say(f"\nPROFILE of the locker server, {CLIENTS[client][0]}: "
        f"{cfg.size / sample.seconds / MB:.0f} MB/s under py-spy ({rate} Hz, non-blocking); "
        f"server CPU {100 * (sample.server_cpu or 0) / sample.seconds:.0f}% of a core; {out}")
    summarize_profile(out, rate, sample.seconds)


def summarize_profile(path: Path, rate: int, seconds: float) -> None:
    if not path.exists():
        say("  (py-spy wrote nothing)")
        return
    threads: dict[str, int] = {}
    leaves: dict[str, int] = {}
    ours: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        thread = re.sub(r"\s*\(\d+\)", "", frames[0]).replace("thread ", "").strip(' "')
        threads[thread] = threads.get(thread, 0) + n
        leaf = re.sub(r" \((.*/)?([^/]*)\)$", r" (\2)", frames[-1])
        leaves[leaf] = leaves.get(leaf, 0) + n
        seen = set()
        for frame in frames[1:]:
            if "evidence_locker/" in frame and "evidence_locker/__main__" not in frame \
                    and "evidence_locker/cli.py" not in frame:
                name = re.sub(r" \((?:.*/)?(evidence_locker/[^:]*):\d+\)$", r" (\1)", frame)
                if name not in seen:
                    seen.add(name)
                    ours[name] = ours.get(name, 0) + n
    say(f"  upload took {seconds:.2f} s; samples where a thread was running (not waiting): "
        f"{total / rate:.2f} thread-seconds")
    say("  by thread (running seconds, share of the upload's wall time):")
    for name, n in sorted(threads.items(), key=lambda kv: -kv[1])[:4]:
        say(f"    {n / rate:6.2f} s  {100 * n / rate / seconds:4.0f}%  {name}")
    say("  hottest leaf frames (self time):")
    for name, n in sorted(leaves.items(), key=lambda kv: -kv[1])[:10]:
        say(f"    {n / rate:6.2f} s  {100 * n / total:5.1f}%  {name}")
    say("  evidence_locker functions, inclusive (running time spent in them and below):")
    for name, n in sorted(ours.items(), key=lambda kv: -kv[1])[:14]:
        say(f"    {n / rate:6.2f} s  {100 * n / total:5.1f}%  {name}")


# --- machine facts ------------------------------------------------------------------------------

def machine_facts(cfg: Config) -> list[tuple[str, str]]:
    cpu = "?"
    flags = ""
    with contextlib.suppress(OSError):
        info = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.*)$", info, re.M)
        cpu = m.group(1) if m else cpu
        m = re.search(r"^flags\s*:\s*(.*)$", info, re.M)
        flags = m.group(1) if m else ""
    st = os.statvfs(cfg.workdir)
    fs = "?"
    with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
        fs = run(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", str(cfg.workdir)]).stdout
        fs = fs.strip()
    mem = "?"
    with contextlib.suppress(OSError):
        m = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
        mem = human(int(m.group(1)) * 1024) if m else mem

    def version(cmd: list[str]) -> str:
        try:
            return run(cmd).stdout.strip().splitlines()[0]
        except (subprocess.CalledProcessError, FileNotFoundError, IndexError):
            return "not found"

    pkgs = version([cfg.locker_cmd[0], "-c",
                    "import importlib.metadata as m, sys; print(sys.version.split()[0], "
                    "*(f'{p} {m.version(p)}' for p in ('uvicorn','uvloop','httptools',"
                    "'starlette','fastapi')), sep=', ')"])
    return [
        ("cores", f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable), {cpu}, "
                  f"SHA instructions: {'yes (sha_ni)' if 'sha_ni' in flags.split() else 'no'}"),
        ("memory", mem),
        ("workdir", f"{cfg.workdir}  [{fs}]"),
        ("disk free", f"{human(st.f_bavail * st.f_frsize)} at start"),
        ("kernel", platform.release()),
        ("python (server)", pkgs),
        ("openssl", version(["openssl", "version"])),
        ("curl", version(["curl", "--version"]).split(" (")[0]),
        ("node", version(["node", "--version"]) + (f"; {peer_versions()}" if cfg.peer else "")),
    ]


# --- the run -------------------------------------------------------------------------------------

def make_input(cfg: Config) -> None:
    cfg.input = cfg.workdir / "in.bin"
    say(f"generating {human(cfg.size)} of random bytes in {cfg.input} ...")
    t0 = time.perf_counter()
    h = hashlib.sha256()
    with open(cfg.input, "wb") as fh:
        left = cfg.size
        while left:
            chunk = os.urandom(min(8 * MIB, left))
            h.update(chunk)
            fh.write(chunk)
            left -= len(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    cfg.sha256 = h.hexdigest()
    say(f"  done in {time.perf_counter() - t0:.1f} s; sha256 {cfg.sha256}; it stays in the page "
        "cache for every reader")


def check_space(cfg: Config) -> None:
    st = os.statvfs(cfg.workdir)
    free = st.f_bavail * st.f_frsize
    need = 4 * cfg.size
    if free < need:
        raise SystemExit(
            f"not enough free disk in {cfg.workdir}: {human(free)} free, this run needs about "
            f"4 x {human(cfg.size)} = {human(need)} (input, one copy written at a time, scratch, "
            "slack). Free some space, choose a smaller --size, or a --workdir on a bigger disk.")


def _pct(values: list[float]) -> str:
    return f"{100 * statistics.median(values):.0f}%" if values else "-"


def print_table(cfg: Config, figures: list[Figure], limit: float) -> None:
    head = ("figure", "MB/s", "min-max", "ratio to limit", "peak RSS (idle)", "server CPU",
            "client CPU", "others: CPU / IO")
    rows: list[tuple[str, ...]] = []
    group = None
    flagged = False
    for f in figures:
        if not f.samples:
            continue
        if f.group != group:
            rows.append((f"[{f.group}]",) + ("",) * (len(head) - 1))
            group = f.group
        v = f.mbps()
        pairs = f.paired_ratios()
        ratio = statistics.median(pairs) if pairs else f.median() / limit
        rss = [s.rss for s in f.samples if s.rss]
        idle = [s.rss_idle for s in f.samples if s.rss_idle]
        star = "*" if any(s.other_cpu > cfg.max_other_cpu or s.other_io > cfg.max_other_io
                          for s in f.samples) else ""
        flagged = flagged or bool(star)
        rows.append((
            f"  {f.label}{star}", f"{f.median():.0f}", f"{min(v):.0f}-{max(v):.0f}",
            f"{ratio:.2f}" + (" p" if pairs else ""),
            f"{max(rss) / MB:.0f} MB ({min(idle) / MB:.0f})" if rss else "-",
            _pct([s.server_cpu / s.seconds for s in f.samples if s.server_cpu is not None]),
            _pct([s.client_cpu / s.seconds for s in f.samples if s.client_cpu is not None]),
            f"{100 * max(s.other_cpu for s in f.samples):.0f}% / "
            f"{max(s.other_io for s in f.samples):.0f} MB/s"))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r: tuple[str, ...]) -> str:
        return " | ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                          for i, c in enumerate(r))

    disk = (f"fresh blocks (waited {cfg.settle:.0f} s after every delete)" if cfg.disk == "fresh"
            else "recycled blocks (every timed write lands in just-freed blocks)")
    say("")
    say(f"RESULTS: {human(cfg.size)} ({cfg.size / MB:.0f} MB) over loopback, {cfg.runs} run(s) "
        f"per figure, median and min-max; MB = 10^6 bytes; disk: {disk}")
    say(line(head))
    say("-+-".join("-" * w for w in widths))
    for r in rows:
        say(line(r))
    say("ratio to limit: 'p' = median of per-run ratios to the limit measured just before that "
        "upload (same minute, same disk state);")
    say("  otherwise the figure's median over the limit's median. The limit row pools those "
        "paired limit runs.")
    say("CPU: CPU time / wall time, 100% = one core; for limit rows 'client' is tee+openssl, "
        "openssl or dd. others: the most CPU and")
    say(f"  storage I/O of processes outside this benchmark during a kept sample (samples above "
        f"{100 * cfg.max_other_cpu:.0f}% or {cfg.max_other_io:.0f} MB/s are measured again)"
        + ("; * = still disturbed after the retries." if flagged else "."))


def verdict(cfg: Config, by_key: dict[str, Figure], limit: float) -> None:
    say("")
    say(f"TARGETS: ingest >= {LIMIT_TARGET} x limit; ahead of the peer (which neither hashes "
        f"nor fsyncs); server RSS < {RSS_TARGET / MB:.0f} MB")
    for client, (label, _) in CLIENTS.items():
        ours = by_key.get(f"locker-{client}")
        if ours is None or not ours.samples:
            continue
        m = ours.median()
        pairs = ours.paired_ratios()
        ratio = statistics.median(pairs) if pairs else m / limit
        ok = ratio >= LIMIT_TARGET
        parts = [f"{m:.0f} MB/s, {ratio:.2f} x limit: {'MET' if ok else 'MISSED'} by "
                 f"{abs(ratio - LIMIT_TARGET):.2f} x limit"]
        peer = by_key.get(f"peer-{client}")
        if peer is not None and peer.samples:
            p = peer.median()
            parts.append(f"{m / p:.2f} x peer: {'AHEAD' if m > p else 'BEHIND'} by "
                         f"{abs(m - p):.0f} MB/s")
        rss = max(s.rss or 0 for s in ours.samples)
        idle = min(s.rss_idle or 0 for s in ours.samples)
        parts.append(f"peak RSS {rss / MB:.0f} MB (idle {idle / MB:.0f} MB, so the upload added "
                     f"{(rss - idle) / MB:.0f} MB): "
                     f"{'MET' if rss < RSS_TARGET else 'MISSED'} by "
                     f"{abs(RSS_TARGET - rss) / MB:.0f} MB")
        say(f"  locker, {label}: " + "; ".join(parts))
    for client, (label, _) in CLIENTS.items():
        sink, ours = by_key.get(f"sink-{client}"), by_key.get(f"locker-{client}")
        if sink is None or ours is None or not sink.samples or not ours.samples:
            continue
        ratio = sink.median() / ours.median()
        cpu = [100 * (s.client_cpu or 0) / s.seconds for s in ours.samples]
        say(f"  client check, {label}: pushes {sink.median():.0f} MB/s into a null sink "
            f"({ratio:.1f} x what locker took) and used {statistics.median(cpu):.0f}% of a core "
            f"during the locker upload: "
            + ("not the bottleneck" if ratio >= 1.5 else "close to being the bottleneck"))


def main(argv: list[str] | None = None) -> int:
    global CFG
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--size", type=parse_size, default=parse_size("1GiB"),
                    help="upload size (default 1GiB; KiB/MiB/GiB or KB/MB/GB)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each figure (default 3)")
    ap.add_argument("--patch-size", type=parse_size, default=parse_size("8MiB"))
    ap.add_argument("--workdir", type=Path, default=BENCH / ".work",
                    help="generated files and server data dirs, all on one disk "
                         "(default bench/.work)")
    ap.add_argument("--keep", action="store_true", help="keep the big files")
    ap.add_argument("--no-peer", dest="peer", action="store_false", help="skip the Node peer")
    ap.add_argument("--no-curl-loop", dest="curl_loop", action="store_false",
                    help="skip the one-curl-per-PATCH figures")
    ap.add_argument("--no-sink", dest="sink", action="store_false",
                    help="skip the client-ceiling (null sink) figures")
    ap.add_argument("--profile", action="store_true",
                    help="afterwards, py-spy the locker server during one upload of each kind "
                         "(needs `.venv/bin/pip install py-spy`)")
    ap.add_argument("--disk", choices=("recycled", "fresh"), default="recycled",
                    help="disk state before every timed write (see prepare_disk): recycled "
                         "(default; just-freed blocks, fast) or fresh (wait --settle s after "
                         "any delete; the disk's speed for new data)")
    ap.add_argument("--settle", type=float, default=15.0,
                    help="seconds to wait after a delete with --disk fresh (default 15)")
    ap.add_argument("--max-other-cpu", type=float, default=0.10,
                    help="redo a sample if other processes used more than this many cores on "
                         "average meanwhile (default 0.10)")
    ap.add_argument("--max-other-io", type=float, default=10.0,
                    help="... or read/wrote more than this many MB/s on storage (default 10)")
    ap.add_argument("--quiet-wait", type=float, default=600.0,
                    help="longest wait for a quiet machine before each sample (default 600 s)")
    ap.add_argument("--retries", type=int, default=3, help="redos of a disturbed sample")
    ap.add_argument("--only", default="",
                    help="comma-separated figure keys to run, e.g. locker-one,peer-one (keys: "
                         "openssl hashlib dd {locker,peer,sink}-{one,py,curl}; the limit is "
                         "measured with every upload)")
    ap.add_argument("--locker-cmd", default=f"{REPO / '.venv/bin/python'} -m evidence_locker",
                    help="how to run the locker CLI (default: the repo venv)")
    args = ap.parse_args(argv)

    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    cfg = CFG = Config(size=args.size, runs=args.runs, patch_size=args.patch_size,
                       workdir=run_dir, keep=args.keep, peer=args.peer, curl_loop=args.curl_loop,
                       sink=args.sink, profile=args.profile,
                       locker_cmd=shlex.split(args.locker_cmd), disk=args.disk,
                       settle=args.settle, max_other_cpu=args.max_other_cpu,
                       max_other_io=args.max_other_io, quiet_wait=args.quiet_wait,
                       retries=args.retries, last_free=time.monotonic())
    cfg.logs = run_dir / "logs"
    cfg.logs.mkdir()
    started = time.monotonic()
    try:
        check_space(cfg)
        if cfg.peer:
            ensure_peer_installed()
        say("MACHINE")
        for k, v in machine_facts(cfg):
            say(f"  {k:16} {v}")
        make_input(cfg)

        clients = ["one", "py"] + (["curl"] if cfg.curl_loop else [])
        limit = Figure("limit", "write+fsync while hashed: tee | openssl dgst; fsync", "limit")
        figures = [
            limit,
            Figure("openssl", "hash only: openssl dgst -sha256", "limit, context"),
            Figure("hashlib", "hash only: Python hashlib, 1 MiB updates", "limit, context"),
            Figure("dd", "write+fsync only: dd bs=8M conv=fsync", "limit, context"),
        ]
        for c in clients:
            figures.append(Figure(f"locker-{c}", CLIENTS[c][0],
                                  "locker: hash + fsync + verify + catalogue"))
        if cfg.peer:
            for c in clients:
                figures.append(Figure(f"peer-{c}", CLIENTS[c][0],
                                      "peer: @tus/server + FileStore, no hash, no fsync"))
        if cfg.sink:
            for c in clients:
                figures.append(Figure(f"sink-{c}", CLIENTS[c][0],
                                      "client ceiling: null sink, discards"))
        context: dict[str, Callable[[Config], Sample]] = {
            "openssl": measure_openssl, "hashlib": measure_hashlib, "dd": measure_dd}
        if args.only:
            wanted = {k.strip() for k in args.only.split(",") if k.strip()}
            unknown = wanted - {f.key for f in figures}
            if unknown:
                raise SystemExit(f"--only: unknown figure(s) {sorted(unknown)}; known: "
                                 f"{[f.key for f in figures if f.key != 'limit']}")
            figures = [f for f in figures if f.key == "limit" or f.key in wanted]
        by_key = {f.key: f for f in figures}

        for r in range(1, cfg.runs + 1):
            say(f"run {r}/{cfg.runs}")
            for f in figures:
                if f.key == "limit":
                    continue
                if f.key in context:
                    s = measured(cfg, f.key, lambda fn=context[f.key]: fn(cfg))
                elif f.key.startswith("sink-"):
                    s = measure_sink(cfg, f.key.split("-", 1)[1])
                else:
                    kind, client = f.key.split("-", 1)
                    s = measure_upload(cfg, kind, client, f"{r}-{client}")
                f.samples.append(s)
                note = (f"   others {100 * s.other_cpu:.0f}% CPU, {s.other_io:.0f} MB/s IO"
                        if s.other_cpu >= 0.01 or s.other_io >= 1 else "")
                if s.limit is not None:
                    limit.samples.append(s.limit)
                    note = (f" (limit just before: {cfg.size / s.limit.seconds / MB:.0f} MB/s, "
                            f"ratio {s.limit.seconds / s.seconds:.2f})") + note
                if s.rss:
                    note = (f", peak RSS {s.rss / MB:.0f} MB (idle {(s.rss_idle or 0) / MB:.0f})"
                            + note)
                say(f"  {f.group.split(':')[0]:15} {f.label:45} "
                    f"{cfg.size / s.seconds / MB:6.0f} MB/s{note}")

        if not limit.samples:  # --no-peer and no uploads: cannot happen, but be plain about it
            limit.samples.append(measured(cfg, "limit", lambda: measure_limit(cfg)))
        print_table(cfg, figures, limit.median())
        verdict(cfg, by_key, limit.median())
        if cfg.profile:
            for c in ("one", "py"):
                profile(cfg, c)
        say(f"\nlogs: {cfg.logs}; took {(time.monotonic() - started) / 60:.1f} min")
        return 0
    finally:
        for server in list(cfg.live):
            server.stop()
        if not cfg.keep:
            for p in run_dir.iterdir():
                if p.name != "logs":
                    if p.is_dir():
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        p.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
