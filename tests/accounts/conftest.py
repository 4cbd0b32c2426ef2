"""Fixtures for the accounts tests: a migrated SQLite database, a fixed clock, cheap argon2."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from evidence_locker import db
from evidence_locker.accounts.service import Passwords
from evidence_locker.audit.service import Actor
from evidence_locker.clock import FixedClock


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/t.db"
    db.upgrade(url)
    return url


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
def clock() -> FixedClock:
    return FixedClock(dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC))


@pytest.fixture
def passwords() -> Passwords:
    return Passwords(time_cost=1, memory_cost=1024)


@pytest.fixture
def admin() -> Actor:
    return Actor(type="system", name="test-admin")
