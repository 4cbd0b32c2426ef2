"""Deletion is never silent: the tombstones a sweep leaves come out as CSV for the records
manager (the service and `locker retention tombstones`), with each file's SHA-256 and size, and
the export is audited."""

from __future__ import annotations

import csv
import io
import uuid

from sqlalchemy import func, select
from test_sweep import shas_of

from evidence_locker.audit.models import AuditEvent
from evidence_locker.db import transaction
from evidence_locker.lifecycle import records
from evidence_locker.lifecycle.models import Tombstone
from evidence_locker.lifecycle.sweep import run_sweep
from life_helpers import locker, locker_env, seed_past


def swept(client, runtime, force, clock, store, n: int) -> dict[str, list[str]]:
    rids = seed_past(client, force, clock, n)
    shas = {rid: shas_of(runtime, rid) for rid in rids}
    result = run_sweep(runtime.sessions, clock=clock, settings=runtime.settings, store=store)
    assert (result.deleted, result.failed) == (n, [])
    return shas


def test_csv_names_every_deleted_recording_and_its_files(client, runtime, force, clock,
                                                         lifecycle_store) -> None:
    shas = swept(client, runtime, force, clock, lifecycle_store, 3)
    with transaction(runtime.sessions) as s:
        text = "".join(records.csv_lines(records.tombstone_rows(s, chunk=2)))
        in_other_unit = list(records.tombstone_rows(s, unit="U2"))
        in_unit = list(records.tombstone_rows(s, unit="C1"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["recording_id"] for r in rows} == set(shas)
    for r in rows:
        listed = sorted(part.split(":")[1] for part in r["sha256"].split())
        assert set(listed) <= set(shas[r["recording_id"]])
        assert r["unit"] == "U1" and r["finished_at"] and r["rule"].startswith("unflagged")
    assert in_other_unit == [] and len(in_unit) == 3  # CAM-1 is officer 1001's, in U1 under C1


def test_cli_writes_the_csv_and_audits_the_export(client, runtime, force, clock, deployment,
                                                  scale_out, lifecycle_store, tmp_path) -> None:
    shas = swept(client, runtime, force, clock, lifecycle_store, 2)
    env = locker_env(runtime, deployment, scale_out)
    out = tmp_path / "tombstones.csv"
    r = locker(env, "retention", "tombstones", "--csv", str(out))
    assert r.returncode == 0, r.stderr
    assert "2 tombstones written" in r.stdout
    rows = list(csv.DictReader(out.open()))
    assert {uuid.UUID(x["recording_id"]) for x in rows} == {uuid.UUID(k) for k in shas}
    bad = locker(env, "retention", "tombstones", "--unit", "NOPE")
    assert bad.returncode != 0 and "NOPE" in bad.stderr
    with transaction(runtime.sessions) as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "tombstones.exported")) == 1
        assert s.scalar(select(func.count()).select_from(Tombstone)) == 2
