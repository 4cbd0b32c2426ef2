"""Assignments of cameras to officers over time, and attribution by them."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fleet_support import attributed, conflicts, dock_recording
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence_locker.audit.models import AuditEvent
from evidence_locker.audit.service import Actor
from evidence_locker.clock import FixedClock
from evidence_locker.db import transaction
from evidence_locker.fleet import service
from evidence_locker.fleet.models import Device, DeviceAssignment
from evidence_locker.fleet.rules import ASSIGNMENT_EPOCH, attribution_instant, overlaps
from evidence_locker.fleet.service import FleetError

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)


def test_overlaps_is_half_open() -> None:
    t = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert overlaps(t, t + DAY, t + HOUR, None)
    assert not overlaps(t, t + DAY, t + DAY, None)  # one ends as the next begins
    assert overlaps(t, None, t - DAY, None)
    assert not overlaps(t + DAY, None, t, t + DAY)


def test_attribution_instant() -> None:
    t = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert attribution_instant(started_at=t, clock_suspect=False, received_at=t + DAY) == (
        t, "recorded")
    assert attribution_instant(started_at=t, clock_suspect=True, received_at=t + DAY) == (
        t + DAY, "clock-suspect")
    assert attribution_instant(started_at=None, clock_suspect=False, received_at=t) == (
        t, "received")


def _register(session: Session) -> None:
    service.create_unit(session, code="F", name="Force", kind="force")
    service.create_officer(session, collar="1", name="PC One", unit_code="F")
    service.create_officer(session, collar="2", name="PC Two", unit_code="F")
    service.create_device(session, serial="CAM-1", model="X", issued_to_collar="1")


def _history(session: Session) -> list[tuple[str, dt.datetime, dt.datetime | None]]:
    device = service.device_by_serial(session, "CAM-1")
    assert device is not None
    out = []
    for a in service.assignments_of(session, device.id):
        officer = session.get(service.Officer, a.officer_id)
        assert officer is not None
        out.append((officer.collar, a.starts_at, a.ends_at))
    return out


def test_issued_at_registration_is_an_open_assignment_from_the_epoch(session: Session) -> None:
    _register(session)
    assert _history(session) == [("1", ASSIGNMENT_EPOCH, None)]


def test_assigning_closes_the_open_assignment(session: Session, clock: FixedClock,
                                              admin: Actor) -> None:
    _register(session)
    now = clock.now()
    result = service.assign_device(session, clock=clock, actor=admin, serial="CAM-1",
                                   collar="2", note="swap")
    assert result.closed is not None and result.reattributed == 0
    assert _history(session) == [("2", now, None), ("1", ASSIGNMENT_EPOCH, now)]
    device = service.device_by_serial(session, "CAM-1")
    assert device is not None and device.issued_to_officer_id == result.assignment.officer_id
    assert result.assignment.created_by == "test-admin" and result.assignment.note == "swap"
    assert service.assignment_at(session, device_id=device.id, at=now - HOUR).officer_id \
        != result.assignment.officer_id  # type: ignore[union-attr]
    events = session.scalars(select(AuditEvent).where(AuditEvent.action.in_(
        ["device.assigned", "device.unassigned"])).order_by(AuditEvent.id)).all()
    assert [e.action for e in events] == ["device.unassigned", "device.assigned"]
    details = json.loads(events[1].details)
    assert details["officer"] == "2" and details["closed_assignment_id"] == result.closed.id

    with pytest.raises(FleetError, match="already assigned"):
        service.assign_device(session, clock=clock, actor=admin, serial="CAM-1", collar="2",
                              starts_at=now + HOUR)


def test_overlapping_assignments_are_refused(session: Session, clock: FixedClock,
                                             admin: Actor) -> None:
    _register(session)
    now = clock.now()
    service.assign_device(session, clock=clock, actor=admin, serial="CAM-1", collar="2",
                          starts_at=now - 10 * DAY)
    before = _history(session)
    # Starts before the open assignment does: would overlap it.
    with pytest.raises(FleetError, match="must not overlap"):
        service.assign_device(session, clock=clock, actor=admin, serial="CAM-1", collar="1",
                              starts_at=now - 20 * DAY)
    # A closed interval inside a closed one.
    with pytest.raises(FleetError, match="must not overlap"):
        service.assign_device(session, clock=clock, actor=admin, serial="CAM-1", collar="2",
                              starts_at=now - 400 * DAY, ends_at=now - 300 * DAY)
    with pytest.raises(FleetError, match="end after"):
        service.assign_device(session, clock=clock, actor=admin, serial="CAM-1", collar="2",
                              starts_at=now, ends_at=now)
    with pytest.raises(FleetError, match="UTC offset"):
        service.assign_device(session, clock=clock, actor=admin, serial="CAM-1", collar="2",
                              starts_at=dt.datetime(2025, 1, 1))
    with pytest.raises(FleetError, match="unknown device"):
        service.assign_device(session, clock=clock, actor=admin, serial="NOPE", collar="2")
    with pytest.raises(FleetError, match="unknown officer"):
        service.assign_device(session, clock=clock, actor=admin, serial="CAM-1", collar="9")
    assert _history(session) == before


def test_end_assignment(session: Session, clock: FixedClock, admin: Actor) -> None:
    _register(session)
    ended = service.end_assignment(session, clock=clock, actor=admin, serial="CAM-1")
    assert ended.ends_at == clock.now()
    device = session.scalars(select(Device)).one()
    assert device.issued_to_officer_id is None
    with pytest.raises(FleetError, match="no open assignment"):
        service.end_assignment(session, clock=clock, actor=admin, serial="CAM-1")
    # Back out later: a fresh open assignment, no overlap with the closed history.
    service.assign_device(session, clock=clock, actor=admin, serial="CAM-1", collar="2",
                          starts_at=clock.now() + DAY)
    assert [h[0] for h in _history(session)] == ["2", "1"]


def test_one_open_assignment_per_device_is_enforced_by_the_database(
        session: Session, clock: FixedClock) -> None:
    _register(session)
    device = session.scalars(select(Device)).one()
    session.add(DeviceAssignment(device_id=device.id, officer_id=device.issued_to_officer_id,
                                 starts_at=clock.now(), ends_at=None, created_at=clock.now(),
                                 created_by="test", note=""))
    with pytest.raises(Exception, match="(?i)unique"):
        session.flush()


def test_recordings_are_attributed_to_who_had_the_camera_then(client, runtime, force) -> None:
    """CAM-1 was 1001's since the epoch; from a day ago it is 1002's. The register wins over
    the sidecar; disagreements are kept as conflicts until the register is corrected."""
    now = runtime.clock.now()
    admin = Actor(type="system", name="test-admin")
    with transaction(runtime.sessions) as s:
        service.assign_device(s, clock=runtime.clock, actor=admin, serial="CAM-1",
                              collar="1002", starts_at=now - DAY)
    dock_recording(client, force.dock_token, device="CAM-1", recording="OLD",
                   started_at=now - 2 * DAY, officer="1001")
    dock_recording(client, force.dock_token, device="CAM-1", recording="NEW-WRONG",
                   started_at=now - HOUR, officer="1001")
    dock_recording(client, force.dock_token, device="CAM-1", recording="NEW-RIGHT",
                   started_at=now - HOUR, officer="1002")
    dock_recording(client, force.dock_token, device="CAM-1", recording="NOBODY",
                   started_at=now - HOUR, officer=None)

    assert attributed(runtime, "OLD") == ("1001", [])  # changed hands since: still 1001's
    officer, notes = attributed(runtime, "NEW-WRONG")
    assert officer == "1002"  # the register wins
    assert any(n.startswith("camera says officer 1001, the register says 1002") for n in notes)
    assert attributed(runtime, "NEW-RIGHT") == ("1002", [])
    assert attributed(runtime, "NOBODY") == ("1002", [])
    assert conflicts(runtime) == {"NEW-WRONG": ("mismatch", "1001")}

    # The register was wrong: 1002 only took the camera 30 minutes ago. Correcting it moves the
    # footage recorded in between back to 1001, and the conflicts follow.
    took = now - dt.timedelta(minutes=30)
    with transaction(runtime.sessions) as s:
        device = service.device_by_serial(s, "CAM-1")
        assert device is not None
        current, previous = service.assignments_of(s, device.id)
        with pytest.raises(FleetError, match="must not overlap"):
            service.correct_assignment(s, clock=runtime.clock, actor=admin,
                                       assignment=previous, starts_at=previous.starts_at,
                                       ends_at=took)
        assert service.correct_assignment(s, clock=runtime.clock, actor=admin,
                                          assignment=current, starts_at=took, ends_at=None)
        assert service.correct_assignment(s, clock=runtime.clock, actor=admin,
                                          assignment=previous, starts_at=previous.starts_at,
                                          ends_at=took)
        assert not service.correct_assignment(s, clock=runtime.clock, actor=admin,
                                              assignment=previous,
                                              starts_at=previous.starts_at, ends_at=took)
    assert attributed(runtime, "NEW-WRONG") == ("1001", [])
    assert attributed(runtime, "NEW-RIGHT")[0] == "1001"
    assert attributed(runtime, "NOBODY") == ("1001", [])
    assert conflicts(runtime) == {"NEW-RIGHT": ("mismatch", "1002")}
    with transaction(runtime.sessions) as s:
        acts = list(s.scalars(select(AuditEvent.action)))
    assert {"recording.attributed", "recording.attribution_conflict",
            "recording.attribution_agreed"} <= set(acts)


def test_camera_named_officer_without_an_assignment_is_flagged(client, runtime, force) -> None:
    now = runtime.clock.now()
    with transaction(runtime.sessions) as s:
        service.end_assignment(s, clock=runtime.clock, actor=Actor(type="system", name="t"),
                               serial="CAM-2", at=now - 3 * DAY)
    dock_recording(client, force.dock_token, device="CAM-2", recording="R",
                   started_at=now - HOUR, officer="1002")
    officer, notes = attributed(runtime, "R")
    assert officer == "1002"  # nobody else to attribute it to
    assert any(n.startswith("no assignment in the register covers") for n in notes)
    assert conflicts(runtime) == {"R": ("unassigned", "1002")}
