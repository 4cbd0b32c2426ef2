"""Fixtures for the audit tests: fresh migrated SQLite databases, cheaply.

Migrating once and copying the file keeps property tests (one database per example) fast.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import AuditDb, Locker, open_audit_db
from sqlalchemy import create_engine, text

from evidence_locker import db


@pytest.fixture(scope="session")
def audit_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audit-template") / "locker.db"
    db.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def new_audit_db_url(
    audit_template: Path, tmp_path_factory: pytest.TempPathFactory, scale_out: Any
) -> Callable[[], str]:
    """Make a fresh, migrated, empty database and return its URL (session-scoped for hypothesis).

    On the scale-out profile: a PostgreSQL database copied from the migrated template, so the
    PostgreSQL triggers and the advisory-locked sequencer are what is tested."""
    if scale_out is not None:
        base = scale_out.services.database_url

        def make_pg() -> str:
            name = f"a_{secrets.token_hex(6)}"
            engine = create_engine(base, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {scale_out.template_db}"))
            engine.dispose()
            return base.rsplit("/", 1)[0] + "/" + name

        return make_pg

    def make() -> str:
        path = tmp_path_factory.mktemp("audit-db") / "locker.db"
        shutil.copyfile(audit_template, path)
        return f"sqlite:///{path}"

    return make


@pytest.fixture
def audit_db(new_audit_db_url: Callable[[], str]) -> Iterator[AuditDb]:
    with open_audit_db(new_audit_db_url()) as adb:
        yield adb


@pytest.fixture
def locker(audit_db: AuditDb, tmp_path: Path) -> Locker:
    return Locker(audit_db, tmp_path)
