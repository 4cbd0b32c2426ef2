"""`users` and `tokens` commands against a migrated database in LOCKER_DATA_DIR."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from evidence_locker import db
from evidence_locker.accounts import service
from evidence_locker.accounts.cli import tokens_app, users_app
from evidence_locker.accounts.models import User
from evidence_locker.accounts.roles import Role
from evidence_locker.audit.models import AuditEvent
from evidence_locker.clock import SystemClock
from evidence_locker.config import Settings

runner = CliRunner()
Look = Callable[[], AbstractContextManager[Session]]


@pytest.fixture
def look(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Look]:
    """Environment for the commands, and a way to look at what they did afterwards."""
    for key in ("LOCKER_DATABASE_URL", "LOCKER_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LOCKER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LOCKER_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("LOCKER_ARGON2_MEMORY_COST", "1024")
    url = Settings().resolved_database_url
    db.upgrade(url)
    engine = db.make_engine(url)
    factory = db.make_session_factory(engine)

    @contextmanager
    def look() -> Iterator[Session]:
        # Every transaction here is BEGIN IMMEDIATE: close it before the next command writes.
        with factory() as session:
            yield session
            session.rollback()

    yield look
    engine.dispose()


def last_line(output: str) -> str:
    return output.rstrip("\n").splitlines()[-1]


def test_users_create_prints_generated_password(look: Look) -> None:
    result = runner.invoke(users_app, ["create", "alice", "--role", "auditor"])
    assert result.exit_code == 0, result.output
    password = last_line(result.stdout)
    assert password and " " not in password
    with look() as s:
        user = s.scalars(select(User)).one()
        assert (user.username, user.role, user.active) == ("alice", "auditor", True)
        passwords = service.Passwords(1, 1024)
        assert (
            service.authenticate(
                s,
                clock=SystemClock(),
                passwords=passwords,
                username="alice",
                password=password,
                ip=None,
                user_agent=None,
            )
            is user
        )
        ev = s.scalars(select(AuditEvent).where(AuditEvent.action == "user.created")).one()
        assert ev.actor_type == "system" and (ev.actor_name or "").startswith("cli:")


def test_users_create_with_password_prints_none(look: Look) -> None:
    result = runner.invoke(
        users_app, ["create", "bob", "--role", "auditor", "--password", "a long password"]
    )
    assert result.exit_code == 0, result.output
    assert "a long password" not in result.output
    assert "password" not in result.stdout


def test_users_create_bad_role(look: Look) -> None:
    result = runner.invoke(users_app, ["create", "alice", "--role", "wizard"])
    assert result.exit_code == 2
    assert "unknown role 'wizard'" in result.stderr
    assert result.stdout == ""
    with look() as s:
        assert s.scalars(select(User)).all() == []


def test_users_create_unknown_unit_and_duplicate(look: Look) -> None:
    result = runner.invoke(users_app, ["create", "alice", "--role", "officer", "--unit", "ZZ"])
    assert result.exit_code == 2 and "unknown unit code 'ZZ'" in result.stderr
    assert runner.invoke(users_app, ["create", "alice", "--role", "auditor"]).exit_code == 0
    result = runner.invoke(users_app, ["create", "alice", "--role", "auditor"])
    assert result.exit_code == 2 and "already exists" in result.stderr


def test_users_deactivate(look: Look) -> None:
    assert runner.invoke(users_app, ["create", "alice", "--role", "auditor"]).exit_code == 0
    result = runner.invoke(users_app, ["deactivate", "alice"])
    assert result.exit_code == 0, result.output
    with look() as s:
        assert s.scalars(select(User)).one().active is False
    result = runner.invoke(users_app, ["deactivate", "nobody"])
    assert result.exit_code == 2 and "no user 'nobody'" in result.stderr


def test_tokens_create_and_revoke(look: Look) -> None:
    assert runner.invoke(users_app, ["create", "alice", "--role", "auditor"]).exit_code == 0
    result = runner.invoke(tokens_app, ["create", "--user", "alice", "--expires-days", "30"])
    assert result.exit_code == 0, result.output
    secret = last_line(result.stdout)
    assert secret.startswith("elk_") and secret == secret.strip() and " " not in secret

    with look() as s:
        principal = service.resolve_token(s, clock=SystemClock(), secret=secret)
    assert principal is not None
    assert (principal.username, principal.role, principal.scopes) == (
        "alice",
        Role.AUDITOR,
        frozenset({"api"}),
    )

    result = runner.invoke(tokens_app, ["revoke", str(principal.token_id)])
    assert result.exit_code == 0, result.output
    with look() as s:
        assert service.resolve_token(s, clock=SystemClock(), secret=secret) is None
    result = runner.invoke(tokens_app, ["revoke", str(principal.token_id)])
    assert result.exit_code == 2 and "already revoked" in result.stderr


def test_tokens_create_refusals(look: Look) -> None:
    result = runner.invoke(tokens_app, ["create", "--user", "ghost"])
    assert result.exit_code == 2 and "no user 'ghost'" in result.stderr
    assert runner.invoke(users_app, ["create", "alice", "--role", "auditor"]).exit_code == 0
    result = runner.invoke(tokens_app, ["create", "--user", "alice", "--expires-days", "0"])
    assert result.exit_code == 2 and "positive" in result.stderr
    result = runner.invoke(tokens_app, ["create", "--user", "alice", "--scope", "Bad Scope"])
    assert result.exit_code == 2 and "invalid scope" in result.stderr
