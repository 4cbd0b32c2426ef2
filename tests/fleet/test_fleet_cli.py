"""`docks register` against a migrated database in LOCKER_DATA_DIR."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from evidence_locker import db
from evidence_locker.accounts import service as accounts
from evidence_locker.clock import SystemClock
from evidence_locker.config import Settings
from evidence_locker.fleet.cli import docks_app
from evidence_locker.fleet.models import Dock

runner = CliRunner()


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    for key in ("LOCKER_DATABASE_URL", "LOCKER_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LOCKER_DATA_DIR", str(tmp_path))
    url = Settings().resolved_database_url
    db.upgrade(url)
    engine = db.make_engine(url)
    # Every transaction is BEGIN IMMEDIATE: the test's session must not outlive its reads.
    with db.make_session_factory(engine)() as session:
        yield session
    engine.dispose()


def test_register_prints_token_last(cli_db: Session) -> None:
    result = runner.invoke(
        docks_app, ["register", "BX-dock-1", "--station", "Bexleyheath", "--bays", "12"]
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.rstrip("\n").splitlines()[-1]
    assert secret.startswith("elk_") and " " not in secret
    principal = accounts.resolve_token(cli_db, clock=SystemClock(), secret=secret)
    assert principal is not None and principal.username == "dock:BX-dock-1"
    assert principal.scopes == frozenset({"upload"}) and principal.role is None
    dock = cli_db.scalars(select(Dock)).one()
    assert (dock.station, dock.bays) == ("Bexleyheath", 12)
    cli_db.rollback()


def test_register_refusals(cli_db: Session) -> None:
    assert runner.invoke(docks_app, ["register", "BX-dock-1"]).exit_code == 0
    result = runner.invoke(docks_app, ["register", "BX-dock-1"])
    assert result.exit_code == 2 and "already exists" in result.stderr
    result = runner.invoke(docks_app, ["register", "bad name"])
    assert result.exit_code == 2 and "invalid dock name" in result.stderr
    assert result.stdout == ""


def test_list_revoke_rotate(cli_db: Session) -> None:
    from evidence_locker.fleet import service

    with db.transaction(db.make_session_factory(cli_db.get_bind())) as s:  # type: ignore[arg-type]
        service.create_unit(s, code="BX", name="Bexley", kind="command")
    cli_db.rollback()
    first = runner.invoke(docks_app, ["register", "BX-dock-1", "--unit", "BX"])
    assert first.exit_code == 0, first.output
    old = first.stdout.rstrip("\n").splitlines()[-1]
    assert runner.invoke(docks_app, ["register", "d2", "--unit", "NOPE"]).exit_code == 2

    listed = runner.invoke(docks_app, ["list"])
    assert listed.exit_code == 0
    line = next(x for x in listed.stdout.splitlines() if x.startswith("BX-dock-1"))
    assert line.split()[:5] == ["BX-dock-1", "BX", "8", "1", "never"]

    rotated = runner.invoke(docks_app, ["rotate", "BX-dock-1"])
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.rstrip("\n").splitlines()[-1]
    assert new.startswith("elk_") and new != old
    assert accounts.resolve_token(cli_db, clock=SystemClock(), secret=old) is None
    assert accounts.resolve_token(cli_db, clock=SystemClock(), secret=new) is not None
    cli_db.rollback()

    revoked = runner.invoke(docks_app, ["revoke", "BX-dock-1"])
    assert revoked.exit_code == 0 and "revoked 1 token" in revoked.stdout
    assert accounts.resolve_token(cli_db, clock=SystemClock(), secret=new) is None
    cli_db.rollback()
    again = runner.invoke(docks_app, ["revoke", "BX-dock-1"])
    assert again.exit_code == 2 and "no live token" in again.stderr
    assert runner.invoke(docks_app, ["revoke", "nope"]).exit_code == 2
    assert runner.invoke(docks_app, ["rotate", "nope"]).exit_code == 2


def test_assign_unassign_prune(cli_db: Session) -> None:
    from evidence_locker.fleet import service
    from evidence_locker.fleet.cli import fleet_app

    with db.transaction(db.make_session_factory(cli_db.get_bind())) as s:  # type: ignore[arg-type]
        service.create_officer(s, collar="1", name="PC One")
        service.create_officer(s, collar="2", name="PC Two")
        service.create_device(s, serial="CAM-1", model=None, issued_to_collar="1")
    cli_db.rollback()
    r = runner.invoke(fleet_app, ["assign", "CAM-1", "2", "--from", "2025-01-01T08:00+00:00",
                                  "--note", "swap"])
    assert r.exit_code == 0, r.output
    assert "assigned CAM-1 to 2" in r.stdout
    assert runner.invoke(fleet_app, ["assign", "CAM-1", "1", "--from",
                                     "2024-01-01T08:00"]).exit_code == 2  # no offset
    r = runner.invoke(fleet_app, ["assign", "CAM-1", "1", "--from", "2024-01-01T08:00Z"])
    assert r.exit_code == 2 and "must not overlap" in r.stderr
    assert runner.invoke(fleet_app, ["unassign", "CAM-1"]).exit_code == 0
    r = runner.invoke(fleet_app, ["unassign", "CAM-1"])
    assert r.exit_code == 2 and "no open assignment" in r.stderr
    r = runner.invoke(fleet_app, ["prune-health", "--keep-days", "30"])
    assert r.exit_code == 0 and "removed 0" in r.stdout
