"""The compiled page check on SQLite (audit/_chainwalk.c) must build, byte for byte, the document
`event_digest` hashes, for any text a row can hold, or verification would call a sound chain
broken; and it must flag every row it cannot confirm, so that Python judges it. Checked here over
arbitrary values on a real SQLite file; the tampering tests then run every check through both
the compiled and the Python digest (audit_helpers.AuditDb.verify)."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from audit_helpers import content_fields, text_values
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, Table, create_engine, delete, insert, text
from sqlalchemy.orm import Session

from evidence_locker.audit import chain
from evidence_locker.audit.chain import event_digest
from evidence_locker.audit.models import AuditEvent
from evidence_locker.audit.service import canonical_json

pytestmark = pytest.mark.embedded_only

TABLE: Table = AuditEvent.__table__  # type: ignore[assignment]


def test_the_compiled_check_is_built_where_ci_runs() -> None:
    """Without a compiler the install falls back to the Python digest; CI must not."""
    if not chain.compiled_digest_available():
        if os.environ.get("CI") == "true":
            pytest.fail("audit/_chainwalk.c was not built: the install needs gcc, the Python "
                        "headers, libsqlite3-dev and libssl-dev (scripts/setup.sh)")
        pytest.skip("the compiled page check is not built here")


def test_one_sqlite_library_in_the_process() -> None:
    """The compiled check and Python's sqlite3 module must share one SQLite: two copies in a
    process do not share POSIX lock bookkeeping. One libsqlite3 mapped, the same version."""
    if chain._chainwalk is None:
        pytest.skip("the compiled page check is not built here")
    import sqlite3

    maps = Path("/proc/self/maps").read_text()
    libraries = {line.split()[-1] for line in maps.splitlines() if "libsqlite3" in line}
    assert len(libraries) == 1, libraries
    assert chain._chainwalk.sqlite_version == sqlite3.sqlite_version
    assert chain.compiled_digest_available()


needs_compiled = pytest.mark.skipif(not chain.compiled_digest_available(),
                                    reason="the compiled page check is not built")

_TEXT = text_values(nul=True)
_WHEN = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31),
                     timezones=st.just(dt.UTC))
_CONTENT = st.fixed_dictionaries(content_fields(nul=True, when=_WHEN))


#: A plain event's content fields.
_PLAIN: dict[str, Any] = {
    "occurred_at": dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC), "action": "recording.viewed",
    "actor_type": "user", "actor_id": "u1", "actor_name": "PC Example", "object_type": None,
    "object_id": None, "ip": "10.0.0.1", "user_agent": None, "purpose": None, "reason": None,
    "details": "{}",
}


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, str]]:
    """A SQLite file with a table shaped as audit_events, without its guards."""
    path = tmp_path_factory.mktemp("compiled-walk") / "probe.db"
    engine = create_engine(f"sqlite:///{path}")
    TABLE.create(engine)
    yield engine, str(path)
    engine.dispose()


def _chain(rows: list[dict[str, Any]], first_seq: int, genesis: str,
           ids: list[int] | None = None) -> list[dict[str, Any]]:
    """The rows linked as the sequencer links them, hashed by `event_digest` (ids 1, 2, ...
    unless given)."""
    linked, prev = [], genesis
    for i, content in enumerate(rows):
        row = {"id": i + 1 if ids is None else ids[i], **content, "seq": first_seq + i,
               "prev_hash": prev}
        row["hash"] = prev = event_digest(**row)
        linked.append(row)
    return linked


def _load(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(delete(TABLE))
        conn.execute(insert(TABLE), rows)


def _check(path: str, batch: int = 1000, walker: Any = None) -> list[tuple[Any, ...]]:
    """The rows the compiled check (`walker`, default the one built) hands back for the first
    page of the whole table.

    With more room than rows the page ends early, and the check runs it again keeping a copy of
    each row (its last row is only known once it is gone); with exactly as many it knows the
    last row as it meets it. Both ways must give the same answer."""
    walker = walker or chain._chainwalk
    assert walker is not None
    handle = walker.connect(path)
    try:
        sql = chain._walk_sql("?", "all")
        back = walker.check_page(handle, sql, (batch,), batch)
        rows = back[-1][16] if back else 0
        if 0 < rows < batch:
            assert walker.check_page(handle, sql, (rows,), rows) == back
        return back
    finally:
        walker.close(handle)


def _build_portable(into: Path) -> ModuleType:
    """audit/_chainwalk.c built with -DCHAINWALK_PORTABLE: JSON escaping by the byte loop that
    CPUs without SSE2 (an ARM server) run, so that path is checked on this machine too."""
    source = Path(chain.__file__).with_name("_chainwalk.c")
    target = into / f"_chainwalk{sysconfig.get_config_var('EXT_SUFFIX')}"
    compiler = next((c for c in ((sysconfig.get_config_var("CC") or "").split()[:1] + ["cc"])
                     if shutil.which(c)), None)
    # The installed check was built here (the tests run only where it is), so a compiler is
    # part of this setup (scripts/system-deps.sh installs it): none is a failure, not a skip.
    assert compiler is not None, "no C compiler to build the portable check with (gcc)"
    built = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror",
                            "-DCHAINWALK_PORTABLE", f"-I{sysconfig.get_paths()['include']}",
                            str(source), "-lsqlite3", "-lcrypto", "-o", str(target)],
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    spec = importlib.util.spec_from_file_location("evidence_locker.audit._chainwalk", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=["built", "portable"])
def walker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The compiled check as installed (SSE2 escaping here) and as built without SSE2."""
    if request.param == "built":
        return chain._chainwalk
    module = _build_portable(tmp_path_factory.mktemp("portable-walk"))
    assert module.vector_escapes == 0
    assert module.sqlite_version == chain._chainwalk.sqlite_version  # type: ignore[union-attr]
    return module


@needs_compiled
def test_the_installed_check_escapes_by_vector_here() -> None:
    """On x86-64 the installed build takes the SSE2 path (so `walker`'s two cases differ)."""
    assert chain._chainwalk is not None
    if os.uname().machine in ("x86_64", "AMD64"):
        assert chain._chainwalk.vector_escapes == 1


#: Bytes the escaping must catch, and their nearest neighbours it must leave alone.
_ESCAPED = ['"', "\\", "\x00", "\x1f", "\n", "\x08"]
_UNESCAPED = [" ", "!", "#", "[", "]", "\x7f", "\u00e9", "\u2028"]


@needs_compiled
def test_escapes_at_every_place_of_a_block(probe: tuple[Engine, str], walker: Any) -> None:
    """Each character that needs escaping, and each of its neighbours, at every place of a
    string up to 40 bytes long (two 16-byte blocks, the 8-byte steps and the single bytes
    after): every document is event_digest's."""
    engine, path = probe
    contents = []
    for length in (1, 8, 15, 16, 17, 31, 32, 33, 40):
        for place in range(length):
            for char in _ESCAPED + _UNESCAPED:
                name = "a" * place + char + "b" * (length - place - 1)
                contents.append(dict(_PLAIN, actor_name=name, reason=name[::-1]))
    rows = _chain(contents, 1, chain.GENESIS_HASH)
    _load(engine, rows)
    back = _check(path, batch=len(rows), walker=walker)
    assert [r[16] for r in back] == [1, len(rows)]  # only the page's ends: every row confirmed
    assert all(r[17] is True for r in back)


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(contents=st.lists(_CONTENT, min_size=1, max_size=8),
       first_seq=st.integers(min_value=-(2**63), max_value=2**63 - 9),
       genesis=_TEXT, flip=st.data())
@example(contents=[{"occurred_at": dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC),
                    "action": "recording.viewed", "actor_type": "user", "actor_id": "u1",
                    "actor_name": 'PC "Quote" \\ O\'Brien\u2028', "object_type": None,
                    "object_id": None, "ip": "10.0.0.1", "user_agent": "\x7f\x1f\t\x00",
                    "purpose": None, "reason": "\U0001f600", "details": '{"k":"\\u00e9"}'}] * 2,
         first_seq=1, genesis=chain.GENESIS_HASH, flip=None)
def test_the_compiled_document_is_event_digests(
    probe: tuple[Engine, str], walker: Any, contents: list[dict[str, Any]], first_seq: int,
    genesis: str, flip: Any,
) -> None:
    """A sound chain of arbitrary rows: the check confirms every row and hands back only the
    page's ends, each with the row before it; one changed value and it flags that row. Both
    builds: as installed, and without SSE2."""
    engine, path = probe
    rows = _chain(contents, first_seq, genesis)
    _load(engine, rows)
    back = _check(path, walker=walker)
    ends = [0] if len(rows) == 1 else [0, len(rows) - 1]
    assert [r[16] for r in back] == [i + 1 for i in ends]
    for r, i in zip(back, ends, strict=True):
        assert r[17] is True, ("the compiled document differs from event_digest's", rows[i])
        assert r[:16] == tuple(rows[i][c] if c != "occurred_at" else r[1]
                               for c in (*chain.CONTENT_FIELDS, "seq", "prev_hash", "hash"))
        before = rows[i - 1] if i else None
        assert r[18:] == ((before["id"], before["seq"], before["hash"]) if before
                          else (None, None, None))
    if flip is None:
        return
    # Change one text value of one row: that row's own hash no longer holds.
    i = flip.draw(st.integers(0, len(rows) - 1))
    column = flip.draw(st.sampled_from(["action", "actor_type", "details", "actor_name"]))
    with engine.begin() as conn:
        conn.execute(TABLE.update().where(TABLE.c.id == i + 1)
                     .values({column: (rows[i][column] or "") + "x"}))
    flagged = {r[16]: r[17] for r in _check(path, walker=walker)}
    assert flagged.get(i + 1) is False


@needs_compiled
@pytest.mark.parametrize(("column", "value"), [
    ("occurred_at", "2025-03-01T09:30:00.000000"),  # not SQLAlchemy's form
    ("occurred_at", "2025-03-01 09:30:00"),
    ("action", 7),                                   # an integer where text belongs
    ("details", b"{}"),                              # bytes
    ("actor_name", 1.5),
    ("occurred_at", 20250301),                      # (id is the rowid: always an integer)
    ("seq", 2.5),                                    # (INTEGER affinity turns "2" into 2)
    ("hash", None),
    ("prev_hash", None),
])
def test_values_it_cannot_judge_go_to_python(probe: tuple[Engine, str], column: str,
                                             value: Any) -> None:
    """The check is only ever too suspicious: a value of a type or form it does not expect is
    flagged (not confirmed), whatever its hash."""
    engine, path = probe
    content = _PLAIN
    _load(engine, _chain([content] * 3, 1, chain.GENESIS_HASH))
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE audit_events SET {column} = :v WHERE id = 2"),  # noqa: S608
                     {"v": value})
    flagged = {r[0]: r[17] for r in _check(path)}
    assert flagged.get(2) is False


_STORED_INSTANT = "2025-03-01 09:30:00.000000"  # _PLAIN's occurred_at as SQLAlchemy stores it


def _out_of_form() -> list[tuple[int, str]]:
    """Each place of the stored instant spoilt by the nearest wrong bytes: a digit's place by
    the bytes either side of 0-9, a separator's by a digit."""
    spoilt = []
    for place, char in enumerate(_STORED_INSTANT):
        for wrong in ("/", ":") if char.isdigit() else ("5",):
            spoilt.append((place, _STORED_INSTANT[:place] + wrong + _STORED_INSTANT[place + 1:]))
    return spoilt


@needs_compiled
@pytest.mark.parametrize(("place", "stored"), _out_of_form())
def test_an_instant_out_of_form_is_never_confirmed(probe: tuple[Engine, str], place: int,
                                                   stored: str) -> None:
    """An occurred_at not in SQLAlchemy's form is Python's to judge, even when the stored hash
    is that of the document the compiled code would write if it took the text as it stands."""
    engine, path = probe
    rows = _chain([_PLAIN] * 3, 1, chain.GENESIS_HASH)
    row = rows[1]

    def face_hash(at: str) -> str:
        face = f"{at[:10]}T{at[11:]}+00:00"
        document = {k: v for k, v in row.items() if k != "hash"} | {"occurred_at": face, "v": 1}
        return hashlib.sha256(canonical_json(document).encode()).hexdigest()

    assert face_hash(_STORED_INSTANT) == row["hash"]  # the document, as the check writes it
    hashed = face_hash(stored)
    _load(engine, rows)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET occurred_at = :at, hash = :h WHERE id = 2"),
                     {"at": stored, "h": hashed})
        assert conn.execute(text("SELECT occurred_at FROM audit_events WHERE id = 2")
                            ).scalar_one() == stored
    flagged = {r[0]: r[17] for r in _check(path)}
    assert flagged.get(2) is False, f"place {place}"


@needs_compiled
def test_links_are_checked_across_the_page(probe: tuple[Engine, str]) -> None:
    """A row whose prev_hash is not its predecessor's hash, or whose seq skips, is flagged even
    though its own hash holds."""
    engine, path = probe
    content = _PLAIN
    rows = _chain([content] * 5, 1, chain.GENESIS_HASH)
    # Row 3 re-hashed after another predecessor: sound itself, its link (and row 4's) broken.
    rows[2] = dict(rows[2], prev_hash="f" * 64)
    rows[2]["hash"] = event_digest(**{k: v for k, v in rows[2].items() if k != "hash"})
    rows[4] = dict(rows[4], seq=9)  # a gap before row 5
    _load(engine, rows)
    back = {r[0]: r for r in _check(path)}
    assert sorted(back) == [1, 3, 4, 5]
    assert back[3][17] is True and back[3][18:] == (2, 2, rows[1]["hash"])
    assert back[4][17] is True and back[4][18:] == (3, 3, rows[2]["hash"])
    assert back[5][17] is False  # its seq is hashed too


@needs_compiled
def test_errors_are_database_errors(tmp_path: Path) -> None:
    """A file that is no database is a clear error, not a crash or a pass."""
    bad = tmp_path / "not-a-db"
    bad.write_bytes(b"x" * 4096)
    assert chain._chainwalk is not None
    handle = chain._chainwalk.connect(str(bad))
    with pytest.raises(chain._chainwalk.WalkError, match="not a database"):
        chain._chainwalk.check_page(handle, chain._walk_sql("?", "all"), (10,), 10)
    chain._chainwalk.close(handle)
    with pytest.raises(chain._chainwalk.WalkError, match="closed"):
        chain._chainwalk.check_page(handle, "SELECT 1", (), 1)


def _reports(engine: Engine, **kwargs: Any) -> list[chain.ChainReport]:
    """The report in id order first, and in seq order only (one range, and three)."""
    with Session(engine) as session:
        return [chain.verify_chain(session, order=order, workers=workers, **kwargs)
                for order in ("id", "seq") for workers in (1, 3)]


@needs_compiled
@pytest.mark.parametrize("batch", [1, 4, 1000])
def test_the_id_order_walk_vouches_for_a_sound_chain(probe: tuple[Engine, str],
                                                     batch: int) -> None:
    """A sound chain, ids in seq order (with gaps, so an id is never taken for a seq): read in
    id order it is confirmed whole, from genesis or from a checkpoint, and the report is the
    seq walk's."""
    engine, path = probe
    rows = _chain([_PLAIN] * 12, 1, chain.GENESIS_HASH, ids=[100 + 7 * i for i in range(12)])
    _load(engine, rows)
    url = f"sqlite:///{path}"
    middle = chain.Checkpoint(4, rows[3]["hash"])
    with Session(engine) as session:
        for workers in (1, 3):
            for start, count in ((None, 12), (middle, 8)):
                walked = chain._id_order_walk(session, url, start, workers, batch)
                assert walked is not None, (workers, start)
                checked, last, _ = walked
                assert checked == count
                assert last == chain._Prev(rows[-1]["id"], 12, rows[-1]["hash"])
    for start in (None, middle):
        reports = _reports(engine, batch=batch, start=start)
        assert reports[0].ok and reports[0].checked == (12 if start is None else 8)
        assert all(r == reports[0] for r in reports), reports


@needs_compiled
@pytest.mark.parametrize("batch", [1, 4, 1000])
def test_ids_out_of_seq_order_are_left_to_the_seq_walk(probe: tuple[Engine, str],
                                                       batch: int) -> None:
    """A sound chain whose ids are not in seq order (rows linked in another order than they
    were numbered): the id walk cannot vouch for it, and the seq walk finds it sound."""
    engine, path = probe
    ids = [1, 2, 3, 5, 4, 6, 7, 8, 9, 10, 12, 11]
    _load(engine, _chain([_PLAIN] * 12, 1, chain.GENESIS_HASH, ids=ids))
    with Session(engine) as session:
        for workers in (1, 3):
            assert chain._id_order_walk(session, f"sqlite:///{path}", None, workers,
                                        batch) is None
    reports = _reports(engine, batch=batch)
    assert reports[0].ok and reports[0].checked == 12
    assert all(r == reports[0] for r in reports), reports



@needs_compiled
def test_the_id_walk_only_reads_a_table_keyed_by_id(tmp_path: Path) -> None:
    """Id order is the table's own order only where id is its INTEGER PRIMARY KEY; a table
    rebuilt without it (as an attacker might) is left to the seq walk, not scanned and sorted
    for every page."""
    engine = create_engine(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    TABLE.create(engine)
    rows = _chain([_PLAIN] * 5, 1, chain.GENESIS_HASH)
    _load(engine, rows)
    url = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    with Session(engine) as session:
        assert chain._id_is_rowid(session)
        assert chain._id_order_walk(session, url, None, 1, 2) is not None
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t AS SELECT * FROM audit_events")
        conn.exec_driver_sql("DROP TABLE audit_events")
        conn.exec_driver_sql("ALTER TABLE t RENAME TO audit_events")
    with Session(engine) as session:
        assert not chain._id_is_rowid(session)
        assert chain._id_order_walk(session, url, None, 1, 2) is None
    reports = _reports(engine, batch=2)
    assert reports[0].ok and reports[0].checked == 5
    assert all(r == reports[0] for r in reports), reports
    engine.dispose()
