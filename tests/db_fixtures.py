"""Fixtures for service-level tests that work on a session directly (accounts, fleet):
a migrated database of the test profile — SQLite, or PostgreSQL on scale-out — and cheap argon2.
Imported into those folders' conftest.py files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from evidence_locker import db
from evidence_locker.accounts.service import Passwords
from evidence_locker.audit.service import Actor


@pytest.fixture
def db_url(tmp_path: Path, deployment: Any) -> str:
    url = deployment.overrides.get("database_url") or f"sqlite:///{tmp_path}/t.db"
    db.upgrade(url)
    return str(url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = db.make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return db.make_session_factory(engine)


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as s:
        yield s
        s.rollback()


@pytest.fixture
def passwords() -> Passwords:
    return Passwords(time_cost=1, memory_cost=1024)


@pytest.fixture
def admin() -> Actor:
    return Actor(type="system", name="test-admin")
