"""`locker audit verify` and `locker audit sequence`, against the database the settings name."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from audit_helpers import open_audit_db
from typer.testing import CliRunner

from evidence_locker.audit.cli import app

runner = CliRunner()


@pytest.fixture
def cli_url(
    new_audit_db_url: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    url = new_audit_db_url()
    monkeypatch.setenv("LOCKER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LOCKER_DATABASE_URL", url)
    return url


def test_sequence_then_verify(cli_url: str) -> None:
    with open_audit_db(cli_url) as adb:
        adb.record(3)
        result = runner.invoke(app, ["sequence"])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "linked 3 events into the audit chain"
        adb.record(2)
        head = adb.by_seq(3)["hash"]
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"audit chain OK: 3 events, head seq 3 hash {head}, 2 pending"
    assert "WARNING: no signed checkpoints yet" in result.stderr
    result = runner.invoke(app, ["sequence", "--batch", "1"])
    assert result.output.strip() == "linked 2 events into the audit chain"


def test_verify_empty_log(cli_url: str) -> None:
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "audit chain OK: 0 events, head seq none hash none, 0 pending"


def test_verify_fails_naming_the_altered_row(cli_url: str) -> None:
    with open_audit_db(cli_url) as adb:
        adb.record(4)
        adb.sequence()
        adb.drop_triggers()
        adb.tamper(3, actor_name="somebody else")
    result = runner.invoke(app, ["verify", "--batch", "2"])
    assert result.exit_code == 1
    assert "audit chain BROKEN after 2 good events: row id 3 seq 3: " in result.output
    assert "altered" in result.output


def test_verify_fails_naming_the_row_after_a_removal(cli_url: str) -> None:
    with open_audit_db(cli_url) as adb:
        adb.record(4)
        adb.sequence()
        adb.drop_triggers()
        adb.remove(2)
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 1
    assert "row id 3 seq 3: 1 event(s) with seq 2 missing" in result.output


def test_database_from_the_data_dir(
    audit_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without LOCKER_DATABASE_URL the database is `locker.db` in the data directory."""
    shutil.copyfile(audit_template, tmp_path / "locker.db")
    monkeypatch.setenv("LOCKER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LOCKER_DATABASE_URL", raising=False)
    with open_audit_db(f"sqlite:///{tmp_path / 'locker.db'}") as adb:
        adb.record(1)
    assert runner.invoke(app, ["sequence"]).output.strip() == "linked 1 events into the audit chain"
    assert runner.invoke(app, ["verify"]).exit_code == 0


def test_unmigrated_database_is_an_error_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCKER_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    for command in ("verify", "sequence"):
        result = runner.invoke(app, [command])
        assert result.exit_code == 2
        assert "cannot" in result.output and "no such table: audit_" in result.output
