"""Bulk import of the fleet register from CSV, the shape a force's HR and asset systems export.

One file per kind, each with a header row (names case-insensitive, any order, extra columns
ignored and reported):

- units: `code,name,kind,parent_code` (kind: force | command | unit)
- officers: `collar,name,unit_code,active` (active: true/false/yes/no/1/0; empty = true)
- devices: `serial,model,mount,firmware,status` (mount: body | cap | helmet, empty = body;
  status: active | spare | repair | lost | retired, empty = active)
- assignments: `serial,collar,starts_at,ends_at` (ISO 8601 with a UTC offset, or a bare date
  meaning midnight in the force's time zone; empty ends_at = still assigned)

Rows are applied in that order, each in its own savepoint through the ordinary service
functions (so each change is audited like one made by hand). Re-importing the same files changes
nothing. A row that cannot be applied is rejected with its line number and reason and the rest
go ahead; a file that cannot be read at all (too large, not CSV, a required column missing)
stops the whole import before anything is applied.

The files are untrusted: sizes are bounded, bytes that are not UTF-8 reject their row (a BOM is
fine), and values are shown in the report only escaped and cut short.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence_locker.audit import service as audit
from evidence_locker.clock import Clock
from evidence_locker.fleet import service
from evidence_locker.fleet.models import DeviceAssignment, Unit
from evidence_locker.fleet.service import FleetError

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ROWS = 250_000  # 22,000 cameras and officers, with years of assignment history
MAX_FIELD = 1000
BOM = b"\xef\xbb\xbf"

KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # required, optional columns
    "units": (("code", "name", "kind"), ("parent_code",)),
    "officers": (("collar", "name"), ("unit_code", "active")),
    "devices": (("serial",), ("model", "mount", "firmware", "status")),
    "assignments": (("serial", "collar", "starts_at"), ("ends_at",)),
}
TRUE = frozenset({"true", "yes", "y", "1", ""})
FALSE = frozenset({"false", "no", "n", "0"})


class ImportFileError(FleetError):
    """A file that cannot be read at all; nothing is applied."""


def shown(value: str, limit: int = 60) -> str:
    """A value from the file, safe to print: control, format (bidi) and undecodable characters
    escaped, cut short. Spreadsheet formulas are just text here."""
    out = []
    for ch in value[:limit]:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            out.append(f"\\x{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return "".join(out) + ("…" if len(value) > limit else "")


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str
    key: str  # the row's key (code, collar, serial) as shown


@dataclass
class KindReport:
    kind: str
    source: str
    sha256: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.created + self.updated


@dataclass
class ImportReport:
    kinds: list[KindReport]

    @property
    def changed(self) -> int:
        return sum(k.changed for k in self.kinds)

    @property
    def rejected(self) -> int:
        return sum(len(k.rejected) for k in self.kinds)


@dataclass(frozen=True)
class Row:
    line: int
    values: dict[str, str | None]  # stripped; empty -> None

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def need(self, name: str) -> str:
        value = self.values.get(name)
        if value is None:
            raise FleetError(f"{name} is empty")
        return value


@dataclass
class Parsed:
    kind: str
    source: str
    sha256: str
    rows: list[Row]
    rejected: list[Rejected]
    ignored_columns: list[str]


def parse(kind: str, data: bytes, *, source: str) -> Parsed:
    """Read one CSV file: rows with their line numbers, and the rows rejected while reading."""
    if kind not in KINDS:
        raise ImportFileError(f"unknown kind {kind!r}")
    if len(data) > MAX_FILE_BYTES:
        raise ImportFileError(f"{source}: larger than {MAX_FILE_BYTES} bytes")
    digest = hashlib.sha256(data).hexdigest()
    if data.startswith(BOM):
        data = data[len(BOM):]
    text = data.decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    required, optional = KINDS[kind]
    rows: list[Row] = []
    rejected: list[Rejected] = []
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ImportFileError(f"{source}: line 1: not CSV: {exc}") from None
    if header is None:
        raise ImportFileError(f"{source}: empty file (a header row is needed)")
    names = [h.strip().lower() for h in header]
    missing = [c for c in required if c not in names]
    if missing:
        raise ImportFileError(f"{source}: line 1: missing column(s) {', '.join(missing)}; "
                              f"the {kind} file needs {', '.join(required + optional)}")
    dupes = sorted({n for n in names if names.count(n) > 1 and n})
    if dupes:
        raise ImportFileError(f"{source}: line 1: repeated column(s) {', '.join(dupes)}")
    known = set(required + optional)
    ignored = [shown(n) for n in names if n not in known]
    line = reader.line_num + 1
    try:
        for fields in reader:
            start, line = line, reader.line_num + 1
            if not any(f.strip() for f in fields):
                continue
            if len(rows) + len(rejected) >= MAX_ROWS:
                raise ImportFileError(f"{source}: more than {MAX_ROWS} rows")
            reason = _bad_fields(fields, len(names))
            if reason is not None:
                rejected.append(Rejected(start, reason, shown(fields[0] if fields else "")))
                continue
            values = {n: (f.strip() or None) for n, f in zip(names, fields, strict=False)
                      if n in known}
            rows.append(Row(start, values))
    except csv.Error as exc:
        rejected.append(Rejected(line, f"malformed CSV ({exc}); the rest of the file was not "
                                       "read", ""))
    return Parsed(kind, source, digest, rows, rejected, ignored)


def _bad_fields(fields: list[str], width: int) -> str | None:
    if len(fields) > width:
        return f"{len(fields)} fields, the header has {width}"
    for f in fields:
        if len(f) > MAX_FIELD:
            return f"a value longer than {MAX_FIELD} characters"
        if "\x00" in f:
            return "a NUL character"
        try:
            f.encode("utf-8")
        except UnicodeEncodeError:
            return "bytes that are not UTF-8"
    return None


def parse_time(value: str, zone: ZoneInfo) -> dt.datetime:
    """ISO 8601 with an offset, or a bare date = midnight of that day in the force's zone."""
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise FleetError(f"not an ISO 8601 time: {shown(value)!r}") from None
    if when.tzinfo is None:
        raise FleetError(f"time {shown(value)!r} needs a UTC offset (or give a bare date)")
    return when.astimezone(dt.UTC)


# --- applying ----------------------------------------------------------------------------------

Outcome = str  # created | updated | unchanged


def _apply_rows(session: Session, report: KindReport, rows: list[Row], key: str,
                apply: Callable[[Row], Outcome]) -> None:
    seen: dict[str, int] = {}
    for row in rows:
        shown_key = shown(row.get(key) or "")
        k = row.get(key)
        if k is not None and k in seen:
            report.rejected.append(Rejected(
                row.line, f"{key} {shown_key!r} already given on line {seen[k]}", shown_key))
            continue
        if k is not None:
            seen[k] = row.line
        try:
            with session.begin_nested():
                outcome = apply(row)
        except FleetError as exc:
            report.rejected.append(Rejected(row.line, shown(str(exc), 300), shown_key))
            continue
        setattr(report, outcome, getattr(report, outcome) + 1)


def _units_in_order(session: Session, rows: list[Row]) -> Iterator[Row]:
    """Parents before children, wherever they are in the file; a row whose parent never
    appears comes last (and is rejected for it)."""
    existing = set(session.scalars(select(Unit.code)))
    pending = list(rows)
    while pending:
        ready = [r for r in pending
                 if r.get("parent_code") is None or r.get("parent_code") in existing]
        if not ready:
            yield from pending
            return
        for r in ready:
            existing.add(r.get("code") or "")
            yield r
        pending = [r for r in pending if r not in ready]


def _active(value: str | None) -> bool:
    text = (value or "").lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise FleetError(f"active must be true or false, not {shown(value or '')!r}")


def run_import(
    session: Session,
    *,
    clock: Clock,
    actor: audit.Actor,
    files: dict[str, tuple[str, bytes]],
    zone: str,
) -> ImportReport:
    """Import whichever of units, officers, devices and assignments are given ({kind: (name,
    bytes)}), in that order, within the caller's transaction. Raises ImportFileError, before
    changing anything, if any file cannot be read."""
    parsed = {kind: parse(kind, data, source=name) for kind, (name, data) in files.items()}
    tz = ZoneInfo(zone)
    reports: list[KindReport] = []

    def start(kind: str) -> tuple[KindReport, list[Row]] | None:
        p = parsed.get(kind)
        if p is None:
            return None
        r = KindReport(kind, p.source, p.sha256, rejected=list(p.rejected),
                       ignored_columns=p.ignored_columns)
        reports.append(r)
        return r, p.rows

    if (got := start("units")) is not None:
        def unit(row: Row) -> Outcome:
            code, name, kind = row.need("code"), row.need("name"), row.need("kind")
            parent = row.get("parent_code")
            if service.unit_by_code(session, code) is None:
                service.create_unit(session, code=code, name=name, kind=kind, parent_code=parent,
                                    clock=clock, actor=actor)
                return "created"
            changes = service.update_unit(session, clock=clock, actor=actor, code=code,
                                          name=name, kind=kind, parent_code=parent)
            return "updated" if changes else "unchanged"

        _apply_rows(session, got[0], list(_units_in_order(session, got[1])), "code", unit)

    if (got := start("officers")) is not None:
        def officer(row: Row) -> Outcome:
            collar, name = row.need("collar"), row.need("name")
            active = _active(row.get("active"))
            if service.officer_by_collar(session, collar) is None:
                service.create_officer(session, collar=collar, name=name,
                                       unit_code=row.get("unit_code"), clock=clock, actor=actor)
                if not active:
                    service.update_officer(session, clock=clock, actor=actor, collar=collar,
                                           name=name, unit_code=row.get("unit_code"),
                                           active=False)
                return "created"
            changes = service.update_officer(session, clock=clock, actor=actor, collar=collar,
                                             name=name, unit_code=row.get("unit_code"),
                                             active=active)
            return "updated" if changes else "unchanged"

        _apply_rows(session, got[0], got[1], "collar", officer)

    if (got := start("devices")) is not None:
        def device(row: Row) -> Outcome:
            serial = row.need("serial")
            mount, status = row.get("mount") or "body", row.get("status") or "active"
            existing = service.device_by_serial(session, serial)
            if existing is None:
                service.create_device(session, serial=serial, model=row.get("model"),
                                      mount=mount, firmware=row.get("firmware"), clock=clock,
                                      actor=actor)
                if status != "active":
                    service.update_device(session, clock=clock, actor=actor, serial=serial,
                                          model=row.get("model"), mount=mount,
                                          firmware=row.get("firmware"), status=status)
                return "created"
            # An empty model or firmware keeps what is known (docks report firmware).
            changes = service.update_device(
                session, clock=clock, actor=actor, serial=serial,
                model=row.get("model") or existing.model, mount=mount,
                firmware=row.get("firmware") or existing.firmware, status=status)
            return "updated" if changes else "unchanged"

        _apply_rows(session, got[0], got[1], "serial", device)

    if (got := start("assignments")) is not None:
        def assignment(row: Row) -> Outcome:
            serial, collar = row.need("serial"), row.need("collar")
            starts = parse_time(row.need("starts_at"), tz)
            ends_text = row.get("ends_at")
            ends = None if ends_text is None else parse_time(ends_text, tz)
            dev = service.device_by_serial(session, serial)
            off = service.officer_by_collar(session, collar)
            if dev is not None and off is not None:
                same = session.scalars(select(DeviceAssignment).where(
                    DeviceAssignment.device_id == dev.id, DeviceAssignment.officer_id == off.id,
                    DeviceAssignment.starts_at == starts)).one_or_none()
                if same is not None:
                    changed = service.correct_assignment(session, clock=clock, actor=actor,
                                                         assignment=same, starts_at=starts,
                                                         ends_at=ends)
                    return "updated" if changed else "unchanged"
            service.assign_device(session, clock=clock, actor=actor, serial=serial,
                                  collar=collar, starts_at=starts, ends_at=ends,
                                  note="imported")
            return "created"

        # History in time order per camera, so an open assignment closes the one before it.
        def by_time(row: Row) -> tuple[str, dt.datetime, int]:
            try:
                when = parse_time(row.get("starts_at") or "", tz)
            except FleetError:
                when = dt.datetime.max.replace(tzinfo=dt.UTC)
            return (row.get("serial") or "", when, row.line)

        # Assignments "key" on the line itself: the same camera appears on many lines.
        rows = sorted(got[1], key=by_time)
        report = got[0]
        _apply_rows(session, report, rows, "_line", assignment)
        report.rejected.sort(key=lambda r: r.line)

    audit.record(session, clock=clock, actor=actor, action="fleet.imported",
                 object_type="fleet", details={
                     r.kind: {"file": r.source[-200:], "sha256": r.sha256, "created": r.created,
                              "updated": r.updated, "unchanged": r.unchanged,
                              "rejected": len(r.rejected)} for r in reports})
    session.flush()
    return ImportReport(reports)
