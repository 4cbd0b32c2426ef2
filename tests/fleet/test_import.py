"""`locker fleet import`: CSV from HR and asset systems, idempotent, with rejected rows."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from evidence_locker.audit.models import AuditEvent
from evidence_locker.audit.service import Actor
from evidence_locker.clock import FixedClock
from evidence_locker.fleet import imports, service
from evidence_locker.fleet.cli import fleet_app
from evidence_locker.fleet.imports import ImportFileError
from evidence_locker.fleet.models import Device, Officer, Unit

UNITS = b"""code,name,kind,parent_code
BX-RT,Bexley Response,unit,BX
MPS,Metropolitan Police,force,
BX,Bexley,command,MPS
"""
OFFICERS = b"""collar,name,unit_code,active
1001BX,PC Ada Smith,BX-RT,true
1002BX,"=HYPERLINK(""http://evil"")",BX-RT,yes
1003BX,PC Gone,BX,false
"""
DEVICES = b"""serial,model,mount,firmware,status
CAM-1,W110,body,1.0,active
CAM-2,W110,helmet,,spare
"""
ASSIGNMENTS = b"""serial,collar,starts_at,ends_at
CAM-1,1002BX,2025-02-01T08:00:00+00:00,
CAM-1,1001BX,2025-01-01,2025-02-01T08:00:00+00:00
"""


def files(**kinds: bytes) -> dict[str, tuple[str, bytes]]:
    return {k: (f"{k}.csv", v) for k, v in kinds.items()}


def run(session: Session, clock: FixedClock, admin: Actor, **kinds: bytes) -> imports.ImportReport:
    return imports.run_import(session, clock=clock, actor=admin, files=files(**kinds),
                              zone="Europe/London")


def counts(report: imports.ImportReport) -> dict[str, tuple[int, int, int, int]]:
    return {k.kind: (k.created, k.updated, k.unchanged, len(k.rejected)) for k in report.kinds}


def test_import_then_again_changes_nothing(session: Session, clock: FixedClock,
                                           admin: Actor) -> None:
    first = run(session, clock, admin, units=UNITS, officers=OFFICERS, devices=DEVICES,
                assignments=ASSIGNMENTS)
    assert counts(first) == {"units": (3, 0, 0, 0), "officers": (3, 0, 0, 0),
                             "devices": (2, 0, 0, 0), "assignments": (2, 0, 0, 0)}
    rt = service.unit_by_code(session, "BX-RT")
    assert rt is not None and rt.path == "/MPS/BX/BX-RT/"  # parent after child in the file
    evil = service.officer_by_collar(session, "1002BX")
    assert evil is not None and evil.name == '=HYPERLINK("http://evil")'  # stored as text
    gone = service.officer_by_collar(session, "1003BX")
    assert gone is not None and gone.active is False
    cam2 = service.device_by_serial(session, "CAM-2")
    assert cam2 is not None and (cam2.mount, cam2.status, cam2.firmware) == ("helmet", "spare",
                                                                             None)
    cam1 = service.device_by_serial(session, "CAM-1")
    assert cam1 is not None
    history = [(session.get(Officer, a.officer_id).collar, a.starts_at, a.ends_at)  # type: ignore[union-attr]
               for a in service.assignments_of(session, cam1.id)]
    # A bare date is midnight in the force's zone (GMT in January).
    assert history == [
        ("1002BX", dt.datetime(2025, 2, 1, 8, tzinfo=dt.UTC), None),
        ("1001BX", dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
         dt.datetime(2025, 2, 1, 8, tzinfo=dt.UTC))]
    assert cam1.issued_to_officer_id == evil.id
    events = len(session.scalars(select(AuditEvent)).all())

    again = run(session, clock, admin, units=UNITS, officers=OFFICERS, devices=DEVICES,
                assignments=ASSIGNMENTS)
    assert again.changed == 0 and again.rejected == 0
    assert counts(again) == {"units": (0, 0, 3, 0), "officers": (0, 0, 3, 0),
                             "devices": (0, 0, 2, 0), "assignments": (0, 0, 2, 0)}
    # Only the import's own summary event was added.
    new = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()[events:]
    assert [e.action for e in new] == ["fleet.imported"]
    assert json.loads(new[0].details)["units"]["unchanged"] == 3


def test_changed_rows_are_updated(session: Session, clock: FixedClock, admin: Actor) -> None:
    run(session, clock, admin, units=UNITS, officers=OFFICERS, devices=DEVICES)
    moved = UNITS.replace(b"BX-RT,Bexley Response,unit,BX", b"BX-RT,Bexley Response,unit,MPS")
    report = run(session, clock, admin, units=moved,
                 officers=OFFICERS.replace(b"PC Ada Smith,BX-RT,true", b"PC Ada Jones,BX,true"),
                 devices=DEVICES.replace(b"CAM-2,W110,helmet,,spare", b"CAM-2,W111,cap,,repair"))
    assert counts(report) == {"units": (0, 1, 2, 0), "officers": (0, 1, 2, 0),
                              "devices": (0, 1, 1, 0)}
    assert session.scalars(select(Unit.path).where(Unit.code == "BX-RT")).one() == "/MPS/BX-RT/"
    ada = service.officer_by_collar(session, "1001BX")
    assert ada is not None and ada.name == "PC Ada Jones"
    cam2 = session.scalars(select(Device).where(Device.serial == "CAM-2")).one()
    assert (cam2.model, cam2.mount, cam2.status) == ("W111", "cap", "repair")
    ev = session.scalars(select(AuditEvent).where(AuditEvent.action == "unit.updated")).one()
    assert json.loads(ev.details)["changes"]["path"] == ["/MPS/BX/BX-RT/", "/MPS/BX-RT/"]


def test_moving_a_unit_moves_its_subtree(session: Session, clock: FixedClock,
                                         admin: Actor) -> None:
    run(session, clock, admin, units=UNITS + b"SE,South East,command,MPS\n")
    report = run(session, clock, admin, units=b"code,name,kind,parent_code\nBX,Bexley,command,SE\n")
    assert counts(report) == {"units": (0, 1, 0, 0)}
    paths = {code: path for code, path in session.execute(select(Unit.code, Unit.path))}
    assert paths["BX"] == "/MPS/SE/BX/" and paths["BX-RT"] == "/MPS/SE/BX/BX-RT/"
    cycle = run(session, clock, admin, units=b"code,name,kind,parent_code\nSE,S,command,BX-RT\n")
    assert "own subtree" in cycle.kinds[0].rejected[0].reason


def test_rejected_rows_are_reported_and_the_rest_applied(session: Session, clock: FixedClock,
                                                         admin: Actor) -> None:
    run(session, clock, admin, units=UNITS)
    bad = (b"\xef\xbb\xbfCollar,Name,Unit_Code,Active,Shoe_Size\n"  # BOM, odd case, extra col
           b"2001,PC Good,BX,true,9\n"
           b"2002,PC Bad Unit,NOPE,true,9\n"
           b"2003,PC Latin1 \xe9,BX,true,9\n"
           b"\xe2\x80\xae2004,PC Evil,BX,maybe,9\n"
           b"bad collar!,PC X,BX,true,9\n"
           b"2001,PC Twice,BX,true,9\n"
           b"2005,PC Too,BX,true,9,extra\n"
           b"\n"
           b"2006,,BX,true,9\n")
    report = run(session, clock, admin, officers=bad)
    k = report.kinds[0]
    assert (k.created, k.updated, k.unchanged) == (1, 0, 0)
    assert k.ignored_columns == ["shoe_size"]
    reasons = {r.line: r.reason for r in k.rejected}
    keys = {r.line: r.key for r in k.rejected}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 10]
    assert "unknown unit code 'NOPE'" in reasons[3]
    assert "not UTF-8" in reasons[4]
    assert "active must be true or false" in reasons[5] and keys[5] == "\\x{202e}2004"
    assert "invalid collar" in reasons[6]
    assert "already given on line 2" in reasons[7]
    assert "6 fields" in reasons[8]
    assert "name is empty" in reasons[10]
    assert service.officer_by_collar(session, "2001") is not None
    assert service.officer_by_collar(session, "2002") is None


def test_assignment_rows(session: Session, clock: FixedClock, admin: Actor) -> None:
    run(session, clock, admin, units=UNITS, officers=OFFICERS, devices=DEVICES)
    report = run(session, clock, admin, assignments=(
        b"serial,collar,starts_at,ends_at\n"
        b"CAM-1,1001BX,2025-01-01T08:00,\n"          # no offset
        b"CAM-1,1001BX,yesterday,\n"
        b"CAM-1,1001BX,2025-01-01T08:00Z,2025-01-01T07:00Z\n"
        b"CAM-9,1001BX,2025-01-01T08:00Z,\n"
        b"CAM-2,1001BX,2025-01-01T08:00Z,\n"
        b"CAM-2,1002BX,2024-12-01T08:00Z,2025-01-02T00:00Z\n"))  # overlaps the line above it
    k = report.kinds[0]
    assert (k.created, len(k.rejected)) == (1, 5)
    reasons = [r.reason for r in k.rejected]
    # Rows apply in time order per camera: the later-starting of two overlapping rows loses.
    assert [r.line for r in k.rejected] == [2, 3, 4, 5, 6]
    assert "UTC offset" in reasons[0] and "ISO 8601" in reasons[1]
    assert "end after" in reasons[2] and "unknown device" in reasons[3]
    assert "must not overlap" in reasons[4]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty file"),
    (b"serial,collar\nCAM-1,1\n", "missing column(s) starts_at"),
    (b"serial,serial,collar,starts_at\n", "repeated column"),
])
def test_unreadable_files_stop_everything(session: Session, clock: FixedClock, admin: Actor,
                                          data: bytes, message: str) -> None:
    with pytest.raises(ImportFileError, match=re.escape(message)):
        run(session, clock, admin, units=UNITS, assignments=data)
    assert service.unit_by_code(session, "MPS") is None


def test_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "longer than" in (imports.parse(
        "units", b"code,name,kind\nA," + b"x" * 2000 + b",force\n", source="u").rejected[0].reason)
    monkeypatch.setattr(imports, "MAX_FILE_BYTES", 10)
    with pytest.raises(ImportFileError, match="larger than"):
        imports.parse("units", UNITS, source="u")
    monkeypatch.setattr(imports, "MAX_FILE_BYTES", 1 << 20)
    monkeypatch.setattr(imports, "MAX_ROWS", 2)
    with pytest.raises(ImportFileError, match="more than 2 rows"):
        imports.parse("units", UNITS, source="u")
    broken = imports.parse("units", b'code,name,kind\nA,"unterminated,force\n', source="u")
    assert broken.rows == [] and "malformed CSV" in broken.rejected[0].reason


runner = CliRunner()


def test_cli_exit_codes_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evidence_locker import db
    from evidence_locker.config import Settings

    for key in ("LOCKER_DATABASE_URL", "LOCKER_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LOCKER_DATA_DIR", str(tmp_path))
    db.upgrade(Settings().resolved_database_url)
    (tmp_path / "units.csv").write_bytes(UNITS)
    (tmp_path / "officers.csv").write_bytes(OFFICERS + b"9,PC Nine,NOPE,true\n")

    dry = runner.invoke(fleet_app, ["import", "--units", str(tmp_path / "units.csv"),
                                    "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "3 change(s) would be made; nothing was written" in dry.stdout

    result = runner.invoke(fleet_app, ["import", "--units", str(tmp_path / "units.csv"),
                                       "--officers", str(tmp_path / "officers.csv")])
    assert result.exit_code == 1, result.output
    assert "units (" in result.stdout and "3 created" in result.stdout
    assert "line 5: unknown unit code 'NOPE' [9]" in result.stdout
    assert "6 change(s) applied" in result.stdout and "1 row(s) rejected" in result.stderr

    again = runner.invoke(fleet_app, ["import", "--units", str(tmp_path / "units.csv")])
    assert again.exit_code == 0 and "nothing changed" in again.stdout

    missing = runner.invoke(fleet_app, ["import", "--units", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2
    (tmp_path / "bad.csv").write_bytes(b"code\n")
    bad = runner.invoke(fleet_app, ["import", "--units", str(tmp_path / "bad.csv")])
    assert bad.exit_code == 2 and "missing column(s) name, kind" in bad.stderr
    assert runner.invoke(fleet_app, ["import"]).exit_code == 2
