"""Test support shared by every folder (imported by name: tests/ is on sys.path)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from evidence_locker.accounts.service import Passwords, create_api_token, create_user
from evidence_locker.audit.models import AuditEvent
from evidence_locker.audit.service import Actor
from evidence_locker.clock import Clock, FixedClock
from evidence_locker.config import Settings
from evidence_locker.db import transaction
from evidence_locker.fleet import service as fleet
from evidence_locker.runtime import Runtime

TEST_ACTOR = Actor(type="system", name="test")
CHEAP = {"argon2_time_cost": 1, "argon2_memory_cost": 1024}


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"data_dir": data_dir, "min_free_bytes": 0, "run_workers": False,
                                 **CHEAP}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class MovingClock(FixedClock):
    """Starts at the real now; tests may advance it."""

    def __init__(self) -> None:
        super().__init__(dt.datetime.now(dt.UTC))


@dataclass
class Deployment:
    """Where one test's data lives: settings overrides and environment for real processes."""

    overrides: dict[str, Any]
    env: dict[str, str]


@dataclass
class Force:
    dock_token: str
    other_dock_token: str
    tokens: dict[str, str]  # username -> api token
    passwords: dict[str, str]


def make_force(runtime: Runtime) -> Force:
    """Two units under one command, three officers with cameras, users of several roles."""
    pw = Passwords(1, 1024)
    clock = runtime.clock
    tokens: dict[str, str] = {}
    passwords: dict[str, str] = {}
    with transaction(runtime.sessions) as s:
        fleet.create_unit(s, code="F", name="Force", kind="force", clock=clock, actor=TEST_ACTOR)
        fleet.create_unit(s, code="C1", name="Command 1", kind="command", parent_code="F",
                          clock=clock, actor=TEST_ACTOR)
        fleet.create_unit(s, code="U1", name="Unit 1", kind="unit", parent_code="C1",
                          clock=clock, actor=TEST_ACTOR)
        fleet.create_unit(s, code="U2", name="Unit 2", kind="unit", parent_code="F",
                          clock=clock, actor=TEST_ACTOR)
        for collar, unit, serial in (("1001", "U1", "CAM-1"), ("1002", "U1", "CAM-2"),
                                     ("2001", "U2", "CAM-3")):
            fleet.create_officer(s, collar=collar, name=f"PC {collar}", unit_code=unit,
                                 clock=clock, actor=TEST_ACTOR)
            fleet.create_device(s, serial=serial, model="EL-SIM-1", issued_to_collar=collar,
                                clock=clock, actor=TEST_ACTOR)
        _, dock_token = fleet.register_dock(s, clock=clock, actor=TEST_ACTOR, name="dock-1")
        _, other = fleet.register_dock(s, clock=clock, actor=TEST_ACTOR, name="dock-2")
        for username, role, unit, officer in (
            ("officer1", "officer", None, "1001"),
            ("officer2", "officer", None, "2001"),
            ("sergeant1", "supervisor", "U1", None),
            ("evidence1", "evidence-officer", "C1", None),
            ("standards", "professional-standards", "F", None),
            ("admin", "system-administrator", None, None),
            ("auditor", "auditor", None, None),
            ("fleetadmin", "fleet-administrator", None, None),
        ):
            user, password = create_user(s, clock=clock, actor=TEST_ACTOR, passwords=pw,
                                         username=username, role=role, unit_code=unit,
                                         officer_collar=officer)
            assert password
            passwords[username] = password
            tokens[username] = create_api_token(s, clock=clock, actor=TEST_ACTOR, user=user,
                                                scopes={"api"})
    return Force(dock_token, other, tokens, passwords)




@contextmanager
def serving(data_dir: Path, clock: Clock, **overrides: object) -> Iterator[tuple[Runtime, Any]]:
    """A migrated runtime on these settings and a client of its app, closed afterwards (for
    tests that point one part of the deployment at a server of their own)."""
    from fastapi.testclient import TestClient

    from evidence_locker.db import upgrade
    from evidence_locker.runtime import build_runtime
    from evidence_locker.web.app import create_app

    settings = make_settings(data_dir, **overrides)
    upgrade(settings.resolved_database_url)
    runtime = build_runtime(settings, clock=clock)
    try:
        with TestClient(create_app(runtime, background=False)) as client:
            yield runtime, client
    finally:
        runtime.close()


def count_rows(runtime: Runtime, model: Any) -> int:
    """Rows of a model's table, in a transaction of their own."""
    with transaction(runtime.sessions) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def count_events(runtime: Runtime, action: str) -> int:
    """Audit events of one action."""
    with transaction(runtime.sessions) as s:
        return int(s.scalar(select(func.count()).select_from(AuditEvent)
                            .where(AuditEvent.action == action)) or 0)


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def add_user(runtime: Runtime, username: str, role: str, unit: str | None = None) -> str:
    """A user of `role` (in `unit`) and an API token for them."""
    with transaction(runtime.sessions) as s:
        user, _ = create_user(s, clock=runtime.clock, actor=TEST_ACTOR,
                              passwords=Passwords(1, 1024), username=username, role=role,
                              unit_code=unit)
        return create_api_token(s, clock=runtime.clock, actor=TEST_ACTOR, user=user,
                                scopes={"api"})
