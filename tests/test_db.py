"""Engine settings that matter in production."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from evidence_locker.db import make_engine


@pytest.mark.scale_out_only
def test_pgbouncer_mode_turns_server_side_prepares_off(deployment) -> None:
    url = deployment.overrides["database_url"]
    for prepare, expected in ((True, 5), (False, None)):
        engine = make_engine(url, pool_size=2, max_overflow=0, server_side_prepare=prepare)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
                raw = conn.connection.dbapi_connection
                assert raw is not None
                assert raw.prepare_threshold == expected  # type: ignore[attr-defined]
        finally:
            engine.dispose()


def test_sqlite_is_durable_and_checks_foreign_keys(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    finally:
        engine.dispose()
