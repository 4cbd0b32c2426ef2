"""Access-pattern alerts from the audit events: many recordings of others, outside one's unit,
restricted footage; over the API and `locker audit alerts`."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cat_helpers import grant_for, record_camera
from evidence_locker.audit.cli import app as audit_cli
from evidence_locker.audit.models import AuditEvent
from evidence_locker.db import transaction
from support import bearer

runner = CliRunner()
REASON = "Operation KESTREL: review by the unit supervisor"


@pytest.fixture
def activity(client, runtime, force, clock) -> dict[str, Any]:
    """Yesterday: sergeant1 looks at one recording. Since `since`: sergeant1 at two of their
    unit's and one restricted recording in another unit; officer1 at their own, many times;
    standards at everything."""
    t = force.tokens
    runtime.settings.audit_alert_many_recordings = 2
    runtime.settings.audit_alert_outside_unit = 1
    runtime.settings.audit_alert_restricted = 1
    a = record_camera(client, force.dock_token, device="CAM-1", recording="A", clip=b"a" * 10)
    b = record_camera(client, force.dock_token, device="CAM-2", recording="B", clip=b"b" * 10)
    c = record_camera(client, force.dock_token, device="CAM-3", recording="C", clip=b"c" * 10)
    client.get(f"/api/v1/recordings/{a}", headers=bearer(t["sergeant1"]))
    clock.advance(dt.timedelta(days=1))
    since = clock.now()
    clock.advance(dt.timedelta(minutes=5))
    assert client.post(f"/api/v1/recordings/{c}/restriction", headers=bearer(t["standards"]),
                       json={"kind": "restricted", "reason": REASON}).status_code == 201
    assert client.post(f"/api/v1/recordings/{c}/restriction/access",
                       headers=bearer(t["standards"]),
                       json={"username": "sergeant1", "reason": REASON}).status_code == 201
    grant_for(client, t["sergeant1"], a)
    client.get(f"/api/v1/recordings/{b}", headers=bearer(t["sergeant1"]))
    clock.advance(dt.timedelta(minutes=5))
    client.get(f"/api/v1/recordings/{c}", headers=bearer(t["sergeant1"]))
    for _ in range(5):
        client.get(f"/api/v1/recordings/{a}/media", headers=bearer(t["officer1"]))
    for rid in (a, b, c):
        client.get(f"/api/v1/recordings/{rid}", headers=bearer(t["standards"]))
    clock.advance(dt.timedelta(minutes=1))  # the window ends now: before, not at, the last look
    return {"a": a, "b": b, "c": c, "since": since}


def test_alerts_name_the_unusual_access(client, runtime, force, activity) -> None:
    since = activity["since"].isoformat().replace("+00:00", "Z")
    r = client.get("/api/v1/audit/alerts", params={"since": since},
                   headers=bearer(force.tokens["standards"]))
    assert r.status_code == 200, r.text
    found = {(a["rule"], a["username"]): a for a in r.json()["alerts"]}
    # Standards looked at three recordings of others: over the threshold of two. Their unit is
    # the force, so nothing is outside it.
    assert set(found) == {("restricted", "sergeant1"), ("outside-unit", "sergeant1"),
                          ("many-recordings", "sergeant1"), ("many-recordings", "standards"),
                          ("restricted", "standards")}
    assert found[("restricted", "sergeant1")]["recordings"] == [activity["c"]]
    assert found[("outside-unit", "sergeant1")]["recordings"] == [activity["c"]]
    many = found[("many-recordings", "sergeant1")]
    # The look before the window does not count; three distinct recordings since.
    assert many["count"] == 3 and many["threshold"] == 2
    assert sorted(many["recordings"]) == sorted([activity["a"], activity["b"], activity["c"]])
    # Restricted first.
    assert r.json()["alerts"][0]["rule"] == "restricted"
    # Officer1's own footage, however often, is never an alert.
    assert not [a for a in r.json()["alerts"] if a["username"] == "officer1"]
    with transaction(runtime.sessions) as s:
        read = s.scalars(select(AuditEvent).where(AuditEvent.action == "audit.alerts_read")).one()
        assert read.actor_name == "standards" and json.loads(read.details)["alerts"] == 5
    # Higher thresholds, fewer alerts.
    runtime.settings.audit_alert_many_recordings = 4
    r = client.get("/api/v1/audit/alerts", params={"since": since},
                   headers=bearer(force.tokens["auditor"]))
    assert {a["rule"] for a in r.json()["alerts"]} == {"restricted", "outside-unit"}


def test_who_may_read_alerts(client, force, activity) -> None:
    since = activity["since"].isoformat()
    for who, want in (("standards", 200), ("auditor", 200), ("evidence1", 403),
                      ("sergeant1", 403), ("officer1", 403), ("admin", 403),
                      ("fleetadmin", 403)):
        r = client.get("/api/v1/audit/alerts", params={"since": since},
                       headers=bearer(force.tokens[who]))
        assert r.status_code == want, who
    assert client.get("/api/v1/audit/alerts", params={"since": since}).status_code == 401
    headers = bearer(force.tokens["standards"])
    assert client.get("/api/v1/audit/alerts", headers=headers).status_code == 422
    assert client.get("/api/v1/audit/alerts", params={"since": "2026-11-01T00:00:00"},
                      headers=headers).status_code == 400
    assert client.get("/api/v1/audit/alerts",
                      params={"since": since, "until": "2020-01-01T00:00:00Z"},
                      headers=headers).status_code == 400


def test_cli_prints_the_same_alerts(runtime, force, activity, deployment, monkeypatch) -> None:
    monkeypatch.setenv("LOCKER_DATA_DIR", str(runtime.settings.data_dir))
    for key, value in deployment.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LOCKER_AUDIT_ALERT_MANY_RECORDINGS", "2")
    monkeypatch.setenv("LOCKER_AUDIT_ALERT_OUTSIDE_UNIT", "1")
    since = activity["since"].isoformat()
    # The CLI's clock is the real one: the window ends now, after the test clock's events.
    until = (activity["since"] + dt.timedelta(days=1)).isoformat()
    result = runner.invoke(audit_cli, ["alerts", "--since", since, "--until", until])
    assert result.exit_code == 1, result.output  # 1: there are alerts
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("5 alert(s) between")
    assert lines[0].startswith("restricted: ")
    assert any(ln.startswith("many-recordings: sergeant1 (supervisor) 3 recording(s)")
               for ln in lines)
    result = runner.invoke(audit_cli, ["alerts", "--since", since, "--until", until, "--json"])
    assert {(a["rule"], a["username"]) for a in json.loads(result.stdout)} >= {
        ("outside-unit", "sergeant1")}
    monkeypatch.setenv("LOCKER_AUDIT_ALERT_RESTRICTED", "9")
    monkeypatch.setenv("LOCKER_AUDIT_ALERT_MANY_RECORDINGS", "9")
    monkeypatch.setenv("LOCKER_AUDIT_ALERT_OUTSIDE_UNIT", "9")
    result = runner.invoke(audit_cli, ["alerts", "--since", since, "--until", until])
    assert result.exit_code == 0 and result.stdout.startswith("0 alert(s)")
    result = runner.invoke(audit_cli, ["alerts", "--since", "yesterday"])
    assert result.exit_code == 2
    # Each run is in the audit log.
    with transaction(runtime.sessions) as s:
        runs = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "audit.alerts_read")))
        assert len(runs) == 3 and all(json.loads(e.details)["via"] == "cli" for e in runs)


def test_alerts_page_lists_the_same_alerts_with_links(client, runtime, force, activity) -> None:
    """The page looks back `days` days from now: here the same window as the API's `since`
    (the look before it is over a day old), the same alerts, each person linked to their
    trail; reading it is audited as from the web."""
    r = client.get("/audit/alerts", params={"days": 1}, headers=bearer(force.tokens["standards"]))
    assert r.status_code == 200, r.text
    rows = re.findall(r"<tr>\s*<td>([a-z-]+)</td>\s*<td><a href=\"/audit/users/([^\"]+)\">",
                      r.text)
    assert sorted(rows) == sorted([
        ("restricted", "sergeant1"), ("outside-unit", "sergeant1"),
        ("many-recordings", "sergeant1"), ("many-recordings", "standards"),
        ("restricted", "standards")])
    assert f'href="/audit/recordings/{activity["c"]}"' in r.text
    assert '<a href="/audit/alerts">Access alerts</a>' in r.text  # in the header's links
    with transaction(runtime.sessions) as s:
        read = s.scalars(select(AuditEvent).where(AuditEvent.action == "audit.alerts_read")).one()
        assert json.loads(read.details)["via"] == "web"
    assert client.get("/audit/alerts", headers=bearer(force.tokens["auditor"])).status_code == 200
    for who in ("evidence1", "sergeant1", "officer1", "admin"):
        page = client.get("/audit/alerts", headers=bearer(force.tokens[who]))
        assert page.status_code == 403, who
        assert "Access alerts" not in page.text  # nor offered in the header
    assert client.get("/audit/alerts", follow_redirects=False).status_code == 303
