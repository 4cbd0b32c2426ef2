"""Audit trails and reports: per recording, per user, exported as CSV and PDF, and access alerts.

A trail is the events about one recording (or by and about one user), oldest first, read page by
page with a keyset cursor (the event id). An export carries, beside the events, the chain status
of what it holds: each linked event's hash recomputed from its content, its link to the event
before it in the chain, and the signed checkpoint that covers the newest of them. So a copy
handed to a court says what was checked and how to check it again (`locker audit verify`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from evidence_locker.accounts.models import User
from evidence_locker.audit.chain import GENESIS_HASH, current_head, event_digest
from evidence_locker.audit.checkpoints import SignedCheckpoint
from evidence_locker.audit.models import AuditCheckpoint, AuditEvent
from evidence_locker.audit.signing import KeyRing
from evidence_locker.catalogue.models import Recording, RecordingRestriction
from evidence_locker.config import Settings
from evidence_locker.fleet.models import Officer, Unit

#: The columns of an exported event, in order (the 13 hashed fields, then the chain fields).
COLUMNS = ("id", "occurred_at", "action", "actor_type", "actor_id", "actor_name", "object_type",
           "object_id", "ip", "user_agent", "purpose", "reason", "details", "seq", "prev_hash",
           "hash", "sequenced_at")

_CONTENT = COLUMNS[:13]


class ReportError(ValueError):
    """Bad input for a report: the message is for the person asking."""


def recording_trail(recording_id: str) -> Select[Any]:
    """Every event about one recording (answered from the object_id index)."""
    return select(AuditEvent).where(AuditEvent.object_id == recording_id,
                                    AuditEvent.object_type == "recording")


def user_trail(user: User) -> Select[Any]:
    """Everything a user did (actor_name index), and everything done to their account."""
    return select(AuditEvent).where(or_(
        and_(AuditEvent.actor_name == user.username, AuditEvent.actor_type == "user",
             AuditEvent.actor_id == str(user.id)),
        and_(AuditEvent.object_id == str(user.id), AuditEvent.object_type == "user")))


def window(stmt: Select[Any], since: dt.datetime | None,
            until: dt.datetime | None) -> Select[Any]:
    if since is not None:
        stmt = stmt.where(AuditEvent.occurred_at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.occurred_at < until)
    return stmt


def page(session: Session, stmt: Select[Any], *, limit: int, cursor: str | None,
         since: dt.datetime | None = None, until: dt.datetime | None = None,
         ) -> tuple[list[AuditEvent], str | None]:
    """Oldest first by id; the cursor is the last id seen, so new events never shift a page."""
    after = 0
    if cursor:
        try:
            after = int(cursor)
        except ValueError as exc:
            raise ReportError("invalid cursor") from exc
    rows = list(session.scalars(window(stmt, since, until).where(AuditEvent.id > after)
                                .order_by(AuditEvent.id).limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], str(rows[limit - 1].id)
    return rows, None


def every(session: Session, stmt: Select[Any], *, since: dt.datetime | None = None,
          until: dt.datetime | None = None, batch: int = 1000) -> Iterator[AuditEvent]:
    """The whole trail in pages, for exports (memory stays bounded by `batch`)."""
    cursor = None
    while True:
        rows, cursor = page(session, stmt, limit=batch, cursor=cursor, since=since, until=until)
        yield from rows
        if cursor is None:
            return


def as_dict(e: AuditEvent) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in COLUMNS:
        value = getattr(e, name)
        out[name] = value.isoformat() if isinstance(value, dt.datetime) else value
    return out


def intact(e: AuditEvent) -> bool | None:
    """Does the stored hash match the event's content (None: not linked into the chain yet)?"""
    if e.seq is None or e.prev_hash is None or e.hash is None:
        return None
    content = {name: getattr(e, name) for name in _CONTENT}
    return event_digest(**content, seq=e.seq, prev_hash=e.prev_hash) == e.hash


@dataclass
class ChainStatus:
    """What was checked about the events of one export."""

    events: int = 0
    linked: int = 0
    pending: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    altered: list[int] = field(default_factory=list)  # event ids whose hash does not recompute
    broken: list[int] = field(default_factory=list)  # event ids whose prev_hash is not the
    #                                                  hash of the event before them in the chain
    unreachable: list[int] = field(default_factory=list)  # predecessor archived or missing
    head: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.altered and not self.broken

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "linked": self.linked,
                "pending": self.pending, "first_seq": self.first_seq, "last_seq": self.last_seq,
                "altered_event_ids": self.altered, "broken_link_event_ids": self.broken,
                "predecessor_not_found_event_ids": self.unreachable, "head": self.head,
                "covering_checkpoint": self.checkpoint,
                "method": "each linked event's SHA-256 recomputed from its content, seq and "
                          "prev_hash; prev_hash compared with the hash of the event at seq-1; "
                          "the first signed checkpoint at or after the last seq named (its "
                          "Ed25519 signature checked when the public key is configured). "
                          "`locker audit verify` walks the whole chain."}


def chain_status(session: Session, events: Iterable[AuditEvent], *, keys: KeyRing | None = None,
                 chunk: int = 500) -> ChainStatus:
    status = ChainStatus()
    linked: list[AuditEvent] = []
    for e in events:
        status.events += 1
        if e.seq is None:
            status.pending += 1
            continue
        status.linked += 1
        linked.append(e)
        if intact(e) is False:
            status.altered.append(e.id)
    if linked:
        status.first_seq = min(e.seq for e in linked if e.seq is not None)
        status.last_seq = max(e.seq for e in linked if e.seq is not None)
    for start in range(0, len(linked), chunk):
        part = linked[start:start + chunk]
        wanted = {e.seq - 1 for e in part if e.seq is not None and e.seq > 1}
        found: dict[int | None, str | None] = {
            seq: h for seq, h in session.execute(select(AuditEvent.seq, AuditEvent.hash)
                                                 .where(AuditEvent.seq.in_(wanted)))}
        for e in part:
            assert e.seq is not None
            if e.seq == 1:
                if e.prev_hash != GENESIS_HASH:
                    status.broken.append(e.id)
            elif e.seq - 1 not in found:
                status.unreachable.append(e.id)
            elif found[e.seq - 1] != e.prev_hash:
                status.broken.append(e.id)
    head = current_head(session)
    status.head = None if head is None else {"seq": head.seq, "hash": head.hash}
    if status.last_seq is not None:
        row = session.scalars(select(AuditCheckpoint).where(AuditCheckpoint.seq >= status.last_seq)
                              .order_by(AuditCheckpoint.seq, AuditCheckpoint.id).limit(1)).first()
        if row is not None:
            signed = SignedCheckpoint.from_row(row)
            problem = None if keys is None or not keys else \
                keys.verify(signed.key_id, signed.payload(), signed.signature)
            status.checkpoint = {
                "seq": signed.seq, "hash": signed.hash, "kind": signed.kind,
                "signed_at": signed.signed_at.isoformat(), "key_id": signed.key_id,
                "signature": signed.signature,
                "signature_checked": bool(keys),
                "signature_ok": None if not keys else problem is None,
            }
    return status


# --- exports --------------------------------------------------------------------------------


def to_csv(events: Iterable[AuditEvent]) -> Iterator[str]:
    """RFC 4180 CSV, one event a row, every hashed field exactly as stored plus `intact`."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*COLUMNS, "intact"])
    yield buf.getvalue()
    for e in events:
        buf.seek(0)
        buf.truncate()
        d = as_dict(e)
        ok = intact(e)
        writer.writerow([csv_cell(d[c]) for c in COLUMNS] +
                        ["" if ok is None else ("yes" if ok else "NO")])
        yield buf.getvalue()


def csv_cell(value: Any) -> Any:
    """Spreadsheet formula injection: a cell that starts with = + - @ is prefixed with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def _latin(text: str) -> str:
    """The PDF's core fonts hold Latin-1; anything else shows as '?' (the CSV and the hashes
    keep the exact text)."""
    return text.encode("latin-1", "replace").decode("latin-1")


def to_pdf(*, title: str, subject: str, requested_by: str, generated_at: dt.datetime,
           events: list[AuditEvent], status: ChainStatus, force_name: str,
           facts: Iterable[str] = ()) -> bytes:
    """A self-describing court copy: what it covers (`facts`: lines about the subject, e.g. a
    deletion's tombstone), who asked, the chain status, every event with its seq and hash."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF(orientation="L", format="A4")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.set_title(_latin(title))
    pdf.set_creator("Evidence Locker")
    pdf.alias_nb_pages()
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def line(text: str, size: int = 9, style: str = "", height: float = 4.5) -> None:
        pdf.set_font("Helvetica", style, size)
        pdf.multi_cell(width, height, _latin(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    line(f"{force_name}: {title}", 14, "B", 7)
    line(f"Subject: {subject}")
    for fact in facts:
        line(fact)
    line(f"Generated {generated_at.isoformat()} by {requested_by}; {status.events} event(s), "
         f"oldest first. Times are UTC.")
    pdf.ln(2)
    line("Chain verification of the events in this report", 11, "B", 6)
    verdict = "OK" if status.ok else "FAILED"
    line(f"Result: {verdict}. Linked events: {status.linked}; not yet linked (pending): "
         f"{status.pending}; seq range: {status.first_seq} to {status.last_seq}.")
    if status.altered:
        line(f"ALTERED (hash does not recompute): event ids {status.altered}", style="B")
    if status.broken:
        line(f"BROKEN LINK (prev_hash differs from the hash at seq-1): event ids "
             f"{status.broken}", style="B")
    if status.unreachable:
        line(f"Predecessor not in the live table (archived partition): event ids "
             f"{status.unreachable}")
    if status.head:
        line(f"Chain head when generated: seq {status.head['seq']}, hash {status.head['hash']}")
    cp = status.checkpoint
    if cp:
        sig = ("signature verified" if cp["signature_ok"] else "SIGNATURE DOES NOT VERIFY") \
            if cp["signature_checked"] else "signature not checked here (no public key)"
        line(f"Covering signed checkpoint: seq {cp['seq']}, hash {cp['hash']}, signed "
             f"{cp['signed_at']} by key {cp['key_id']} ({sig}). Signature: {cp['signature']}")
    elif status.linked:
        line("No signed checkpoint covers these events yet.")
    line(status.as_dict()["method"], 8)
    pdf.ln(2)
    line("Events", 11, "B", 6)
    for e in events:
        d = as_dict(e)
        ok = intact(e)
        mark = "pending" if ok is None else ("hash ok" if ok else "HASH MISMATCH")
        line(f"#{d['id']}  {d['occurred_at']}  {d['action']}  by {d['actor_type']} "
             f"{d['actor_name'] or ''} ({d['actor_id'] or '-'}) from {d['ip'] or '-'}  "
             f"on {d['object_type'] or '-'} {d['object_id'] or '-'}", 8, "B", 4)
        extra = []
        if d["purpose"] or d["reason"]:
            extra.append(f"purpose: {d['purpose'] or '-'}; reason: {d['reason'] or '-'}")
        if d["details"] and d["details"] != "{}":
            extra.append(f"details: {d['details']}")
        if d["user_agent"]:
            extra.append(f"user agent: {d['user_agent']}")
        seq = "-" if d["seq"] is None else d["seq"]
        extra.append(f"seq {seq}  prev {d['prev_hash'] or '-'}  hash {d['hash'] or '-'}  [{mark}]")
        line("    " + "\n    ".join(extra), 7, "", 3.5)
    return bytes(pdf.output())


# --- access-pattern alerts ------------------------------------------------------------------

#: The audit actions that mean someone looked at or took a recording.
ACCESS_ACTIONS = ("recording.viewed", "recording.access_granted", "media.stream",
                  "media.download", "media.poster")


@dataclass(frozen=True)
class Thresholds:
    many_recordings: int  # distinct recordings of other officers in the window
    outside_unit: int  # distinct recordings outside the user's own unit subtree
    restricted: int  # distinct restricted recordings (1: any)

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(many_recordings=settings.audit_alert_many_recordings,
                   outside_unit=settings.audit_alert_outside_unit,
                   restricted=settings.audit_alert_restricted)


@dataclass
class Alert:
    rule: str  # many-recordings | outside-unit | restricted
    username: str
    role: str | None
    count: int
    threshold: int
    recordings: list[str]
    first_at: dt.datetime
    last_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "username": self.username, "role": self.role,
                "count": self.count, "threshold": self.threshold,
                "recordings": self.recordings[:50], "first_at": self.first_at.isoformat(),
                "last_at": self.last_at.isoformat()}


def access_alerts(session: Session, *, since: dt.datetime, until: dt.datetime,
                  thresholds: Thresholds, batch: int = 5000) -> list[Alert]:
    """Unusual access in [since, until), from the audit events (occurred_at index): someone
    looking at many recordings of other officers, at recordings outside their own unit (people
    with no unit, such as a watchdog, are not judged by that rule), or at footage that is
    restricted now or was restricted at any time. One's own footage never counts."""
    # (user id, recording id) -> first and last time, over the window, in bounded pages.
    seen: dict[tuple[int, str], tuple[dt.datetime, dt.datetime]] = {}
    after = 0
    while True:
        rows = session.execute(
            select(AuditEvent.id, AuditEvent.actor_id, AuditEvent.object_id,
                   AuditEvent.occurred_at)
            .where(AuditEvent.occurred_at >= since, AuditEvent.occurred_at < until,
                   AuditEvent.action.in_(ACCESS_ACTIONS), AuditEvent.actor_type == "user",
                   AuditEvent.object_type == "recording", AuditEvent.id > after)
            .order_by(AuditEvent.id).limit(batch)).all()
        for _, actor_id, object_id, at in rows:
            if actor_id is None or object_id is None or not actor_id.isdigit():
                continue
            key = (int(actor_id), object_id)
            first, last = seen.get(key, (at, at))
            seen[key] = (min(first, at), max(last, at))
        if len(rows) < batch:
            break
        after = rows[-1].id
    if not seen:
        return []
    users = {u.id: u for u in session.scalars(select(User).where(
        User.id.in_({uid for uid, _ in seen})))}
    rec_ids = set()
    for _, rid in seen:
        try:
            rec_ids.add(uuid.UUID(rid))
        except ValueError:
            continue
    recordings: dict[str, tuple[int | None, int | None]] = {}
    restricted: set[str] = set()
    ids = list(rec_ids)
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        for rec_id, officer_id, unit_id in session.execute(
                select(Recording.id, Recording.officer_id, Recording.unit_id)
                .where(Recording.id.in_(part))):
            recordings[str(rec_id)] = (officer_id, unit_id)
        restricted |= {str(r) for r in session.scalars(
            select(RecordingRestriction.recording_id)
            .where(RecordingRestriction.recording_id.in_(part)))}
        restricted |= set(session.scalars(
            select(AuditEvent.object_id).where(AuditEvent.object_id.in_([str(r) for r in part]),
                                               AuditEvent.object_type == "recording",
                                               AuditEvent.action == "recording.restricted")))
    units = {u.id: u.path for u in session.scalars(select(Unit))}
    officer_units = {o.id: o.unit_id for o in session.scalars(select(Officer).where(
        Officer.id.in_({u.officer_id for u in users.values() if u.officer_id})))}

    per_rule: dict[tuple[str, int], list[tuple[str, dt.datetime, dt.datetime]]] = \
        defaultdict(list)
    for (uid, rid), (first, last) in seen.items():
        user = users.get(uid)
        if user is None or rid not in recordings:
            continue
        officer_id, unit_id = recordings[rid]
        own = user.officer_id is not None and officer_id == user.officer_id
        if own:
            continue
        per_rule[("many-recordings", uid)].append((rid, first, last))
        home_unit = user.unit_id or officer_units.get(user.officer_id or -1)
        home = units.get(home_unit) if home_unit is not None else None
        path = units.get(unit_id) if unit_id is not None else None
        if home is not None and (path is None or not path.startswith(home)):
            per_rule[("outside-unit", uid)].append((rid, first, last))
        if rid in restricted:
            per_rule[("restricted", uid)].append((rid, first, last))
    limits = {"many-recordings": thresholds.many_recordings,
              "outside-unit": thresholds.outside_unit, "restricted": thresholds.restricted}
    alerts = []
    for (rule, uid), hits in per_rule.items():
        if len(hits) < limits[rule]:
            continue
        user = users[uid]
        hits.sort(key=lambda h: h[1])
        alerts.append(Alert(rule=rule, username=user.username, role=user.role, count=len(hits),
                            threshold=limits[rule], recordings=[h[0] for h in hits],
                            first_at=min(h[1] for h in hits), last_at=max(h[2] for h in hits)))
    order = {"restricted": 0, "outside-unit": 1, "many-recordings": 2}
    alerts.sort(key=lambda a: (order[a.rule], -a.count, a.username))
    return alerts


def alerts_as_json(alerts: list[Alert]) -> str:
    return json.dumps([a.as_dict() for a in alerts], indent=2)
