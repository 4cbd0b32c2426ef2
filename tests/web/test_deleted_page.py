"""/retention/deleted: what the retention sweep deleted, for the records manager (auditors and
professional standards), as the API's /api/v1/tombstones gives it: filtered, paged, each with
its certificate, the selection as CSV; restricted recordings' rows only for whom they admit."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from zoneinfo import ZoneInfo

from matrix_world import sign_in
from sqlalchemy import select

from evidence_locker.audit.models import AuditEvent
from evidence_locker.db import transaction
from evidence_locker.lifecycle import pages
from evidence_locker.lifecycle.models import Tombstone
from evidence_locker.lifecycle.sweep import run_sweep
from life_helpers import REASON, seed_past
from support import bearer

DAY = dt.timedelta(days=1)


def _events(runtime, action: str) -> list[AuditEvent]:
    with transaction(runtime.sessions) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_each_reader_sees_the_tombstones_they_may_know_of(
        client, runtime, force, clock, lifecycle_store, monkeypatch) -> None:
    """/retention/deleted: the records manager's page of what the sweep deleted, filtered by the
    days of deletion (the force's time zone) and unit, paged, each with its certificate and the
    selection as CSV; a restricted recording's row only for whom it admits; stored text from a
    camera shown as text; every read audited; footage roles and strangers refused."""
    plain, covert, other = seed_past(client, force, clock, 3)
    r = client.post(f"/api/v1/recordings/{covert}/restriction",
                    headers=bearer(force.tokens["standards"]),
                    json={"kind": "restricted", "reason": REASON})
    assert r.status_code == 201, r.text
    assert run_sweep(runtime.sessions, clock=clock, settings=runtime.settings,
                     store=lifecycle_store).deleted == 3
    hostile = '<script>alert("x")</script>'
    with transaction(runtime.sessions) as s:
        stone = s.scalars(select(Tombstone).where(Tombstone.recording_id == uuid.UUID(plain))).one()
        stone.camera_recording_id = hostile  # whatever a camera once sent is shown as text
        ids = {str(t.recording_id): t.id for t in s.scalars(select(Tombstone))}
    today = clock.now().astimezone(ZoneInfo(runtime.settings.timezone)).date()
    cookies = {name: sign_in(client, name, force.passwords[name])[0]
               for name in ("auditor", "standards", "officer1")}

    def get(name: str | None, query: str = "", path: str = "/retention/deleted"):
        client.cookies.clear()
        headers = {"Cookie": f"locker_session={cookies[name]}"} if name else {}
        return client.get(f"{path}{query}", headers=headers, follow_redirects=False)

    def shown(name: str, query: str = "") -> list[str]:
        page = get(name, query)
        assert page.status_code == 200, (name, query, page.text)
        return [rid for rid in (plain, covert, other) if f'data-recording="{rid}"' in page.text]

    auditor = get("auditor")
    assert auditor.status_code == 200
    assert hostile not in auditor.text and "&lt;script&gt;alert(" in auditor.text
    assert f'href="/api/v1/tombstones/{ids[plain]}/certificate?format=pdf"' in auditor.text
    assert shown("auditor") == [plain, other]
    assert shown("standards") == [plain, covert, other]
    assert ">restricted</td>" in get("standards").text
    day = today.isoformat()
    assert shown("standards", f"?from={day}&to={day}") == [plain, covert, other]
    later, earlier = (today + DAY).isoformat(), (today - DAY).isoformat()
    for query in (f"?from={later}", f"?to={earlier}", "?unit=U2"):
        assert shown("standards", query) == [], query
        assert 'id="nothing-deleted"' in get("standards", query).text

    # The CSV link asks the API for the same selection, with the reader's session.
    page = get("auditor", f"?from={day}")
    link = page.text.split('id="csv" href="')[1].split('"')[0].replace("&amp;", "&")
    csv_rows = list(csv.DictReader(io.StringIO(get("auditor", path=link).text)))
    assert [x["recording_id"] for x in csv_rows] == [plain, other]
    assert get("auditor", path=link.replace(f"from={day}", f"from={later}")).status_code == 200

    monkeypatch.setattr(pages, "DELETED_PAGE_ROWS", 2)
    first = get("standards")
    assert shown("standards") == [plain, covert]
    nxt = first.text.split('id="next" rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    assert shown("standards", nxt.removeprefix("/retention/deleted")) == [other]

    assert shown("standards", "?from=&to=&unit=") == [plain, covert]  # an empty form: no bounds
    for query, said in (("?unit=NOPE", "no unit"), ("?cursor=not-a-cursor", "out of date"),
                        ("?from=yesterday", "YYYY-MM-DD"), ("?to=2026-02-30", "YYYY-MM-DD")):
        bad = get("standards", query)
        assert bad.status_code == 400 and said in bad.text, query
    assert get("officer1").status_code == 403
    assert get(None).headers["location"].endswith("/login")
    vias = [e for e in _events(runtime, "tombstones.exported")
            if '"via":"web"' in (e.details or "").replace(" ", "")]
    assert vias and all(e.actor_name in ("auditor", "standards") for e in vias)
