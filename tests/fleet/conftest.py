"""Fixtures for the fleet tests: a migrated database of the test profile, a fixed clock, cheap
argon2 (shared with the other service-level tests in tests/db_fixtures.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from db_fixtures import admin, db_url, engine, factory, passwords, session  # noqa: F401
from evidence_locker.clock import FixedClock


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC))
