"""Helpers for the audit tests: a database handle that can write, link, verify and tamper.

A uniquely named module (not conftest) so that test modules can import it whatever order
pytest loads the conftest files of other test directories in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import Engine, Table, delete, event, text, update
from sqlalchemy.orm import Session, sessionmaker

from evidence_locker import db
from evidence_locker.audit.chain import ChainReport, sequence_pending, usable_digest, verify_chain
from evidence_locker.audit.checkpoints import (
    AuditVerification,
    SignedCheckpoint,
    checkpoint_file,
    make_checkpoint,
    verify_audit,
)
from evidence_locker.audit.models import AuditEvent
from evidence_locker.audit.service import Actor, record
from evidence_locker.audit.signing import KeyRing, Signer, public_key_text, write_private_key
from evidence_locker.clock import FixedClock

T0 = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC)
TABLE: Table = AuditEvent.__table__  # type: ignore[assignment]
TRIGGERS = ("audit_events_no_update", "audit_events_no_delete")


@dataclass
class AuditDb:
    """One database with the helpers the tests need: write, link, verify and tamper."""

    url: str
    engine: Engine
    factory: sessionmaker[Session]
    clock: FixedClock

    def record(self, count: int = 1, **fields: Any) -> list[int]:
        """Write `count` events in one transaction; return their ids."""
        fields.setdefault("action", "recording.viewed")
        actor = fields.pop("actor", Actor(type="user", id="u1", name="PC Example", ip="10.0.0.1"))
        with db.transaction(self.factory) as session:
            events = [
                record(session, clock=self.clock, actor=actor, **fields) for _ in range(count)
            ]
            session.flush()
            ids = [e.id for e in events]
        self.clock.advance(dt.timedelta(seconds=1))
        return ids

    def sequence(self, batch: int = 1000) -> int:
        return sequence_pending(self.factory, clock=self.clock, batch=batch)

    def verify(self, batch: int = 5000, every_way: bool = True) -> ChainReport:
        """The chain's report, the same from every way of walking it: one range or three
        walked at once, hashed by Python and by the default (in SQL on PostgreSQL, compiled on
        SQLite), and the compiled check in id order first or in seq order only. Every tampering
        test thus checks each path, and that they agree.
        `every_way=False` for a chain that grows while it is read (a running sequencer)."""
        with self.factory() as session:
            report = verify_chain(session, batch=batch)
            if not every_way:
                return report
            ways: list[dict[str, Any]] = [{"workers": 1}, {"workers": 3}]
            usable = usable_digest(session)
            if usable != "python":
                ways += [{"digest": "python"}, {"digest": "python", "workers": 3}]
            if usable == "compiled":
                ways += [{"order": "seq"}, {"order": "seq", "workers": 3}]
            for way in ways:
                other = verify_chain(session, batch=batch, **way)
                assert other == report, (way, other, report)
            return report

    def rows(self) -> list[dict[str, Any]]:
        """Every row, linked ones in seq order first, then pending ones by id."""
        with self.engine.connect() as conn:
            result = conn.execute(
                TABLE.select().order_by(TABLE.c.seq.is_(None), TABLE.c.seq, TABLE.c.id)
            )
            return [dict(r._mapping) for r in result]

    def by_seq(self, seq: int) -> dict[str, Any]:
        return next(r for r in self.rows() if r["seq"] == seq)

    # --- the attacker: someone with database admin rights ------------------------------------

    def drop_triggers(self) -> None:
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.execute(text("DROP TRIGGER audit_events_guard ON audit_events"))
                return
            for name in TRIGGERS:
                conn.execute(text(f"DROP TRIGGER {name}"))

    def tamper(self, event_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(TABLE).where(TABLE.c.id == event_id).values(**values))

    def remove(self, event_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(TABLE).where(TABLE.c.id == event_id))

    def insert_raw(self, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(TABLE.insert().values(**values))


@contextmanager
def open_audit_db(url: str) -> Iterator[AuditDb]:
    engine = db.make_engine(url)

    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _fast(dbapi_conn: Any, _record: Any) -> None:
            # Test speed only: a temporary database need not survive power loss.
            dbapi_conn.execute("PRAGMA synchronous=OFF")

    try:
        yield AuditDb(url, engine, db.make_session_factory(engine), FixedClock(T0))
    finally:
        engine.dispose()


# --- signed checkpoints --------------------------------------------------------------------


def _signer(path: Path) -> Signer:
    write_private_key(path)
    return Signer.from_file(path)


def _ring(*signers: Signer) -> KeyRing:
    return KeyRing.from_texts([public_key_text(s.key.public_key()) for s in signers])


class Locker:
    """One audit database, a signing key and a checkpoint directory."""

    def __init__(self, adb: AuditDb, tmp: Path) -> None:
        self.adb = adb
        self.signer = _signer(tmp / "keys" / "audit-signing.pem")
        self.dir = tmp / "checkpoints"
        self.file = checkpoint_file(self.dir)

    def events(self, count: int) -> None:
        for i in range(count):
            self.adb.record(1, object_type="recording", object_id=f"r{i}", details={"i": i})
        self.adb.sequence(batch=3)

    def checkpoint(self, signer: Signer | None = None, **kw: Any) -> SignedCheckpoint:
        outcome = make_checkpoint(self.adb.factory, clock=self.adb.clock,
                                  signer=signer or self.signer, directory=self.dir, **kw)
        assert outcome.made is not None, outcome
        self.adb.clock.advance(dt.timedelta(minutes=15))
        return outcome.made

    def verify(self, ring: KeyRing | None = None, batch: int = 4) -> AuditVerification:
        with self.adb.factory() as session:
            return verify_audit(session, keys=_ring(self.signer) if ring is None else ring,
                                file=self.file, batch=batch)

    def drop_checkpoint_triggers(self) -> None:
        with self.adb.engine.begin() as conn:
            if self.adb.engine.dialect.name == "postgresql":
                conn.execute(text("DROP TRIGGER audit_checkpoints_guard ON audit_checkpoints"))
            else:
                conn.execute(text("DROP TRIGGER audit_checkpoints_no_update"))
                conn.execute(text("DROP TRIGGER audit_checkpoints_no_delete"))


#: Characters JSON encoders treat specially (and some that look special but are not), drawn
#: often by `content_fields`.
TRICKY = '"\\/\b\f\n\r\t\x00\x01\x1f\x7f\x80\x9f\u00a0\u2028\u2029\ufeff\uffff\U0001f600<>&\''


def text_values(*, nul: bool) -> st.SearchStrategy[str]:
    """Any text a column can hold (no lone surrogates, which UTF-8 cannot carry; NUL only where
    the database keeps it: SQLite does, PostgreSQL text cannot)."""
    banned = "" if nul else "\x00"
    chars = st.characters(blacklist_categories=("Cs",), blacklist_characters=banned)
    tricky = st.sampled_from([c for c in TRICKY if c not in banned])
    # plain runs with a tricky character anywhere: escapes at every place in a word of 8 bytes
    mixed = st.text(st.sampled_from("abc xyz0") | tricky, max_size=40)
    return st.one_of(st.text(chars, max_size=30), st.text(tricky, max_size=12), mixed)


def content_fields(*, nul: bool, when: st.SearchStrategy[dt.datetime]
                   ) -> dict[str, st.SearchStrategy[Any]]:
    """Strategies for an event's content columns but id, for `st.fixed_dictionaries`."""
    text_ = text_values(nul=nul)
    optional = st.none() | text_
    return {
        "occurred_at": when, "action": text_, "actor_type": text_, "actor_id": optional,
        "actor_name": optional, "object_type": optional, "object_id": optional, "ip": optional,
        "user_agent": optional, "purpose": optional, "reason": optional, "details": text_,
    }
