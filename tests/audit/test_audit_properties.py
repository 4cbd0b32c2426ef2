"""Properties of the chain over random event streams: it always verifies, and any edit shows.

Each example gets its own fresh database (a copy of one migrated template).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from audit_helpers import AuditDb, open_audit_db
from hypothesis import given, settings
from hypothesis import strategies as st

from evidence_locker import db
from evidence_locker.audit.chain import GENESIS_HASH, event_digest
from evidence_locker.audit.models import AuditEvent
from evidence_locker.audit.service import Actor, record
from evidence_locker.clock import FixedClock

CONTENT = (
    "id", "occurred_at", "action", "actor_type", "actor_id", "actor_name", "object_type",
    "object_id", "ip", "user_agent", "purpose", "reason", "details",
)  # fmt: skip
NOT_NULL = {"id", "occurred_at", "action", "actor_type", "details"}

text = st.text(max_size=24)  # any code point but surrogates: accents, CJK, emoji, controls
maybe_text = st.none() | text
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)
zones = st.just(dt.UTC) | st.builds(
    dt.timezone, st.timedeltas(min_value=dt.timedelta(hours=-14), max_value=dt.timedelta(hours=14))
)
instants = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=zones
)
actors = st.builds(
    Actor,
    type=st.sampled_from(["user", "dock", "token", "system"]) | st.text(min_size=1, max_size=16),
    id=maybe_text,
    name=maybe_text,
    ip=maybe_text,
    user_agent=st.none() | st.text(max_size=500),
)
events = st.fixed_dictionaries(
    {
        "at": instants,
        "actor": actors,
        "action": st.text(min_size=1, max_size=64),
        "object_type": maybe_text,
        "object_id": maybe_text,
        "details": st.none() | st.dictionaries(text, json_values, max_size=4),
        "purpose": maybe_text,
        "reason": st.none() | st.text(max_size=200),
    }
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.lists(events, min_size=1, max_size=4)),
        st.tuples(st.just("sequence"), st.integers(min_value=1, max_value=5)),
        st.tuples(st.just("verify"), st.integers(min_value=1, max_value=5)),
    ),
    max_size=12,
)


def _write(adb: AuditDb, batch: list[dict[str, Any]]) -> None:
    """One transaction, as a service would write it alongside its change."""
    with db.transaction(adb.factory) as session:
        for ev in batch:
            fields = dict(ev)
            record(session, clock=FixedClock(fields.pop("at")), **fields)


def _assert_chain_intact(adb: AuditDb, expected: int) -> None:
    rows = adb.rows()
    assert [r["seq"] for r in rows] == list(range(1, expected + 1))
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    prev = GENESIS_HASH
    for row in rows:
        assert row["prev_hash"] == prev
        content = {k: row[k] for k in CONTENT}
        assert row["hash"] == event_digest(**content, seq=row["seq"], prev_hash=prev)
        prev = row["hash"]


@settings(max_examples=50, deadline=None)
@given(ops=operations, final_batch=st.integers(min_value=1, max_value=6))
def test_chain_always_verifies(
    new_audit_db_url: Callable[[], str], ops: list[tuple[str, Any]], final_batch: int
) -> None:
    with open_audit_db(new_audit_db_url()) as adb:
        written = linked = 0
        for op, arg in ops:
            if op == "write":
                _write(adb, arg)
                written += len(arg)
            elif op == "sequence":
                linked += adb.sequence(batch=arg)
                assert linked == written
            else:
                report = adb.verify(batch=arg)
                assert report.ok, report.problem
                assert (report.checked, report.pending) == (linked, written - linked)
        linked += adb.sequence(batch=final_batch)
        assert linked == written
        report = adb.verify(batch=final_batch)
        assert report.ok, report.problem
        assert (report.checked, report.pending) == (written, 0)
        assert report.head_seq == (written or None)
        _assert_chain_intact(adb, written)


def _different(data: st.DataObject, field: str, old: Any, max_id: int) -> Any:
    if field == "id":
        return data.draw(st.integers(min_value=max_id + 1, max_value=2**62))
    if field == "occurred_at":
        shift = data.draw(st.integers(min_value=1, max_value=10**15) | st.integers(-(10**15), -1))
        return old + dt.timedelta(microseconds=shift)
    # What an attacker with SQL can write: the column's length, and no NUL (which PostgreSQL's
    # text types refuse; SQLite would take it).
    limit = getattr(AuditEvent.__table__.c[field].type, "length", None)
    edited = st.text(st.characters(blacklist_characters="\x00"), min_size=1, max_size=limit or 24)
    values = edited if field in NOT_NULL else st.none() | edited
    return data.draw(values.filter(lambda v: v != old))


@settings(max_examples=50, deadline=None)
@given(
    batch=st.lists(events, min_size=1, max_size=8),
    field=st.sampled_from(CONTENT),
    data=st.data(),
)
def test_any_single_edit_is_named_at_its_row(
    new_audit_db_url: Callable[[], str],
    batch: list[dict[str, Any]],
    field: str,
    data: st.DataObject,
) -> None:
    with open_audit_db(new_audit_db_url()) as adb:
        _write(adb, batch[: len(batch) // 2])
        _write(adb, batch[len(batch) // 2 :])
        adb.sequence(batch=3)
        rows = adb.rows()
        victim = data.draw(st.sampled_from(rows), label="victim")
        new = _different(data, field, victim[field], max(r["id"] for r in rows))
        adb.drop_triggers()
        adb.tamper(victim["id"], **{field: new})
        expected_id = new if field == "id" else victim["id"]
        for page in (1, 4, 5000):
            report = adb.verify(batch=page)
            assert not report.ok
            assert (report.problem_event_id, report.problem_seq) == (expected_id, victim["seq"])
            assert report.problem_kind == "altered", report.problem
            assert report.checked == victim["seq"] - 1
