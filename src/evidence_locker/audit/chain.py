"""The hash chain over the audit log: one sequencer links committed events, anyone can verify.

Writers only ever INSERT an event (seq NULL) in the transaction of the change it records, so
they never wait on a global lock. A single sequencer then gives each committed event the next
sequence number, the hash of its predecessor and its own hash, as a transparency log's sequencer
does. The database triggers (migration 0002) allow exactly that one-time filling and refuse any
other UPDATE or DELETE; `verify_chain` recomputes every hash to catch what the triggers cannot
stop (someone with the power to drop them).

A chain head `Checkpoint(seq, hash)` commits to every event up to `seq`; signing checkpoints and
comparing them with the chain later is what catches a truncated or wholesale rewritten tail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import multiprocessing
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, cast

from sqlalchemy import (
    Row,
    Select,
    Table,
    bindparam,
    create_engine,
    func,
    make_url,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.sqlite import base as sqlite_types
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite as sqlite_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from evidence_locker.audit.models import AuditEvent
from evidence_locker.audit.service import canonical_json
from evidence_locker.clock import Clock
from evidence_locker.db import transaction

try:  # the compiled page check (setup.py); optional, the Python digest gives the same verdicts
    from evidence_locker.audit import _chainwalk
except ImportError:  # pragma: no cover - built without a compiler
    _chainwalk = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: Who hashes each event of a walk: Python (`_raw_digest`), PostgreSQL in SQL
#: (`_sql_checked`), or the compiled check on SQLite (audit/_chainwalk.c). The last two return
#: only the rows Python must look at, and Python re-checks those.
Digest = Literal["python", "sql", "compiled"]

#: prev_hash of the first event (seq 1).
GENESIS_HASH = "0" * 64

#: Version of the hashed document; bump it (and keep the old one verifiable) if the format changes.
CHAIN_FORMAT = 1

#: Every column a writer fills, in the order the table declares them; all of them are hashed.
CONTENT_FIELDS: tuple[str, ...] = (
    "id",
    "occurred_at",
    "action",
    "actor_type",
    "actor_id",
    "actor_name",
    "object_type",
    "object_id",
    "ip",
    "user_agent",
    "purpose",
    "reason",
    "details",
)

#: Key of the PostgreSQL transaction-level advisory lock that makes sequencers take turns.
SEQUENCER_LOCK_KEY = 0x6C6F636B65724151  # b"lockerAQ"

_T = cast(Table, AuditEvent.__table__)
_C = _T.c


@dataclass(frozen=True)
class Checkpoint:
    """A chain head: the hash of event `seq` commits to every event before it. What gets signed."""

    seq: int
    hash: str

    def canonical(self) -> str:
        """The exact text to sign, so that signer and verifier agree byte for byte."""
        return canonical_json({"hash": self.hash, "seq": self.seq, "v": CHAIN_FORMAT})


@dataclass(frozen=True)
class ChainReport:
    """The outcome of a walk over the chain; `problem` names the first row that fails."""

    ok: bool
    checked: int
    head_seq: int | None
    head_hash: str | None
    pending: int
    problem: str | None = None
    problem_event_id: int | None = None
    problem_seq: int | None = None
    #: altered | removed | out-of-order | broken-link | incomplete (None when ok)
    problem_kind: str | None = None
    #: Hash found at each watched seq that the walk reached (for checking signed checkpoints).
    seen: dict[int, str] = field(default_factory=dict)

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The last verified head, ready to be signed; None for an empty chain."""
        if self.head_seq is None or self.head_hash is None:
            return None
        return Checkpoint(self.head_seq, self.head_hash)


def _iso_utc(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def event_digest(
    *,
    id: int,
    occurred_at: dt.datetime,
    action: str,
    actor_type: str,
    actor_id: str | None,
    actor_name: str | None,
    object_type: str | None,
    object_id: str | None,
    ip: str | None,
    user_agent: str | None,
    purpose: str | None,
    reason: str | None,
    details: str,
    seq: int,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of one chain entry: every content field, its seq and its predecessor's hash.

    The hashed bytes are UTF-8 of `canonical_json` (sorted keys, no spaces, no ASCII escaping) of
    an object holding the 13 content fields under their column names, `seq`, `prev_hash` and
    `"v": 1`; `occurred_at` is ISO 8601 in UTC with microseconds
    (`2024-05-01T12:00:00.000000+00:00`) and `details` is the stored JSON text itself, so a
    re-encoded but equal value still shows.
    Written out here so that an export bundle's stand-alone verifier can do the same.
    """
    document = {
        "v": CHAIN_FORMAT,
        "id": id,
        "occurred_at": _iso_utc(occurred_at),
        "action": action,
        "actor_type": actor_type,
        "actor_id": actor_id,
        "actor_name": actor_name,
        "object_type": object_type,
        "object_id": object_id,
        "ip": ip,
        "user_agent": user_agent,
        "purpose": purpose,
        "reason": reason,
        "details": details,
        "seq": seq,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def _row_digest(row: Row[Any], *, seq: int, prev_hash: str) -> str:
    content = {name: row._mapping[name] for name in CONTENT_FIELDS}
    return event_digest(**content, seq=seq, prev_hash=prev_hash)


# --- queries, each answered from an index (checked by EXPLAIN in the tests) -----------------------


def head_query() -> Select[Any]:
    """The newest linked event, found from the unique index on seq (never a scan)."""
    query = select(_C.id, _C.seq, _C.hash).where(_C.seq.is_not(None))
    return query.order_by(_C.seq.desc()).limit(1)


def pending_query(limit: int) -> Select[Any]:
    """Unlinked events, oldest id first.

    `seq IS NULL` is answered by the seq index (SQLite and PostgreSQL B-trees both hold NULLs;
    in SQLite the entries come in rowid order) or, if one is ever added, by a partial index
    `(id) WHERE seq IS NULL`; it never walks the linked majority of the table.
    """
    columns = [_C[name] for name in CONTENT_FIELDS]
    return select(*columns).where(_C.seq.is_(None)).order_by(_C.id).limit(limit)


_LINK = (
    update(_T)
    .where(_C.id == bindparam("b_id"), _C.seq.is_(None))
    .values(
        seq=bindparam("b_seq"),
        prev_hash=bindparam("b_prev_hash"),
        hash=bindparam("b_hash"),
        sequenced_at=bindparam("b_sequenced_at"),
    )
)


def current_head(session: Session) -> Checkpoint | None:
    """The newest linked event as a checkpoint (unverified: `verify_chain` checks it)."""
    row = session.execute(head_query()).first()
    if row is None:
        return None
    return Checkpoint(int(row.seq), str(row.hash))


# --- the sequencer -------------------------------------------------------------------------------


def _take_sequencer_lock(session: Session) -> None:
    """Make concurrent sequencers take turns.

    PostgreSQL: a transaction-level advisory lock, released at commit or rollback; in READ
    COMMITTED every later statement then sees the previous holder's work. SQLite: nothing to do,
    the engine opens every transaction with BEGIN IMMEDIATE, which already holds the one write
    lock (see db.make_engine).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEQUENCER_LOCK_KEY})


def _link_batch(session_factory: sessionmaker[Session], *, clock: Clock, batch: int) -> int:
    with transaction(session_factory) as session:
        _take_sequencer_lock(session)
        head = current_head(session)
        seq, prev_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
        rows = session.execute(pending_query(batch)).all()
        if not rows:
            return 0
        now = clock.now()
        params: list[dict[str, Any]] = []
        for row in rows:
            seq += 1
            digest = _row_digest(row, seq=seq, prev_hash=prev_hash)
            params.append(
                {
                    "b_id": row.id,
                    "b_seq": seq,
                    "b_prev_hash": prev_hash,
                    "b_hash": digest,
                    "b_sequenced_at": now,
                }
            )
            prev_hash = digest
        result = session.execute(_LINK, params)
        dialect = session.get_bind().dialect
        rowcount: int = getattr(result, "rowcount", -1)
        sane = (
            dialect.supports_sane_multi_rowcount
            if len(params) > 1
            else dialect.supports_sane_rowcount
        )
        if sane and rowcount not in (-1, len(params)):
            # Someone linked these rows under our feet: the lock is not doing its job. Roll back.
            raise RuntimeError(f"linked {rowcount} of {len(params)} audit events; rolled back")
        return len(rows)


def sequence_pending(
    session_factory: sessionmaker[Session],
    *,
    clock: Clock,
    batch: int = 1000,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Link every committed, unlinked event after the current head; return how many were linked.

    One short transaction per batch so that writers (on SQLite, which has one write lock) wait
    at most one batch. Safe to run from several processes at once: they take turns. Under a
    sustained flood it keeps going until it catches up, unless `should_stop()` says otherwise
    (checked between batches, so a shutting-down sequencer is not held up).
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    total = 0
    while True:
        linked = _link_batch(session_factory, clock=clock, batch=batch)
        total += linked
        if linked < batch or (should_stop is not None and should_stop()):
            return total


class Sequencer:
    """Background thread that links pending events every `interval` seconds.

    Errors (database busy, connection lost) are logged and the next round tries again: an
    unlinked event is late, never lost, since it is already committed.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        clock: Clock,
        interval: float = 1.0,
        batch: int = 1000,
    ) -> None:
        self._session_factory = session_factory
        self._clock = clock
        self.interval = interval
        self.batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Link what is pending now; return how many events were linked."""
        return sequence_pending(
            self._session_factory,
            clock=self._clock,
            batch=self.batch,
            should_stop=self._stop.is_set,
        )

    def start(self) -> None:
        """Start the thread (a daemon: it never keeps the process alive on its own)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="audit-sequencer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Ask the thread to finish its current round and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Sequencer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                linked = self.run_once()
                if linked:
                    log.debug("audit sequencer linked %d events", linked)
            except Exception:
                log.exception("audit sequencer round failed; retrying in %.1f s", self.interval)
            self._stop.wait(self.interval)


# --- verification --------------------------------------------------------------------------------
#
# The walk reads raw DBAPI tuples (no ORM objects, no per-row type processing) and hashes each row
# through a fixed template that yields exactly the bytes `event_digest` hashes (checked against it
# in the tests and on every sequenced row), because at hundreds of millions of rows the per-row
# Python cost, not SHA-256, is what bounds verification.

#: What canonical_json uses for strings (ensure_ascii=False), in C; TypeError on a non-string.
_enc_str: Callable[[str], str] = json.encoder.encode_basestring

#: `canonical_json` of the hashed document with its keys in sorted order; values go in as JSON.
_DOC = (
    '{"action":%s,"actor_id":%s,"actor_name":%s,"actor_type":%s,"details":%s,"id":%s,"ip":%s,'
    '"object_id":%s,"object_type":%s,"occurred_at":%s,"prev_hash":%s,"purpose":%s,"reason":%s,'
    '"seq":%s,"user_agent":%s,"v":' + str(CHAIN_FORMAT) + "}"
)

#: How SQLAlchemy stores a DateTime in SQLite (UTC, naive): parsed without it when well formed.
_SQLITE_TS = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")
_sqlite_datetime = sqlite_types.DATETIME().result_processor(sqlite_dialect(), None)


def _json_value(value: Any) -> str:
    """`canonical_json` of one value (the general path, for values of unexpected types)."""
    if value is None:
        return "null"
    return canonical_json(value)


def _iso_raw(value: Any) -> str:
    """occurred_at as read by the DBAPI driver, in the form `event_digest` hashes."""
    if type(value) is str:
        if _SQLITE_TS.fullmatch(value):
            return f"{value[:10]}T{value[11:]}+00:00"
        assert _sqlite_datetime is not None
        value = _sqlite_datetime(value)
        if value is None:
            raise ValueError("occurred_at is empty")
    if value.tzinfo is None:  # SQLite keeps UTC without a zone
        value = value.replace(tzinfo=dt.UTC)
    return _iso_utc(value)


def _raw_digest(row: Sequence[Any], seq: Any, prev_hash: Any) -> str:
    """`event_digest` of a raw row (CONTENT_FIELDS order) at `seq` after `prev_hash`.

    Written for speed (it runs once per event): C string escaping and no Python call per field.
    A value of an unexpected type (only a tampered SQLite row can hold one) raises TypeError in
    the fast expression and takes the general path, which encodes it as `canonical_json` does.
    """
    (id_, occurred_at, action, actor_type, actor_id, actor_name, object_type, object_id, ip,
     user_agent, purpose, reason, details) = row[:13]
    enc = _enc_str
    iso = _iso_raw(occurred_at)
    try:
        if type(id_) is not int or type(seq) is not int:
            raise TypeError("not an int")
        document = _DOC % (
            enc(action),
            "null" if actor_id is None else enc(actor_id),
            "null" if actor_name is None else enc(actor_name),
            enc(actor_type),
            enc(details),
            id_,
            "null" if ip is None else enc(ip),
            "null" if object_id is None else enc(object_id),
            "null" if object_type is None else enc(object_type),
            enc(iso),
            enc(prev_hash),
            "null" if purpose is None else enc(purpose),
            "null" if reason is None else enc(reason),
            seq,
            "null" if user_agent is None else enc(user_agent),
        )
    except TypeError:
        jv = _json_value
        document = _DOC % (
            jv(action), jv(actor_id), jv(actor_name), jv(actor_type), jv(details), jv(id_),
            jv(ip), jv(object_id), jv(object_type), jv(iso), jv(prev_hash), jv(purpose),
            jv(reason), jv(seq), jv(user_agent),
        )
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


class _Linked(NamedTuple):
    """One linked row as read by the walk: content fields, then the chain fields."""

    id: int
    occurred_at: Any
    action: str
    actor_type: str
    actor_id: str | None
    actor_name: str | None
    object_type: str | None
    object_id: str | None
    ip: str | None
    user_agent: str | None
    purpose: str | None
    reason: str | None
    details: str
    seq: int
    prev_hash: str | None
    hash: str | None


_WALK_COLUMNS = ", ".join((*CONTENT_FIELDS, "seq", "prev_hash", "hash"))

#: Rows each part of a walk split with `workers=None` should have at least: below that, starting
#: a process or connection per part costs more than the part takes.
MIN_RANGE_ROWS = 50_000

#: Parts per CPU of a walk split with `workers=None`, walked by one thread (or process) per CPU:
#: a thread that finishes takes the next part, so one that runs slow (a busy core) does not
#: hold up the whole walk.
PARTS_PER_CPU = 4


@dataclass(frozen=True)
class _Range:
    """One part of a split walk: rows with `after < seq <= upto` (None: no bound that side).

    The first part has no lower bound when the walk starts at genesis (a row with seq 0 or
    below is still read, and reported); the last has no upper bound, so events linked while
    the walk runs are walked too.
    """

    after: int | None
    upto: int | None


@dataclass(frozen=True)
class _IdRange:
    """One part of a walk in id order (`_id_order_walk`): linked rows with `after < id <= upto`
    (None: no bound that side) and, after a start checkpoint, seq above `above`."""

    after: int | None
    upto: int | None
    above: int | None


def _id_walk_sql(rng: _IdRange, *, after: bool) -> str:
    """A page of an id-order walk on SQLite: the table's own B-tree in rowid order (NOT INDEXED:
    never through the seq index, which would mean a seek per row or a sort)."""
    where = "seq IS NOT NULL"
    if after:
        where += " AND id > ?"
    if rng.upto is not None:
        where += " AND id <= ?"
    if rng.above is not None:
        where += " AND seq > ?"
    # Constant column names and placeholders only: nothing from outside reaches the text.
    return (f"SELECT {_WALK_COLUMNS} FROM audit_events NOT INDEXED WHERE {where} "  # noqa: S608
            "ORDER BY id LIMIT ?")


def _walk_sql(placeholder: str, mode: str, *, upto: bool = False, in_sql: bool = False) -> str:
    """Keyset paging over (seq, id) as raw SQL for the DBAPI cursor.

    `mode`: "all" (the first page from genesis: every linked row, whatever its seq), "start"
    (the first page after a starting seq) or "after" (the page after a (seq, id) key); `upto`
    adds an upper bound on seq. Ordering by (seq, id) rather than seq alone means a duplicated
    seq (possible only once the unique constraint is gone) is still seen, even across a page
    boundary. `in_sql` (PostgreSQL): the page is checked in the database, see `_sql_checked`.
    """
    p = placeholder
    where = {
        "all": "",
        "start": f" AND seq > {p}",
        "after": f" AND seq >= {p} AND (seq > {p} OR (seq = {p} AND id > {p}))",
    }[mode]
    if upto:
        where += f" AND seq <= {p}"
    # Constant column names and placeholders only: nothing from outside reaches the text.
    sql = f"SELECT {_WALK_COLUMNS} FROM audit_events WHERE seq IS NOT NULL{where} "  # noqa: S608
    sql += f"ORDER BY seq, id LIMIT {p}"
    return _sql_checked(sql) if in_sql else sql


def _sql_json(column: str) -> str:
    """`canonical_json` of a text or bigint column, in SQL (NULL becomes null).

    PostgreSQL's to_json escapes a string exactly as Python's json does with ensure_ascii=False
    (`"`, `\\`, \\b \\f \\n \\r \\t, other controls as lowercase \\u00xx, nothing else), checked
    over arbitrary text by the tests.
    """
    return f"coalesce(to_json({column})::text, 'null')"


#: The hashed document of `_DOC` built in SQL from a row, key for key.
_SQL_DOC = "concat(" + ", ".join([
    "'{\"action\":'", _sql_json("action"),
    "',\"actor_id\":'", _sql_json("actor_id"),
    "',\"actor_name\":'", _sql_json("actor_name"),
    "',\"actor_type\":'", _sql_json("actor_type"),
    "',\"details\":'", _sql_json("details"),
    "',\"id\":'", _sql_json("id"),
    "',\"ip\":'", _sql_json("ip"),
    "',\"object_id\":'", _sql_json("object_id"),
    "',\"object_type\":'", _sql_json("object_type"),
    "',\"occurred_at\":\"'",
    "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')",
    "'\",\"prev_hash\":'", _sql_json("prev_hash"),
    "',\"purpose\":'", _sql_json("purpose"),
    "',\"reason\":'", _sql_json("reason"),
    "',\"seq\":'", _sql_json("seq"),
    "',\"user_agent\":'", _sql_json("user_agent"),
    f"',\"v\":{CHAIN_FORMAT}}}'",
]) + ")"

#: Where the SQL document is known to be `_DOC`'s: an instant Python can represent (years 1 to
#: 9999; to_char writes others differently and Python cannot read them). Any other row is
#: handed to Python, which hashes it as `event_digest` does.
_SQL_DOMAIN = (
    "occurred_at >= TIMESTAMPTZ '0001-01-01 00:00:00+00' "
    "AND occurred_at < TIMESTAMPTZ '10000-01-01 00:00:00+00'"
)


def _sql_checked(page_sql: str) -> str:
    """Wrap a page query so that PostgreSQL hashes and links every row of the page itself.

    Each row's SHA-256 is computed over `_SQL_DOC` and compared with its stored hash, and its
    seq and prev_hash with the row before it in the page. Only rows that need Python come back:
    the page's first row (its link is to the previous page), every row SQL finds wrong, and the
    page's last row (where the next page starts). Python re-checks each returned row with its
    own digest, so a row where SQL and Python could disagree is judged by Python, never
    reported as a false break. Columns: the walk's 16, then the row's place in the page, whether
    SQL found its hash right, and the id, seq and hash of the row before it.
    """
    return (
        f"SELECT {_WALK_COLUMNS}, rn, sql_ok, p_id, p_seq, p_hash FROM ("  # noqa: S608
        f"SELECT {_WALK_COLUMNS}, row_number() OVER w AS rn, lead(seq) OVER w IS NULL AS is_last,"
        " lag(id) OVER w AS p_id, lag(seq) OVER w AS p_seq, lag(hash) OVER w AS p_hash,"
        " coalesce(hash IS NOT NULL AND prev_hash IS NOT NULL AND " + _SQL_DOMAIN + " AND"
        " encode(sha256(convert_to(" + _SQL_DOC + ", 'UTF8')), 'hex') = hash, false) AS sql_ok"
        f" FROM ({page_sql}) AS page WINDOW w AS (ORDER BY seq, id)) AS checked"
        " WHERE rn = 1 OR is_last OR NOT sql_ok OR seq <> p_seq + 1"
        " OR prev_hash IS DISTINCT FROM p_hash ORDER BY seq, id"
    )


@dataclass(frozen=True)
class _Problem:
    kind: str
    text: str


class _Prev(NamedTuple):
    """The row before another in the walk: what a diagnosis names and a link is checked with."""

    id: int
    seq: int
    hash: str


def _prev_of(raw: Sequence[Any]) -> _Prev:
    return _Prev(raw[0], raw[13], raw[15])


def _check_row(
    row: _Linked, expected_seq: int, prev: _Prev | None, start: Checkpoint | None
) -> list[_Problem]:
    """Everything wrong with one linked row, given the row before it in the walk."""
    problems: list[_Problem] = []
    seq = int(row.seq)
    if seq < expected_seq:
        if prev is not None and int(prev.seq) == seq:
            text_ = f"has the same seq as row id {prev.id}: a row was inserted out of order"
        else:
            text_ = f"seq {seq} is out of order, seq {expected_seq} was expected"
        problems.append(_Problem("out-of-order", text_))
    elif seq > expected_seq:
        missing = seq - expected_seq
        span = f"{expected_seq}" if missing == 1 else f"{expected_seq}..{seq - 1}"
        if prev is not None:
            after = f"row id {prev.id} seq {prev.seq}"
        elif start is not None:
            after = f"the starting checkpoint at seq {start.seq}"
        else:
            after = "the start of the chain"
        problems.append(
            _Problem(
                "removed",
                f"{missing} event(s) with seq {span} missing between {after} and this row "
                "(removed, or the chain was renumbered)",
            )
        )
    empty = [name for name in ("prev_hash", "hash") if getattr(row, name) is None]
    if empty:
        problems.append(
            _Problem(
                "incomplete",
                f"is linked (seq set) but has no {' or '.join(empty)}: chain fields tampered with",
            )
        )
        return problems
    if _raw_digest(row, seq, row.prev_hash) != row.hash:
        problems.append(
            _Problem("altered", "its content or chain fields do not match its hash (altered)")
        )
    if prev is not None:
        expected_prev, before = prev.hash, f"row id {prev.id} seq {prev.seq}"
    elif start is not None:
        expected_prev, before = start.hash, f"the starting checkpoint at seq {start.seq}"
    else:
        expected_prev, before = GENESIS_HASH, "genesis"
    if row.prev_hash != expected_prev:
        problems.append(
            _Problem(
                "broken-link",
                f"prev_hash does not match the hash of its predecessor ({before}): that row was "
                "altered, or rows were removed or inserted between them",
            )
        )
    return problems


def _end_transaction(session: Session) -> None:
    """Release locks and snapshot between pages.

    On SQLite every transaction is BEGIN IMMEDIATE, so one long walk would hold the write lock
    for the whole log; on PostgreSQL a long snapshot holds back vacuum. Only reads happened.
    """
    if session.in_transaction():
        session.rollback()


#: Runs one page query on a DBAPI connection and returns its rows.
_Fetch = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]


def _driver_fetch(dbapi_conn: Any, dbapi_error: type[Exception]) -> _Fetch:
    """The driver's own cursor: plain tuples, no per-row processing. Its errors are wrapped as
    SQLAlchemy would have wrapped them, so callers see one kind of database error."""

    def fetch(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(sql, params)
            return cast(list[tuple[Any, ...]], cursor.fetchall())
        except dbapi_error as exc:
            raise DBAPIError.instance(sql, params, exc, dbapi_error) from exc
        finally:
            cursor.close()

    return fetch


def _session_fetch(session: Session) -> _Fetch:
    """Pages through the caller's session, each page in its own short transaction."""

    def fetch(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = session.connection()
        error = conn.dialect.loaded_dbapi.Error
        try:
            return _driver_fetch(conn.connection.driver_connection, error)(sql, params)
        finally:
            _end_transaction(session)

    return fetch


def _sqlite_path(url: str) -> str | None:
    """The file of a SQLite database URL (None: not SQLite, or in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def _compiled_fetch(path: str) -> tuple[_Fetch, Callable[[], None]]:
    """Pages checked by the compiled code on a read-only connection of its own to `path`, and
    how to close it. Its errors are wrapped as the driver's would be."""
    assert _chainwalk is not None
    try:
        handle = _chainwalk.connect(path)
    except _chainwalk.WalkError as exc:
        raise DBAPIError.instance("connect", (), sqlite3.OperationalError(str(exc)),
                                  sqlite3.Error) from exc

    def fetch(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        assert _chainwalk is not None
        try:  # a page query's last parameter is its LIMIT (`_walk_sql`)
            return _chainwalk.check_page(handle, sql, params, params[-1])
        except _chainwalk.WalkError as exc:
            raise DBAPIError.instance(sql, params, sqlite3.OperationalError(str(exc)),
                                      sqlite3.Error) from exc

    def close() -> None:
        assert _chainwalk is not None
        _chainwalk.close(handle)

    return fetch, close


@dataclass(frozen=True)
class _RangeWalk:
    """What a walk over one range found; the coordinator checks how the ranges join.

    The range's first row is anchored on itself (only its own hash is checked: its seq and link
    belong to the row before the range). `bad` is the first row that fails, `bad_prev` the good
    row before it in the range (None when `bad` is the range's first row).
    """

    first: tuple[Any, ...] | None
    last: _Prev | None
    checked: int
    bad: tuple[Any, ...] | None = None
    bad_prev: _Prev | None = None


def _page_query(placeholder: str, key: tuple[int, int] | None, rng: _Range | _IdRange,
                batch: int, digest: Digest) -> tuple[str, tuple[Any, ...]]:
    params: tuple[Any, ...]
    if isinstance(rng, _IdRange):
        after = rng.after if key is None else key[1]
        params = tuple(v for v in (after, rng.upto, rng.above) if v is not None)
        return _id_walk_sql(rng, after=after is not None), (*params, batch)
    if key is not None:
        seq, id_ = key
        mode, params = "after", (seq, seq, seq, id_)
    elif rng.after is not None:
        mode, params = "start", (rng.after,)
    else:
        mode, params = "all", ()
    if rng.upto is not None:
        params += (rng.upto,)
    sql = _walk_sql(placeholder, mode, upto=rng.upto is not None, in_sql=digest == "sql")
    return sql, (*params, batch)


def _walk_range(fetch: _Fetch, placeholder: str, rng: _Range | _IdRange, batch: int,
                digest: Digest) -> _RangeWalk:
    """Walk one range in keyset pages of `batch` rows until its first failing row.

    With the "sql" or "compiled" digest a page comes back checked: only its first row, the
    rows found wrong and its last row, each with its place in the page, whether its own hash
    was confirmed and the id, seq and hash of the row before it; Python re-checks those."""
    checked_before = digest != "python"
    row_digest = _raw_digest
    first: tuple[Any, ...] | None = None
    last: _Prev | None = None
    checked = 0
    expected_seq: int | None = None  # None until the range's first row anchors it
    expected_prev: str | None = None
    key: tuple[int, int] | None = None
    while True:
        sql, params = _page_query(placeholder, key, rng, batch, digest)
        rows = fetch(sql, params)
        if not rows:
            break
        if checked_before:
            end = rows[-1]
            for raw in rows:
                seq, prev_hash, hash_, rn = raw[13], raw[14], raw[15], raw[16]
                if rn == 1:
                    prev, want_seq, want_prev = last, expected_seq, expected_prev
                elif raw[17] and seq == raw[19] + 1 and prev_hash == raw[20]:
                    continue  # the page's last row, checked by SQL: it only marks the end
                else:
                    prev, want_seq, want_prev = _Prev(raw[18], raw[19], raw[20]), raw[19] + 1, \
                        raw[20]
                if first is None:
                    first = raw[:16]
                if want_seq is None:
                    bad = hash_ is None or prev_hash is None
                else:
                    bad = seq != want_seq or prev_hash != want_prev or hash_ is None
                if bad or row_digest(raw, seq, prev_hash) != hash_:
                    return _RangeWalk(first, prev, checked + rn - 1, raw[:16], prev)
            n = end[16]
            checked += n
            last = _prev_of(end)
        else:
            prev_raw: tuple[Any, ...] | None = None
            for raw in rows:
                seq, prev_hash, hash_ = raw[13], raw[14], raw[15]
                if expected_seq is None:
                    first = raw
                    bad = hash_ is None or prev_hash is None
                else:
                    bad = seq != expected_seq or prev_hash != expected_prev or hash_ is None
                if bad or row_digest(raw, seq, prev_hash) != hash_:
                    if prev_raw is not None:
                        last = _prev_of(prev_raw)
                    return _RangeWalk(first, last, checked, raw, last)
                checked += 1
                expected_seq = seq + 1
                expected_prev = hash_
                prev_raw = raw
            assert prev_raw is not None
            last = _prev_of(prev_raw)
            n = len(rows)
        expected_seq, expected_prev = last.seq + 1, last.hash
        key = (last.seq, last.id)
        if n < batch:
            break
    return _RangeWalk(first, last, checked)


def _walk_range_at(url: str, rng: _Range | _IdRange, batch: int,
                   digest: Digest) -> _RangeWalk:
    """One range on a connection of its own (a worker process or thread of a split walk).

    A plain engine, not `db.make_engine`'s: a reader must not take SQLite's write lock (BEGIN
    IMMEDIATE). Each page is its own statement outside a transaction (SQLite's driver starts
    none for a SELECT; PostgreSQL in autocommit), so no snapshot outlives a page. The compiled
    check opens the SQLite file read-only itself.
    """
    if digest == "compiled":
        path = _sqlite_path(url)
        assert path is not None, "the compiled check needs a SQLite file"
        fetch, close = _compiled_fetch(path)
        try:
            return _walk_range(fetch, "?", rng, batch, digest)
        finally:
            close()
    engine = create_engine(url, poolclass=NullPool)
    try:
        raw = engine.raw_connection()
        try:
            driver = raw.driver_connection
            if engine.dialect.name == "postgresql":
                driver.autocommit = True  # type: ignore[union-attr]
            placeholder = "?" if engine.dialect.paramstyle == "qmark" else "%s"
            fetch = _driver_fetch(driver, engine.dialect.loaded_dbapi.Error)
            return _walk_range(fetch, placeholder, rng, batch, digest)
        finally:
            raw.close()
    finally:
        engine.dispose()


def available_cpus() -> int:
    """CPUs this process may run on (the default number of parts of a walk)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _split(session: Session, column: Any, where: tuple[Any, ...], first: int | None,
           workers: int | None) -> list[tuple[int | None, int | None]]:
    """`(after, upto]` bounds cutting the values of `column` (seq or id) into parts of about
    equal span, one per worker (None: PARTS_PER_CPU per CPU, each of at least MIN_RANGE_ROWS);
    the first part starts after `first`, the last has no upper bound."""
    wanted = available_cpus() if workers is None else workers
    if wanted < 1:
        raise ValueError("workers must be at least 1")
    if wanted == 1:
        return [(first, None)]
    # Two scalar subqueries, not min() and max() in one SELECT: SQLite answers a lone min or
    # max from the end of an index, but scans the whole index for both together (0.12 s a
    # million rows).
    lo, hi = session.execute(
        select(select(func.min(column)).where(*where).scalar_subquery(),
               select(func.max(column)).where(*where).scalar_subquery())
    ).one()
    _end_transaction(session)
    parts = 1 if lo is None else min(wanted * (PARTS_PER_CPU if workers is None else 1),
                                     hi - lo + 1)
    if workers is None and lo is not None:
        parts = min(parts, (hi - lo + 1) // MIN_RANGE_ROWS)
    if parts <= 1:
        return [(first, None)]
    span = hi - lo + 1
    cuts = [lo - 1 + span * i // parts for i in range(1, parts)]
    return list(zip([first, *cuts], [*cuts, None], strict=True))


def _ranges(session: Session, start: Checkpoint | None, workers: int | None) -> list[_Range]:
    """Split the linked seqs into parts of about equal size (one part: no split)."""
    linked = (_C.seq.is_not(None), *(() if start is None else (_C.seq > start.seq,)))
    after = None if start is None else start.seq
    return [_Range(a, u) for a, u in _split(session, _C.seq, linked, after, workers)]


def _id_ranges(session: Session, start: Checkpoint | None,
               workers: int | None) -> list[_IdRange]:
    """Split the table's ids into parts of about equal span (one part: no split)."""
    above = None if start is None else start.seq
    return [_IdRange(a, u, above) for a, u in _split(session, _C.id, (), None, workers)]


def _shared_url(session: Session) -> str | None:
    """A URL other processes can open the same database with (None: an in-memory database)."""
    bind = session.get_bind()
    url = bind.engine.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return None
    return url.render_as_string(hide_password=False)


def _walk_in_parallel(url: str, ranges: Sequence[_Range | _IdRange], batch: int,
                      digest: Digest, workers: int | None) -> list[_RangeWalk]:
    """Each range on its own connection, `workers` at once (None: one per CPU); a single range
    is walked here, on a connection of its own.

    Threads when PostgreSQL or the compiled code hashes (the work is in the database's
    processes, or in C that lets go of the GIL); processes when Python hashes. Forked when this
    process has no other thread (cheap), spawned otherwise (a fork would copy other threads'
    held locks).
    """
    count = len(ranges)
    if count == 1:
        return [_walk_range_at(url, ranges[0], batch, digest)]
    at_once = min(count, available_cpus() if workers is None else workers)
    args = ([url] * count, ranges, [batch] * count, [digest] * count)
    executor: Executor
    if digest != "python":
        executor = ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="audit-verify")
    else:
        method = "fork" if threading.active_count() == 1 and \
            "fork" in multiprocessing.get_all_start_methods() else "spawn"
        executor = ProcessPoolExecutor(max_workers=at_once,
                                       mp_context=multiprocessing.get_context(method))
    with executor:
        return list(executor.map(_walk_range_at, *args))


def usable_digest(session: Session) -> Digest:
    """The fastest digest that gives `event_digest`'s bytes here: in SQL on PostgreSQL with a
    UTF-8 database, compiled on a SQLite file when the extension is built, else Python."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        encoding = session.execute(text("SELECT current_setting('server_encoding')")).scalar_one()
        _end_transaction(session)
        return "sql" if encoding == "UTF8" else "python"
    url = session.get_bind().engine.url.render_as_string(hide_password=False)
    if compiled_digest_available() and _sqlite_path(url) is not None:
        return "compiled"
    return "python"


def compiled_digest_available() -> bool:
    """Whether the compiled page check was built (the install had a compiler and headers) and
    runs on the very SQLite library Python's sqlite3 module uses: two copies of SQLite in one
    process do not share their POSIX lock bookkeeping, and closing one's file would drop the
    other's locks."""
    return _chainwalk is not None and _chainwalk.sqlite_version == sqlite3.sqlite_version


def _seen(session: Session, watch: frozenset[int], start: Checkpoint | None,
          head: _Prev | None) -> dict[int, str]:
    """The hash at each watched seq of the verified part of the chain (the first row by id, as
    the walk met it: with a duplicated seq, the later one is the failing row)."""
    if head is None:
        return {}
    low = None if start is None else start.seq
    wanted = sorted(s for s in watch if s <= head.seq and (low is None or s > low))
    seen: dict[int, str] = {}
    for i in range(0, len(wanted), 1000):
        rows = session.execute(
            select(_C.seq, _C.id, _C.hash)
            .where(_C.seq.in_(wanted[i:i + 1000]))
            .order_by(_C.seq.desc(), _C.id.desc())
        ).all()
        _end_transaction(session)
        for row in rows:  # descending, so the lowest id per seq is written last
            if row.seq == head.seq and row.id > head.id:
                continue
            seen[int(row.seq)] = str(row.hash)
    return seen


#: A joined walk: the rows checked, the last good row, the first failing row and its faults.
_Joined = tuple[int, _Prev | None, tuple[_Linked, list[_Problem]] | None]


def _join(walks: list[_RangeWalk], start: Checkpoint | None) -> _Joined:
    """Join the ranges' walks, in order: each one's first row must follow the last good row
    before it."""
    checked = 0
    prev: _Prev | None = None
    expected_seq = 1 if start is None else start.seq + 1
    expected_prev = GENESIS_HASH if start is None else start.hash
    problem: tuple[_Linked, list[_Problem]] | None = None
    for walk in walks:
        if walk.first is None:
            continue
        first = walk.first
        if first[13] != expected_seq or first[14] != expected_prev or (
            walk.bad is not None and walk.bad_prev is None
        ):
            row = _Linked(*first)
            problem = (row, _check_row(row, expected_seq, prev, start))
            break
        checked += walk.checked
        if walk.bad is not None:
            assert walk.bad_prev is not None
            prev = walk.bad_prev
            row = _Linked(*walk.bad)
            problem = (row, _check_row(row, prev.seq + 1, prev, start))
            break
        assert walk.last is not None
        prev = walk.last
        expected_seq, expected_prev = prev.seq + 1, prev.hash
    if problem is not None and not problem[1]:
        raise RuntimeError(f"audit walk flagged row id {problem[0].id} but found nothing")
    return checked, prev, problem


def _id_is_rowid(session: Session) -> bool:
    """Whether audit_events.id is the SQLite table's own key (INTEGER PRIMARY KEY, as the
    migrations make it). Only then is id order the table's order: a table rebuilt without it
    would be scanned and sorted for every page."""
    columns = session.execute(text("PRAGMA table_info(audit_events)")).all()
    _end_transaction(session)
    keys = [c for c in columns if c.pk]
    return len(keys) == 1 and keys[0].name == "id" and str(keys[0].type).upper() == "INTEGER"


def _id_order_walk(session: Session, url: str, start: Checkpoint | None, workers: int | None,
                   batch: int) -> _Joined | None:
    """The chain walked in id order by the compiled check, when that vouches for it: None
    otherwise, and the seq walk must give the report.

    Reading the table in its own order skips the seq index's seek per row (about 9 % of the
    walk on SQLite). It vouches only when every linked row (above `start`), in id order, has
    the seq after the one before it, links to it and hashes right, from the first expected seq
    on. The seqs are then all different and in id order, so ordered by (seq, id) the same rows
    come in the same order: the seq walk would read what this read and find it sound too, so
    the report is the same. Anything else (a fault, a gap, ids not in seq order, a row linked
    meanwhile out of id order) is left to the seq walk, which names the first failing row.
    """
    if not _id_is_rowid(session):
        return None
    walks = _walk_in_parallel(url, _id_ranges(session, start, workers), batch, "compiled",
                              workers)
    joined = _join(walks, start)
    return None if joined[2] is not None else joined


def verify_chain(
    session: Session,
    *,
    batch: int = 5000,
    start: Checkpoint | None = None,
    watch: Collection[int] = (),
    workers: int | None = None,
    digest: Digest | None = None,
    order: Literal["id", "seq"] | None = None,
) -> ChainReport:
    """Walk the chain in seq order, recompute every hash and check every link.

    Stops at the first row that fails: its content was altered (hash mismatch), rows before it
    were removed (seq gap, or prev_hash not its predecessor's hash), or it was inserted out of
    order (duplicate seq, broken link, missing chain fields). Reads in pages of `batch` rows,
    each in its own short transaction: pass a session with no pending work of its own, since
    the session's transaction is ended (rolled back) between pages. Events linked while the walk
    runs are simply walked too. A truncated tail cannot be seen from the chain alone: compare
    the returned checkpoint with a previously signed one.

    `start` begins the walk after a trusted head (a signed checkpoint: the prefix up to it may
    be archived); rows at or below its seq are not read. The hashes found at the seqs in `watch`
    come back in `ChainReport.seen`, for comparison with signed checkpoints.

    `workers` splits the seqs into that many ranges walked at once, each on its own connection
    (None: `PARTS_PER_CPU` ranges per CPU, each of at least `MIN_RANGE_ROWS`, walked one per
    CPU at a time); a row's hash covers its own prev_hash, so each range is checked on its own
    and only the joins between ranges are left, checked here. The report is the same whatever
    the split. `digest` says who hashes each event (default: the fastest usable, see
    `usable_digest`): with "sql" (PostgreSQL) or "compiled" (a SQLite file) Python sees only the
    rows found wrong and the page ends, and re-checks those with its own digest; the report is
    the same whichever hashes. The compiled check first walks in id order (`order` None or
    "id"; see `_id_order_walk`) and, where that cannot vouch for the chain, in seq order;
    `order="seq"` goes straight to the seq walk.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    try:
        usable = usable_digest(session)
        digest = usable if digest is None else digest
        if digest != "python" and digest != usable:
            raise ValueError(f"the {digest!r} digest cannot be used on this database")
        if order == "id" and digest != "compiled":
            raise ValueError("only the compiled check walks in id order")
        url = _shared_url(session)
        joined: _Joined | None = None
        if digest == "compiled" and url is not None and order != "seq":
            joined = _id_order_walk(session, url, start, workers, batch)
        if joined is None:
            ranges = _ranges(session, start, workers)
            if url is not None and (len(ranges) > 1 or digest == "compiled"):
                walks = _walk_in_parallel(url, ranges, batch, digest, workers)
            else:
                conn = session.connection()
                placeholder = "?" if conn.dialect.paramstyle == "qmark" else "%s"
                _end_transaction(session)
                rng = _Range(None if start is None else start.seq, None)
                walks = [_walk_range(_session_fetch(session), placeholder, rng, batch, digest)]
            joined = _join(walks, start)
        checked, prev, problem = joined

        seen = _seen(session, frozenset(watch), start, prev)
        if problem is None:
            stray = session.execute(
                select(_C.id)
                .where(
                    _C.seq.is_(None),
                    or_(
                        _C.prev_hash.is_not(None),
                        _C.hash.is_not(None),
                        _C.sequenced_at.is_not(None),
                    ),
                )
                .order_by(_C.id)
                .limit(1)
            ).first()
        else:
            stray = None
        pending = int(
            session.execute(
                select(func.count()).select_from(_T).where(_C.seq.is_(None))
            ).scalar_one()
        )
    finally:
        _end_transaction(session)

    if prev is not None:
        head_seq, head_hash = int(prev.seq), str(prev.hash)
    elif start is not None:
        head_seq, head_hash = start.seq, start.hash
    else:
        head_seq, head_hash = None, None
    if problem is not None:
        row, found = problem
        return ChainReport(
            ok=False,
            checked=checked,
            head_seq=head_seq,
            head_hash=head_hash,
            pending=pending,
            problem=f"row id {row.id} seq {row.seq}: " + "; ".join(p.text for p in found),
            problem_event_id=int(row.id),
            problem_seq=int(row.seq),
            problem_kind=found[0].kind,
            seen=seen,
        )
    if stray is not None:
        return ChainReport(
            ok=False,
            checked=checked,
            head_seq=head_seq,
            head_hash=head_hash,
            pending=pending,
            problem=(
                f"row id {stray.id}: has chain fields but no seq: it was taken out of the chain "
                "(removed)"
            ),
            problem_event_id=int(stray.id),
            problem_seq=None,
            problem_kind="removed",
            seen=seen,
        )
    return ChainReport(
        ok=True, checked=checked, head_seq=head_seq, head_hash=head_hash, pending=pending,
        seen=seen,
    )


def first_linked(session: Session) -> tuple[int, str | None] | None:
    """The lowest seq still in the table and its prev_hash (seq > 1 once a prefix is archived)."""
    row = session.execute(
        select(_C.seq, _C.prev_hash).where(_C.seq.is_not(None)).order_by(_C.seq).limit(1)
    ).first()
    _end_transaction(session)
    return None if row is None else (int(row.seq), row.prev_hash)
