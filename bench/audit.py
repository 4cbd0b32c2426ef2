"""Audit benchmark: append rate, the added latency of one audit row, and verifying a long chain.

    .venv/bin/python bench/audit.py                          # SQLite and PostgreSQL, 10M events
    .venv/bin/python bench/audit.py --events 1000000 --backends sqlite
    .venv/bin/python bench/audit.py --parts verify --profile # py-spy the verify walk

Every figure is measured in the same run:

* append: `audit.service.record()` through the app's engine and session, one event per
  committed transaction (what a request does), with the production durability (SQLite WAL +
  synchronous=FULL; PostgreSQL with fsync on); then the sequencer's link rate over those events;
* latency: a small request transaction (an UPDATE and its commit) with and without one audit
  row, interleaved in pairs; the figure is the median of the per-pair differences (target < 1 ms),
  beside the cost of `record()` + flush alone inside the transaction;
* verify: a chain of --events events is generated with the hashes precomputed by the canonical
  encoding of chain.py (`event_digest` on a sample, the raw-tuple digest for the bulk, and the
  two are checked equal) and loaded fast (executemany on SQLite, COPY on PostgreSQL);
  `verify_chain` then walks it, --repeats times per page size (the fastest counts, as for the
  limit). The limit is measured in the same run: `hashlib.sha256` over the same number of bytes
  (the canonical documents' total), as one stream in 1 MiB updates (fastest of 3), and as one
  hash per event of the same mean size. Target: verify >= 0.5 x the stream limit.

Peak RSS is this process's VmHWM, reset (/proc/self/clear_refs) before each figure. PostgreSQL
is started by tests/services.py (durable) under --workdir and stopped at the end. Not part of
`make test`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import psycopg  # noqa: E402
from benchlib import (  # noqa: E402
    cpu_seconds,
    load_services,
    proc_status,
    reset_peak,
    storage_read_bytes,
)
from sqlalchemy import Engine, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from evidence_locker import db  # noqa: E402
from evidence_locker.audit import chain  # noqa: E402
from evidence_locker.audit.service import Actor, record  # noqa: E402
from evidence_locker.clock import SystemClock  # noqa: E402

MiB = 1024 * 1024
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
ACTIONS = ("recording.viewed", "recording.played", "recording.downloaded", "recording.flagged",
           "upload.completed", "recording.ingested", "share.created", "export.created",
           "user.login", "hold.placed")
AGENTS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/126.0 Safari/537.36", "locker-dock/1.0 (bay 3)", "python-httpx/0.27", None)
PURPOSES = (None, None, None, "investigation", "complaint", "disclosure")


def say(msg: str) -> None:
    print(msg, flush=True)


def mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"


# --- the events ----------------------------------------------------------------------------------


def content(i: int, rng: random.Random) -> tuple[Any, ...]:
    """Event i's content fields in CONTENT_FIELDS order; occurred_at as a UTC datetime."""
    officer = rng.randrange(22_000)
    action = ACTIONS[rng.randrange(len(ACTIONS))]
    purpose = PURPOSES[rng.randrange(len(PURPOSES))]
    reason = f"Case 01/{rng.randrange(99999):05d}: reviewing footage for the file" if purpose \
        else None
    details = json.dumps({"recording_id": rng.randrange(10**8), "bytes": rng.randrange(10**10)},
                         sort_keys=True, separators=(",", ":"))
    return (i, T0 + dt.timedelta(milliseconds=37 * i), action, "user", f"u{officer}",
            f"PC {officer:05d} Example-Officer", "recording", f"rec-{rng.randrange(10**9)}",
            f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
            AGENTS[rng.randrange(len(AGENTS))], purpose, reason, details)


def chain_rows(total: int, chunk: int, seed: int) -> Iterator[list[tuple[Any, ...]]]:
    """Chunks of complete linked rows (content, seq, prev_hash, hash, sequenced_at), hashed with
    chain.py's raw-tuple digest; a sample is hashed by `event_digest` too and must agree."""
    rng = random.Random(seed)
    prev = chain.GENESIS_HASH
    names = chain.CONTENT_FIELDS
    for start in range(1, total + 1, chunk):
        rows: list[tuple[Any, ...]] = []
        for i in range(start, min(start + chunk, total + 1)):
            c = content(i, rng)
            digest = chain._raw_digest(c, i, prev)
            if i % 100_003 == 1:
                assert digest == chain.event_digest(**dict(zip(names, c, strict=True)), seq=i,
                                                     prev_hash=prev)
            rows.append((*c, i, prev, digest, c[1]))
            prev = digest
        yield rows


def document_bytes(total: int, seed: int, sample: int = 200_000) -> tuple[int, list[bytes]]:
    """The exact canonical bytes of the chain (measured on a sample, scaled) and the sample."""
    rng = random.Random(seed)
    docs: list[bytes] = []
    prev = chain.GENESIS_HASH
    n = min(total, sample)
    for i in range(1, n + 1):
        c = content(i, rng)
        d = {name: c[k] for k, name in enumerate(chain.CONTENT_FIELDS)}
        d["occurred_at"] = c[1].isoformat(timespec="microseconds")
        d.update(v=chain.CHAIN_FORMAT, seq=i, prev_hash=prev)
        doc = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        docs.append(doc.encode("utf-8"))
        prev = hashlib.sha256(docs[-1]).hexdigest()
    return round(sum(map(len, docs)) / n * total), docs


def sqlite_ts(value: dt.datetime) -> str:
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


COLUMNS = (*chain.CONTENT_FIELDS, "seq", "prev_hash", "hash", "sequenced_at")


def load_sqlite(engine: Engine, total: int, chunk: int, seed: int) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA synchronous=OFF")  # loading only; verify reads the same file
        marks = ",".join("?" * len(COLUMNS))
        sql = f"INSERT INTO audit_events ({','.join(COLUMNS)}) VALUES ({marks})"
        for rows in chain_rows(total, chunk, seed):
            cur.execute("BEGIN")
            # As SQLAlchemy stores a UTC DateTime in SQLite: naive, space, microseconds.
            cur.executemany(sql, [(r[0], sqlite_ts(r[1]), *r[2:16], sqlite_ts(r[16]))
                                  for r in rows])
            cur.execute("COMMIT")
            say(f"    loaded {rows[-1][0]:,} events, RSS {mb(proc_status(os.getpid(), 'VmRSS'))}")
    finally:
        raw.close()


def load_postgres(engine: Engine, total: int, chunk: int, seed: int) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for rows in chain_rows(total, chunk, seed):
            with cur.copy(f"COPY audit_events ({','.join(COLUMNS)}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
            raw.commit()
            say(f"    loaded {rows[-1][0]:,} events, RSS {mb(proc_status(os.getpid(), 'VmRSS'))}")
        cur.execute("ANALYZE audit_events")
        raw.commit()
    finally:
        raw.close()


# --- the figures ---------------------------------------------------------------------------------


def append_part(factory: sessionmaker[Session], n: int) -> dict[str, Any]:
    clock = SystemClock()
    actor = Actor(type="user", id="u1", name="PC 00001 Example", ip="10.0.0.1",
                  user_agent=AGENTS[0])
    reset_peak()
    t = time.perf_counter()
    for i in range(n):
        with db.transaction(factory) as session:
            record(session, clock=clock, actor=actor, action="recording.viewed",
                   object_type="recording", object_id=f"r{i}", details={"i": i})
    write = time.perf_counter() - t
    t = time.perf_counter()
    linked = chain.sequence_pending(factory, clock=clock, batch=1000)
    link = time.perf_counter() - t
    return {"events": n, "write_s": write, "write_eps": n / write, "linked": linked,
            "link_eps": linked / link, "rss": proc_status(os.getpid(), "VmHWM")}


def latency_part(factory: sessionmaker[Session], engine: Engine, pairs: int) -> dict[str, Any]:
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_work"))
        conn.execute(text("CREATE TABLE bench_work (id INTEGER PRIMARY KEY, n INTEGER)"))
        conn.execute(text("INSERT INTO bench_work VALUES (1, 0)"))
    clock = SystemClock()
    actor = Actor(type="user", id="u1", name="PC 00001 Example", ip="10.0.0.1")
    bump = text("UPDATE bench_work SET n = n + 1 WHERE id = 1")

    def one(with_audit: bool) -> tuple[float, float]:
        t = time.perf_counter()
        with db.transaction(factory) as session:
            session.execute(bump)
            inner = 0.0
            if with_audit:
                a = time.perf_counter()
                record(session, clock=clock, actor=actor, action="recording.flagged",
                       object_type="recording", object_id="r1", details={"category": "x"})
                session.flush()
                inner = time.perf_counter() - a
        return time.perf_counter() - t, inner

    for _ in range(50):
        one(True)
        one(False)
    plain: list[float] = []
    audited: list[float] = []
    inner: list[float] = []
    diffs: list[float] = []
    for k in range(pairs):
        order = (True, False) if k % 2 else (False, True)
        got = {flag: one(flag) for flag in order}
        plain.append(got[False][0])
        audited.append(got[True][0])
        inner.append(got[True][1])
        diffs.append(got[True][0] - got[False][0])
    q = statistics.quantiles
    return {"pairs": pairs, "plain_ms": statistics.median(plain) * 1e3,
            "audited_ms": statistics.median(audited) * 1e3,
            "added_ms": statistics.median(diffs) * 1e3,
            "added_p90_ms": q(diffs, n=10)[-1] * 1e3,
            "record_flush_ms": statistics.median(inner) * 1e3,
            "record_flush_p99_ms": q(inner, n=100)[-1] * 1e3}


def limit_part(total_bytes: int, docs: list[bytes], events: int) -> dict[str, float]:
    """hashlib.sha256 over the same number of bytes: one stream (1 MiB updates), and one hash
    per event of the sample's sizes (scaled to the number of events)."""
    block = os.urandom(MiB)
    best_stream = float("inf")
    for _ in range(3):
        h = hashlib.sha256()
        left = total_bytes
        t = time.perf_counter()
        while left > 0:
            h.update(block if left >= MiB else block[:left])
            left -= MiB
        h.hexdigest()
        best_stream = min(best_stream, time.perf_counter() - t)
    best_each = float("inf")
    for _ in range(3):
        sha = hashlib.sha256
        t = time.perf_counter()
        for d in docs:
            sha(d).hexdigest()
        best_each = min(best_each, time.perf_counter() - t)
    return {"stream_s": best_stream, "per_event_s": best_each * events / len(docs)}


def verify_part(factory: sessionmaker[Session], batches: list[int], repeats: int,
                profile: Path | None) -> list[dict[str, Any]]:
    """Each page size walked `repeats` times; the figure is the fastest walk, as the limit's is
    the fastest of its runs (all the times are kept)."""
    out = []
    for batch in batches:
        reset_peak()
        times: list[float] = []
        spent: list[tuple[float, int]] = []  # each walk's CPU seconds and bytes read from storage
        checked = 0
        for _ in range(repeats):
            spy = None
            if profile is not None and shutil.which(str(ROOT / ".venv/bin/py-spy")):
                spy = subprocess.Popen(
                    [str(ROOT / ".venv/bin/py-spy"), "record", "-r", "100", "-o",
                     str(profile.with_suffix(f".{batch}.{len(times)}.svg")), "-p",
                     str(os.getpid())], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)
            cpu, read = cpu_seconds(os.getpid()), storage_read_bytes(os.getpid())
            t = time.perf_counter()
            with factory() as session:
                report = chain.verify_chain(session, batch=batch)
            times.append(time.perf_counter() - t)
            spent.append((cpu_seconds(os.getpid()) - cpu, storage_read_bytes(os.getpid()) - read))
            if spy is not None:
                spy.terminate()
                spy.wait(30)
            assert report.ok, report.problem
            checked = report.checked
        took = min(times)
        cpu, read = spent[times.index(took)]
        # With the Python digest a split walk runs in worker processes: the largest of them
        # (ru_maxrss of reaped children, KiB; the run's children so far, so a peak from earlier
        # shows too). The compiled check and PostgreSQL's SQL check walk in threads.
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        out.append({"batch": batch, "events": checked, "s": took, "runs_s": times,
                    "eps": checked / took, "rss": proc_status(os.getpid(), "VmHWM"),
                    "child_rss": child, "cpu_s": cpu, "storage_read": read})
    return out


def stored_floor_part(url: str, repeats: int) -> dict[str, Any]:
    """PostgreSQL only: what verifying would cost at the least if each row stored its canonical
    document (a "chain v2"): the documents, built by the SQL check's own expression, go into a
    table of their own; the figure is the server hashing them all, `sha256(doc)` in a parallel
    scan over every CPU (no link or column check at all), and the same documents COPY'd out to
    this process in one stream (the route of a client-side check). Both the fastest of
    `repeats`; a sample of the stored documents must hash to the rows' own hashes."""
    cpus = os.cpu_count() or 1
    raw = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"),
                          autocommit=True)
    try:
        raw.execute("DROP TABLE IF EXISTS verify_floor")
        t = time.perf_counter()
        raw.execute("CREATE UNLOGGED TABLE verify_floor AS SELECT seq, convert_to("  # noqa: S608
                    + chain._SQL_DOC + ", 'UTF8') AS doc FROM audit_events")
        raw.execute("VACUUM ANALYZE verify_floor")
        built = time.perf_counter() - t
        wrong = raw.execute(
            "SELECT count(*), count(*) FILTER (WHERE encode(sha256(f.doc), 'hex') <> a.hash)"
            " FROM verify_floor f JOIN audit_events a USING (seq) WHERE f.seq % 997 = 0"
        ).fetchone()
        assert wrong is not None and wrong[0] > 0 and wrong[1] == 0, wrong
        size = raw.execute("SELECT sum(octet_length(doc)) FROM verify_floor").fetchone()
        raw.execute(f"SET max_parallel_workers_per_gather = {cpus}")
        raw.execute(f"SET max_parallel_workers = {cpus}")

        def fastest(run: Any) -> float:
            best = float("inf")
            for _ in range(repeats):
                t = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - t)
            return best

        hashed = fastest(lambda: raw.execute(
            "SELECT count(*) FROM verify_floor WHERE sha256(doc) = '\\x'::bytea").fetchone())
        scanned = fastest(lambda: raw.execute(
            "SELECT count(*) FROM verify_floor WHERE octet_length(doc) = 0").fetchone())

        def copy_out() -> None:
            with raw.cursor().copy("COPY verify_floor (doc) TO STDOUT (FORMAT binary)") as cp:
                for _chunk in cp:
                    pass

        copied = fastest(copy_out)
        raw.execute("DROP TABLE verify_floor")
    finally:
        raw.close()
    return {"built_s": built, "bytes": size[0] if size else 0, "server_sha256_s": hashed,
            "scan_s": scanned, "copy_out_s": copied, "workers": cpus}


def run_backend(name: str, url: str, args: argparse.Namespace, lim: dict[str, float],
                total_bytes: int) -> dict[str, Any]:
    engine = db.make_engine(url)
    db.upgrade(url)
    factory = db.make_session_factory(engine)
    res: dict[str, Any] = {"backend": name}
    try:
        if "append" in args.parts:
            say(f"  [{name}] append: {args.append:,} events, one per transaction")
            res["append"] = append_part(factory, args.append)
            say(f"    {res['append']['write_eps']:.0f} events/s written, "
                f"{res['append']['link_eps']:.0f} events/s linked")
        if "latency" in args.parts:
            say(f"  [{name}] latency: {args.pairs} pairs")
            res["latency"] = latency_part(factory, engine, args.pairs)
            say(f"    added {res['latency']['added_ms']:.3f} ms")
        if "verify" in args.parts:
            say(f"  [{name}] generating and loading {args.events:,} events")
            t = time.perf_counter()
            venv = verify_db(name, url, engine, args)
            res["load_s"] = time.perf_counter() - t
            say(f"    loaded in {res['load_s']:.0f} s")
            vengine = db.make_engine(venv)
            try:
                res["verify"] = verify_part(db.make_session_factory(vengine), args.batches,
                                            args.repeats, args.workdir_path / f"verify-{name}"
                                            if args.profile else None)
            finally:
                vengine.dispose()
            for v in res["verify"]:
                runs = ", ".join(f"{x:.2f}" for x in v["runs_s"])
                say(f"    batch {v['batch']}: {v['s']:.1f} s (fastest of {runs}), "
                    f"{v['eps']:,.0f} events/s, {v['s'] and lim['stream_s'] / v['s']:.2f} x "
                    "stream limit")
            if name == "postgresql" and "floor" in args.parts:
                say("  [postgresql] the floor of a stored-document chain")
                res["floor"] = stored_floor_part(venv, args.repeats)
                f = res["floor"]
                say(f"    server sha256 of {f['bytes'] / 1e6:,.0f} MB stored: "
                    f"{f['server_sha256_s']:.2f} s, "
                    f"{f['server_sha256_s'] and lim['stream_s'] / f['server_sha256_s']:.2f} x "
                    f"stream limit; COPY out {f['copy_out_s']:.2f} s")
    finally:
        engine.dispose()
    return res


#: Secondary indexes of audit_events the walk never uses: dropped in the verify database before
#: loading (random-order B-tree inserts made a 10M load take most of an hour). The walk uses
#: only the primary key and the unique index on seq, which stay.
UNUSED_BY_VERIFY = ("ix_audit_events_occurred_at", "ix_audit_events_action",
                    "ix_audit_events_actor_name", "ix_audit_events_object_id")


def drop_unused_indexes(engine: Engine) -> None:
    with engine.begin() as conn:
        for name in UNUSED_BY_VERIFY:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))


def verify_db(name: str, url: str, engine: Engine, args: argparse.Namespace) -> str:
    """A new migrated database holding only the generated chain (the chain starts at seq 1, so
    not the database the append figures wrote to); its URL."""
    if name == "sqlite":
        path = args.workdir_path / "verify.db"
        vurl = f"sqlite:///{path}"
        db.upgrade(vurl)
        e = db.make_engine(vurl)
        drop_unused_indexes(e)
        load_sqlite(e, args.events, args.chunk, args.seed)
        e.dispose()
        return vurl
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("DROP DATABASE IF EXISTS audit_verify"))
        conn.execute(text("CREATE DATABASE audit_verify"))
    vurl = url.rsplit("/", 1)[0] + "/audit_verify"
    db.upgrade(vurl)
    e = db.make_engine(vurl)
    drop_unused_indexes(e)
    load_postgres(e, args.events, args.chunk, args.seed)
    e.dispose()
    return vurl


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--parts", default="append,latency,verify,floor",
                    help="append, latency, verify; floor (PostgreSQL, with verify): the least a "
                    "stored-document chain would cost")
    ap.add_argument("--events", type=int, default=10_000_000, help="events in the verified chain")
    ap.add_argument("--append", type=int, default=5000, help="events appended, one per commit")
    ap.add_argument("--pairs", type=int, default=2000, help="latency pairs")
    ap.add_argument("--batches", default="5000,50000", help="verify page sizes to measure")
    ap.add_argument("--repeats", type=int, default=3,
                    help="walks per page size (the figure is the fastest, as the limit's is)")
    ap.add_argument("--chunk", type=int, default=100_000, help="rows per load chunk")
    ap.add_argument("--seed", type=int, default=20250101)
    ap.add_argument("--profile", action="store_true", help="py-spy each verify walk")
    ap.add_argument("--workdir", type=Path, help="temporary base (default: bench/.work)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the workdir and server")
    args = ap.parse_args(argv)
    args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    args.batches = [int(b) for b in args.batches.split(",")]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    base = args.workdir or ROOT / "bench" / ".work"
    base.mkdir(parents=True, exist_ok=True)
    args.workdir_path = Path(tempfile.mkdtemp(prefix="audit-", dir=base))
    args.workdir_path.chmod(0o711)  # PostgreSQL runs as `postgres` under it when we are root
    say(f"bench/audit.py: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, Python "
        f"{platform.python_version()}, workdir {args.workdir_path}")

    lim: dict[str, float] = {}
    total_bytes = 0
    if "verify" in args.parts:
        total_bytes, docs = document_bytes(args.events, args.seed)
        lim = limit_part(total_bytes, docs, args.events)
        say(f"limit: {args.events:,} events = {total_bytes / 1e6:,.0f} MB of canonical JSON "
            f"({total_bytes / args.events:.0f} B each); hashlib.sha256 one stream "
            f"{lim['stream_s']:.2f} s ({total_bytes / lim['stream_s'] / 1e6:.0f} MB/s), "
            f"one hash per event {lim['per_event_s']:.2f} s")
        del docs
    results: list[dict[str, Any]] = []
    pg = None
    try:
        for name in backends:
            if name == "sqlite":
                url = f"sqlite:///{args.workdir_path / 'append.db'}"
            else:
                t = time.perf_counter()
                pg = load_services().start_postgres(base_dir=args.workdir_path, durable=True)
                say(f"PostgreSQL up in {time.perf_counter() - t:.1f} s (durable: fsync on)")
                url = pg.database_url
            results.append(run_backend(name, url, args, lim, total_bytes))
    finally:
        if pg is not None and not args.keep:
            with contextlib.suppress(Exception):
                pg.stop()
        if not args.keep:
            shutil.rmtree(args.workdir_path, ignore_errors=True)

    say("\nRESULTS")
    say(f"{'figure':58} | {'sqlite':>14} | {'postgresql':>14}")
    say("-" * 94)
    by = {r["backend"]: r for r in results}

    def row(label: str, fn: Any) -> None:
        cells = []
        for b in ("sqlite", "postgresql"):
            try:
                cells.append(fn(by[b]))
            except (KeyError, IndexError):
                cells.append("-")
        say(f"{label:58} | {cells[0]:>14} | {cells[1]:>14}")

    row("append: events/s, one event per committed transaction",
        lambda r: f"{r['append']['write_eps']:,.0f}")
    row("append: events/s linked by the sequencer (batch 1000)",
        lambda r: f"{r['append']['link_eps']:,.0f}")
    row("request transaction without audit row, median ms",
        lambda r: f"{r['latency']['plain_ms']:.3f}")
    row("request transaction with one audit row, median ms",
        lambda r: f"{r['latency']['audited_ms']:.3f}")
    row("ADDED by the audit row: median of pair differences, ms",
        lambda r: f"{r['latency']['added_ms']:.3f}")
    row("  added, 90th percentile of pair differences, ms",
        lambda r: f"{r['latency']['added_p90_ms']:.3f}")
    row("  record() + flush inside the transaction, median ms",
        lambda r: f"{r['latency']['record_flush_ms']:.3f}")
    row("  record() + flush, 99th percentile, ms",
        lambda r: f"{r['latency']['record_flush_p99_ms']:.3f}")
    row("load the generated chain, s", lambda r: f"{r['load_s']:.0f}")
    for k, b in enumerate(args.batches):
        row(f"verify {args.events:,} events, batch {b}: s (fastest of {args.repeats})",
            lambda r, k=k: f"{r['verify'][k]['s']:.1f}")
        row("  events/s", lambda r, k=k: f"{r['verify'][k]['eps']:,.0f}")
        row("  x limit (hashlib, one stream)",
            lambda r, k=k: f"{lim['stream_s'] / r['verify'][k]['s']:.2f}")
        row("  x limit (hashlib, one hash per event)",
            lambda r, k=k: f"{lim['per_event_s'] / r['verify'][k]['s']:.2f}")
        row("  CPU of that walk (its threads, all cores), s",
            lambda r, k=k: f"{r['verify'][k]['cpu_s']:.1f}")
        row("  read from storage during that walk (not in page cache)",
            lambda r, k=k: mb(r["verify"][k]["storage_read"]))
        row("  peak RSS of the verifying process (threads included)",
            lambda r, k=k: mb(r['verify'][k]['rss']))
        row("  peak RSS of the largest child process so far",
            lambda r, k=k: mb(r['verify'][k].get('child_rss', 0)))
    row("floor, stored documents: server sha256, parallel scan, s",
        lambda r: f"{r['floor']['server_sha256_s']:.2f}")
    row("  x limit (hashlib, one stream)",
        lambda r: f"{lim['stream_s'] / r['floor']['server_sha256_s']:.2f}")
    row("  the same scan without the hash, s", lambda r: f"{r['floor']['scan_s']:.2f}")
    row("  the documents COPY'd out to this process, one stream, s",
        lambda r: f"{r['floor']['copy_out_s']:.2f}")
    if lim:
        say(f"limit: hashlib.sha256 over {total_bytes / 1e6:,.0f} MB: one stream "
            f"{lim['stream_s']:.2f} s, one hash per event {lim['per_event_s']:.2f} s; "
            f"target verify >= 0.5 x stream limit = <= {2 * lim['stream_s']:.1f} s")
    peak = proc_status(os.getpid(), "VmHWM")
    say(f"peak RSS of this process over the run: {mb(peak)} (reset per figure)")
    if args.json:
        args.json.write_text(json.dumps({"limit": lim, "bytes": total_bytes,
                                         "results": results}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
