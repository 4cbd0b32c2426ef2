"""Fleet register service on a real, migrated SQLite database."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence_locker.accounts import service as accounts
from evidence_locker.accounts.models import ApiToken
from evidence_locker.audit.models import AuditEvent
from evidence_locker.audit.service import Actor
from evidence_locker.clock import FixedClock
from evidence_locker.fleet import service
from evidence_locker.fleet.service import FleetError


def actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_unit_paths(session: Session) -> None:
    force = service.create_unit(session, code="MPS", name="Met", kind="force")
    bx = service.create_unit(session, code="BX", name="Bexley", kind="command", parent_code="MPS")
    rt = service.create_unit(session, code="BX-RT", name="Response", kind="unit", parent_code="BX")
    assert (force.path, bx.path, rt.path) == ("/MPS/", "/MPS/BX/", "/MPS/BX/BX-RT/")
    assert (force.parent_id, bx.parent_id, rt.parent_id) == (None, force.id, bx.id)
    assert service.unit_by_code(session, "BX-RT") is rt
    assert service.unit_by_code(session, "XX") is None
    assert actions(session) == ["unit.created"] * 3


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"code": "A/B"}, "invalid unit code"),
        ({"code": ""}, "invalid unit code"),
        ({"kind": "squad"}, "unknown unit kind"),
        ({"parent_code": "NOPE"}, "unknown parent"),
        ({"code": "MPS"}, "already exists"),
    ],
)
def test_unit_rejects(session: Session, kw: dict[str, str], message: str) -> None:
    service.create_unit(session, code="MPS", name="Met", kind="force")
    args = {"code": "BX", "name": "Bexley", "kind": "command", **kw}
    with pytest.raises(FleetError, match=message):
        service.create_unit(
            session,
            code=args["code"],
            name=args["name"],
            kind=args["kind"],
            parent_code=args.get("parent_code"),
        )


def test_officers_and_devices(session: Session, clock: FixedClock, admin: Actor) -> None:
    service.create_unit(session, code="MPS", name="Met", kind="force")
    officer = service.create_officer(
        session, collar="1234BX", name="PC Smith", unit_code="MPS", clock=clock, actor=admin
    )
    assert service.officer_by_collar(session, "1234BX") is officer
    device = service.create_device(
        session,
        serial="AXIS-W110-0001",
        model="W110",
        mount="cap",
        firmware="1.2",
        issued_to_collar="1234BX",
    )
    assert device.issued_to_officer_id == officer.id and device.status == "active"
    assert service.device_by_serial(session, "AXIS-W110-0001") is device
    assert service.device_by_serial(session, "nope") is None

    with pytest.raises(FleetError, match="already exists"):
        service.create_officer(session, collar="1234BX", name="Again")
    with pytest.raises(FleetError, match="unknown unit"):
        service.create_officer(session, collar="9", name="X", unit_code="NOPE")
    with pytest.raises(FleetError, match="already exists"):
        service.create_device(session, serial="AXIS-W110-0001", model=None)
    with pytest.raises(FleetError, match="unknown mount"):
        service.create_device(session, serial="S2", model=None, mount="shoulder")
    with pytest.raises(FleetError, match="unknown officer"):
        service.create_device(session, serial="S2", model=None, issued_to_collar="0")

    officer_event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "officer.created")
    ).one()
    assert officer_event.actor_name == "test-admin" and officer_event.occurred_at == clock.now()
    assert actions(session) == ["unit.created", "officer.created", "device.created"]


def test_register_dock(session: Session, clock: FixedClock, admin: Actor) -> None:
    dock, secret = service.register_dock(
        session, clock=clock, actor=admin, name="BX-dock-1", station="Bexleyheath", bays=6
    )
    assert (dock.name, dock.station, dock.bays, dock.active) == (
        "BX-dock-1",
        "Bexleyheath",
        6,
        True,
    )
    token = session.scalars(select(ApiToken)).one()
    assert (token.dock_id, token.user_id, token.scopes) == (dock.id, None, "upload")
    assert token.token_hash == accounts.token_digest(secret)

    p = accounts.resolve_token(session, clock=clock, secret=secret)
    assert p is not None and p.dock_id == dock.id and p.role is None
    assert p.username == "dock:BX-dock-1" and p.scopes == frozenset({"upload"})

    ev = session.scalars(select(AuditEvent).where(AuditEvent.action == "dock.registered")).one()
    assert ev.object_id == str(dock.id)
    assert json.loads(ev.details) == {"name": "BX-dock-1", "station": "Bexleyheath", "bays": 6}
    assert actions(session) == ["dock.registered", "token.created"]

    assert p.token_id is not None
    accounts.revoke_token(session, clock=clock, actor=admin, token_id=p.token_id)
    assert accounts.resolve_token(session, clock=clock, secret=secret) is None


@pytest.mark.parametrize(
    ("name", "bays", "message"),
    [
        ("BX-dock-1", 8, "already exists"),
        ("-dock", 8, "invalid dock name"),
        ("dock one", 8, "invalid dock name"),
        ("d" * 101, 8, "invalid dock name"),
        ("dock2", 0, "bays"),
    ],
)
def test_register_dock_rejects(
    session: Session, clock: FixedClock, admin: Actor, name: str, bays: int, message: str
) -> None:
    service.register_dock(session, clock=clock, actor=admin, name="BX-dock-1")
    with pytest.raises(FleetError, match=message):
        service.register_dock(session, clock=clock, actor=admin, name=name, bays=bays)
