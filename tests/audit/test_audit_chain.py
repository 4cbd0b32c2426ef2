"""Linking events into the chain, the triggers that guard it, and the background sequencer."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from typing import Any

import pytest
from audit_helpers import TABLE, AuditDb
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from evidence_locker import db
from evidence_locker.audit import chain
from evidence_locker.audit.chain import (
    GENESIS_HASH,
    Checkpoint,
    Sequencer,
    current_head,
    event_digest,
    head_query,
    pending_query,
    sequence_pending,
)
from evidence_locker.audit.service import SYSTEM, record

FIELDS: dict[str, Any] = {
    "id": 7,
    "occurred_at": dt.datetime(2025, 1, 2, 3, 4, 5, 600, tzinfo=dt.UTC),
    "action": "recording.viewed",
    "actor_type": "user",
    "actor_id": "42",
    "actor_name": "DC Ødegård",
    "object_type": "recording",
    "object_id": "r-1",
    "ip": "10.0.0.9",
    "user_agent": "Firefox",
    "purpose": "investigation",
    "reason": "Op. Nightjar — review",
    "details": '{"a":1}',
}


# --- the digest ----------------------------------------------------------------------------------


def test_digest_is_sha256_of_the_documented_canonical_json() -> None:
    expected_doc = dict(FIELDS, occurred_at="2025-01-02T03:04:05.000600+00:00")
    expected_doc.update(seq=1, prev_hash=GENESIS_HASH, v=1)
    raw = json.dumps(expected_doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(raw.encode()).hexdigest()
    assert event_digest(**FIELDS, seq=1, prev_hash=GENESIS_HASH) == expected


def test_digest_depends_on_every_field_seq_and_prev_hash() -> None:
    base = event_digest(**FIELDS, seq=1, prev_hash=GENESIS_HASH)
    for name, value in FIELDS.items():
        changed: Any
        if isinstance(value, str):
            changed = value + "x"
        elif isinstance(value, dt.datetime):
            changed = value + dt.timedelta(microseconds=1)
        else:
            changed = value + 1
        assert (
            event_digest(**dict(FIELDS, **{name: changed}), seq=1, prev_hash=GENESIS_HASH) != base
        )
    assert event_digest(**dict(FIELDS, actor_id=None), seq=1, prev_hash=GENESIS_HASH) != base
    assert event_digest(**FIELDS, seq=2, prev_hash=GENESIS_HASH) != base
    assert event_digest(**FIELDS, seq=1, prev_hash="1" * 64) != base


def test_digest_is_independent_of_the_time_zone_the_instant_is_given_in() -> None:
    paris = FIELDS["occurred_at"].astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert event_digest(**dict(FIELDS, occurred_at=paris), seq=1, prev_hash=GENESIS_HASH) == (
        event_digest(**FIELDS, seq=1, prev_hash=GENESIS_HASH)
    )
    naive = FIELDS["occurred_at"].replace(tzinfo=None)
    with pytest.raises(ValueError):
        event_digest(**dict(FIELDS, occurred_at=naive), seq=1, prev_hash=GENESIS_HASH)


def test_checkpoint_has_a_canonical_form_to_sign() -> None:
    assert Checkpoint(3, "ab" * 32).canonical() == '{"hash":"' + "ab" * 32 + '","seq":3,"v":1}'


# --- sequencing ----------------------------------------------------------------------------------


def test_empty_log_verifies(audit_db: AuditDb) -> None:
    assert audit_db.sequence() == 0
    report = audit_db.verify()
    assert report.ok and report.checked == 0 and report.pending == 0
    assert report.head_seq is None and report.checkpoint is None


def test_sequencing_links_pending_events_in_id_order(audit_db: AuditDb) -> None:
    ids = audit_db.record(3) + audit_db.record(2, object_type="recording", object_id="r9")
    assert audit_db.verify().pending == 5
    assert audit_db.sequence(batch=2) == 5
    rows = audit_db.rows()
    assert [r["id"] for r in rows] == ids
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev_hash"] == GENESIS_HASH
    for before, after in zip(rows, rows[1:], strict=False):
        assert after["prev_hash"] == before["hash"]
    assert all(r["sequenced_at"] == audit_db.clock.now() for r in rows)
    report = audit_db.verify()
    assert report.ok and report.checked == 5 and report.pending == 0
    assert report.checkpoint == Checkpoint(5, rows[-1]["hash"])


def test_sequencing_fills_the_chain_fields_once(audit_db: AuditDb) -> None:
    audit_db.record(2)
    assert audit_db.sequence() == 2
    before = audit_db.rows()
    audit_db.clock.advance(dt.timedelta(hours=1))
    assert audit_db.sequence() == 0
    assert audit_db.rows() == before
    audit_db.record(1)
    assert audit_db.sequence() == 1
    rows = audit_db.rows()
    assert rows[:2] == before
    assert rows[2]["seq"] == 3 and rows[2]["prev_hash"] == before[1]["hash"]
    assert audit_db.verify().ok


def test_a_rolled_back_change_leaves_no_event(audit_db: AuditDb) -> None:
    with pytest.raises(RuntimeError), db.transaction(audit_db.factory) as session:
        record(session, clock=audit_db.clock, actor=SYSTEM, action="hold.placed")
        session.flush()
        raise RuntimeError("the change failed")
    assert audit_db.rows() == []


def test_current_head(audit_db: AuditDb) -> None:
    with audit_db.factory() as session:
        assert current_head(session) is None
    audit_db.record(2)
    audit_db.sequence()
    expected = Checkpoint(2, audit_db.by_seq(2)["hash"])
    with audit_db.factory() as session:
        assert current_head(session) == expected


def test_batch_must_be_positive(audit_db: AuditDb) -> None:
    with pytest.raises(ValueError):
        audit_db.sequence(batch=0)
    with pytest.raises(ValueError):
        audit_db.verify(batch=0)


@pytest.mark.embedded_only  # SQLite's EXPLAIN QUERY PLAN; PostgreSQL plans: bench/scale.py
@pytest.mark.parametrize(
    ("query", "sql"),
    [
        (head_query(), None),
        (pending_query(1000), None),
        (None, chain._walk_sql("10", "all")),
        (None, chain._walk_sql("10", "start")),
        (None, chain._walk_sql("10", "after")),
        (None, "SELECT count(*) FROM audit_events WHERE seq IS NULL"),
    ],
)
def test_queries_use_an_index_never_a_table_scan(audit_db: AuditDb, query: Any, sql: Any) -> None:
    """Hundreds of millions of rows: every query of the sequencer and verifier must be indexed."""
    with audit_db.engine.connect() as conn:
        if sql is None:
            sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = " | ".join(r[3] for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
    assert "USING" in plan and "INDEX" in plan, plan
    assert "SCAN audit_events" not in plan, plan
    assert "TEMP B-TREE" not in plan, plan


# --- the triggers --------------------------------------------------------------------------------


def _update(audit_db: AuditDb, event_id: int, **values: Any) -> None:
    with db.transaction(audit_db.factory) as session:
        session.execute(update(TABLE).where(TABLE.c.id == event_id).values(**values))


@pytest.mark.parametrize(
    "values",
    [
        {"action": "recording.deleted"},
        {"reason": "changed my mind"},
        {"details": "{}"},
        {"actor_name": None},
        {"occurred_at": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)},
        {"id": 999},
    ],
)
def test_triggers_refuse_to_change_content(audit_db: AuditDb, values: dict[str, Any]) -> None:
    [pending] = audit_db.record(1, reason="why", details={"k": "v"})
    [linked] = audit_db.record(1, reason="why", details={"k": "v"})
    audit_db.sequence()  # both linked now; record one more that stays pending
    [pending] = audit_db.record(1, reason="why", details={"k": "v"})
    before = audit_db.rows()
    for event_id in (linked, pending):
        with pytest.raises(DBAPIError, match="append-only"):
            _update(audit_db, event_id, **values)
    # Nor may content change along with the sequencer's one-time filling.
    with pytest.raises(DBAPIError, match="append-only"):
        _update(audit_db, pending, seq=99, prev_hash="0" * 64, hash="1" * 64, **values)
    assert audit_db.rows() == before


@pytest.mark.parametrize(
    "values",
    [
        {"seq": 9},
        {"hash": "f" * 64},
        {"prev_hash": "f" * 64},
        {"sequenced_at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)},
        {"seq": None, "prev_hash": None, "hash": None, "sequenced_at": None},
    ],
)
def test_triggers_refuse_to_change_chain_fields_once_filled(
    audit_db: AuditDb, values: dict[str, Any]
) -> None:
    [event_id] = audit_db.record(1)
    audit_db.sequence()
    before = audit_db.rows()
    with pytest.raises(DBAPIError, match="append-only"):
        _update(audit_db, event_id, **values)
    assert audit_db.rows() == before


def test_triggers_refuse_a_partial_filling(audit_db: AuditDb) -> None:
    [event_id] = audit_db.record(1)
    for values in ({"seq": 1}, {"hash": "a" * 64}, {"prev_hash": GENESIS_HASH, "hash": None}):
        with pytest.raises(DBAPIError, match="append-only"):
            _update(audit_db, event_id, **values)
    assert audit_db.rows()[0]["seq"] is None


def test_triggers_refuse_delete(audit_db: AuditDb) -> None:
    audit_db.record(2)
    audit_db.sequence()
    [pending] = audit_db.record(1)
    for row in audit_db.rows():
        with pytest.raises(DBAPIError, match="append-only"):
            audit_db.remove(row["id"])
    with pytest.raises(DBAPIError, match="append-only"), audit_db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events"))
    assert len(audit_db.rows()) == 3
    assert pending in {r["id"] for r in audit_db.rows()}


# --- concurrency and the background thread -------------------------------------------------------


def test_two_concurrent_sequencers_make_one_contiguous_chain(audit_db: AuditDb) -> None:
    """Writers keep writing while two sequencers race; the chain never forks or skips."""
    stop = threading.Event()
    errors: list[BaseException] = []
    linked = [0, 0]

    def writer() -> None:
        try:
            for _ in range(40):
                audit_db.record(3)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def sequencer(slot: int) -> None:
        try:
            while not stop.is_set():
                linked[slot] += sequence_pending(audit_db.factory, clock=audit_db.clock, batch=4)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sequencer, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    writing = threading.Thread(target=writer)
    writing.start()
    writing.join()
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    final = audit_db.sequence()
    assert sum(linked) + final == 120
    rows = audit_db.rows()
    assert [r["seq"] for r in rows] == list(range(1, 121))
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    report = audit_db.verify(batch=7)
    assert report.ok and report.checked == 120 and report.pending == 0


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_background_sequencer_links_within_its_interval(audit_db: AuditDb) -> None:
    sequencer = Sequencer(audit_db.factory, clock=audit_db.clock, interval=0.02, batch=2)
    with sequencer:
        assert sequencer.running
        audit_db.record(5)
        _wait_for(lambda: audit_db.verify(every_way=False).checked == 5)
        audit_db.record(1)
        _wait_for(lambda: audit_db.verify(every_way=False).checked == 6)
    assert not sequencer.running
    report = audit_db.verify()
    assert report.ok and report.pending == 0


def test_background_sequencer_logs_errors_and_keeps_going(
    audit_db: AuditDb, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = chain.sequence_pending
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RuntimeError("database is locked")
        return real(*args, **kwargs)

    monkeypatch.setattr(chain, "sequence_pending", flaky)
    audit_db.record(3)
    sequencer = Sequencer(audit_db.factory, clock=audit_db.clock, interval=0.01)
    sequencer.start()
    try:
        _wait_for(lambda: audit_db.verify(every_way=False).checked == 3)
    finally:
        sequencer.stop()
    assert "audit sequencer round failed" in caplog.text
    assert "database is locked" in caplog.text


def test_run_once_links_what_is_pending(audit_db: AuditDb) -> None:
    audit_db.record(4)
    sequencer = Sequencer(audit_db.factory, clock=audit_db.clock, batch=3)
    assert sequencer.run_once() == 4
    assert sequencer.run_once() == 0
    sequencer.stop()  # never started: harmless


def test_sequence_pending_can_be_stopped_between_batches(audit_db: AuditDb) -> None:
    audit_db.record(10)
    calls = {"n": 0}

    def stop_after_two() -> bool:
        calls["n"] += 1
        return calls["n"] >= 2

    linked = sequence_pending(
        audit_db.factory, clock=audit_db.clock, batch=3, should_stop=stop_after_two
    )
    assert linked == 6
    assert audit_db.verify().pending == 4
    assert audit_db.sequence(batch=3) == 4


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"actor_id": None, "ip": None, "reason": 'quote " back\\slash \x01 \n é 漢 🎥'},
        {"action": 17, "details": 3.5},  # only a tampered SQLite row: the general path
        {"occurred_at": "2025-03-01 09:30:00"},  # SQLite text without microseconds
    ],
)
def test_raw_digest_is_event_digest(changes: dict[str, Any]) -> None:
    """The verifier's fast digest over driver tuples hashes exactly what event_digest hashes."""
    fields = dict(id=7, occurred_at=dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC),
                  action="recording.viewed", actor_type="user", actor_id="u1", actor_name="PC",
                  object_type="recording", object_id="r1", ip="10.0.0.1", user_agent="ua",
                  purpose="complaint", reason="why", details='{"a":1}')
    fields.update(changes)
    raw = tuple(fields[name] for name in chain.CONTENT_FIELDS)
    if isinstance(fields["occurred_at"], str):
        fields["occurred_at"] = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC)
    assert chain._raw_digest(raw, 3, "ab" * 32) == event_digest(**fields, seq=3,
                                                                prev_hash="ab" * 32)


# --- the walk's split ----------------------------------------------------------------------------


def test_an_automatic_split_walks_its_parts_a_cpu_at_a_time(
    audit_db: AuditDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """workers=None cuts the chain into PARTS_PER_CPU contiguous parts a CPU (here every part
    may be small), walks as many at once as there are CPUs, and reports what one walk does,
    sound or tampered."""
    for i in range(40):
        audit_db.record(1, object_type="recording", object_id=f"r{i}")
    assert audit_db.sequence(batch=7) == 40
    monkeypatch.setattr(chain, "MIN_RANGE_ROWS", 1)
    monkeypatch.setattr(chain, "available_cpus", lambda: 2)
    with audit_db.factory() as session:
        for split in (chain._ranges(session, None, None), chain._id_ranges(session, None, None)):
            assert len(split) == 2 * chain.PARTS_PER_CPU
            assert split[0].after is None and split[-1].upto is None
            assert all(a.upto == b.after for a, b in zip(split, split[1:], strict=False))

    walk = chain._walk_range_at
    lock, running, most = threading.Lock(), [0], [0]

    def counted(*args: Any) -> Any:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)  # long enough for the parts to overlap, were more let run
        try:
            return walk(*args)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(chain, "_walk_range_at", counted)
    with audit_db.factory() as session:
        one, auto = (chain.verify_chain(session, batch=3, workers=w) for w in (1, None))
    assert auto == one and auto.ok and auto.checked == 40
    assert most[0] == 2
    audit_db.drop_triggers()
    audit_db.tamper(23, actor_name="someone else")
    with audit_db.factory() as session:
        one, auto = (chain.verify_chain(session, batch=3, workers=w) for w in (1, None))
    assert auto == one and not auto.ok and auto.problem_event_id == 23
