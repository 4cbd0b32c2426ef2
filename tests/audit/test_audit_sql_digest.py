"""PostgreSQL hashes the chain in SQL (audit/chain.py `_SQL_DOC`): the document it builds must be
byte for byte the one `event_digest` hashes, for any text a row can hold, or verification would
call a sound chain broken (or, worse, pass a row Python would fail). Checked here over arbitrary
values on a real PostgreSQL; the tampering tests then run every check through both paths
(audit_helpers.AuditDb.verify)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from audit_helpers import content_fields, text_values
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, text

from evidence_locker.audit import chain
from evidence_locker.audit.chain import event_digest

pytestmark = pytest.mark.scale_out_only

#: Instants to_char writes as Python does (years 1 to 9999, a day inside each edge).
_WHEN = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                     timezones=st.just(dt.UTC))
_ROW = st.fixed_dictionaries({
    **content_fields(nul=False, when=_WHEN),
    "seq": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "prev_hash": text_values(nul=False),
})


@pytest.fixture(scope="module")
def probe(new_audit_db_url: Callable[[], str]) -> Iterator[Engine]:
    """A PostgreSQL database with a table shaped as audit_events, without its guards, and its
    varchar columns unbounded (to_json treats varchar as text; the limits would only refuse
    long examples)."""
    engine = create_engine(new_audit_db_url())
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (LIKE audit_events INCLUDING DEFAULTS)"))
        for column in ("action", "actor_type", "actor_id", "actor_name", "object_type",
                       "object_id", "ip", "user_agent", "purpose", "prev_hash"):
            conn.execute(text(f"ALTER TABLE probe ALTER COLUMN {column} TYPE text"))
    yield engine
    engine.dispose()


def _sql_documents(engine: Engine, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    columns = ["id", *rows[0]]
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE probe"))
        conn.execute(text(f"INSERT INTO probe ({', '.join(columns)}) VALUES "  # noqa: S608
                          f"({', '.join(':' + c for c in columns)})"),
                     [{"id": i + 1, **r} for i, r in enumerate(rows)])
        # As the walk sends it: driver SQL, no bind parameters (the document has colons).
        return [(str(doc), str(digest)) for doc, digest in conn.exec_driver_sql(
            f"SELECT {chain._SQL_DOC}, "  # noqa: S608
            f"encode(sha256(convert_to({chain._SQL_DOC}, 'UTF8')), 'hex') "
            f"FROM probe ORDER BY id")]


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(_ROW, min_size=1, max_size=8))
@example(rows=[{"occurred_at": dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC),
                "action": "recording.viewed", "actor_type": "user", "actor_id": "u1",
                "actor_name": 'PC "Quote" \\ O\'Brien\u2028', "object_type": None,
                "object_id": None, "ip": "10.0.0.1", "user_agent": "\x7f\x1f\t",
                "purpose": None, "reason": "é😀", "details": '{"a":1}', "seq": 1,
                "prev_hash": "0" * 64}])
def test_the_sql_document_is_event_digests(probe: Engine, rows: list[dict[str, Any]]) -> None:
    for i, (row, (doc, digest)) in enumerate(zip(rows, _sql_documents(probe, rows),
                                                 strict=True)):
        python = event_digest(id=i + 1, **row)
        assert digest == python, (row, doc)
    # And the raw-row digest the Python path of the walk uses agrees with both.
    assert chain._raw_digest(
        (1, rows[0]["occurred_at"], *(rows[0][k] for k in chain.CONTENT_FIELDS[2:])),
        rows[0]["seq"], rows[0]["prev_hash"]) == event_digest(id=1, **rows[0])


def test_rows_outside_the_sql_domain_go_to_python(audit_db: Any) -> None:
    """An instant Python cannot represent (a tampered row) is judged by Python, as broken."""
    audit_db.record(3)
    audit_db.sequence()
    audit_db.drop_triggers()
    second = audit_db.rows()[1]["id"]
    with audit_db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET occurred_at = '20000-01-01 00:00:00+00' "
                          "WHERE id = :i"), {"i": second})
    with audit_db.factory() as session:
        for digest in ("sql", "python"):
            with pytest.raises(Exception, match="year"):
                # psycopg cannot hand Python a year past 9999: the walk fails loudly, it never
                # passes the row.
                chain.verify_chain(session, digest=digest)
            session.rollback()
