"""Deletion is never a surprise and never silent: what is due for deletion (the search's
`due_within_days`, soonest first, in the caller's scope; its page is tests/web/test_due_page.py),
searching by evidence reference, and the tombstones with their deletion certificates for the
records manager (JSON pages, CSV, PDF). Each read audited; the wrong roles refused."""

from __future__ import annotations

import csv
import datetime as dt
import io

from sqlalchemy import func, select
from test_records import swept

from evidence_locker.audit.models import AuditEvent
from evidence_locker.db import transaction
from life_helpers import aged, configure, flag
from support import bearer

DAY = dt.timedelta(days=1)


def _due(client, token: str, days: int = 7, **params: object):
    return client.get("/api/v1/recordings", headers=bearer(token),
                      params={"due_within_days": days, **params})


def _events(runtime, action: str) -> list[AuditEvent]:
    with transaction(runtime.sessions) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)))


def test_due_lists_soonest_first_in_the_callers_scope(client, runtime, force, clock) -> None:
    configure(runtime)
    # Unflagged: deleted 31 days after recording. Due within a week: older than 24 days.
    first = aged(client, force, clock, "CAM-1", "D30", 30)  # due in about a day
    second = aged(client, force, clock, "CAM-1", "D26", 26)  # in about five
    later = aged(client, force, clock, "CAM-1", "D20", 20)  # in eleven: not this week
    other = aged(client, force, clock, "CAM-3", "D28", 28)  # officer 2001, unit U2
    tokens = force.tokens

    def ids(token: str, days: int = 7, **params: object) -> list[str]:
        r = _due(client, token, days, **params)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    assert ids(tokens["sergeant1"]) == [first, second]  # U1, soonest first
    assert ids(tokens["officer1"]) == [first, second]  # their own
    assert ids(tokens["officer2"]) == [other]
    assert ids(tokens["standards"]) == [first, other, second]
    assert ids(tokens["standards"], unit="U2") == [other]
    assert ids(tokens["standards"], 14) == [first, other, second, later]
    assert ids(tokens["standards"], 0) == []
    item = _due(client, tokens["standards"]).json()["items"][0]
    assert dt.datetime.fromisoformat(item["delete_after"]) - clock.now() < 1.5 * DAY
    # Pages follow the deadlines, not the recording times.
    page = _due(client, tokens["standards"], limit=2).json()
    assert [i["id"] for i in page["items"]] == [first, other]
    rest = _due(client, tokens["standards"], limit=2, cursor=page["next_cursor"]).json()
    assert [i["id"] for i in rest["items"]] == [second] and rest["next_cursor"] is None

    # Flagged as evidence, it is no longer due; the search by its reference finds it.
    assert flag(client, tokens["officer1"], first, category="use of force",
                reference="CRIME/2026/0777").status_code == 201
    assert ids(tokens["sergeant1"]) == [second]
    found = client.get("/api/v1/recordings", headers=bearer(tokens["sergeant1"]),
                       params={"reference": "CRIME/2026/0777"}).json()["items"]
    assert [i["id"] for i in found] == [first]
    assert client.get("/api/v1/recordings", headers=bearer(tokens["officer2"]),
                      params={"reference": "CRIME/2026/0777"}).json()["items"] == []

    searched = _events(runtime, "recording.searched")
    assert any("due_before" in (e.details or "") for e in searched)
    for days in (-1, 367):
        r = _due(client, tokens["standards"], days)
        assert r.status_code == 422 and r.headers["content-type"].startswith(
            "application/problem+json"), r.text
    for who in ("fleetadmin", "auditor", "admin"):
        assert _due(client, tokens[who]).status_code == 403, who


def test_tombstones_listed_exported_and_certified(client, runtime, force, clock,
                                                 lifecycle_store) -> None:
    shas = swept(client, runtime, force, clock, lifecycle_store, 3)
    auditor = bearer(force.tokens["auditor"])

    got: list[dict] = []
    cursor = None
    while True:
        r = client.get("/api/v1/tombstones", headers=auditor,
                       params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        got += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(t["recording_id"] for t in got) == sorted(shas)
    assert len({t["id"] for t in got}) == 3
    for t in got:
        assert t["unit"] == "U1" and t["officer"] == "1001" and t["finished_at"]
        assert {f["sha256"] for f in t["files"]} <= set(shas[t["recording_id"]])
    assert client.get("/api/v1/tombstones", headers=auditor,
                      params={"unit": "U2"}).json()["items"] == []

    r = client.get("/api/v1/tombstones", headers=bearer(force.tokens["standards"]),
                   params={"format": "csv", "unit": "C1"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sorted(x["recording_id"] for x in rows) == sorted(shas)

    tid = got[0]["id"]
    cert = client.get(f"/api/v1/tombstones/{tid}/certificate", headers=auditor)
    assert cert.status_code == 200, cert.text
    body = cert.json()
    assert body["tombstone"]["recording_id"] == got[0]["recording_id"]
    actions = [e["action"] for e in body["events"]]
    assert "recording.deletion_decided" in actions and "recording.deleted" in actions
    assert all(e["object_id"] == got[0]["recording_id"] for e in body["events"])
    assert body["chain"]["ok"] is True and body["chain"]["events"] == len(actions)
    pdf = client.get(f"/api/v1/tombstones/{tid}/certificate", headers=auditor,
                     params={"format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"

    assert len(_events(runtime, "tombstones.exported")) == 4  # two pages, one unit, one CSV
    reads = _events(runtime, "tombstone.certificate_read")
    assert [e.object_id for e in reads] == [str(tid), str(tid)]


def test_tombstone_reads_refused_and_bad_input(client, runtime, force, clock,
                                               lifecycle_store) -> None:
    swept(client, runtime, force, clock, lifecycle_store, 1)
    with transaction(runtime.sessions) as s:
        before = s.scalar(select(func.count()).select_from(AuditEvent))
    for who in ("officer1", "sergeant1", "evidence1", "admin", "fleetadmin"):
        h = bearer(force.tokens[who])
        assert client.get("/api/v1/tombstones", headers=h).status_code == 403, who
        assert client.get("/api/v1/tombstones/1/certificate", headers=h).status_code == 403
    assert client.get("/api/v1/tombstones").status_code == 401
    with transaction(runtime.sessions) as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == before
    auditor = bearer(force.tokens["auditor"])
    for params in ({"unit": "NOPE"}, {"cursor": "not-a-cursor"}, {"format": "csv",
                                                                  "unit": "NOPE"}):
        r = client.get("/api/v1/tombstones", headers=auditor, params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    for params in ({"format": "xml"}, {"limit": 0}, {"from": "2026-11-01T00:00:00"}):
        assert client.get("/api/v1/tombstones", headers=auditor,
                          params=params).status_code in (400, 422), params
    assert client.get("/api/v1/tombstones/999/certificate", headers=auditor).status_code == 404
    assert client.get("/api/v1/tombstones/0/certificate", headers=auditor).status_code == 422


def test_a_restricted_recordings_tombstone_is_shown_to_whom_the_recording_was(
        client, runtime, force, clock, lifecycle_store) -> None:
    """The sweep keeps a restricted recording's restriction and access list on its tombstone:
    a `restricted` one is shown to its list and professional standards, a `post-incident` one
    to its list only (here its placer, from professional standards); an auditor, who cannot be
    listed, sees neither: not in pages, CSV or as a certificate (404, as for no deletion)."""
    from evidence_locker.accounts.roles import Principal, Role
    from evidence_locker.lifecycle import records
    from evidence_locker.lifecycle.models import Tombstone, TombstoneAccess
    from evidence_locker.lifecycle.sweep import run_sweep
    from life_helpers import REASON, seed_past

    plain, covert, incident = seed_past(client, force, clock, 3)
    ps = bearer(force.tokens["standards"])
    for rid, kind in ((covert, "restricted"), (incident, "post-incident")):
        r = client.post(f"/api/v1/recordings/{rid}/restriction", headers=ps,
                        json={"kind": kind, "reason": REASON})
        assert r.status_code == 201, r.text
    result = run_sweep(runtime.sessions, clock=clock, settings=runtime.settings,
                       store=lifecycle_store)
    assert (result.deleted, result.failed) == (3, [])
    with transaction(runtime.sessions) as s:
        stones = {str(t.recording_id): t for t in s.scalars(select(Tombstone))}
        assert {rid: t.restriction for rid, t in stones.items()} == {
            plain: None, covert: "restricted", incident: "post-incident"}
        standards_id = s.scalar(select(TombstoneAccess.user_id).where(
            TombstoneAccess.tombstone_id == stones[incident].id))
        assert standards_id is not None
        assert s.scalar(select(func.count()).select_from(TombstoneAccess)) == 1
        ids = {rid: t.id for rid, t in stones.items()}

        def shown(p: Principal) -> set[str]:
            return {row[1] for row in records.tombstone_rows(s, viewer=p)}

        other_ps = Principal(user_id=standards_id + 1000, username="ps2",
                             role=Role.PROFESSIONAL_STANDARDS)
        listed_auditor = Principal(user_id=standards_id, username="x", role=Role.AUDITOR)
        auditor_p = Principal(user_id=standards_id + 1001, username="a", role=Role.AUDITOR)
        assert shown(other_ps) == {plain, covert}
        assert shown(listed_auditor) == {plain, incident}
        assert shown(auditor_p) == {plain}
        assert {row[1] for row in records.tombstone_rows(s)} == {plain, covert, incident}

    def listed(headers: dict[str, str], **params: object) -> set[str]:
        r = client.get("/api/v1/tombstones", headers=headers, params=params)
        assert r.status_code == 200, r.text
        if params.get("format") == "csv":
            return {x["recording_id"] for x in csv.DictReader(io.StringIO(r.text))}
        return {t["recording_id"] for t in r.json()["items"]}

    auditor = bearer(force.tokens["auditor"])
    assert listed(auditor) == listed(auditor, format="csv") == {plain}
    assert listed(ps) == listed(ps, format="csv") == {plain, covert, incident}
    kinds = {t["recording_id"]: t["restriction"]
             for t in client.get("/api/v1/tombstones", headers=ps).json()["items"]}
    assert kinds == {plain: None, covert: "restricted", incident: "post-incident"}
    r = client.get("/api/v1/tombstones", headers=ps, params={"format": "csv"})
    assert {x["recording_id"]: x["restriction"] for x in csv.DictReader(io.StringIO(r.text))
            } == {plain: "", covert: "restricted", incident: "post-incident"}
    with transaction(runtime.sessions) as s:
        for rid, kind in ((covert, "restricted"), (plain, None)):
            facts = records.certificate_facts(s, records.certificate(
                s, tombstone_id=ids[rid], keys=None))
            said = [line for line in facts if "shown only to" in line]
            assert said == ([f"The recording was {kind}: this record of its deletion is "
                             "shown only to whom the restriction admitted."] if kind else [])
    for rid in (covert, incident):
        r = client.get(f"/api/v1/tombstones/{ids[rid]}/certificate", headers=auditor)
        assert r.status_code == 404 and r.json()["title"] == "Not found", r.text
        assert client.get(f"/api/v1/tombstones/{ids[rid]}/certificate",
                          headers=ps).status_code == 200
    assert client.get(f"/api/v1/tombstones/{ids[plain]}/certificate",
                      headers=auditor).status_code == 200
