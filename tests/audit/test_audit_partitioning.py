"""The procedure of deploy/AUDIT-PARTITIONING.md, run on a PostgreSQL test database: convert
audit_events to range partitions by id, keep appending and sequencing, sign an archive boundary,
DETACH the oldest partition, pg_dump it, DROP it (never DELETE), then verify the live chain
from the signed boundary and the archive on its own up to that boundary."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import AuditDb, Locker, open_audit_db
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

import services as svc
from evidence_locker.audit.chain import Checkpoint, verify_chain
from evidence_locker.audit.checkpoints import ARCHIVE_BOUNDARY, read_file
from evidence_locker.audit.service import SYSTEM, record

pytestmark = pytest.mark.scale_out_only

BOUNDARY_ID = 12  # the first partition holds ids below this

#: Step 2 of the procedure (deploy/AUDIT-PARTITIONING.md), with the test's partition bounds.
CONVERT = [
    "LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE",
    "CREATE TABLE audit_events_new (LIKE audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    " PARTITION BY RANGE (id)",
    "ALTER TABLE audit_events_new ADD CONSTRAINT pk_audit_events_part PRIMARY KEY (id)",
    "CREATE INDEX ix_audit_events_part_occurred_at ON audit_events_new (occurred_at)",
    "CREATE INDEX ix_audit_events_part_action ON audit_events_new (action)",
    "CREATE INDEX ix_audit_events_part_actor_name ON audit_events_new (actor_name)",
    "CREATE INDEX ix_audit_events_part_object_id ON audit_events_new (object_id)",
    "CREATE INDEX ix_audit_events_part_seq ON audit_events_new (seq)",
    f"CREATE TABLE audit_events_p0001 PARTITION OF audit_events_new"
    f" FOR VALUES FROM (MINVALUE) TO ({BOUNDARY_ID})",
    "CREATE UNIQUE INDEX uq_audit_events_p0001_seq ON audit_events_p0001 (seq)",
    f"CREATE TABLE audit_events_p0002 PARTITION OF audit_events_new"
    f" FOR VALUES FROM ({BOUNDARY_ID}) TO (1000000)",
    "CREATE UNIQUE INDEX uq_audit_events_p0002_seq ON audit_events_p0002 (seq)",
    "INSERT INTO audit_events_new SELECT * FROM audit_events",
    "ALTER TABLE audit_events RENAME TO audit_events_unpartitioned",
    "ALTER TABLE audit_events_new RENAME TO audit_events",
    "ALTER SEQUENCE audit_events_id_seq OWNED BY audit_events.id",
    "CREATE TRIGGER audit_events_guard BEFORE UPDATE OR DELETE ON audit_events"
    " FOR EACH ROW EXECUTE FUNCTION audit_events_guard()",
]


def _straddle(adb: AuditDb) -> None:
    """Event id 11 commits after id 12 was linked: id 12 gets seq 11, id 11 gets seq 12, so the
    first partition (ids < 12) ends at seq 12 while seq 11 lives in the second partition."""
    slow = adb.factory()
    event = record(slow, clock=adb.clock, actor=SYSTEM, action="job.slow")
    slow.flush()
    assert event.id == 11
    [fast] = adb.record(1, action="recording.viewed")
    assert fast == 12
    assert adb.sequence() == 1
    slow.commit()
    slow.close()
    assert adb.sequence() == 1
    assert (adb.by_seq(11)["id"], adb.by_seq(12)["id"]) == (12, 11)


def _pg_tool(name: str) -> str:
    bin_dir = svc._pg_bin_dir()
    assert bin_dir is not None, "PostgreSQL client tools not found"
    return str(bin_dir / name)


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_partition_detach_archive_and_verify_across_the_boundary(
    locker: Locker, tmp_path: Path, new_audit_db_url: Any
) -> None:
    adb = locker.adb
    for i in range(10):
        adb.record(1, object_id=f"r{i}")
    adb.sequence()
    _straddle(adb)
    locker.checkpoint()  # head at seq 12, signed before the conversion

    # 1-2. Convert in one transaction, then the old table is dropped only after verify passes.
    with adb.engine.begin() as conn:
        for sql in CONVERT:
            conn.execute(text(sql))
    assert locker.verify().ok
    with adb.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_events_unpartitioned"))
        kind = conn.execute(text(
            "SELECT relkind FROM pg_class WHERE relname = 'audit_events'")).scalar_one()
    assert kind == "p"

    # The application keeps working: append, sequence, checkpoint; the guard holds on partitions.
    for i in range(6):
        adb.record(1, object_id=f"after{i}")
    assert adb.sequence() == 6
    locker.checkpoint()
    for table, event_id in (("audit_events", 3), ("audit_events_p0001", 4),
                            ("audit_events_p0002", 13)):
        with pytest.raises(DBAPIError, match="append-only"), adb.engine.begin() as conn:
            conn.execute(text(f"UPDATE {table} SET reason = 'x' WHERE id = {event_id}"))
        with pytest.raises(DBAPIError, match="append-only"), adb.engine.begin() as conn:
            conn.execute(text(f"DELETE FROM {table} WHERE id = {event_id}"))

    # 3. Archive the first partition: its highest seq is the boundary; nothing in it unlinked.
    with adb.engine.connect() as conn:
        top, unlinked = conn.execute(text(
            "SELECT max(seq), count(*) FILTER (WHERE seq IS NULL) FROM audit_events_p0001"
        )).one()
        straddlers = conn.execute(text(
            f"SELECT count(*) FROM audit_events WHERE seq <= :s AND id >= {BOUNDARY_ID}"),
            {"s": top}).scalar_one()
    assert (top, unlinked, straddlers) == (12, 0, 1)
    boundary = locker.checkpoint(kind=ARCHIVE_BOUNDARY, at_seq=top)
    dump = tmp_path / "audit_events_p0001.dump"
    extra = tmp_path / "audit_events_p0001.straddlers.copy"
    with adb.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, extra.open("wb") as fh, cur.copy(
            f"COPY (SELECT * FROM audit_events WHERE seq <= {top} AND id >= {BOUNDARY_ID}) "
            "TO STDOUT"
        ) as copy:
            for block in copy:
                fh.write(block)
        conn.execute(text("ALTER TABLE audit_events DETACH PARTITION audit_events_p0001 "
                          "CONCURRENTLY"))
    subprocess.run([_pg_tool("pg_dump"), "--format=custom", "--table=audit_events_p0001",
                    f"--file={dump}", _libpq(adb.url)], check=True, timeout=60)
    with adb.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_events_p0001"))

    # 4. The live chain verifies from the signed boundary; all signed heads after it match.
    result = locker.verify()
    assert result.ok, result.problems
    assert result.start == Checkpoint(boundary.seq, boundary.hash)
    assert result.chain.checked == 6 and result.chain.head_seq == 18
    assert result.matched == 1  # the head at seq 18 (the one at 12 is the archived segment)
    assert [c.seq for c in read_file(locker.file)[0]] == [12, 18, 12]

    # Without the boundary checkpoint the missing prefix would be a removal.
    with adb.factory() as session:
        assert verify_chain(session).problem_kind == "removed"

    # 5. The archive, restored elsewhere, verifies on its own up to the signed boundary.
    scratch = new_audit_db_url()
    subprocess.run([_pg_tool("pg_restore"), f"--dbname={_libpq(scratch)}", str(dump)],
                   check=True, timeout=60)
    engine = create_engine(scratch)
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        conn.execute(text("INSERT INTO audit_events SELECT * FROM audit_events_p0001"))
        with raw.cursor() as cur, cur.copy("COPY audit_events FROM STDIN") as copy:
            copy.write(extra.read_bytes())
        conn.commit()
    engine.dispose()
    with open_audit_db(scratch) as archive, archive.factory() as session:
        report = verify_chain(session, watch={boundary.seq})
    assert report.ok and report.checked == 12
    assert report.seen[boundary.seq] == boundary.hash
