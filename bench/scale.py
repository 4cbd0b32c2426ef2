"""Scale-out benchmark: the catalogue at tens of millions of rows in PostgreSQL, ingest into
SeaweedFS through two `locker serve` processes, and the arithmetic for the reference force.

    .venv/bin/python bench/scale.py                         # everything, 10,000,000 recordings
    .venv/bin/python bench/scale.py --rows 200000 --runs 30 --page-runs 10 --warmup 3 \
        --row-seconds 10 --files 2 --file-size 64MiB       # quick: about a minute
    .venv/bin/python bench/scale.py --parts catalogue --rows 1000000
    .venv/bin/python bench/scale.py --parts ingest --files 8 --file-size 256MiB
    .venv/bin/python bench/scale.py --parts arithmetic --ingest-mbps 33   # sums only

Not part of `make test`. Every figure is printed beside the limit it is measured against.
Figures and findings: bench/SCALE.md.

1. Catalogue: PostgreSQL 15 from tests/services.py (temporary directory, loopback), tuned as a
   small production server would be (printed), migrated with `evidence_locker.db.upgrade`, then
   the fleet register of the reference force (41 commands, 700 units, 25,000 officers, 22,000
   devices, 1,200 docks) and --rows recordings at --per-day a day, generated inside PostgreSQL
   (`INSERT ... SELECT generate_series`, one day per batch, inserted in receipt order as a live
   system would), with 1-3 clips each plus the sidecar as `recording_files` and their `blobs`.
   Indexes and constraints are dropped for the load and rebuilt from the migrations' own
   definitions afterwards, then VACUUM ANALYZE. Then `catalogue.queries.search()` exactly as the
   API calls it (limit 50), --runs times per row with random parameters, for a
   professional-standards principal (sees all), a supervisor (a unit, plus their own) and an
   evidence officer (a borough command): p50/p95/max against --target-ms (a row stops after
   --row-seconds once it has --min-runs runs), and EXPLAIN (ANALYZE, BUFFERS) of every
   statement of the slowest rows' slowest runs. Untimed, search()'s pages are checked against
   the visibility rule written as a plain WHERE (--compare cases per row; the reference is slow
   at scale, so it runs under a statement_timeout and timeouts are counted apart). Then the
   page as GET /api/v1/recordings builds it: `queries.search_recorded()` (search, the page's
   officers and units, summary() of each row, the audit row, flushed and rolled back).
2. Ingest: SeaweedFS from tests/services.py, an Object Lock bucket with the least-privilege
   policy; the limit is the same bytes written by boto3 (8 MiB multipart, SHA-256 part checksums,
   the ingest credential), measured before and after; then two `locker serve --no-workers`
   processes on one fresh PostgreSQL database take --files uploads at once over tus (half each,
   8 MiB PATCHes, the last 204 = durable and verified), and one more through one process alone.
3. The reference force: ingest processes for a day's footage in the overnight window and at the
   shift-change peak at the measured per-process rate, and catalogue growth per year.

MB = 10^6 bytes. Everything runs on this machine's cores at once (client, servers, SeaweedFS,
PostgreSQL): the per-process rates are floors for dedicated nodes; CPU seconds per GB are printed
so that nodes can be sized by cores too.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import math
import mmap
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urljoin, urlsplit

from benchlib import cpu_seconds, load_services, load_test_module, parse_size, proc_status

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024
MB = 1_000_000
TUS = "1.0.0"

# --- the reference force (DESIGN.md "Storage and scale"; recheck the public figures) -----------
CAMERAS_DOCKED_PER_DAY = 9_000
HOURS_RECORDED_PER_CAMERA = 1.5
GB_PER_HOUR = (1.5, 3.0)
RECORDINGS_PER_DAY = 220_000
DOCK_MBIT_PER_CAMERA = 25
RETENTION_DAYS = 31

BOROUGHS = 32
SPECIALIST_COMMANDS = ("ROADS", "TSG", "FIREARMS", "DOGS", "MARINE", "TRANSPORT", "PROTECT",
                       "CUSTODY")
SPECIALIST_UNITS = 60
# Per borough: (kind of team, how many, officers each, recordings per officer relative to response)
BOROUGH_TEAMS = (("RESP", 5, 60, 1.0), ("NBH", 12, 25, 0.45), ("CID", 3, 30, 0.12))
SPECIALIST_TEAM = ("TEAM", 35, 0.6)
OFFICERS = 25_000
DEVICES = 22_000
PERSONAL_DEVICES = 18_000
DOCKS = 1_200
#: Recordings flagged as evidence (a review category: no deadline until a decision); their
#: crime references are shared by about three recordings each.
FLAGGED = 0.03
# Share of recordings started in each hour of the day (UTC), evening peak, quiet small hours.
HOURLY = (3.5, 2.6, 2.0, 1.5, 1.2, 1.2, 1.8, 2.8, 3.6, 3.9, 4.1, 4.3,
          4.5, 4.6, 4.8, 5.0, 5.3, 5.6, 5.9, 6.1, 6.2, 6.0, 5.2, 4.3)
WEEKDAY = (0.95, 0.95, 0.97, 1.0, 1.08, 1.1, 0.95)  # Monday first


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1000
    return f"{n:.1f} PB"


def table(headers: list[str], rows: list[list[Any]], right: set[int] | None = None) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    right = right or set()

    def line(values: list[str]) -> str:
        padded = (v.rjust(w) if i in right else v.ljust(w)
                  for i, (v, w) in enumerate(zip(values, widths, strict=True)))
        return "| " + " | ".join(padded) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2))
                         for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


def say(*parts: Any) -> None:
    print(*parts, flush=True)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# =============================================================================================
# 1. The catalogue
# =============================================================================================

PG_SETTINGS = {
    # A catalogue server with a few GB of RAM to spare; fsync is off only because tests/services
    # starts PostgreSQL for tests (it does not change read timings).
    "shared_buffers": "4GB",
    "effective_cache_size": "12GB",
    "work_mem": "32MB",
    "maintenance_work_mem": "1GB",
    "random_page_cost": "1.1",
    "effective_io_concurrency": "200",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "max_parallel_maintenance_workers": "2",
    "wal_level": "minimal",
    "max_wal_senders": "0",
}


def tune_and_restart(services: ModuleType, pg: Any, settings: dict[str, str]) -> None:
    import psycopg

    with psycopg.connect(pg.conninfo, autocommit=True) as conn:
        for key, value in settings.items():
            conn.execute(f"ALTER SYSTEM SET {key} = '{value}'")
    # pg_ctl restart keeps the command-line options tests/services.py started it with.
    services._run_pg(pg.run_as, [str(pg.bin_dir / "pg_ctl"), "-D", str(pg.data_dir), "-l",
                                 str(pg.log), "-m", "fast", "-w", "-t", "120", "restart"],
                     timeout=180)


@dataclass
class Fleet:
    units: list[dict[str, Any]]
    officers: list[dict[str, Any]]
    devices: list[dict[str, Any]]
    docks: list[dict[str, Any]]

    def leaf_units(self) -> list[dict[str, Any]]:
        return [u for u in self.units if u["kind"] == "unit"]

    def commands(self) -> list[dict[str, Any]]:
        return [u for u in self.units if u["kind"] == "command"]


def make_fleet(rng: random.Random, now: dt.datetime) -> Fleet:
    units: list[dict[str, Any]] = [{"id": 1, "code": "FORCE", "name": "The Reference Force",
                                    "kind": "force", "parent_id": None, "path": "/FORCE/",
                                    "size": 0, "activity": 0.0}]
    unit_id = 1

    def add(code: str, name: str, kind: str, parent: dict[str, Any], size: int = 0,
            activity: float = 0.0) -> dict[str, Any]:
        nonlocal unit_id
        unit_id += 1
        u = {"id": unit_id, "code": code, "name": name, "kind": kind, "parent_id": parent["id"],
             "path": f"{parent['path']}{code}/", "size": size, "activity": activity,
             "command": parent if kind == "unit" else None}
        units.append(u)
        return u

    for b in range(1, BOROUGHS + 1):
        cmd = add(f"B{b:02d}", f"Borough {b:02d}", "command", units[0])
        for team, count, size, activity in BOROUGH_TEAMS:
            for n in range(1, count + 1):
                add(f"B{b:02d}-{team}{n:02d}", f"Borough {b:02d} {team} {n}", "unit", cmd,
                    size, activity)
    specialist_cmds = [add(f"SC-{c}", f"Specialist {c.title()}", "command", units[0])
                       for c in SPECIALIST_COMMANDS]
    team, size, activity = SPECIALIST_TEAM
    for n in range(SPECIALIST_UNITS):
        cmd = specialist_cmds[n % len(specialist_cmds)]
        add(f"{cmd['code']}-{team}{n // len(specialist_cmds) + 1:02d}",
            f"{cmd['name']} team {n // len(specialist_cmds) + 1}", "unit", cmd, size, activity)

    leaves = [u for u in units if u["kind"] == "unit"]
    weights = [u["size"] * rng.lognormvariate(0, 0.35) for u in leaves]
    officers: list[dict[str, Any]] = []
    for i in range(OFFICERS):
        u = rng.choices(leaves, weights)[0]
        active = rng.random() >= 0.02
        officers.append({"id": i + 1, "collar": f"{100000 + i}", "name": f"Officer {i + 1:05d}",
                         "unit": u, "active": active,
                         "activity": u["activity"] * rng.lognormvariate(0, 0.6) if active else 0,
                         "device_id": None})

    models = (("Axon Body 3", "1.4.2", 0.6), ("Axon Body 4", "2.1.0", 0.3),
              ("Motorola VB400", "7.3", 0.1))
    devices: list[dict[str, Any]] = []
    personal = rng.sample([o for o in officers if o["active"]], PERSONAL_DEVICES)
    commands = [u for u in units if u["kind"] == "command"]
    pool_of: dict[int, list[int]] = {c["id"]: [] for c in commands}
    for i in range(DEVICES):
        model, firmware, _ = rng.choices(models, [m[2] for m in models])[0]
        d: dict[str, Any] = {"id": i + 1, "serial": f"BWV{2000000 + i}", "model": model,
                             "firmware": firmware, "issued_to": None,
                             "mount": "head" if rng.random() < 0.05 else "body"}
        if i < PERSONAL_DEVICES:
            d["issued_to"] = personal[i]["id"]
            personal[i]["device_id"] = d["id"]
        else:
            cmd = commands[(i - PERSONAL_DEVICES) % len(commands)]
            pool_of[cmd["id"]].append(d["id"])
        devices.append(d)
    for o in officers:
        o["pool"] = pool_of[o["unit"]["command"]["id"]]

    docks = [{"id": i + 1, "name": f"dock-{i + 1:04d}",
              "station": f"{commands[i % len(commands)]['name']} station {i // len(commands) + 1}",
              "bays": 8, "created_at": now - dt.timedelta(days=400)} for i in range(DOCKS)]
    return Fleet(units, officers, devices, docks)


def scalar(cur: Any, sql: str) -> Any:
    cur.execute(sql)
    row = cur.fetchone()
    assert row is not None
    return row[0]


def copy_rows(cur: Any, sql: str, rows: Iterator[tuple[Any, ...]] | list[tuple[Any, ...]]) -> None:
    with cur.copy(sql) as cp:
        for row in rows:
            cp.write_row(row)


def load_fleet(conn: Any, fleet: Fleet, now: dt.datetime) -> None:
    with conn.cursor() as cur:
        copy_rows(cur, "COPY units (id, code, name, kind, parent_id, path) FROM STDIN",
                  [(u["id"], u["code"], u["name"], u["kind"], u["parent_id"], u["path"])
                   for u in fleet.units])
        copy_rows(cur, "COPY officers (id, collar, name, unit_id, active) FROM STDIN",
                  [(o["id"], o["collar"], o["name"], o["unit"]["id"], o["active"])
                   for o in fleet.officers])
        copy_rows(cur, "COPY devices (id, serial, model, mount, firmware, status, needs_review, "
                  "issued_to_officer_id) FROM STDIN",
                  [(d["id"], d["serial"], d["model"], d["mount"], d["firmware"], "active", False,
                    d["issued_to"]) for d in fleet.devices])
        copy_rows(cur, "COPY docks (id, name, station, bays, active, created_at) FROM STDIN",
                  [(d["id"], d["name"], d["station"], d["bays"], True, d["created_at"])
                   for d in fleet.docks])
        cur.execute("INSERT INTO retention_categories (id, name, version, kind, days, current, "
                    "applied_at) VALUES (1, 'crime - evidential', 1, 'review', 2190, true, %s)",
                    (now,))
        for t in ("units", "officers", "devices", "docks"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                        f"(SELECT max(id) FROM {t}))")
        cur.execute("""CREATE UNLOGGED TABLE bench_officer (
            officer_id int PRIMARY KEY, unit_id int, collar text, rate float8,
            device_id int, pool int[])""")
        copy_rows(cur, "COPY bench_officer FROM STDIN",
                  [(o["id"], o["unit"]["id"], o["collar"], o["rate"], o["device_id"], o["pool"])
                   for o in fleet.officers if o["rate"] > 0])
    conn.commit()


BIG_TABLES = ("recordings", "recording_files", "blobs")


@dataclass
class Ddl:
    fks: list[tuple[str, str, str]] = field(default_factory=list)  # table, name, definition
    keys: list[tuple[str, str, str]] = field(default_factory=list)
    indexes: list[tuple[str, str]] = field(default_factory=list)  # name, CREATE INDEX ...


def capture_and_drop(conn: Any) -> Ddl:
    """Every index and constraint on the big tables (and foreign keys into them) as the
    migrations made them, then dropped: rebuilt after the load, from these very definitions."""
    ddl = Ddl()
    big = "ARRAY[" + ",".join(f"'{t}'::regclass" for t in BIG_TABLES) + "]"
    with conn.cursor() as cur:
        cur.execute(f"""SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid),
                               contype FROM pg_constraint
                        WHERE (conrelid = ANY({big}) OR confrelid = ANY({big}))
                          AND contype IN ('p', 'u', 'f') ORDER BY contype DESC, conname""")
        for rel, name, definition, kind in cur.fetchall():
            (ddl.fks if kind == "f" else ddl.keys).append((rel, name, definition))
        cur.execute(f"""SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
                        FROM pg_index i WHERE i.indrelid = ANY({big}) AND NOT EXISTS (
                          SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid
                          AND c.contype IN ('p', 'u', 'x'))""")
        ddl.indexes = list(cur.fetchall())
        for rel, name, _ in ddl.fks + ddl.keys:
            cur.execute(f'ALTER TABLE {rel} DROP CONSTRAINT "{name}"')
        for name, _ in ddl.indexes:
            cur.execute(f"DROP INDEX {name}")
    conn.commit()
    return ddl


def rebuild(conn: Any, ddl: Ddl, log: Callable[[str], None]) -> None:
    with conn.cursor() as cur:
        cur.execute("SET maintenance_work_mem = '1GB'")
        cur.execute("SET max_parallel_maintenance_workers = 2")
        for rel, name, definition in ddl.keys:
            t = time.perf_counter()
            cur.execute(f'ALTER TABLE {rel} ADD CONSTRAINT "{name}" {definition}')
            conn.commit()
            log(f"  {name}: {time.perf_counter() - t:.1f} s")
        for name, definition in ddl.indexes:
            t = time.perf_counter()
            cur.execute(definition)
            conn.commit()
            log(f"  {name}: {time.perf_counter() - t:.1f} s")
        for rel, name, definition in ddl.fks:
            t = time.perf_counter()
            cur.execute(f'ALTER TABLE {rel} ADD CONSTRAINT "{name}" {definition} NOT VALID')
            cur.execute(f'ALTER TABLE {rel} VALIDATE CONSTRAINT "{name}"')
            conn.commit()
            log(f"  {name} (validated): {time.perf_counter() - t:.1f} s")


def hour_bounds() -> str:
    total = sum(HOURLY)
    acc, bounds = 0.0, []
    for w in HOURLY:
        bounds.append(acc / total)
        acc += w
    return "ARRAY[" + ",".join(f"{b:.6f}" for b in bounds) + "]::float8[]"


def day_sql(day_start: dt.datetime, scale: float, last_day: bool, sidecars: bool,
            per_day: int = 0) -> list[str]:
    """One day of recordings, files, blobs and evidence flags, generated in PostgreSQL."""
    day = day_start.isoformat()
    flag_groups = max(1, int(per_day * scale * FLAGGED / 3))
    incomplete = 0.01 if last_day else 0.0005
    normal = "sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())"
    stmts = [
        "DROP TABLE IF EXISTS bench_day",
        f"""CREATE UNLOGGED TABLE bench_day AS
        SELECT s.*, d.serial, d.model, d.firmware,
               s.started + (s.dock_delay_h * interval '1 hour') AS received,
               CASE WHEN s.clock_known THEN s.started
                    ELSE s.started + (s.dock_delay_h * interval '1 hour') END AS sort_at
        FROM (
          SELECT gen_random_uuid() AS id, o.officer_id, o.unit_id, o.collar, g AS seq,
                 CASE WHEN o.device_id IS NOT NULL AND random() < 0.97 THEN o.device_id
                      ELSE o.pool[1 + floor(random() * cardinality(o.pool))::int] END AS device_id,
                 timestamptz '{day}' + ((width_bucket(random(), {hour_bounds()}) - 1 + random())
                                        * interval '1 hour') AS started,
                 greatest(10, least(10800, exp(ln(240) + 0.9 * {normal}))) AS duration_s,
                 0.5 + random() * 10 AS dock_delay_h,
                 random() >= 0.003 AS clock_known,
                 1 + (r.c > 0.6)::int + (r.c > 0.88)::int AS nclips,
                 (1.5 + 1.5 * random()) * 1e9 / 3600 AS bytes_per_s,
                 1 + floor(random() * {DOCKS})::int AS dock_id,
                 random() < {incomplete} AS incomplete,
                 random() < {FLAGGED} AS flagged
          FROM bench_officer o
          CROSS JOIN LATERAL generate_series(
              1, floor(o.rate * {scale} * (((o.officer_id + {day_start.toordinal()}) % 8) < 4)::int
                       + random())::int) g
          CROSS JOIN LATERAL (SELECT random() + g * 0 AS c) r
        ) s JOIN devices d ON d.id = s.device_id""",
        # The files: clips 1..n, and the sidecar as index 0 in this generator.
        "DROP TABLE IF EXISTS bench_day_files",
        f"""CREATE UNLOGGED TABLE bench_day_files AS
        SELECT b.id AS recording_id, k,
               CASE WHEN k = 0 THEN 'sidecar' ELSE 'clip' END AS kind,
               CASE WHEN k = 0 THEN 1 ELSE k END AS idx,
               encode(sha256(uuid_send(b.id) || int2send(k::int2)), 'hex') AS sha256,
               CASE WHEN k = 0 THEN 1800 + floor(random() * 900)::int
                    ELSE (b.duration_s * b.bytes_per_s / b.nclips)::bigint END AS size,
               CASE WHEN k = 0 THEN b.serial || '_' || to_char(b.started, 'YYYYMMDD_HH24MISS')
                                    || '_' || b.seq || '.json'
                    ELSE b.serial || '_' || to_char(b.started, 'YYYYMMDD_HH24MISS') || '_'
                         || b.seq || '_' || lpad(k::text, 2, '0') || '.mp4' END AS filename,
               b.received + (k * interval '40 seconds') AS file_received,
               b.duration_s / b.nclips AS clip_seconds, b.started, b.dock_id, b.received,
               b.sort_at
        FROM bench_day b CROSS JOIN LATERAL generate_series({0 if sidecars else 1}, b.nclips) k""",
        """INSERT INTO blobs (sha256, size, stored_at, fixity_state)
        SELECT sha256, size, file_received, 'unchecked' FROM bench_day_files
        ORDER BY file_received""",
        """INSERT INTO recordings (id, device_serial, camera_recording_id, device_id, officer_id,
            unit_id, reported_officer, attribution_issues, camera_started_at, camera_timezone,
            started_at, stopped_at, pre_event_seconds, trigger_on_reason, trigger_off_reason,
            clock_drift_seconds, clock_suspect, clock_note, received_at, sort_at, completed_at,
            state, sidecar_state, expected_files, model, firmware, bookmarks, lat, lon,
            delete_after, retention_state)
        SELECT b.id, b.serial, to_char(b.started, 'YYYYMMDD-HH24MISS') || '-' || b.officer_id
                                || '-' || b.seq,
               b.device_id, b.officer_id, b.unit_id, b.collar, '',
               to_char(b.started AT TIME ZONE 'Europe/London', 'YYYY-MM-DD"T"HH24:MI:SS'),
               'Europe/London',
               CASE WHEN b.clock_known THEN b.started END,
               CASE WHEN b.clock_known THEN b.started + b.duration_s * interval '1 second' END,
               30,
               (ARRAY['button','button','button','holster','taser','vehicle'])[
                   1 + floor(random() * 6)::int],
               'button',
               CASE WHEN b.clock_known THEN round((random() * 4 - 2)::numeric, 2) END,
               NOT b.clock_known,
               CASE WHEN NOT b.clock_known THEN 'camera clock unset; receipt time used' END,
               b.received, b.sort_at,
               CASE WHEN NOT b.incomplete THEN b.received + interval '3 minutes' END,
               CASE WHEN b.incomplete THEN 'incomplete' ELSE 'complete' END,
               CASE WHEN b.incomplete THEN 'missing' ELSE 'parsed' END,
               e.expected_files,
               b.model, b.firmware,
               CASE WHEN random() < 0.15 THEN '[{"at": 12.5, "label": "bookmark"}]'
                    ELSE '[]' END,
               51.28 + random() * 0.41, -0.51 + random() * 0.84,
               -- Unflagged: the later of recorded + 31 days and received + 7 (lifecycle/rules);
               -- flagged for review: kept until a decision (no deadline).
               CASE WHEN NOT b.flagged THEN greatest(b.sort_at + interval '31 days',
                                                     b.received + interval '7 days') END,
               'live'
        FROM bench_day b JOIN (
            SELECT recording_id, json_agg(json_build_object(
                       'kind', kind, 'index', idx, 'filename', filename, 'sha256', sha256,
                       'size', size) ORDER BY k = 0, k)::text AS expected_files
            FROM bench_day_files GROUP BY recording_id) e ON e.recording_id = b.id
        ORDER BY b.received""",
        """INSERT INTO recording_files (recording_id, kind, index, filename, sha256, size,
            received_at, upload_id, dock_id, conflict, media_state, duration_seconds,
            video_codec, audio_codec, width, height, frame_rate, media_created_at, poster_sha256)
        SELECT f.recording_id, f.kind, f.idx, f.filename, f.sha256, f.size, f.file_received,
               md5(f.sha256), f.dock_id, false,
               CASE WHEN f.kind = 'clip' THEN 'ready' ELSE 'n/a' END,
               CASE WHEN f.kind = 'clip' THEN f.clip_seconds END,
               CASE WHEN f.kind = 'clip' THEN 'h264' END,
               CASE WHEN f.kind = 'clip' THEN 'aac' END,
               CASE WHEN f.kind = 'clip' THEN 1920 END,
               CASE WHEN f.kind = 'clip' THEN 1080 END,
               CASE WHEN f.kind = 'clip' THEN 30.0 END,
               CASE WHEN f.kind = 'clip' THEN f.started END,
               CASE WHEN f.kind = 'clip' THEN encode(sha256(decode(f.sha256, 'hex')), 'hex') END
        FROM bench_day_files f ORDER BY f.file_received""",
        # Flagged recordings share crime references, about three recordings to a reference.
        f"""INSERT INTO evidence_flags (recording_id, category_id, reference, note, flagged_at,
            review_due_at)
        SELECT b.id, 1, 'CR/' || to_char(timestamptz '{day}', 'YYMMDD') || '/'
                        || floor(random() * {flag_groups})::int,
               '', b.received + interval '1 day', b.sort_at + interval '6 years'
        FROM bench_day b WHERE b.flagged""",
    ]
    return stmts


def relation_sizes(conn: Any) -> list[tuple[str, str, int, int, int, int]]:
    out = []
    with conn.cursor() as cur:
        for t in BIG_TABLES + ("officers", "devices", "units"):
            cur.execute(f"""SELECT (SELECT reltuples::bigint FROM pg_class
                                    WHERE oid = '{t}'::regclass),
                              pg_table_size('{t}'), pg_indexes_size('{t}'),
                              pg_total_relation_size('{t}')""")
            rows, heap, idx, total = cur.fetchone()
            out.append((t, "table", rows, heap, idx, total))
            cur.execute(f"""SELECT c.relname, pg_relation_size(c.oid) FROM pg_index i
                            JOIN pg_class c ON c.oid = i.indexrelid
                            WHERE i.indrelid = '{t}'::regclass ORDER BY c.relname""")
            if t in BIG_TABLES:
                for name, size in cur.fetchall():
                    out.append((name, "index", 0, 0, size, size))
    return out


@dataclass
class Loaded:
    recordings: int
    files: int
    days: int
    start: dt.datetime
    end: dt.datetime
    seconds: dict[str, float]
    sizes: list[tuple[str, str, int, int, int, int]]


def load_catalogue(pg: Any, fleet: Fleet, rows: int, per_day: int, sidecars: bool,
                   now: dt.datetime) -> Loaded:
    import psycopg

    from evidence_locker.db import upgrade

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    upgrade(pg.database_url)
    seconds["migrate"] = time.perf_counter() - t0

    # Officer rates: recordings per working day, so that the force makes `per_day` a day.
    working_share = 0.5  # 4 on, 4 off
    total_activity = sum(o["activity"] for o in fleet.officers)
    for o in fleet.officers:
        o["rate"] = o["activity"] / total_activity * per_day / working_share

    days = max(1, math.ceil(rows / per_day))
    end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - dt.timedelta(days=days)
    with psycopg.connect(pg.conninfo) as conn:
        t = time.perf_counter()
        load_fleet(conn, fleet, now)
        seconds["fleet register"] = time.perf_counter() - t
        ddl = capture_and_drop(conn)
        say(f"dropped for the load: {len(ddl.keys)} keys, {len(ddl.indexes)} indexes, "
            f"{len(ddl.fks)} foreign keys")
        t = time.perf_counter()
        loaded = 0
        with conn.cursor() as cur:
            cur.execute("SET synchronous_commit = off")
            cur.execute("SET work_mem = '256MB'")
            for d in range(days):
                day_start = start + dt.timedelta(days=d)
                factor = WEEKDAY[day_start.weekday()]
                remaining = rows - loaded
                scale = factor if d < days - 1 else min(factor, remaining / per_day)
                if remaining <= 0:
                    break
                td = time.perf_counter()
                for stmt in day_sql(day_start, scale, d == days - 1, sidecars, per_day):
                    cur.execute(stmt)
                n = scalar(cur, "SELECT count(*) FROM bench_day")
                conn.commit()
                loaded += n
                if d % 5 == 0 or d == days - 1:
                    say(f"  day {d + 1}/{days} {day_start:%Y-%m-%d}: {n:,} recordings in "
                        f"{time.perf_counter() - td:.1f} s; {loaded:,} so far, "
                        f"{time.perf_counter() - t:.0f} s")
            cur.execute("DROP TABLE IF EXISTS bench_day, bench_day_files")
        conn.commit()
        seconds["generate + insert"] = time.perf_counter() - t
        say("rebuilding keys and indexes (migration definitions):")
        t = time.perf_counter()
        rebuild(conn, ddl, lambda s: say(s))
        seconds["keys + indexes + FKs"] = time.perf_counter() - t
        conn.autocommit = True
        t = time.perf_counter()
        for tbl in ("recordings", "recording_files", "blobs", "units", "officers", "devices",
                    "docks", "evidence_flags"):
            conn.execute(f"VACUUM (ANALYZE) {tbl}")
        seconds["VACUUM ANALYZE"] = time.perf_counter() - t
        with conn.cursor() as cur:
            n_rec = scalar(cur, "SELECT count(*) FROM recordings")
            n_files = scalar(cur, "SELECT count(*) FROM recording_files")
        sizes = relation_sizes(conn)
    return Loaded(n_rec, n_files, days, start, end, seconds, sizes)


# --- searching ---------------------------------------------------------------------------------


@dataclass
class Case:
    query: str
    who: str
    filters: Any
    principal: Any
    cursor: str | None = None
    pages_before: int = 0


def pick_principal(kind: str, rng: random.Random, fleet: Fleet,
                   officers_by_unit: dict[int, list[dict[str, Any]]]) -> tuple[Any, list[Any]]:
    """A principal of `kind` and the leaf units it may see."""
    from evidence_locker.accounts.roles import Principal, Role

    leaves = fleet.leaf_units()
    if kind == "professional-standards":
        return Principal(user_id=1, username="ps", role=Role.PROFESSIONAL_STANDARDS), leaves
    if kind == "supervisor":
        unit = rng.choice([u for u in leaves if officers_by_unit.get(u["id"])])
        me = rng.choice(officers_by_unit[unit["id"]])
        return Principal(user_id=2, username="sup", role=Role.SUPERVISOR, unit_path=unit["path"],
                         officer_id=me["id"]), [unit]
    cmd = rng.choice([c for c in fleet.commands() if c["code"].startswith("B")])
    scope = [u for u in leaves if u["path"].startswith(cmd["path"])]
    return Principal(user_id=3, username="eo", role=Role.EVIDENCE_OFFICER,
                     unit_path=cmd["path"], officer_id=None), scope


QUERIES = ("officer + month", "unit + day", "borough + day", "device + week", "sha256",
           "case reference", "due in 7 days", "first page, no filter",
           "page 20 (keyset), no filter")
PRINCIPALS = ("professional-standards", "supervisor", "evidence-officer")
# The API page is timed on these rows' cases.
API_QUERIES = ("first page, no filter", "page 20 (keyset), no filter")
def make_case(query: str, who: str, rng: random.Random, fleet: Fleet, loaded: Loaded,
              officers_by_unit: dict[int, list[dict[str, Any]]], session: Any) -> Case:
    from sqlalchemy import text

    from evidence_locker.catalogue.queries import Filters

    principal, scope = pick_principal(who, rng, fleet, officers_by_unit)
    scoped_officers = [o for u in scope for o in officers_by_unit.get(u["id"], [])]
    span_days = (loaded.end - loaded.start).days

    def window(days: int) -> tuple[dt.datetime, dt.datetime]:
        if span_days <= days:
            return loaded.start, loaded.end
        offset = rng.randrange(0, span_days - days + 1)
        since = loaded.start + dt.timedelta(days=offset)
        return since, since + dt.timedelta(days=days)

    if query == "officer + month":
        o = rng.choice(scoped_officers)
        since, until = window(30)
        return Case(query, who, Filters(officer=o["collar"], since=since, until=until), principal)
    if query == "unit + day":
        u = rng.choice(scope)
        since, until = window(1)
        return Case(query, who, Filters(unit=u["code"], since=since, until=until), principal)
    if query == "borough + day":
        cmd = rng.choice(scope)["command"]
        since, until = window(1)
        return Case(query, who, Filters(unit=cmd["code"], since=since, until=until), principal)
    if query == "device + week":
        o = rng.choice(scoped_officers)
        dev = o["device_id"] or rng.choice(o["pool"])
        since, until = window(7)
        return Case(query, who, Filters(device=fleet.devices[dev - 1]["serial"], since=since,
                                        until=until), principal)
    if query == "sha256":
        for _ in range(200):
            o = rng.choice(scoped_officers)
            sha = session.execute(text(
                "SELECT f.sha256 FROM recordings r JOIN recording_files f "
                "ON f.recording_id = r.id WHERE r.officer_id = :o AND f.kind = 'clip' "
                "ORDER BY random() LIMIT 1"), {"o": o["id"]}).scalar()
            if sha:
                return Case(query, who, Filters(sha256=sha), principal)
        raise RuntimeError("no clip found for the sha256 search")
    if query == "case reference":
        # A small unit may have no flag yet: then another principal of the same kind.
        for _ in range(50):
            ref = session.execute(text(
                "SELECT f.reference FROM evidence_flags f JOIN recordings r "
                "ON r.id = f.recording_id WHERE r.unit_id = ANY(:units) "
                "ORDER BY random() LIMIT 1"), {"units": [u["id"] for u in scope]}).scalar()
            if ref is not None:
                return Case(query, who, Filters(reference=ref), principal)
            principal, scope = pick_principal(who, rng, fleet, officers_by_unit)
        raise RuntimeError("no flagged recording in scope for the reference search")
    if query == "due in 7 days":
        # What the /retention/due page asks: soonest due first, a week ahead of the catalogue's
        # "now" (for a catalogue younger than 25 days, a week ahead of 25 days after its first
        # day, so that its oldest day of footage is due and the rows have something to find).
        now = max(loaded.end, loaded.start + dt.timedelta(days=25))
        return Case(query, who, Filters(due_before=now + dt.timedelta(days=7)), principal)
    if query == "first page, no filter":
        return Case(query, who, Filters(), principal)
    return Case(query, who, Filters(), principal, pages_before=19)


def reference_ids(session: Any, case: Case, limit: int = 50) -> list[Any]:
    """The page as the visibility rule reads written the plain way (`reference()` of
    tests/search_reference.py, which tests/catalogue/test_search_scope.py checks too), newest
    first by (sort_at, id), the pages before skipped with OFFSET rather than the cursor. Slow at
    scale (the visibility OR is a filter, not an index condition); used only to check search()'s
    answers, untimed."""
    from sqlalchemy import select

    from evidence_locker.catalogue.models import Recording

    reference = load_test_module("search_reference").reference
    stmt = reference(select(Recording.id), case.principal, session, case.filters)
    return list(session.scalars(stmt.offset(50 * case.pages_before).limit(limit)))


class Capture:
    """The SQL statements the ORM sends, to EXPLAIN them with their own parameters."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.engine = engine
        self.statements: list[tuple[str, Any]] = []
        self.on = False
        event.listen(engine, "before_cursor_execute", self._hook)

    def _hook(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        if self.on:
            self.statements.append((statement, parameters))

    def close(self) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._hook)


@dataclass
class Result:
    query: str
    who: str
    times_ms: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    worst: Case | None = None
    worst_ms: float = 0.0
    planned: int = 0
    compared: int = 0
    mismatches: int = 0
    timeouts: int = 0
    shallow: int = 0  # page-20 cases whose scope holds fewer than 1,000 rows: first page instead
    load: str = ""
    load_1min: float | None = None  # at the end of the timed runs
    seconds: float = 0.0

    def pct(self, q: float) -> float:
        s = sorted(self.times_ms)
        return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def find_cursor(factory: Any, case: Case) -> None:
    """The keyset cursor after `pages_before` pages of 50: the cursor of one page of
    50 x pages_before rows is the same (rows are ordered by the unique (sort_at, id)), and
    search() is bounded (at most (units in scope + 1) x 951 index entries). A scope with fewer
    rows than that has no page 20: the case becomes a first page (counted as `shallow`)."""
    from evidence_locker.catalogue.queries import search

    if case.pages_before == 0 or case.cursor is not None:
        return
    with factory() as session:
        _, case.cursor = search(session, principal=case.principal, filters=case.filters,
                                limit=50 * case.pages_before)
        session.rollback()
    if case.cursor is None:
        case.pages_before = 0


def run_case(factory: Any, case: Case) -> tuple[float, list[Any]]:
    from evidence_locker.catalogue.queries import search

    with factory() as session:
        t = time.perf_counter()
        rows, _ = search(session, principal=case.principal, filters=case.filters, limit=50,
                         cursor=case.cursor)
        elapsed = (time.perf_counter() - t) * 1000
        ids = [r.id for r in rows]
        session.rollback()
    return elapsed, ids


def check_case(factory: Any, case: Case, timeout_s: float) -> bool | None:
    """Whether search()'s page is the reference's (reference_ids), None if the reference ran
    past `timeout_s` (statement_timeout)."""
    import psycopg
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from evidence_locker.catalogue.queries import search

    with factory() as session:
        try:
            rows, _ = search(session, principal=case.principal, filters=case.filters, limit=50,
                             cursor=case.cursor)
            got = [r.id for r in rows]
            session.execute(text(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}"))
            want = reference_ids(session, case)
        except DBAPIError as exc:
            if isinstance(exc.orig, psycopg.errors.QueryCanceled):
                return None
            raise
        finally:
            session.rollback()
    return got == want


def api_page_ms(factory: Any, case: Case) -> tuple[float, int]:
    """One page as GET /api/v1/recordings builds it: queries.search_recorded() (search(), the
    page's officers and units in one query each, summary() of every row, the audit row), and
    the flush that sends the audit INSERT, as the API's commit would; then rolled back."""
    from evidence_locker.accounts.service import actor_for
    from evidence_locker.catalogue.queries import search_recorded
    from evidence_locker.clock import SystemClock

    actor = actor_for(case.principal, "127.0.0.1", "bench/scale.py")
    clock = SystemClock()
    with factory() as session:
        t = time.perf_counter()
        items, _ = search_recorded(session, clock=clock, principal=case.principal, actor=actor,
                                   filters=case.filters, limit=50, cursor=case.cursor,
                                   via="api")
        session.flush()
        elapsed = (time.perf_counter() - t) * 1000
        session.rollback()
    return elapsed, len(items)


def explain(engine: Any, factory: Any, case: Case) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement search() sends for `case`, in order: the
    scope and filter look-ups, the page's keys, the rows and their files."""
    from evidence_locker.catalogue.queries import search

    cap = Capture(engine)
    out = []
    try:
        with factory() as session:
            cap.on = True
            search(session, principal=case.principal, filters=case.filters, limit=50,
                   cursor=case.cursor)
            cap.on = False
            for n, (statement, params) in enumerate(cap.statements, start=1):
                result = session.connection().exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                # Long lines are the 50 ids of the page, as bind lists and ANY arrays: cut.
                plan = "\n".join(r[0] if len(r[0]) < 240 else r[0][:240] + "..."
                                 for r in result)
                listed = re.compile(r"%\((\w+?)_\d+\)s(::\w+)?(, %\(\1_\d+\)s(::\w+)?){2,}")
                short = listed.sub(lambda mt: f"%({mt.group(1)}_1)s, ...", statement)
                shown = {k: (v.isoformat() if isinstance(v, dt.datetime) else v)
                         for k, v in (params or {}).items()
                         if not re.fullmatch(r"\w+_\d+_\d+|primary_keys_\d+", k)
                         or k.endswith("_1")}
                shown = {k: (v if len(str(v)) < 200 else f"{str(v)[:200]}...")
                         for k, v in shown.items()}
                out.append(f"-- statement {n} of {len(cap.statements)}\n{short}\n"
                           f"-- parameters: {shown}\n{plan}")
            session.rollback()
    finally:
        cap.close()
    return "\n\n".join(out)


def wait_quiet(args: argparse.Namespace) -> None:
    """Other work on this small machine (someone's test suite) skews the figures: wait up to
    --quiet-wait seconds for the 1-minute load average to drop under --quiet-load."""
    deadline = time.monotonic() + args.quiet_wait
    while time.monotonic() < deadline:
        try:
            if float(Path("/proc/loadavg").read_text().split()[0]) < args.quiet_load:
                return
        except (OSError, ValueError):
            return
        time.sleep(2)


def measure(factory: Any, query: str, who: str, cases: list[Case],
            args: argparse.Namespace) -> Result:
    """Time search() on `cases` (the first --warmup not counted), then, untimed, check its
    answers against reference_ids() on the first --compare of them."""
    for case in cases:  # page 20: its cursor first (search(limit=950)), outside the budget
        find_cursor(factory, case)
    wait_quiet(args)
    res = Result(query, who, planned=len(cases) - args.warmup)
    load_before = loadavg()
    t = time.perf_counter()
    for i, case in enumerate(cases):
        elapsed = time.perf_counter() - t
        if i < args.warmup and elapsed > args.row_seconds / 3:
            continue  # a slow row: no more warming up
        if len(res.times_ms) >= args.min_runs and elapsed > args.row_seconds:
            break
        ms, ids = run_case(factory, case)
        if i < args.warmup:
            continue
        res.times_ms.append(ms)
        res.rows.append(len(ids))
        if ms >= res.worst_ms:
            res.worst_ms, res.worst = ms, case
    res.seconds = time.perf_counter() - t
    load_after = loadavg()
    res.load = f"{load_before} -> {load_after}"
    with contextlib.suppress(ValueError):
        res.load_1min = float(load_after.split()[0])
    timed = cases[args.warmup:][: len(res.times_ms)]
    res.shallow = sum(c.query.startswith("page 20") and c.pages_before == 0 for c in timed)
    tc = time.perf_counter()
    for case in timed[: args.compare]:
        if time.perf_counter() - tc > args.compare_seconds:
            break
        same = check_case(factory, case, args.compare_timeout)
        res.compared += same is not None
        res.timeouts += same is None
        res.mismatches += same is False
    cut = "" if len(res.times_ms) == res.planned else f" of {res.planned}, time budget"
    say(f"  {query:<28} {who:<23} p50 {res.pct(0.5):8.1f}  p95 {res.pct(0.95):8.1f}  max "
        f"{max(res.times_ms):8.1f} ms  ({len(res.times_ms)} runs{cut}, {res.seconds:.0f} s, "
        f"load {res.load}); checked {res.compared}, differ {res.mismatches}, reference timed "
        f"out {res.timeouts} ({time.perf_counter() - tc:.0f} s)"
        + (f"; {res.shallow} without a page 20" if res.shallow else ""))
    return res


@dataclass
class Measured:
    results: list[Result]
    api: dict[str, dict[str, list[float]]]
    plans: list[str]


def measure_searches(pg: Any, fleet: Fleet, loaded: Loaded, args: argparse.Namespace,
                     rng: random.Random) -> Measured:
    from evidence_locker.db import make_engine, make_session_factory

    engine = make_engine(pg.database_url)
    factory = make_session_factory(engine)
    officers_by_unit: dict[int, list[dict[str, Any]]] = {}
    for o in fleet.officers:
        if o["rate"] > 0:
            officers_by_unit.setdefault(o["unit"]["id"], []).append(o)
    cases: dict[tuple[str, str], list[Case]] = {}
    for query in QUERIES:
        for who in PRINCIPALS:
            runs = args.page_runs if query.startswith("page 20") else args.runs
            with factory() as helper:
                cases[query, who] = [
                    make_case(query, who, rng, fleet, loaded, officers_by_unit, helper)
                    for _ in range(runs + args.warmup)]
    out = Measured([], {}, [])
    for query in QUERIES:
        for who in PRINCIPALS:
            out.results.append(measure(factory, query, who, cases[query, who], args))
    # EXPLAIN the slowest rows (by p95) with the parameters of their slowest run.
    worst = sorted(out.results, key=lambda r: r.pct(0.95), reverse=True)
    for r in worst[: args.explain]:
        assert r.worst is not None
        out.plans.append(f"-- {r.query} / {r.who}: p95 {r.pct(0.95):.1f} ms, slowest run "
                         f"{r.worst_ms:.1f} ms\n" + explain(engine, factory, r.worst))
    say("\nthe API page (queries.search_recorded, audit row flushed, rolled back):")
    for query in API_QUERIES:
        for who in PRINCIPALS:
            wait_quiet(args)
            times = []
            for case in cases[query, who][: max(20, args.runs // 4)]:
                find_cursor(factory, case)
                ms, _ = api_page_ms(factory, case)
                times.append(ms)
            out.api.setdefault(query, {})[who] = times
            s = sorted(times)
            say(f"  {query:<28} {who:<23} p50 {statistics.median(s):8.1f}  p95 "
                f"{s[math.ceil(0.95 * len(s)) - 1]:8.1f}  max {max(s):8.1f} ms  "
                f"({len(s)} runs, load {loadavg()})")
    engine.dispose()
    return out


def catalogue_part(services: ModuleType, pg: Any, args: argparse.Namespace,
                   report: dict[str, Any]) -> None:
    rng = random.Random(args.seed)
    now = dt.datetime.now(dt.UTC)
    say(f"\n== 1. Catalogue at scale: {args.rows:,} recordings, {args.per_day:,} a day ==")
    say("PostgreSQL settings for the benchmark: "
        + ", ".join(f"{k}={v}" for k, v in PG_SETTINGS.items()))
    tune_and_restart(services, pg, PG_SETTINGS)
    fleet = make_fleet(rng, now)
    t = time.perf_counter()
    loaded = load_catalogue(pg, fleet, args.rows, args.per_day, args.sidecars, now)
    total = time.perf_counter() - t
    say(f"\nloaded {loaded.recordings:,} recordings, {loaded.files:,} files over {loaded.days} "
        f"days ({loaded.start:%Y-%m-%d} to {loaded.end:%Y-%m-%d}) in {total:.0f} s:")
    say(table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in loaded.seconds.items()]
              + [["total", f"{total:.1f}"]], right={1}))
    say("\nsizes:")
    say(table(["relation", "rows (est.)", "table", "indexes", "total"],
              [[name, f"{rows:,}" if kind == "table" else "", human_bytes(heap) if heap else "",
                human_bytes(idx), human_bytes(total)]
               for name, kind, rows, heap, idx, total in loaded.sizes], right={1, 2, 3, 4}))
    per_rec = sum(s[5] for s in loaded.sizes if s[0] in BIG_TABLES and s[1] == "table")
    report["catalogue"] = {
        "recordings": loaded.recordings, "files": loaded.files, "days": loaded.days,
        "load_seconds": loaded.seconds, "load_total_seconds": total,
        "bytes_per_recording": per_rec / max(1, loaded.recordings),
        "sizes": [list(s) for s in loaded.sizes],
    }
    say(f"\nsearches: catalogue.queries.search(limit=50) as the API calls it, {args.runs} runs "
        f"per row ({args.page_runs} for page 20) with random parameters, {args.warmup} warm-up "
        f"runs not counted, at most {args.row_seconds:g} s per row (at least {args.min_runs} "
        f"runs); then, untimed, its answers on the first {args.compare} cases of each row "
        f"against the visibility rule as a plain WHERE (statement_timeout "
        f"{args.compare_timeout:g} s, at most {args.compare_seconds:g} s a row); "
        f"load average {loadavg()}")
    m = measure_searches(pg, fleet, loaded, args, rng)
    rows = []
    for r in m.results:
        p95 = r.pct(0.95)
        rows.append([r.query, r.who, f"{statistics.mean(r.rows):.0f}", f"{r.pct(0.5):.1f}",
                     f"{p95:.1f}", f"{max(r.times_ms):.1f}",
                     f"{len(r.times_ms)}" + ("" if len(r.times_ms) == r.planned else "*"),
                     f"< {args.target_ms:g}", "yes" if p95 < args.target_ms else "NO",
                     f"{r.mismatches}/{r.compared}", f"{r.timeouts}"])
    say("\nsearch() (rows = mean rows returned; * = runs cut by the time budget; differ = "
        "pages not identical to the reference / compared; timed out = reference past its "
        "statement_timeout, not compared):")
    say(table(["query", "principal", "rows", "p50 ms", "p95 ms", "max ms", "runs", "target",
               "met?", "differ", "timed out"], rows, right={2, 3, 4, 5, 6, 10}))
    met = all(r.pct(0.95) < args.target_ms for r in m.results)
    compared = sum(r.compared for r in m.results)
    mismatches = sum(r.mismatches for r in m.results)
    timeouts = sum(r.timeouts for r in m.results)
    say(f"\np95 < {args.target_ms:g} ms for every query and principal: "
        f"{'MET' if met else 'NOT MET'}; answers identical to the reference in "
        f"{compared - mismatches}/{compared} pages compared ({mismatches} differ, "
        f"{timeouts} reference runs timed out)")
    loads = [r.load_1min for r in m.results if r.load_1min is not None]
    if loads:
        say(f"1-minute load average at the end of each row: min {min(loads):.2f}, median "
            f"{statistics.median(loads):.2f}, max {max(loads):.2f}")
    api_rows = []
    for query, per in m.api.items():
        for who, times in per.items():
            s = sorted(times)
            api_rows.append([query, who, f"{statistics.median(s):.1f}",
                             f"{s[math.ceil(0.95 * len(s)) - 1]:.1f}", f"{max(s):.1f}",
                             f"{len(s)}"])
    say("\nthe page as GET /api/v1/recordings builds it (queries.search_recorded: search(), the "
        "page's officers and units preloaded, summary() of the 50 rows, the audit row):")
    say(table(["query", "principal", "p50 ms", "p95 ms", "max ms", "runs"], api_rows,
              right={2, 3, 4, 5}))
    for plan in m.plans:
        say("\nEXPLAIN (ANALYZE, BUFFERS) " + plan)
    report["searches"] = [{"query": r.query, "principal": r.who, "p50": r.pct(0.5),
                           "p95": r.pct(0.95), "max": max(r.times_ms),
                           "rows": statistics.mean(r.rows), "runs": len(r.times_ms),
                           "planned": r.planned, "compared": r.compared,
                           "mismatches": r.mismatches, "timeouts": r.timeouts,
                           "shallow": r.shallow, "load": r.load, "seconds": r.seconds}
                          for r in m.results]
    report["api_page"] = {q: {who: {"p50": statistics.median(t),
                                    "p95": sorted(t)[math.ceil(0.95 * len(t)) - 1],
                                    "max": max(t), "runs": len(t)}
                              for who, t in per.items()} for q, per in m.api.items()}
    report["plans"] = m.plans
    report["target_met"] = met
    report["correctness"] = {"compared": compared, "mismatches": mismatches,
                             "timeouts": timeouts}


# =============================================================================================
# 2. Ingest
# =============================================================================================


def make_files(directory: Path, count: int, size: int) -> list[tuple[Path, str]]:
    out = []
    block = 8 * MiB
    for i in range(count):
        path = directory / f"clip-{i}.bin"
        h = hashlib.sha256()
        with open(path, "wb") as fh:
            left = size
            while left:
                chunk = os.urandom(min(block, left))
                h.update(chunk)
                fh.write(chunk)
                left -= len(chunk)
        out.append((path, h.hexdigest()))
    return out


def boto3_upload(services: Any, bucket: str, files: list[tuple[Path, str]],
                 prefix: str) -> float:
    """Upload the files at once, one thread each, 8 MiB parts one after another per file
    (SHA-256 part checksums, as the store writes): seconds."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB,
                            max_concurrency=1, use_threads=False)
    errors: list[BaseException] = []

    def one(i: int, path: Path) -> None:
        try:
            client = services.client(services.s3_ingest)
            with open(path, "rb") as fh:
                client.upload_fileobj(fh, bucket, f"{prefix}/{i}", Config=config,
                                      ExtraArgs={"ChecksumAlgorithm": "SHA256"})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i, p)) for i, (p, _) in enumerate(files)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    if errors:
        raise errors[0]
    return elapsed


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def tus_upload(base: str, token: str, path: Path, sha256: str, patch: int,
               device: str) -> dict[str, Any]:
    """POST, then PATCHes of `patch` bytes on one keep-alive connection, each body a slice of an
    mmap (no copy in Python). Returns the last response's headers and the seconds it took."""
    size = path.stat().st_size
    recording = f"bench-{secrets.token_hex(8)}"
    meta = ",".join(f"{k} {_b64(v)}" for k, v in (
        ("device", device), ("recording", recording), ("kind", "clip"), ("index", "1"),
        ("filename", f"{recording}.mp4"), ("sha256", sha256)))
    auth = {"Authorization": f"Bearer {token}", "Tus-Resumable": TUS}
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=600,
                                      blocksize=MiB)
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(mm)
    t = time.perf_counter()
    try:
        conn.request("POST", "/api/v1/uploads/", headers={
            **auth, "Upload-Length": str(size), "Upload-Metadata": meta})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 201:
            raise RuntimeError(f"POST answered {resp.status}")
        location = urlsplit(urljoin(base + "/api/v1/uploads/", resp.getheader("Location", "")))
        offset = 0
        outcome = None
        while offset < size:
            n = min(patch, size - offset)
            conn.putrequest("PATCH", location.path, skip_accept_encoding=True)
            for k, v in {**auth, "Content-Type": "application/offset+octet-stream",
                         "Upload-Offset": str(offset), "Content-Length": str(n)}.items():
                conn.putheader(k, v)
            conn.endheaders()
            conn.send(view[offset:offset + n])
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 204:
                raise RuntimeError(f"PATCH at {offset} answered {resp.status}: {body[:300]!r}")
            offset = int(resp.getheader("Upload-Offset") or -1)
            outcome = resp.getheader("Locker-Outcome")
        return {"seconds": time.perf_counter() - t, "outcome": outcome, "size": size}
    finally:
        conn.close()
        view.release()
        mm.close()


class Poll:
    """Polls VmRSS of some processes while uploads run."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], proc_status(pid, "VmRSS"))

    def __enter__(self) -> Poll:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_uploads(bases: list[str], token: str, files: list[tuple[Path, str]], patch: int,
                ) -> tuple[float, list[dict[str, Any]]]:
    results: list[dict[str, Any] | None] = [None] * len(files)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        path, sha = files[i]
        try:
            results[i] = tus_upload(bases[i % len(bases)], token, path, sha, patch,
                                    device=f"BWV{9000000 + i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(files))]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    if errors:
        raise errors[0]
    return elapsed, [r for r in results if r is not None]


def locker_env(services: Any, database_url: str, bucket: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "LOCKER_"))}
    env.update({
        "LOCKER_DATABASE_URL": database_url,
        "LOCKER_STORAGE_URL": services.storage_url(bucket),
        "AWS_ACCESS_KEY_ID": services.s3_ingest.access_key,
        "AWS_SECRET_ACCESS_KEY": services.s3_ingest.secret_key,
        "AWS_REGION": services.s3_region,
        "LOCKER_DATA_DIR": str(data_dir),
        "LOCKER_MIN_FREE_BYTES": "0",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def locker(env: dict[str, str], *argv: str) -> str:
    done = subprocess.run([sys.executable, "-m", "evidence_locker", *argv], env=env,
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"locker {' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    parts = urlsplit(base)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"locker serve exited {proc.returncode}:\n"
                               f"{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                              timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        time.sleep(0.2)
    raise RuntimeError(f"locker serve not ready:\n{log.read_text()[-3000:]}")


def create_database(pg: Any, name: str) -> str:
    import psycopg

    with psycopg.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password,
                         dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg.database_url.rsplit("/", 1)[0] + "/" + name


def ingest_part(services_mod: ModuleType, services: Any, pg: Any, workdir: Path,
                args: argparse.Namespace, report: dict[str, Any]) -> None:
    n, size = args.files, args.file_size
    say(f"\n== 2. Ingest into SeaweedFS: {n} x {human_bytes(size)} at once, and one alone ==")
    bucket = f"bench-{secrets.token_hex(4)}"
    services.create_bucket(bucket)
    files_dir = workdir / "files"
    files_dir.mkdir()
    t = time.perf_counter()
    files = make_files(files_dir, n + 1, size)
    say(f"made {n + 1} random files in {time.perf_counter() - t:.0f} s "
        f"(load average {loadavg()})")
    alone, together = files[:1], files[1:]
    total = n * size
    weed_pid = services.seaweedfs.pid if services.seaweedfs else None

    # The limit, before.
    weed_cpu0 = cpu_seconds(weed_pid, children=True) if weed_pid else 0.0
    limit_before = boto3_upload(services, bucket, together, "bench/limit-before")
    weed_limit_cpu = ((cpu_seconds(weed_pid, children=True) - weed_cpu0) / (total / 1e9)
                      if weed_pid else 0.0)
    limit_single = boto3_upload(services, bucket, alone, "bench/limit-single")
    say(f"boto3 limit: {n} files at once {total / limit_before / MB:.0f} MB/s; one file "
        f"{size / limit_single / MB:.0f} MB/s")

    database_url = create_database(pg, f"ingest_{secrets.token_hex(4)}")
    nodes = []
    reservation = services_mod.PortReservation(2)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, port in enumerate(reservation.ports):
            env = locker_env(services, database_url, bucket, workdir / f"node{i}")
            if i == 0:
                locker(env, "db", "upgrade")
                token = locker(env, "docks", "register", "bench").strip().splitlines()[-1]
            log = workdir / f"node{i}.log"
            with open(log, "wb") as fh:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "evidence_locker", "serve", "--port", str(port),
                     "--no-workers"], env=env, stdout=fh, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
            procs.append(proc)
            nodes.append((f"http://127.0.0.1:{port}", proc, log))
        reservation.release()
        for base, proc, log in nodes:
            wait_ready(base, proc, log)
        pids = [p.pid for _, p, _ in nodes] + ([weed_pid] if weed_pid else [])

        # One upload through one process alone.
        cpu0 = {pid: cpu_seconds(pid, children=True) for pid in pids}
        with Poll(pids):
            single_s, single = run_uploads([nodes[0][0]], token, alone, args.patch_size)
        cpu_single = {pid: cpu_seconds(pid, children=True) - cpu0[pid] for pid in pids}
        # Both processes, half the files each, all at once.
        cpu0 = {pid: cpu_seconds(pid, children=True) for pid in pids}
        client0 = cpu_seconds(os.getpid(), children=True)
        with Poll(pids) as poll:
            both_s, both = run_uploads([b for b, _, _ in nodes], token, together,
                                       args.patch_size)
        cpu_both = {pid: cpu_seconds(pid, children=True) - cpu0[pid] for pid in pids}
        client_cpu = cpu_seconds(os.getpid(), children=True) - client0
        hwm = {pid: proc_status(pid, "VmHWM") for pid in pids}
        stored = sum(1 for r in single + both if r["outcome"] == "stored")
        # The blobs are there, with the right size.
        admin = services.client()
        present = 0
        for _, sha in files:
            with contextlib.suppress(Exception):
                head = admin.head_object(Bucket=bucket, Key=f"blobs/{sha[:2]}/{sha[2:4]}/{sha}")
                present += head["ContentLength"] == size
    finally:
        for proc in procs:
            services_mod._stop_group(proc.pid, grace=5)
        reservation.release()

    limit_after = boto3_upload(services, bucket, together, "bench/limit-after")
    limit_s = min(limit_before, limit_after)
    limit_mbps = total / limit_s / MB
    agg = total / both_s / MB
    single_mbps = size / single_s / MB
    single_limit = size / limit_single / MB
    say(f"uploads acknowledged 'stored': {stored}/{n + 1}; blobs in the bucket with the right "
        f"size: {present}/{n + 1}")
    rows = [
        ["boto3, 8 MiB multipart (limit), before", f"{n} at once",
         f"{total / limit_before / MB:.0f}", "", ""],
        ["boto3, 8 MiB multipart (limit), after", f"{n} at once",
         f"{total / limit_after / MB:.0f}", "", ""],
        ["tus through 2 locker processes", f"{n} at once", f"{agg:.0f}",
         f"{agg / limit_mbps:.2f}", f"{agg / 2:.0f}"],
        ["boto3, one file (limit)", "1", f"{single_limit:.0f}", "", ""],
        ["tus through 1 locker process", "1", f"{single_mbps:.0f}",
         f"{single_mbps / single_limit:.2f}", f"{single_mbps:.0f}"],
    ]
    say("\n" + table(["path", "uploads", "MB/s", "ratio to limit", "MB/s per process"], rows,
                     right={2, 3, 4}))
    names = {nodes[0][1].pid: "locker serve A", nodes[1][1].pid: "locker serve B"}
    # Bytes each process handled: uploads alternate between A and B; SeaweedFS takes them all.
    handled_both = {nodes[0][1].pid: math.ceil(n / 2) * size, nodes[1][1].pid: n // 2 * size}
    handled_single = {nodes[0][1].pid: size, nodes[1][1].pid: 0}
    if weed_pid:
        names[weed_pid] = "weed (SeaweedFS, all roles)"
        handled_both[weed_pid], handled_single[weed_pid] = total, size

    def per_gb(cpu: dict[int, float], handled: dict[int, int], pid: int) -> float | None:
        return cpu[pid] / (handled[pid] / 1e9) if handled[pid] else None

    prow = []
    procs_report = {}
    for pid, name in names.items():
        peak = max(hwm[pid], poll.peak[pid])
        both_gb, alone_gb = per_gb(cpu_both, handled_both, pid), per_gb(cpu_single,
                                                                        handled_single, pid)
        prow.append([name, human_bytes(peak), f"{cpu_both[pid]:.1f}",
                     f"{both_gb:.2f}" if both_gb is not None else "",
                     f"{alone_gb:.2f}" if alone_gb is not None else ""])
        procs_report[name] = {"peak_rss": peak, "cpu_s_per_gb": both_gb,
                              "cpu_s_per_gb_alone": alone_gb}
    prow.append(["this client (tus, threads)", "", f"{client_cpu:.1f}",
                 f"{client_cpu / (total / 1e9):.2f}", ""])
    if weed_pid:
        prow.append(["weed during the boto3 limit", "", "",
                     f"{weed_limit_cpu:.2f}", ""])
    say("\n" + table(["process", "peak RSS", f"CPU s ({n} at once)",
                      "CPU s per GB it handled (at once)", "(alone)"], prow,
                     right={1, 2, 3, 4}))
    report["ingest"] = {
        "files": n, "file_size": size, "patch_size": args.patch_size,
        "limit_mbps_before": total / limit_before / MB,
        "limit_mbps_after": total / limit_after / MB,
        "limit_mbps": limit_mbps, "aggregate_mbps": agg, "ratio": agg / limit_mbps,
        "per_process_mbps": agg / 2, "single_mbps": single_mbps,
        "single_limit_mbps": single_limit, "stored": stored, "present": present,
        "processes": procs_report, "client_cpu_s_per_gb": client_cpu / (total / 1e9),
        "weed_cpu_s_per_gb_limit": weed_limit_cpu,
    }


# =============================================================================================
# 3. The reference force
# =============================================================================================


def arithmetic(args: argparse.Namespace, report: dict[str, Any]) -> None:
    say("\n== 3. The reference force (DESIGN.md: ~9,000 cameras docked a day, 1.5 h each at "
        "1.5-3 GB/h; ~220,000 recordings a day) ==")
    ing = report.get("ingest", {})
    per_proc = args.ingest_mbps or ing.get("per_process_mbps")
    cat = report.get("catalogue", {})
    lines = []
    day_bytes = [CAMERAS_DOCKED_PER_DAY * HOURS_RECORDED_PER_CAMERA * g * 1e9
                 for g in GB_PER_HOUR]
    lines.append(f"footage a day: {CAMERAS_DOCKED_PER_DAY:,} x {HOURS_RECORDED_PER_CAMERA} h x "
                 f"{GB_PER_HOUR[0]}-{GB_PER_HOUR[1]} GB/h = {day_bytes[0] / 1e12:.1f}-"
                 f"{day_bytes[1] / 1e12:.1f} TB/day; {RETENTION_DAYS}-day window "
                 f"{day_bytes[0] * RETENTION_DAYS / 1e15:.2f}-"
                 f"{day_bytes[1] * RETENTION_DAYS / 1e15:.2f} PB")
    window_s = args.window_hours * 3600
    rate_window = [b / window_s for b in day_bytes]
    rate_day = [b / 86400 for b in day_bytes]
    peak_bytes = [b * args.peak_share for b in day_bytes]
    rate_peak = [b / (args.peak_hours * 3600) for b in peak_bytes]
    dock_ceiling = (CAMERAS_DOCKED_PER_DAY * args.peak_share * DOCK_MBIT_PER_CAMERA / 8 * MB)
    camera_min = [HOURS_RECORDED_PER_CAMERA * g * 1e9 / (DOCK_MBIT_PER_CAMERA / 8 * MB) / 60
                  for g in GB_PER_HOUR]
    lines.append(f"average over 24 h: {rate_day[0] / MB:,.0f}-{rate_day[1] / MB:,.0f} MB/s "
                 f"({rate_day[0] * 8 / 1e9:.1f}-{rate_day[1] * 8 / 1e9:.1f} Gbit/s)")
    lines.append(f"a day's footage in a {args.window_hours:g} h overnight window: "
                 f"{rate_window[0] / MB:,.0f}-{rate_window[1] / MB:,.0f} MB/s "
                 f"({rate_window[0] * 8 / 1e9:.1f}-{rate_window[1] * 8 / 1e9:.1f} Gbit/s)")
    lines.append(f"shift-change peak: {args.peak_share:.0%} of the day's cameras "
                 f"({CAMERAS_DOCKED_PER_DAY * args.peak_share:,.0f}) docking within "
                 f"{args.peak_hours:g} h: {peak_bytes[0] / 1e12:.1f}-{peak_bytes[1] / 1e12:.1f} TB "
                 f"= {rate_peak[0] / MB:,.0f}-{rate_peak[1] / MB:,.0f} MB/s; the docks' own "
                 f"ceiling if all upload at once ({DOCK_MBIT_PER_CAMERA} Mbit/s each): "
                 f"{dock_ceiling / MB:,.0f} MB/s, each camera done in "
                 f"{camera_min[0]:.0f}-{camera_min[1]:.0f} min")
    rows = []
    if per_proc:
        headroom = args.utilisation
        for label, rates in (("24 h average", rate_day),
                             (f"{args.window_hours:g} h overnight window", rate_window),
                             (f"shift-change peak ({args.peak_share:.0%} in {args.peak_hours:g} h)",
                              rate_peak)):
            need = [math.ceil(r / (per_proc * MB * headroom)) for r in rates]
            rows.append([label, f"{rates[0] / MB:,.0f}-{rates[1] / MB:,.0f}",
                         f"{need[0]}-{need[1]}"])
        lines.append(f"\ningest processes needed at the measured {per_proc:.0f} MB/s per process "
                     f"(run at {headroom:.0%} of it):")
    for line in lines:
        say(line)
    if rows:
        say(table(["load", "MB/s needed", "processes"], rows, right={1, 2}))
        procs = report.get("ingest", {}).get("processes", {})
        lockers = [v["cpu_s_per_gb"] for k, v in procs.items()
                   if k.startswith("locker") and v["cpu_s_per_gb"]]
        weeds = [v["cpu_s_per_gb"] for k, v in procs.items() if k.startswith("weed")]
        if lockers:
            cpu = statistics.mean(lockers)
            weed = weeds[0] if weeds else 0.0
            say(f"by CPU instead: a locker process spent {cpu:.2f} CPU s per GB it took in "
                f"(SeaweedFS {weed:.2f} CPU s per GB); a day's "
                f"{day_bytes[0] / 1e12:.0f}-{day_bytes[1] / 1e12:.0f} TB is "
                f"{day_bytes[0] / 1e9 * cpu / 3600:,.0f}-{day_bytes[1] / 1e9 * cpu / 3600:,.0f} "
                f"core-hours of ingest, i.e. {day_bytes[0] / 1e9 * cpu / window_s:,.0f}-"
                f"{day_bytes[1] / 1e9 * cpu / window_s:,.0f} cores busy through the "
                f"{args.window_hours:g} h window and {rate_peak[0] / 1e9 * cpu:,.0f}-"
                f"{rate_peak[1] / 1e9 * cpu:,.0f} at the peak, plus "
                f"{day_bytes[0] / 1e9 * weed / window_s:,.0f}-"
                f"{day_bytes[1] / 1e9 * weed / window_s:,.0f} cores of object store in the "
                f"window (single-node SeaweedFS here; a cluster spreads it)")
    per_year = RECORDINGS_PER_DAY * 365
    bpr = cat.get("bytes_per_recording")
    files_per = cat.get("files", 0) / max(1, cat.get("recordings", 1)) if cat else None
    say(f"\ncatalogue: {RECORDINGS_PER_DAY:,} recordings a day = {per_year / 1e6:.1f} M a year"
        + (f", {per_year * files_per / 1e6:.0f} M file rows" if files_per else ""))
    if bpr:
        say(f"measured {bpr:,.0f} bytes per recording (recordings + files + blobs, tables and "
            f"indexes, freshly built) => {human_bytes(per_year * bpr)} a year if every row is "
            f"kept; {human_bytes(RECORDINGS_PER_DAY * RETENTION_DAYS * bpr)} steady state if "
            f"rows of footage deleted after {RETENTION_DAYS} days go too "
            f"({RECORDINGS_PER_DAY * RETENTION_DAYS / 1e6:.1f} M recordings); a live table with "
            f"random-UUID keys and updates carries more (~70 % page fill)")
    if files_per:
        id_max = 2**31 - 1
        say(f"recording_files.id is a 32-bit integer: {id_max / (per_year * files_per):.0f} years "
            f"of file rows at this rate")
    report["arithmetic"] = {"day_bytes": day_bytes, "rate_window": rate_window,
                            "rate_peak": rate_peak, "per_process_mbps": per_proc}


# =============================================================================================


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="catalogue,ingest,arithmetic",
                    help="comma-separated: catalogue, ingest, arithmetic")
    ap.add_argument("--rows", type=int, default=10_000_000, help="recordings to load")
    ap.add_argument("--per-day", type=int, default=RECORDINGS_PER_DAY)
    ap.add_argument("--no-sidecars", dest="sidecars", action="store_false",
                    help="clips only in recording_files (the app stores the sidecar as a file)")
    ap.add_argument("--runs", type=int, default=200, help="runs per query and principal")
    ap.add_argument("--page-runs", type=int, default=50, help="runs of the page-20 rows")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--target-ms", type=float, default=50.0)
    ap.add_argument("--explain", type=int, default=3, help="EXPLAIN this many rows that miss")
    ap.add_argument("--row-seconds", type=float, default=30,
                    help="time budget per row of the table (runs stop after it)")
    ap.add_argument("--min-runs", type=int, default=10)
    ap.add_argument("--compare", type=int, default=30,
                    help="check search()'s answer against the visibility rule as a plain WHERE "
                    "on this many cases per row (untimed)")
    ap.add_argument("--compare-timeout", type=float, default=20,
                    help="statement_timeout (s) of each reference query; past it, the case is "
                    "counted as timed out, not compared")
    ap.add_argument("--compare-seconds", type=float, default=60,
                    help="stop checking a row after this many seconds")
    ap.add_argument("--quiet-load", type=float, default=1.5,
                    help="before each row, wait for the 1-minute load average to drop below")
    ap.add_argument("--quiet-wait", type=float, default=30, help="... for at most this long")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--files", type=int, default=8, help="uploads at once (plus one alone)")
    ap.add_argument("--file-size", type=parse_size, default=256 * MiB)
    ap.add_argument("--patch-size", type=parse_size, default=8 * MiB)
    ap.add_argument("--ingest-mbps", type=float, help="per-process MB/s for the arithmetic "
                    "when the ingest part is not run")
    ap.add_argument("--window-hours", type=float, default=8)
    ap.add_argument("--peak-share", type=float, default=1 / 3,
                    help="share of the day's cameras docking at one shift change")
    ap.add_argument("--peak-hours", type=float, default=1)
    ap.add_argument("--utilisation", type=float, default=0.7,
                    help="run ingest processes at this share of the measured rate")
    ap.add_argument("--workdir", type=Path, help="temporary base (default: system temp)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--keep", action="store_true", help="leave the servers running")
    args = ap.parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}

    sys.path.insert(0, str(ROOT / "src"))
    services_mod = load_services()
    workdir = Path(tempfile.mkdtemp(prefix="locker-scale-", dir=args.workdir))
    workdir.chmod(0o711)  # PostgreSQL runs as `postgres` under it when we are root
    report: dict[str, Any] = {"started": dt.datetime.now(dt.UTC).isoformat(),
                              "cpus": os.cpu_count(), "args": {k: str(v) for k, v in
                                                               vars(args).items()}}
    say(f"bench/scale.py: {os.cpu_count()} CPUs, load average {loadavg()}, workdir {workdir}")
    pg = s3 = None
    try:
        if parts & {"catalogue", "ingest"}:
            t = time.perf_counter()
            pg = services_mod.start_postgres(base_dir=workdir)
            say(f"PostgreSQL up in {time.perf_counter() - t:.1f} s at {pg.host}:{pg.port}")
        if "ingest" in parts:
            t = time.perf_counter()
            s3 = services_mod.start_seaweedfs(base_dir=workdir)
            say(f"SeaweedFS up in {time.perf_counter() - t:.1f} s at {s3.endpoint}")
        services = None
        if pg is not None:
            services = services_mod.Services(
                database_url=pg.database_url, s3_endpoint=s3.endpoint if s3 else "",
                s3_admin=s3.admin if s3 else None, s3_ingest=s3.ingest if s3 else None,
                s3_lifecycle=s3.lifecycle if s3 else None, seaweedfs=s3, postgres=pg)
        if "catalogue" in parts:
            catalogue_part(services_mod, pg, args, report)
        if "ingest" in parts:
            ingest_part(services_mod, services, pg, workdir, args, report)
        if "arithmetic" in parts:
            arithmetic(args, report)
    finally:
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, default=str))
        if args.keep:
            say(f"\n--keep: servers left running; workdir {workdir}")
            if pg is not None:
                say(f"  PostgreSQL: {pg.database_url}  (stop: pg_ctl -D {pg.data_dir} stop)")
            if s3 is not None:
                say(f"  SeaweedFS: {s3.endpoint} (pid {s3.pid}; stop: kill -- -{s3.pid})")
        else:
            for server in (s3, pg):
                if server is not None:
                    with contextlib.suppress(Exception):
                        server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
