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
