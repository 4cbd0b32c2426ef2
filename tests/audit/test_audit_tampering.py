"""An attacker with admin rights drops the triggers and edits the log: verify names the row.

Each test builds a chain of ten events (ids 1..10, seq 1..10), tampers, and checks the first
row that verification rejects, what it says, and that the rows before it still count as good.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from audit_helpers import TABLE, AuditDb
from sqlalchemy import update

from evidence_locker.audit.chain import GENESIS_HASH, event_digest

N = 10


@pytest.fixture
def chain_db(audit_db: AuditDb) -> AuditDb:
    for i in range(N):
        audit_db.record(1, object_type="recording", object_id=f"r{i}", details={"i": i})
    assert audit_db.sequence(batch=3) == N
    assert [r["id"] for r in audit_db.rows()] == list(range(1, N + 1))
    assert audit_db.verify().ok
    audit_db.drop_triggers()
    return audit_db


def _content(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("seq", "prev_hash", "hash", "sequenced_at")}


def _assert_first_bad(
    adb: AuditDb, event_id: int, seq: int, kind: str, *words: str, checked: int | None = None
) -> str:
    """Verify (at several page sizes) rejects `event_id` at `seq` first, and says `words`."""
    good = seq - 1 if checked is None else checked
    for batch in (1, 3, 5000):  # the page boundary must not matter
        report = adb.verify(batch=batch)
        assert not report.ok
        assert report.problem_event_id == event_id, report.problem
        assert report.problem_seq == seq, report.problem
        assert report.problem_kind == kind, report.problem
        assert report.problem is not None
        assert report.problem.startswith(f"row id {event_id} seq {seq}: "), report.problem
        for word in words:
            assert word in report.problem
        assert report.checked == good
        assert report.head_seq == (good or None)
        problem = report.problem
    return problem


@pytest.mark.parametrize(
    "values",
    [
        {"action": "recording.downloaded"},
        {"actor_name": "someone else"},
        {"actor_id": None},
        {"reason": "a justification added afterwards"},
        {"details": '{"i": 4}'},  # the same JSON value, written differently
        {"occurred_at": dt.datetime(2025, 3, 1, 9, 30, 4, 1, tzinfo=dt.UTC)},
        {"user_agent": "curl"},
    ],
)
def test_altered_content_is_named(chain_db: AuditDb, values: dict[str, Any]) -> None:
    chain_db.tamper(5, **values)
    _assert_first_bad(chain_db, 5, 5, "altered", "altered")


def test_altered_content_with_a_recomputed_hash_is_caught_at_the_next_row(
    chain_db: AuditDb,
) -> None:
    row = chain_db.by_seq(5)
    forged = dict(_content(row), action="recording.downloaded")
    chain_db.tamper(5, action="recording.downloaded")
    chain_db.tamper(5, hash=event_digest(**forged, seq=5, prev_hash=row["prev_hash"]))
    problem = _assert_first_bad(chain_db, 6, 6, "broken-link", "row id 5 seq 5")
    assert "prev_hash" in problem


def test_altered_hash_or_prev_hash_is_named(chain_db: AuditDb) -> None:
    chain_db.tamper(3, hash="0" * 64)
    _assert_first_bad(chain_db, 3, 3, "altered")


def test_removed_row_is_named(chain_db: AuditDb) -> None:
    chain_db.remove(4)
    problem = _assert_first_bad(
        chain_db, 5, 5, "removed", "seq 4 missing", "row id 3 seq 3", checked=3
    )
    assert "1 event(s)" in problem


def test_removed_first_row_is_named(chain_db: AuditDb) -> None:
    chain_db.remove(1)
    chain_db.remove(2)
    _assert_first_bad(
        chain_db, 3, 3, "removed", "seq 1..2 missing", "start of the chain", checked=0
    )


def test_removed_row_with_the_rest_renumbered_is_named(chain_db: AuditDb) -> None:
    chain_db.remove(4)
    for seq in range(5, N + 1):
        with chain_db.engine.begin() as conn:
            conn.execute(update(TABLE).where(TABLE.c.seq == seq).values(seq=seq - 1))
    # Row id 5 now sits at seq 4: neither its hash nor its link fits there.
    problem = _assert_first_bad(chain_db, 5, 4, "altered", "row id 3 seq 3")
    assert "prev_hash does not match" in problem


def test_row_taken_out_of_the_chain_at_the_head_is_named(chain_db: AuditDb) -> None:
    chain_db.tamper(N, seq=None)
    report = chain_db.verify()
    assert not report.ok and report.problem_kind == "removed"
    assert report.problem_event_id == N and report.problem_seq is None
    assert report.problem == (
        f"row id {N}: has chain fields but no seq: it was taken out of the chain (removed)"
    )
    assert report.checked == N - 1 and report.pending == 1


def _shift_up_from(adb: AuditDb, seq: int) -> None:
    """Make room at `seq` (one row at a time, from the top, so the unique index never objects)."""
    for s in range(N, seq - 1, -1):
        with adb.engine.begin() as conn:
            conn.execute(update(TABLE).where(TABLE.c.seq == s).values(seq=s + 1))


def _forged_row(adb: AuditDb, seq: int, **chain: Any) -> dict[str, Any]:
    content = dict(
        _content(adb.by_seq(seq - 1)),
        id=1000,
        action="recording.deleted",
        reason="nothing to see",
    )
    return dict(content, seq=seq, sequenced_at=dt.datetime(2025, 3, 1, tzinfo=dt.UTC), **chain)


def test_naively_forged_row_inserted_in_the_middle_is_named(chain_db: AuditDb) -> None:
    _shift_up_from(chain_db, 6)
    chain_db.insert_raw(**_forged_row(chain_db, 6, prev_hash="ab" * 32, hash="cd" * 32))
    _assert_first_bad(chain_db, 1000, 6, "altered")


def test_carefully_forged_row_inserted_in_the_middle_is_caught_at_the_next_row(
    chain_db: AuditDb,
) -> None:
    """A forged row with a correct hash and link still breaks the link of the row after it."""
    prev_hash = chain_db.by_seq(5)["hash"]
    _shift_up_from(chain_db, 6)
    forged = _forged_row(chain_db, 6, prev_hash=prev_hash)
    content = {k: v for k, v in forged.items() if k not in ("seq", "prev_hash", "sequenced_at")}
    forged["hash"] = event_digest(**content, seq=6, prev_hash=prev_hash)
    chain_db.insert_raw(**forged)
    report = chain_db.verify()
    assert report.checked == 6  # the forgery itself is consistent with what precedes it
    # The genuine row id 6, now at seq 7, no longer matches its hash nor links to the forgery.
    problem = _assert_first_bad_at(chain_db, 6, 7)
    assert "row id 1000 seq 6" in problem


def _assert_first_bad_at(adb: AuditDb, event_id: int, seq: int) -> str:
    report = adb.verify(batch=2)
    assert not report.ok
    assert (report.problem_event_id, report.problem_seq) == (event_id, seq), report.problem
    assert report.problem is not None
    return report.problem


def test_duplicate_seq_is_named_even_across_a_page_boundary(chain_db: AuditDb) -> None:
    """Only possible once the unique index is gone too; keyset paging must still see both rows."""
    if chain_db.engine.dialect.name == "postgresql":
        with chain_db.engine.begin() as conn:
            conn.exec_driver_sql(
                "ALTER TABLE audit_events DROP CONSTRAINT IF EXISTS uq_audit_events_seq")
            conn.exec_driver_sql("DROP INDEX IF EXISTS uq_audit_events_seq")
    else:
        with chain_db.engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX IF EXISTS uq_audit_events_seq")
    # SQLite keeps a UNIQUE table constraint in its own autoindex, which cannot be dropped:
    # rebuild the table without it, as an attacker would (harmless on PostgreSQL).
    with chain_db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t AS SELECT * FROM audit_events")
        conn.exec_driver_sql("DROP TABLE audit_events")
        conn.exec_driver_sql("ALTER TABLE t RENAME TO audit_events")
        conn.exec_driver_sql("CREATE INDEX ix_seq ON audit_events (seq)")
    forged = _forged_row(chain_db, 4, prev_hash="ab" * 32, hash="cd" * 32)
    chain_db.insert_raw(**forged)
    for batch in (1, 2, 3, 4, 5000):
        report = chain_db.verify(batch=batch)
        assert not report.ok, batch
        assert (report.problem_event_id, report.problem_seq) == (1000, 4), (batch, report.problem)
        assert report.problem_kind == "out-of-order"
        assert "same seq as row id 4" in (report.problem or "")


def test_swapped_rows_are_named(chain_db: AuditDb) -> None:
    with chain_db.engine.begin() as conn:
        conn.execute(update(TABLE).where(TABLE.c.id == 3).values(seq=-1))
        conn.execute(update(TABLE).where(TABLE.c.id == 7).values(seq=3))
        conn.execute(update(TABLE).where(TABLE.c.id == 3).values(seq=7))
    problem = _assert_first_bad(chain_db, 7, 3, "altered", "row id 2 seq 2")
    assert "prev_hash does not match" in problem


def test_swapped_adjacent_rows_are_named(chain_db: AuditDb) -> None:
    with chain_db.engine.begin() as conn:
        conn.execute(update(TABLE).where(TABLE.c.id == 8).values(seq=-1))
        conn.execute(update(TABLE).where(TABLE.c.id == 9).values(seq=8))
        conn.execute(update(TABLE).where(TABLE.c.id == 8).values(seq=9))
    _assert_first_bad(chain_db, 9, 8, "altered")


def test_chain_fields_wiped_from_a_linked_row_are_named(chain_db: AuditDb) -> None:
    chain_db.tamper(2, hash=None)
    _assert_first_bad(chain_db, 2, 2, "incomplete", "no hash")


def test_genesis_link_is_checked(chain_db: AuditDb) -> None:
    row = chain_db.by_seq(1)
    fake_prev = "9" * 64
    chain_db.tamper(1, prev_hash=fake_prev)
    chain_db.tamper(1, hash=event_digest(**_content(row), seq=1, prev_hash=fake_prev))
    problem = _assert_first_bad(chain_db, 1, 1, "broken-link", "genesis")
    assert GENESIS_HASH not in problem  # says what is wrong, without dumping hashes


def test_pending_rows_are_left_alone_by_verify(chain_db: AuditDb) -> None:
    chain_db.record(2)
    report = chain_db.verify()
    assert report.ok and report.checked == N and report.pending == 2
