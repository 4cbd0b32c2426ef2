"""Fixtures for the audit tests: fresh migrated SQLite databases, cheaply.

Migrating once and copying the file keeps property tests (one database per example) fast.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from audit_helpers import AuditDb, open_audit_db

from evidence_locker import db


@pytest.fixture(scope="session")
def audit_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audit-template") / "locker.db"
    db.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def new_audit_db_url(
    audit_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], str]:
    """Make a fresh, migrated, empty database and return its URL (session-scoped for hypothesis)."""

    def make() -> str:
        path = tmp_path_factory.mktemp("audit-db") / "locker.db"
        shutil.copyfile(audit_template, path)
        return f"sqlite:///{path}"

    return make


@pytest.fixture
def audit_db(new_audit_db_url: Callable[[], str]) -> Iterator[AuditDb]:
    with open_audit_db(new_audit_db_url()) as adb:
        yield adb
