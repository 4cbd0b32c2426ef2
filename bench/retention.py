"""Retention benchmark: a catalogue of expired recordings with tiny blobs, one full sweep.

    .venv/bin/python bench/retention.py                       # 1,000,000 recordings, embedded
    .venv/bin/python bench/retention.py --recordings 20000
    .venv/bin/python bench/retention.py --profile scale-out   # PostgreSQL + SeaweedFS S3

Seeding is fast but real: units, officers' recordings and their file and blob rows go in by bulk
inserts, and every blob's bytes go through the store (`put_bytes`: fsync'd on the embedded store,
a PUT on S3). Each recording has `--files` tiny files (clip, sidecar, track) with unique bytes
and a `delete_after` in the past. Then `run_sweep` (what `locker retention run` calls) deletes
them all through the store (the LIFECYCLE credential on scale-out), and the bench checks that no
recording, file or blob row and no blob is left and that there is one finished tombstone per
recording.

Printed: recordings deleted per second, the projected time for the reference force's day of
~220,000 deletions against the target (under 10 minutes, i.e. >= ~370/s), peak RSS (VmHWM of this
process, which runs the sweep), and physical limits measured in the same run on the same disk:
(a) as many small files as the sweep unlinks, created + fsynced, then unlinked with a directory
fsync each (what the embedded store does per blob); (b) the bare catalogue delete: the same
number of recording, file and blob rows deleted by `DELETE ... WHERE id IN (...)` in batches, no
rule, no tombstone, no audit. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from benchlib import load_services, proc_status, reset_peak  # noqa: E402
from sqlalchemy import delete, func, insert, select  # noqa: E402

from evidence_locker.catalogue.models import Blob, Recording, RecordingFile  # noqa: E402
from evidence_locker.clock import SystemClock  # noqa: E402
from evidence_locker.config import Settings  # noqa: E402
from evidence_locker.db import transaction, upgrade  # noqa: E402
from evidence_locker.lifecycle.models import Tombstone  # noqa: E402
from evidence_locker.runtime import Runtime, build_runtime  # noqa: E402

DAILY = 220_000
TARGET_S = 600.0
KINDS = (("clip", "clip.mp4"), ("sidecar", "sidecar.json"), ("track", "track.gpx"))


def say(msg: str) -> None:
    print(msg, flush=True)


def seed(runtime: Runtime, n: int, files: int, chunk: int) -> float:
    """n expired recordings of `files` tiny files each; returns seconds taken."""
    from evidence_locker.audit.service import Actor
    from evidence_locker.fleet import service as fleet

    actor = Actor(type="system", name="bench")
    clock = runtime.clock
    t = time.perf_counter()
    with transaction(runtime.sessions) as s:
        fleet.create_unit(s, code="F", name="Force", kind="force", clock=clock, actor=actor)
        for u in range(8):
            fleet.create_unit(s, code=f"U{u}", name=f"Unit {u}", kind="unit", parent_code="F",
                              clock=clock, actor=actor)
    with transaction(runtime.sessions) as s:
        from evidence_locker.fleet.models import Unit
        units = list(s.scalars(select(Unit.id).where(Unit.code != "F")))
    now = clock.now()
    received = now - dt.timedelta(days=60)
    due = now - dt.timedelta(days=2)
    done = 0
    pool = ThreadPoolExecutor(max_workers=8)
    while done < n:
        m = min(chunk, n - done)
        recs: list[dict[str, Any]] = []
        rfiles: list[dict[str, Any]] = []
        blobs: list[dict[str, Any]] = []
        payloads: list[bytes] = []
        for i in range(done, done + m):
            rid = uuid.uuid4()
            recs.append({"id": rid, "device_serial": f"CAM-{i % 5000:05d}",
                         "camera_recording_id": f"R{i:09d}", "unit_id": units[i % len(units)],
                         "started_at": received, "stopped_at": received, "received_at": received,
                         "sort_at": received, "state": "complete", "sidecar_state": "ok",
                         "attribution_issues": "", "clock_suspect": False,
                         "delete_after": due, "retention_state": "live"})
            for k in range(files):
                kind, name = KINDS[k % len(KINDS)]
                data = f"{rid}:{k}".encode()
                sha = hashlib.sha256(data).hexdigest()
                payloads.append(data)
                blobs.append({"sha256": sha, "size": len(data), "stored_at": received,
                              "fixity_state": "unchecked"})
                rfiles.append({"recording_id": rid, "kind": kind, "index": 1, "filename": name,
                               "sha256": sha, "size": len(data), "received_at": received,
                               "conflict": False, "media_state": "n/a"})
        # The store fsyncs each blob; threads let those waits overlap, as parallel docks do.
        stored = list(pool.map(runtime.store.put_bytes, payloads))
        assert stored == [b["sha256"] for b in blobs]
        with transaction(runtime.sessions) as s:
            s.execute(insert(Blob), blobs)
            s.execute(insert(Recording), recs)
            s.execute(insert(RecordingFile), rfiles)
        done += m
        if done % (chunk * 10) == 0 or done == n:
            say(f"  seeded {done:,} recordings ({time.perf_counter() - t:.0f} s)")
    pool.shutdown()
    return time.perf_counter() - t


def check_empty(runtime: Runtime, n: int, shas: list[str]) -> None:
    with transaction(runtime.sessions) as s:
        left = [s.scalar(select(func.count()).select_from(m)) for m in
                (Recording, RecordingFile, Blob)]
        tombs = s.scalar(select(func.count()).select_from(Tombstone)
                         .where(Tombstone.finished_at.is_not(None)))
    gone = sum(1 for sha in shas if not runtime.store.exists(sha))
    say(f"check: rows left (recordings, files, blobs) {left}; finished tombstones {tombs:,} of "
        f"{n:,}; sampled blobs gone {gone} of {len(shas)}")
    if left != [0, 0, 0] or tombs != n or gone != len(shas):
        raise SystemExit("the sweep left something behind")


def file_limit(base: Path, count: int) -> tuple[float, float]:
    """Seconds to create + fsync `count` small files in 256 directories (file fsync + directory
    fsync, as the store installs a blob), and to unlink them with a directory fsync each."""
    root = Path(tempfile.mkdtemp(prefix="limit-", dir=base))
    dirs = []
    for d in range(256):
        p = root / f"{d:02x}"
        p.mkdir()
        dirs.append(os.open(p, os.O_RDONLY))
    paths = [root / f"{i % 256:02x}" / f"f{i}" for i in range(count)]
    t = time.perf_counter()
    for i, p in enumerate(paths):
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"x" * 40)
        os.fsync(fd)
        os.close(fd)
        os.fsync(dirs[i % 256])
    create = time.perf_counter() - t
    t = time.perf_counter()
    for i, p in enumerate(paths):
        p.unlink()
        os.fsync(dirs[i % 256])
    unlink = time.perf_counter() - t
    for fd in dirs:
        os.close(fd)
    shutil.rmtree(root, ignore_errors=True)
    return create, unlink


def s3_limit(putter: Any, client: Any, bucket: str, count: int) -> float:
    """Seconds for `count` bare DELETE requests of small objects (PUT first with `putter`, the
    ingest credential), from 8 threads as the sweep uses: one request per object, the least a
    deletion can cost on S3."""
    keys = [f"limit/{i:08d}" for i in range(count)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: putter.put_object(Bucket=bucket, Key=k, Body=b"x" * 40), keys))
        t = time.perf_counter()
        list(pool.map(lambda k: client.delete_object(Bucket=bucket, Key=k), keys))
        return time.perf_counter() - t


def sql_limit(url: str, n: int, files: int, batch: int) -> float:
    """Seconds for the bare catalogue delete of n recordings (and their file and blob rows) in
    transactions of `batch`, on a fresh database of the same kind."""
    from evidence_locker.db import make_engine, make_session_factory

    engine = make_engine(url)
    sessions = make_session_factory(engine)
    now = dt.datetime.now(dt.UTC)
    ids: list[uuid.UUID] = []
    for start in range(0, n, 5000):
        m = min(5000, n - start)
        recs, rf, bl = [], [], []
        for i in range(start, start + m):
            rid = uuid.uuid4()
            ids.append(rid)
            recs.append({"id": rid, "device_serial": "L", "camera_recording_id": f"L{i}",
                         "received_at": now, "sort_at": now, "attribution_issues": "",
                         "clock_suspect": False, "state": "complete", "sidecar_state": "ok",
                         "delete_after": now, "retention_state": "live"})
            for k in range(files):
                sha = hashlib.sha256(f"{rid}{k}".encode()).hexdigest()
                bl.append({"sha256": sha, "size": 40, "stored_at": now,
                           "fixity_state": "unchecked"})
                rf.append({"recording_id": rid, "kind": KINDS[k % 3][0], "index": 1,
                           "filename": "f", "sha256": sha, "size": 40, "received_at": now,
                           "conflict": False, "media_state": "n/a"})
        with transaction(sessions) as s:
            s.execute(insert(Blob), bl)
            s.execute(insert(Recording), recs)
            s.execute(insert(RecordingFile), rf)
    t = time.perf_counter()
    for start in range(0, n, batch):
        part = ids[start:start + batch]
        with transaction(sessions) as s:
            shas = list(s.scalars(select(RecordingFile.sha256)
                                  .where(RecordingFile.recording_id.in_(part))))
            s.execute(delete(RecordingFile).where(RecordingFile.recording_id.in_(part)))
            s.execute(delete(Blob).where(Blob.sha256.in_(shas)))
            s.execute(delete(Recording).where(Recording.id.in_(part)))
    took = time.perf_counter() - t
    engine.dispose()
    return took


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recordings", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=3, help="tiny files per recording (1-3)")
    ap.add_argument("--batch", type=int, default=None, help="sweep batch (default: settings)")
    ap.add_argument("--profile", choices=("embedded", "scale-out"), default="embedded")
    ap.add_argument("--limit-sample", type=int, default=20_000,
                    help="recordings in the physical-limit runs (scaled to the sweep's count)")
    ap.add_argument("--workdir", type=Path, help="temporary base (default: bench/.work)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    from evidence_locker.lifecycle.sweep import run_sweep

    base = args.workdir or ROOT / "bench" / ".work"
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="retention-", dir=base))
    work.chmod(0o711)
    n, files = args.recordings, args.files
    say(f"bench/retention.py: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, Python "
        f"{platform.python_version()}, {args.profile}, {n:,} recordings x {files} files, "
        f"workdir {work}")
    services = None
    try:
        overrides: dict[str, Any] = {"data_dir": work / "var", "min_free_bytes": 0,
                                     "run_workers": False, "retention_sweep_minute": ""}
        lifecycle_store = None
        if args.profile == "scale-out":
            svc = load_services()
            services = svc.start_services(base_dir=work)
            bucket = "bench-retention"
            services.create_bucket(bucket)
            overrides["database_url"] = services.database_url
            overrides["storage_url"] = services.storage_url(bucket)
            os.environ["AWS_ACCESS_KEY_ID"] = services.s3_ingest.access_key
            os.environ["AWS_SECRET_ACCESS_KEY"] = services.s3_ingest.secret_key
            os.environ["AWS_REGION"] = services.s3_region
        settings = Settings(**overrides)
        upgrade(settings.resolved_database_url)
        runtime = build_runtime(settings, clock=SystemClock())
        if services is not None:
            from evidence_locker.storage.s3 import S3BlobStore

            cred = services.s3_lifecycle
            lifecycle_store = S3BlobStore.from_url(settings.resolved_storage_url,
                                                   access_key=cred.access_key,
                                                   secret_key=cred.secret_key)
        store = lifecycle_store or runtime.store
        took = seed(runtime, n, files, chunk=2000)
        say(f"seed: {n:,} recordings, {n * files:,} blobs in {took:.0f} s "
            f"({n / took:,.0f} recordings/s)")
        with transaction(runtime.sessions) as s:
            sample = list(s.scalars(select(Blob.sha256).limit(200)))
        reset_peak()
        t = time.perf_counter()
        result = run_sweep(runtime.sessions, clock=runtime.clock, settings=runtime.settings,
                           store=store, batch=args.batch)
        sweep_s = time.perf_counter() - t
        peak = proc_status(os.getpid(), "VmHWM")
        say(f"sweep: {result.deleted:,} deleted, {result.kept} kept, {len(result.failed)} failed "
            f"in {sweep_s:.1f} s")
        check_empty(runtime, n, sample)
        runtime_client = getattr(runtime.store, "client", None)
        runtime.close()
        rate = result.deleted / sweep_s
        projected = DAILY / rate
        # Physical limits on the same machine, scaled from a sample to the sweep's count.
        m = min(args.limit_sample, n)
        if args.profile == "embedded":
            create_s, unlink_s = file_limit(work, m * files)
            say(f"limit (a): {m * files:,} small files created + fsynced in {create_s:.1f} s, "
                f"unlinked + dir fsync in {unlink_s:.1f} s -> {m / unlink_s:,.0f} recordings/s "
                f"of unlinks alone")
            limit_url = f"sqlite:///{work / 'limit.db'}"
        else:
            assert lifecycle_store is not None
            unlink_s = s3_limit(runtime_client, lifecycle_store.client, lifecycle_store.bucket,
                                m * files)
            say(f"limit (a): {m * files:,} bare S3 DELETEs (8 threads) in {unlink_s:.1f} s -> "
                f"{m / unlink_s:,.0f} recordings/s of deletes alone")
            limit_url = settings.resolved_database_url.rsplit("/", 1)[0] + "/retention_limit"
            from sqlalchemy import create_engine, text

            admin = create_engine(settings.resolved_database_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text("CREATE DATABASE retention_limit"))
            admin.dispose()
        upgrade(limit_url)
        sql_s = sql_limit(limit_url, m, files, args.batch or settings.retention_batch)
        say(f"limit (b): bare SQL delete of {m:,} recordings + {m * files:,} file and blob rows "
            f"in {sql_s:.1f} s -> {m / sql_s:,.0f} recordings/s")
        say("\nRESULTS")
        say(f"recordings deleted per second           {rate:,.0f}")
        say(f"projected time for {DAILY:,} (a day)    {projected / 60:.1f} min "
            f"(target < {TARGET_S / 60:.0f} min, i.e. >= {DAILY / TARGET_S:,.0f}/s: "
            f"{'MET' if projected < TARGET_S else 'NOT MET'})")
        say(f"peak RSS during the sweep               {peak / 1e6:.0f} MB")
        alone = f"limit: {'unlinks' if args.profile == 'embedded' else 'S3 DELETEs'} alone"
        say(f"{alone:<40}{m / unlink_s:,.0f} recordings/s")
        say(f"limit: bare SQL delete                  {m / sql_s:,.0f} recordings/s")
    finally:
        if services is not None and not args.keep:
            with contextlib.suppress(Exception):
                services.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
