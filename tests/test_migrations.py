"""The migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

from alembic import command

from evidence_locker.db import alembic_config


def test_models_and_migrations_agree(runtime) -> None:
    # `runtime` has migrated this test's database (SQLite, or PostgreSQL on scale-out).
    command.check(alembic_config(runtime.settings.resolved_database_url))


def test_downgrade_and_upgrade_again(runtime) -> None:
    cfg = alembic_config(runtime.settings.resolved_database_url)
    runtime.engine.dispose()
    command.downgrade(cfg, "0003")
    command.upgrade(cfg, "head")
    command.check(cfg)
