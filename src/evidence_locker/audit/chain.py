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
import re
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from sqlalchemy import Row, Select, Table, bindparam, func, or_, select, text, update
from sqlalchemy.dialects.sqlite import base as sqlite_types
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite as sqlite_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from evidence_locker.audit.models import AuditEvent
from evidence_locker.audit.service import canonical_json
from evidence_locker.clock import Clock
from evidence_locker.db import transaction

log = logging.getLogger(__name__)

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

_enc_str = json.encoder.encode_basestring  # what canonical_json uses (ensure_ascii=False), in C

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
    kind = type(value)
    if kind is str:
        return cast(str, _enc_str(value))
    if value is None:
        return "null"
    if kind is int:
        return str(value)
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
    """`event_digest` of a raw row (CONTENT_FIELDS order) at `seq` after `prev_hash`."""
    (id_, occurred_at, action, actor_type, actor_id, actor_name, object_type, object_id, ip,
     user_agent, purpose, reason, details) = row[:13]
    jv = _json_value
    document = _DOC % (
        jv(action), jv(actor_id), jv(actor_name), jv(actor_type), jv(details), jv(id_), jv(ip),
        jv(object_id), jv(object_type), jv(_iso_raw(occurred_at)), jv(prev_hash), jv(purpose),
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


def _walk_sql(placeholder: str, mode: str) -> str:
    """Keyset paging over (seq, id) as raw SQL for the DBAPI cursor.

    `mode`: "all" (the first page from genesis: every linked row, whatever its seq), "start"
    (the first page after a starting seq) or "after" (the page after a (seq, id) key). Ordering
    by (seq, id) rather than seq alone means a duplicated seq (possible only once the unique
    constraint is gone) is still seen, even across a page boundary.
    """
    p = placeholder
    where = {
        "all": "",
        "start": f" AND seq > {p}",
        "after": f" AND seq >= {p} AND (seq > {p} OR (seq = {p} AND id > {p}))",
    }[mode]
    # Constant column names and placeholders only: nothing from outside reaches the text.
    sql = f"SELECT {_WALK_COLUMNS} FROM audit_events WHERE seq IS NOT NULL{where} "  # noqa: S608
    return sql + f"ORDER BY seq, id LIMIT {p}"


@dataclass(frozen=True)
class _Problem:
    kind: str
    text: str


def _check_row(
    row: _Linked, expected_seq: int, prev: _Linked | None, start: Checkpoint | None
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


def _fetch_page(session: Session, after: tuple[int, int] | None, start: Checkpoint | None,
                batch: int) -> list[tuple[Any, ...]]:
    conn = session.connection()
    placeholder = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    params: tuple[Any, ...]
    if after is not None:
        seq, id_ = after
        sql, params = _walk_sql(placeholder, "after"), (seq, seq, seq, id_, batch)
    elif start is not None:
        sql, params = _walk_sql(placeholder, "start"), (start.seq, batch)
    else:
        sql, params = _walk_sql(placeholder, "all"), (batch,)
    # The driver's own cursor: plain tuples, no per-row processing. Its errors are wrapped as
    # SQLAlchemy would have wrapped them, so callers see one kind of database error.
    dbapi_error = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        return cast(list[tuple[Any, ...]], cursor.fetchall())
    except dbapi_error as exc:
        raise DBAPIError.instance(sql, params, exc, dbapi_error) from exc
    finally:
        cursor.close()


def verify_chain(
    session: Session,
    *,
    batch: int = 5000,
    start: Checkpoint | None = None,
    watch: Collection[int] = (),
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
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    checked = 0
    watched = frozenset(watch)
    seen: dict[int, str] = {}
    prev: _Linked | None = None
    expected_seq = 1 if start is None else start.seq + 1
    expected_prev = GENESIS_HASH if start is None else start.hash
    problem: tuple[_Linked, list[_Problem]] | None = None
    digest = _raw_digest
    try:
        while problem is None:
            after = None if prev is None else (int(prev.seq), int(prev.id))
            rows = _fetch_page(session, after, start, batch)
            _end_transaction(session)
            last: tuple[Any, ...] | None = None
            for raw in rows:
                seq, prev_hash, hash_ = raw[13], raw[14], raw[15]
                # The fast path: right seq, right link, right hash. Anything else is diagnosed.
                if (
                    seq != expected_seq
                    or prev_hash != expected_prev
                    or hash_ is None
                    or digest(raw, seq, prev_hash) != hash_
                ):
                    if last is not None:
                        prev = _Linked(*last)
                    row = _Linked(*raw)
                    found = _check_row(row, expected_seq, prev, start)
                    if found:
                        problem = (row, found)
                        break
                if seq in watched:
                    seen[seq] = hash_
                checked += 1
                expected_seq = seq + 1
                expected_prev = hash_
                last = raw
            if last is not None and problem is None:
                prev = _Linked(*last)
            if len(rows) < batch:
                break

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
