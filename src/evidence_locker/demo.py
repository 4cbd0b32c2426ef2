"""`make run`'s demo force: units, officers, cameras, users and a dock; footage that then goes in
through the real ingest path."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from evidence_locker.accounts import service as accounts
from evidence_locker.accounts.models import ApiToken
from evidence_locker.audit.service import Actor
from evidence_locker.clock import Clock
from evidence_locker.config import RetentionCategory, Settings
from evidence_locker.fleet import service as fleet
from evidence_locker.lifecycle.service import apply_categories

ACTOR = Actor(type="system", name="demo")

UNITS = [  # code, name, kind, parent
    ("DEMO", "Demo Constabulary", "force", None),
    ("NW", "North West Borough", "command", "DEMO"),
    ("SE", "South East Borough", "command", "DEMO"),
    ("NW-RT", "North West Response Team", "unit", "NW"),
    ("SE-NH", "South East Neighbourhood Team", "unit", "SE"),
]
OFFICERS = [  # collar, name, unit, camera serial, mount
    ("4521", "PC Alex Morgan", "NW-RT", "BWV-0001", "body"),
    ("4522", "PC Sam Patel", "NW-RT", "BWV-0002", "body"),
    ("7310", "PC Jo Okafor", "SE-NH", "BWV-0003", "helmet"),
]
USERS = [  # username, role, unit, officer, what they show
    ("evidence", "evidence-officer", "DEMO", None, "reviews all the demo force's footage"),
    ("sergeant", "supervisor", "NW-RT", None, "sees the North West response team's footage"),
    ("morgan", "officer", None, "4521", "sees PC Morgan's own footage"),
    ("standards", "professional-standards", None, None,
     "sees all footage; places holds and restrictions"),
    ("admin", "system-administrator", None, None, "runs the system and cannot see footage"),
    ("fleet", "fleet-administrator", None, None,
     "runs cameras, docks and assignments at /fleet; no footage"),
]

#: The issue's example categories, for a demo force that configured none of its own.
CATEGORIES = [
    RetentionCategory(name="non-evidential", kind="fixed", days=31),
    RetentionCategory(name="crime - evidential", kind="review", days=6 * 365),
    RetentionCategory(name="use of force", kind="fixed", days=6 * 365),
    RetentionCategory(name="firearms discharge", kind="review", days=30 * 365),
    RetentionCategory(name="complaint", kind="case-closed", days=365),
    RetentionCategory(name="stop and search", kind="fixed", days=365),
    RetentionCategory(name="public order", kind="fixed", days=2 * 365),
    RetentionCategory(name="training", kind="fixed", days=90),
]


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str
    password: str
    note: str


def seed(session: Session, *, clock: Clock, passwords: accounts.Passwords,
         settings: Settings | None = None) -> tuple[list[DemoAccount], str]:
    """Idempotent: creates what is missing; demo users get fresh passwords each run, and the
    demo dock a fresh upload token (the old ones are revoked). With `settings`, the force's
    categories (the demo's own if it configured none) are applied, so footage can be flagged."""
    if settings is not None:
        if not settings.retention_categories:
            settings.retention_categories = list(CATEGORIES)
        apply_categories(session, clock=clock, actor=ACTOR, settings=settings)
    for code, name, kind, parent in UNITS:
        if fleet.unit_by_code(session, code) is None:
            fleet.create_unit(session, code=code, name=name, kind=kind, parent_code=parent,
                              clock=clock, actor=ACTOR)
    for collar, name, unit, serial, mount in OFFICERS:
        if fleet.officer_by_collar(session, collar) is None:
            fleet.create_officer(session, collar=collar, name=name, unit_code=unit,
                                 clock=clock, actor=ACTOR)
        if fleet.device_by_serial(session, serial) is None:
            fleet.create_device(session, serial=serial, model="EL-SIM-1", mount=mount,
                                firmware="1.4.2", issued_to_collar=collar, clock=clock,
                                actor=ACTOR)
    accounts_out = []
    for username, role, user_unit, officer, note in USERS:
        password = accounts.generate_password()
        user = accounts.user_by_username(session, username)
        if user is None:
            accounts.create_user(session, clock=clock, actor=ACTOR, passwords=passwords,
                                 username=username, role=role, unit_code=user_unit,
                                 officer_collar=officer, password=password)
        else:
            accounts.set_password(session, clock=clock, actor=ACTOR, passwords=passwords,
                                  user=user, password=password)
        accounts_out.append(DemoAccount(username, role, password, note))
    dock = fleet.dock_by_name(session, "demo-dock")
    if dock is None:
        dock, token = fleet.register_dock(session, clock=clock, actor=ACTOR, name="demo-dock",
                                          station="Demo Station", bays=4, unit_code="NW")
    else:
        for old in session.query(ApiToken).filter(ApiToken.dock_id == dock.id,
                                                  ApiToken.revoked_at.is_(None)):
            accounts.revoke_token(session, clock=clock, actor=ACTOR, token_id=old.id)
        token = accounts.create_api_token(session, clock=clock, actor=ACTOR, dock=dock,
                                          scopes={"upload"}, name="demo-dock")
    return accounts_out, token


def demo_start(now: dt.datetime) -> dt.datetime:
    """Footage from earlier today, so the demo looks like a shift that just docked."""
    return (now - dt.timedelta(hours=3)).replace(microsecond=0)
