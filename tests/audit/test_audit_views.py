"""/api/v1/audit/recordings/{id} and /api/v1/audit/users/{username}: who may read, keyset pages,
CSV and PDF exports with the chain status, and every read audited."""

from __future__ import annotations

import csv
import io
import json
import re
import zlib
from typing import Any

import pytest
from audit_helpers import open_audit_db
from sqlalchemy import select

from cat_helpers import grant_for, record_camera
from evidence_locker.audit.chain import sequence_pending
from evidence_locker.audit.models import AuditEvent
from evidence_locker.db import transaction
from support import add_user, bearer


@pytest.fixture
def footage(client, runtime, force) -> dict[str, str]:
    """A recording in U1 (officer 1001) and one in U2, each looked at by someone."""
    u1 = record_camera(client, force.dock_token, device="CAM-1", recording="A1", clip=b"a" * 100)
    u2 = record_camera(client, force.dock_token, device="CAM-3", recording="B1", clip=b"b" * 100)
    t = force.tokens
    client.get(f"/api/v1/recordings/{u1}", headers=bearer(t["sergeant1"]))
    grant = grant_for(client, t["sergeant1"], u1,
                      reason="=HYPERLINK(\"http://x\") review of the stop and search")
    client.get(f"/api/v1/recordings/{u1}/media?grant={grant}", headers=bearer(t["sergeant1"]))
    client.get(f"/api/v1/recordings/{u1}/media", headers=bearer(t["officer1"]))
    client.get(f"/api/v1/recordings/{u2}", headers=bearer(t["standards"]))
    sequence_pending(runtime.sessions, clock=runtime.clock)
    return {"u1": u1, "u2": u2}


def trail_ids(runtime: Any, recording_id: str) -> list[int]:
    with transaction(runtime.sessions) as s:
        return list(s.scalars(select(AuditEvent.id).where(
            AuditEvent.object_type == "recording", AuditEvent.object_id == recording_id)
            .order_by(AuditEvent.id)))


def test_recording_trail_pages_through_every_event(client, runtime, force, footage) -> None:
    rid = footage["u1"]
    want = trail_ids(runtime, rid)
    actions = []
    got: list[int] = []
    cursor = None
    while True:
        url = f"/api/v1/audit/recordings/{rid}?limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = client.get(url, headers=bearer(force.tokens["auditor"]))
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= 2
        got += [i["id"] for i in body["items"]]
        actions += [i["action"] for i in body["items"]]
        for item in body["items"]:
            if item["id"] in want:  # linked before the reads began
                assert item["intact"] is True and item["seq"] and len(item["hash"]) == 64
            else:  # the earlier pages' own reads, not linked yet
                assert item["action"] == "audit.trail_read" and item["intact"] is None
        assert body["chain"]["ok"] is True
        cursor = body["next_cursor"]
        if cursor is None:
            break
    # Oldest first, each event once; the reads of the earlier pages come after.
    assert got[:len(want)] == want and len(got) > len(want)
    assert {"recording.viewed", "recording.access_granted", "media.stream"} <= set(actions)
    reads = [e for e in trail_reads(runtime) if e.object_id == rid]
    assert len(reads) >= 2 and all(e.actor_name == "auditor" for e in reads)
    # The next read shows the earlier reads: who looked at the trail is part of it.
    body = client.get(f"/api/v1/audit/recordings/{rid}?limit=1000",
                      headers=bearer(force.tokens["auditor"])).json()
    assert "audit.trail_read" in [i["action"] for i in body["items"]]
    assert body["items"][-1]["seq"] is None  # the reads are not linked yet
    assert body["chain"]["pending"] >= 1 and body["chain"]["ok"] is True


def trail_reads(runtime: Any) -> list[AuditEvent]:
    with transaction(runtime.sessions) as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "audit.trail_read")
                              .order_by(AuditEvent.id)))
        s.expunge_all()
    return rows


def test_who_may_read_which_trail(client, runtime, force, footage) -> None:
    t = force.tokens
    wd = add_user(runtime, "iopc1", "watchdog")
    u1, u2 = footage["u1"], footage["u2"]

    def status(token: str | None, url: str) -> int:
        return client.get(url, headers=bearer(token) if token else {}).status_code

    rec1, rec2 = f"/api/v1/audit/recordings/{u1}", f"/api/v1/audit/recordings/{u2}"
    user = "/api/v1/audit/users/sergeant1"
    for who, want in (("auditor", (200, 200, 200)), ("standards", (200, 200, 200)),
                      ("evidence1", (200, 404, 403)),  # their command's recordings only
                      ("sergeant1", (403, 403, 403)), ("officer1", (403, 403, 403)),
                      ("officer2", (403, 403, 403)), ("admin", (403, 403, 403)),
                      ("fleetadmin", (403, 403, 403))):
        assert (status(t[who], rec1), status(t[who], rec2), status(t[who], user)) == want, who
    assert (status(wd, rec1), status(wd, user)) == (403, 403)
    assert (status(None, rec1), status(None, user)) == (401, 401)
    assert status(t["auditor"], "/api/v1/audit/users/nobody") == 404
    assert status(t["standards"], "/api/v1/audit/recordings/not-a-recording") == 404
    assert status(t["auditor"], f"{rec1}?cursor=abc") == 400
    assert status(t["auditor"], f"{rec1}?format=xml") == 422
    assert status(t["auditor"], f"{rec1}?from=2026-11-21T08:00:00") == 400
    # A post-incident restriction hides its trail from professional standards not on its list.
    ps2 = add_user(runtime, "standards2", "professional-standards", "F")
    r = client.post(f"/api/v1/recordings/{u2}/restriction", headers=bearer(t["standards"]),
                    json={"kind": "post-incident", "reason": "Serious injury after arrest"})
    assert r.status_code == 201, r.text
    assert (status(ps2, rec2), status(t["standards"], rec2), status(t["auditor"], rec2)) == \
        (404, 200, 200)


def test_user_trail_holds_their_actions_and_changes_to_them(client, runtime, force,
                                                            footage) -> None:
    r = client.get("/api/v1/audit/users/sergeant1?limit=1000",
                   headers=bearer(force.tokens["standards"]))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    mine = [i for i in items if i["actor_name"] == "sergeant1"]
    # (the stream under the grant is covered by the grant's own event)
    assert {i["action"] for i in mine} == {"recording.viewed", "recording.access_granted"}
    created = [i for i in items if i["object_type"] == "user"]
    assert created and created[0]["actor_name"] == "test"  # the account's creation
    assert all(i["actor_name"] in ("sergeant1", "test") for i in items)
    read, = trail_reads(runtime)
    assert read.object_type == "user" and read.actor_name == "standards"
    assert json.loads(read.details)["returned"] == len(items)


def test_csv_export_is_the_whole_trail_exactly(client, runtime, force, footage) -> None:
    rid = footage["u1"]
    r = client.get(f"/api/v1/audit/recordings/{rid}?format=csv",
                   headers=bearer(force.tokens["evidence1"]))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [int(row["id"]) for row in rows] == trail_ids(runtime, rid)[:len(rows)]
    assert len(rows) == len(trail_ids(runtime, rid)) - 1  # all but this export's own read
    assert all(row["intact"] == "yes" for row in rows)
    granted = next(row for row in rows if row["action"] == "recording.access_granted")
    assert json.loads(granted["details"])["reason"].startswith("=HYPERLINK")
    with transaction(runtime.sessions) as s:
        stored = s.get(AuditEvent, int(granted["id"]))
        assert stored is not None
        assert granted["hash"] == stored.hash and granted["details"] == stored.details
    read = trail_reads(runtime)[-1]
    assert json.loads(read.details)["format"] == "csv" and read.actor_name == "evidence1"


def pdf_text(data: bytes) -> str:
    """The text drawn on the PDF's pages (fpdf2 writes each line as a literal string).

    Each stream is read by the /Length its dictionary gives: compressed bytes may end in a
    CR, which a pattern up to "\r?\nendstream" took for the line end (1 PDF in 256)."""
    out = []
    for m in re.finditer(rb"<<([^>]*)>>\s*stream\r?\n", data):
        length = re.search(rb"/Length (\d+)", m.group(1))
        assert length, m.group(0)
        stream = data[m.end():m.end() + int(length.group(1))]
        if b"/FlateDecode" in m.group(1):
            stream = zlib.decompress(stream)
        out.append(stream.decode("latin-1"))
    return "".join(out)


def test_pdf_court_copy_describes_itself(client, runtime, force, footage) -> None:
    rid = footage["u1"]
    r = client.get(f"/api/v1/audit/recordings/{rid}?format=pdf",
                   headers=bearer(force.tokens["auditor"]))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF-")
    text = pdf_text(r.content)
    assert f"recording {rid}" in text and "auditor" in text
    assert "Result: OK" in text
    with transaction(runtime.sessions) as s:
        linked = AuditEvent.seq.is_not(None)
        last = s.scalars(select(AuditEvent).where(AuditEvent.object_id == rid, linked)
                         .order_by(AuditEvent.id.desc()).limit(1)).one()
        head = s.scalars(select(AuditEvent).where(linked)
                         .order_by(AuditEvent.seq.desc()).limit(1)).one()
        assert last.hash and head.hash
        assert last.hash in text and f"seq {head.seq}, hash {head.hash}" in text
    assert "No signed checkpoint covers these events yet" in text
    # Too many events for one PDF: refused, pointing at from/to and the CSV.
    runtime.settings.audit_pdf_max_events = 2
    r = client.get(f"/api/v1/audit/recordings/{rid}?format=pdf",
                   headers=bearer(force.tokens["auditor"]))
    assert r.status_code == 422 and "format=csv" in r.json()["detail"]


def test_exports_show_a_tampered_event(client, runtime, force, footage) -> None:
    rid = footage["u1"]
    victim = trail_ids(runtime, rid)[1]
    with open_audit_db(runtime.settings.resolved_database_url) as adb:
        adb.drop_triggers()
        adb.tamper(victim, reason="nothing to see here")
    runtime.engine.dispose()
    body = client.get(f"/api/v1/audit/recordings/{rid}?limit=1000",
                      headers=bearer(force.tokens["auditor"])).json()
    assert body["chain"]["ok"] is False and body["chain"]["altered_event_ids"] == [victim]
    assert [i["id"] for i in body["items"] if i["intact"] is False] == [victim]
    text = pdf_text(client.get(f"/api/v1/audit/recordings/{rid}?format=pdf",
                               headers=bearer(force.tokens["auditor"])).content)
    assert "Result: FAILED" in text and f"event ids [{victim}]" in text
    rows = list(csv.DictReader(io.StringIO(client.get(
        f"/api/v1/audit/recordings/{rid}?format=csv",
        headers=bearer(force.tokens["auditor"])).text)))
    assert [r["intact"] for r in rows if int(r["id"]) == victim] == ["NO"]


def test_csv_cells_a_spreadsheet_would_run_are_neutralised() -> None:
    import datetime as dt

    from evidence_locker.audit.reports import to_csv

    e = AuditEvent(id=7, occurred_at=dt.datetime(2026, 11, 22, tzinfo=dt.UTC),
                   action="recording.restricted", actor_type="user", actor_id="5",
                   actor_name="@admin", reason='=HYPERLINK("http://x","y")', details="{}")
    row = list(csv.DictReader(io.StringIO("".join(to_csv([e])))))[0]
    assert row["reason"] == "'=HYPERLINK(\"http://x\",\"y\")" and row["actor_name"] == "'@admin"
    assert row["intact"] == "" and row["seq"] == ""


def test_the_covering_signed_checkpoint_is_checked_and_named(tmp_path, clock, deployment) -> None:
    """With the force's public key configured, the export checks the signature of the first
    checkpoint at or after its newest event, and names it so a court can check it again."""
    from evidence_locker.audit.checkpoints import make_checkpoint
    from evidence_locker.audit.signing import Signer, public_key_text, write_private_key
    from support import make_force, serving

    write_private_key(tmp_path / "audit.key")
    write_private_key(tmp_path / "other.key")
    signer, stranger = Signer.from_file(tmp_path / "audit.key"), \
        Signer.from_file(tmp_path / "other.key")
    data = tmp_path / "var"
    good = [public_key_text(signer.key.public_key())]
    with serving(data, clock, **deployment.overrides, audit_public_keys=good) as (rt, client):
        force = make_force(rt)
        rid = record_camera(client, force.dock_token, device="CAM-1", recording="S1",
                            clip=b"s" * 64)
        client.get(f"/api/v1/recordings/{rid}", headers=bearer(force.tokens["standards"]))
        sequence_pending(rt.sessions, clock=rt.clock)
        made = make_checkpoint(rt.sessions, clock=rt.clock, signer=signer,
                               directory=data / "cp").made
        assert made is not None
        chain = client.get(f"/api/v1/audit/recordings/{rid}",
                           headers=bearer(force.tokens["auditor"])).json()["chain"]
        cp = chain["covering_checkpoint"]
        assert (cp["seq"], cp["hash"], cp["key_id"]) == (made.seq, made.hash, made.key_id)
        assert cp["signature_checked"] is True and cp["signature_ok"] is True
        assert chain["last_seq"] <= made.seq and chain["ok"] is True
        text = pdf_text(client.get(f"/api/v1/audit/recordings/{rid}?format=pdf",
                                   headers=bearer(force.tokens["auditor"])).content)
        assert f"Covering signed checkpoint: seq {made.seq}, hash {made.hash}" in text
        assert "signature verified" in text
    # A verifier that trusts another key says the signature does not check out.
    bad = [public_key_text(stranger.key.public_key())]
    with serving(data, clock, **deployment.overrides, audit_public_keys=bad) as (rt, client):
        chain = client.get(f"/api/v1/audit/recordings/{rid}",
                           headers=bearer(force.tokens["auditor"])).json()["chain"]
        assert chain["covering_checkpoint"]["signature_ok"] is False


def sign_in(client: Any, username: str, password: str) -> None:
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    r = client.post("/login", data={"username": username, "password": password,
                                    "csrf": csrf.group(1)}, follow_redirects=False)
    assert r.status_code == 303, r.text


def test_trail_pages(client, runtime, force, footage) -> None:
    rid = footage["u1"]
    assert client.get(f"/audit/recordings/{rid}", follow_redirects=False).status_code == 303
    sign_in(client, "evidence1", force.passwords["evidence1"])
    page = client.get(f"/audit/recordings/{rid}")
    assert page.status_code == 200, page.text
    assert "recording.access_granted" in page.text and "Chain check of this page:\nOK" in page.text
    # Displayed fields are escaped: the reason given for the grant is shown as text.
    assert 'HYPERLINK(\\&#34;http://x\\&#34;)' in page.text and '"http://x' not in page.text
    assert f'href="/api/v1/audit/recordings/{rid}?format=pdf"' in page.text
    assert client.get(f"/audit/recordings/{footage['u2']}").status_code == 404  # not their command
    assert client.get("/audit/users/sergeant1").status_code == 403
    reads = [e for e in trail_reads(runtime) if json.loads(e.details)["via"] == "web"]
    assert [e.object_id for e in reads] == [rid]
    client.post("/logout", data={})
    client.cookies.clear()
    sign_in(client, "auditor", force.passwords["auditor"])
    page = client.get("/audit/users/sergeant1")
    assert page.status_code == 200 and "recording.viewed" in page.text
    assert client.get("/audit/users/nobody").status_code == 404
    assert client.get("/audit/users/sergeant1?cursor=x").status_code == 400
