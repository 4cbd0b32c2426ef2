"""The usual suspects, through the real app: SQL injection in every filter, path traversal in
every name, XSS in every displayed field, CSRF on every state-changing form (and on the JSON API
a signed-in browser could be made to call), session fixation, oversized headers and bodies.

Covered elsewhere and not repeated here: tus metadata filenames and devices that are paths
(tests/ingest/test_tus_protocol.py), a device model and a file name escaped on the fleet and
recording pages (tests/fleet/test_fleet_api.py, tests/web/test_pages.py), a 70 kB heartbeat
with its length declared (tests/fleet/test_heartbeat.py), the login form's CSRF cookie, a new
session at every sign-in and sign-out ending it (tests/web/test_pages.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from matrix_world import (
    World,
    app_routes,
    build_world,
    fill_path,
    login_form,
    takes_form,
    takes_json,
    tus_metadata,
)
from sqlalchemy import func, select

from cat_helpers import record_camera, send, sidecar
from evidence_locker.accounts.models import User, WebSession
from evidence_locker.audit.models import AuditEvent
from evidence_locker.catalogue.models import Recording
from evidence_locker.db import transaction
from evidence_locker.fleet import imports
from evidence_locker.fleet import service as fleet
from evidence_locker.runtime import Runtime
from evidence_locker.web.auth import SESSION_COOKIE
from evidence_locker.web.pages import LOGIN_CSRF_COOKIE
from support import TEST_ACTOR, bearer

MiB = 1024 * 1024
INJECTIONS = [
    "' OR '1'='1",
    "1' OR 1=1 --",
    '" OR ""="',
    "'; DROP TABLE recordings; --",
    "') UNION SELECT id, username FROM users --",
    "%",
    "_",
    "%' OR '%'='",
    "\\",
    "1; SELECT pg_sleep(0)",
    "x\x00y",
]
TRAVERSALS = ["../../../etc/passwd", "..\\..\\boot.ini", "..", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
              "/etc/passwd", "....//....//etc/passwd"]


@pytest.fixture
def world(client: TestClient, runtime: Runtime, force: Any, clock: Any) -> World:
    return build_world(client, runtime, force, clock)


def session_headers(cookie: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={cookie}"}


def get(w: World, url: str, **kwargs: Any) -> httpx.Response:
    w.client.cookies.clear()
    response = w.client.get(url, follow_redirects=False, **kwargs)
    w.client.cookies.clear()
    return response


def counts(runtime: Runtime) -> tuple[int, int, int]:
    with transaction(runtime.sessions) as s:
        return (s.scalar(select(func.count()).select_from(Recording)) or 0,
                s.scalar(select(func.count()).select_from(User)) or 0,
                s.scalar(select(func.count()).select_from(AuditEvent)) or 0)


# --- SQL injection ------------------------------------------------------------------------------


def test_sql_injection_in_every_recordings_filter(world: World, runtime: Runtime) -> None:
    """As a supervisor of U1: no 5xx, and never a row the same search without the hostile
    value would not give (officer2's recording in U2 above all)."""
    w = world
    theirs = record_camera(w.client, w.force.dock_token, device="CAM-3", recording="R3",
                           clip=b"3" * 64)
    token = w.tokens["sergeant1"]
    everything = get(w, "/api/v1/recordings", headers=bearer(token)).json()["items"]
    mine = {i["id"] for i in everything}
    assert w.recording in mine and theirs not in mine
    before = counts(runtime)[:2]
    for name in ("officer", "unit", "device", "state", "from", "to", "sha256", "cursor",
                 "limit"):
        for value in INJECTIONS:
            r = get(w, "/api/v1/recordings", params={name: value}, headers=bearer(token))
            assert r.status_code in (200, 400, 404, 422), (name, value, r.status_code, r.text)
            assert r.headers["content-type"].startswith(
                "application/json" if r.status_code == 200 else "application/problem+json")
            if r.status_code == 200:
                # Nobody's collar, unit, camera or state is any of these strings.
                assert r.json()["items"] == [], (name, value)
    # The same filters on the web page (a signed-in supervisor).
    cookie = w.caller("sergeant1").cookie
    assert cookie
    for name in ("officer", "device", "state", "cursor"):
        for value in INJECTIONS:
            r = get(w, "/", params={name: value}, headers=session_headers(cookie))
            assert r.status_code in (200, 400), (name, value, r.status_code)
            assert theirs not in r.text and w.recording not in r.text, (name, value)
    assert counts(runtime)[:2] == before


def test_sql_injection_in_fleet_and_audit_filters(world: World, runtime: Runtime) -> None:
    w = world
    before = counts(runtime)[:2]
    admin, auditor = bearer(w.tokens["fleetadmin"]), bearer(w.tokens["auditor"])
    evidence = bearer(w.tokens["evidence1"])
    since = (w.runtime.clock.now() - dt.timedelta(days=1)).isoformat()
    for value in INJECTIONS:
        quoted = value.replace("%", "%25").replace("/", "%2F").replace("?", "%3F") \
            .replace("#", "%23").replace("\\", "%5C").replace("\x00", "%00")
        answers = {
            "rollout unit": get(w, "/api/v1/fleet/rollout", params={"unit": value},
                                headers=admin),
            "rollout days": get(w, "/api/v1/fleet/rollout", params={"not_docked_days": value},
                                headers=admin),
            "device serial": get(w, f"/api/v1/fleet/devices/{quoted}", headers=admin),
            "conflicts before": get(w, "/api/v1/fleet/conflicts", params={"before": value},
                                    headers=admin),
            "fleet page unit": get(w, "/fleet", params={"unit": value}, headers=admin),
            "fleet page device": get(w, f"/fleet/devices/{quoted}", headers=admin),
            "audit recording": get(w, f"/api/v1/audit/recordings/{quoted}", headers=auditor),
            "audit user": get(w, f"/api/v1/audit/users/{quoted}", headers=auditor),
            "audit cursor": get(w, f"/api/v1/audit/recordings/{w.recording}",
                                params={"cursor": value}, headers=auditor),
            "audit from": get(w, "/api/v1/audit/users/officer1", params={"from": value},
                              headers=auditor),
            "alerts since": get(w, "/api/v1/audit/alerts", params={"since": value},
                                headers=auditor),
            "alerts until": get(w, "/api/v1/audit/alerts",
                                params={"since": since, "until": value}, headers=auditor),
            **{f"cases page {name}": get(w, "/cases", params={name: value}, headers=evidence)
               for name in ("status", "reference", "unit")},
            **{f"deleted page {name}": get(w, "/retention/deleted", params={name: value},
                                           headers=auditor)
               for name in ("from", "to", "unit", "cursor")},
            "tombstones unit": get(w, "/api/v1/tombstones", params={"unit": value},
                                   headers=auditor),
        }
        for what, r in answers.items():
            assert r.status_code in (200, 400, 404, 422), (what, value, r.status_code, r.text)
            if what == "audit recording" and r.status_code == 200:
                assert r.json().get("events", r.json().get("items")) == [], (what, value)
            if what == "rollout unit":  # no such unit (or longer than any unit code, or a NUL)
                assert r.status_code in (400, 404, 422), (what, value)
            if what.startswith("cases page") and r.status_code == 200:
                assert 'id="no-cases"' in r.text, (what, value)  # matched nothing
    assert counts(runtime)[:2] == before


def test_nul_characters_anywhere_are_refused_not_crashed_on(world: World,
                                                            runtime: Runtime) -> None:
    """PostgreSQL text cannot hold a NUL: whichever way one arrives (query, path, JSON body,
    form), never a 500."""
    w = world
    nul = "a\x00b"
    standards, auditor = bearer(w.tokens["standards"]), bearer(w.tokens["auditor"])
    before = counts(runtime)[:2]
    answers = {
        "search": get(w, "/api/v1/recordings", params={"device": nul}, headers=standards),
        "detail": get(w, "/api/v1/recordings/a%00b", headers=standards),
        "serial": get(w, "/api/v1/fleet/devices/a%00b", headers=bearer(w.tokens["fleetadmin"])),
        "user trail": get(w, "/api/v1/audit/users/a%00b", headers=auditor),
        "recording trail": get(w, "/api/v1/audit/recordings/a%00b", headers=auditor),
        "upload": w.client.head("/api/v1/uploads/a%00b", headers={
            **bearer(w.force.dock_token), "Tus-Resumable": "1.0.0"}),
        "justification": w.client.post(f"/api/v1/recordings/{w.recording}/access",
                                       headers=standards,
                                       json={"purpose": "investigation",
                                             "reason": "Reviewing the arrest " + nul}),
        "restriction": w.client.post(f"/api/v1/recordings/{w.restrictable}/restriction",
                                     headers=standards,
                                     json={"kind": "restricted", "reason": "Covert work " + nul}),
        "access list": w.client.post(f"/api/v1/recordings/{w.restrictable}/restriction/access",
                                     headers=standards,
                                     json={"username": nul, "reason": "Covert work here"}),
    }
    cookie, csrf = login_form(w.client)
    answers["sign-in"] = w.client.post("/login", headers={
        "Cookie": f"{LOGIN_CSRF_COOKIE}={cookie}"}, data={
        "username": "evidence" + nul, "password": "wrong-password-1", "csrf": csrf})
    evidence = w.caller("evidence1")
    w.client.cookies.clear()
    answers["justification form"] = w.client.post(
        f"/recordings/{w.recording}/access", headers=session_headers(evidence.cookie or ""),
        follow_redirects=False, data={"purpose": "investigation", "clip": "1",
                                      "reason": "Reviewing the arrest " + nul,
                                      "csrf": evidence.csrf})
    w.client.cookies.clear()
    # SQLite keeps a NUL like any other character; PostgreSQL refuses it, and that is the
    # request's fault: 400, not a crash.
    for what, r in answers.items():
        assert r.status_code < 500, (what, r.status_code, r.text[:200])
    if runtime.settings.resolved_database_url.startswith("postgresql"):
        for what in ("search", "serial", "user trail", "justification", "restriction",
                     "justification form"):
            assert answers[what].status_code == 400, (what, answers[what].status_code)
            assert answers[what].headers["content-type"] == "application/problem+json"
    assert counts(runtime)[:2] == before


# --- path traversal -----------------------------------------------------------------------------


def encoded(value: str) -> str:
    """Every character percent-encoded that a client would otherwise resolve or split on, so
    the server, not the client, sees the dots and slashes."""
    return quote(value, safe="").replace(".", "%2E")


def test_path_traversal_in_path_parameters(world: World) -> None:
    w = world
    token = bearer(w.tokens["standards"])
    secret = Path(__file__).resolve().parents[2] / "pyproject.toml"
    for value in TRAVERSALS:
        quoted = encoded(value)
        for url, headers in (
            (f"/api/v1/recordings/{quoted}", token),
            (f"/api/v1/recordings/{quoted}/media", token),
            (f"/api/v1/recordings/{quoted}/poster", token),
            (f"/recordings/{quoted}", session_headers(w.caller("standards").cookie or "")),
            (f"/api/v1/fleet/devices/{quoted}", bearer(w.tokens["fleetadmin"])),
            (f"/api/v1/audit/users/{quoted}", bearer(w.tokens["auditor"])),
            (f"/static/{quoted}", {}),
            (f"/static/{value.replace('..', '%2e%2e').replace(chr(92), '%5C')}", {}),
            (f"/static/css/{quoted}", {}),
        ):
            r = get(w, url, headers=headers)
            assert r.status_code == 404, (url, r.status_code, r.text[:200])
            assert b"[project]" not in r.content and b"root:" not in r.content, url
    assert secret.exists()
    # HEAD, PATCH and DELETE of an upload by a path: no such upload.
    for value in TRAVERSALS:
        quoted = encoded(value)
        for method in ("HEAD", "PATCH", "DELETE"):
            r = w.client.request(method, f"/api/v1/uploads/{quoted}", headers={
                **bearer(w.force.dock_token), "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream"}, content=b"x")
            assert r.status_code == 404, (method, value, r.status_code)


def test_path_traversal_in_device_supplied_names(world: World, tmp_path: Path) -> None:
    """Recording ids and devices that are paths are refused at the door (filenames and devices
    in tests/ingest); file names a sidecar lists are only data: storage is by SHA-256, so they
    are kept as written, shown escaped, and never become a path."""
    w = world
    data = b"t" * 16
    for key, value in (("recording", "../../etc/passwd"), ("recording", "..\\x"),
                       ("recording", ".."), ("recording", "a/../../b"),
                       ("device", "CAM/../../x"), ("device", "..")):
        meta = {"device": "CAM-1", "recording": "RT", "kind": "clip", "index": "1",
                "filename": "RT_001.mp4", "sha256": "0" * 64, key: value}
        r = w.client.post("/api/v1/uploads/", headers={
            **bearer(w.force.dock_token), "Tus-Resumable": "1.0.0",
            "Upload-Length": str(len(data)), "Upload-Metadata": tus_metadata(meta)})
        assert r.status_code == 400, (key, value, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    listed = [("clip", 1, "../../../../etc/passwd", data), ("clip", 2, "..\\..\\boot.ini", data),
              ("track", 1, "/etc/shadow", data)]
    sc = sidecar(device="CAM-1", recording="RT", files=listed)
    r = send(w.client, w.force.dock_token, sc, device="CAM-1", recording="RT", kind="sidecar",
             filename="RT.json")
    rid = r.headers["locker-recording"]
    detail = get(w, f"/api/v1/recordings/{rid}", headers=bearer(w.tokens["standards"]))
    assert detail.status_code == 200, detail.text
    page = get(w, f"/recordings/{rid}",
               headers=session_headers(w.caller("standards").cookie or ""))
    assert page.status_code == 200
    for top in (tmp_path, Path(w.runtime.settings.data_dir)):
        for _dirpath, _dirs, names in os.walk(top):
            assert not {"passwd", "shadow", "boot.ini"} & set(names), _dirpath


# --- XSS ----------------------------------------------------------------------------------------


def hostile(field: str) -> str:
    """Breaks out of an attribute and opens a tag, if it is ever written unescaped."""
    return f'"><svg onload=alert("{field}")>'


def escaped(field: str, in_json: bool = False) -> str:
    """How the hostile text reads once HTML-escaped (inside a JSON string, its quotes carry a
    backslash first)."""
    quote = "\\&#34;" if in_json else "&#34;"
    return f"&lt;svg onload=alert({quote}{field}{quote})&gt;"


def csv_cell(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def test_every_displayed_field_is_escaped(world: World, runtime: Runtime) -> None:
    """Hostile text in everything a page shows that came from a camera, a dock, a CSV import, an
    assignment or a visitor; every page as someone who sees it: the markup never appears raw,
    and every field does appear (escaped), so the test saw it rendered."""
    w = world
    fields = ["unit-name", "officer-name", "device-model", "device-firmware", "assignment-note",
              "dock-station", "agent-version", "clip-filename", "sidecar-firmware",
              "sidecar-model", "camera-officer", "timezone", "trigger-reason"]
    with transaction(runtime.sessions) as s:
        unit_name = csv_cell(hostile("unit-name"))
        imports.run_import(s, clock=runtime.clock, actor=TEST_ACTOR, zone="Europe/London", files={
            "units": ("units.csv", f"code,name,kind,parent_code\nXU,{unit_name},unit,F\n"
                                   .encode()),
            "officers": ("officers.csv", f"collar,name,unit_code,active\n9001,"
                                         f"{csv_cell(hostile('officer-name'))},XU,true\n".encode()),
            "devices": ("devices.csv", f"serial,model,mount,firmware,status\nXCAM-1,"
                                       f"{csv_cell(hostile('device-model'))},body,"
                                       f"{csv_cell(hostile('device-firmware'))},active\n"
                                       .encode()),
        })
        fleet.assign_device(s, clock=runtime.clock, actor=TEST_ACTOR, serial="XCAM-1",
                            collar="9001", starts_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                            note=hostile("assignment-note"))
        _, dock_token = fleet.register_dock(s, clock=runtime.clock, actor=TEST_ACTOR,
                                            name="xdock", station=hostile("dock-station"),
                                            unit_code="XU")
    beat = {"agent_version": hostile("agent-version"), "bays": 2,
            "sent_at": runtime.clock.now().isoformat(),
            "cameras": [{"bay": 1, "serial": "XCAM-1", "files_waiting": 1, "bytes_waiting": 9}]}
    r = w.client.post("/api/v1/docks/heartbeat", json=beat, headers=bearer(dock_token))
    assert r.status_code == 200, r.text
    clip = b"x" * 64
    name = hostile("clip-filename") + ".mp4"
    send(w.client, dock_token, clip, device="XCAM-1", recording="RX", kind="clip", filename=name)
    sc = json.loads(sidecar(device="XCAM-1", recording="RX", files=[("clip", 1, name, clip)],
                            officer=hostile("camera-officer")))
    sc["device"].update(firmware=hostile("sidecar-firmware"), model=hostile("sidecar-model"))
    sc["timezone"] = hostile("timezone")
    sc["trigger"]["on"]["reason"] = hostile("trigger-reason")
    sc["bookmarks"][0].update(category=hostile("bookmark"), note=hostile("bookmark-note"))
    rid = send(w.client, dock_token, json.dumps(sc).encode(), device="XCAM-1", recording="RX",
               kind="sidecar", filename="RX.json").headers["locker-recording"]
    standards = session_headers(w.caller("standards").cookie or "")
    fleetadmin = session_headers(w.caller("fleetadmin").cookie or "")
    w.runtime.clock.advance(dt.timedelta(hours=2))  # type: ignore[attr-defined]
    pages = {
        "silent docks": get(w, "/fleet", params={"silent_hours": 1}, headers=fleetadmin),
        "home": get(w, "/", headers=standards),
        "recording": get(w, f"/recordings/{rid}", headers=standards),
        "fleet": get(w, "/fleet", headers=fleetadmin),
        "fleet unit": get(w, "/fleet", params={"unit": "XU"}, headers=fleetadmin),
        "device": get(w, "/fleet/devices/XCAM-1", headers=fleetadmin),
    }
    # What people write into the audit trail (a justification's reason, a restriction's) is shown
    # on the trail pages.
    grant = w.client.post(f"/api/v1/recordings/{rid}/access", headers=bearer(w.tokens["standards"]),
                          json={"purpose": "investigation", "reason": hostile("audit-reason")})
    assert grant.status_code == 201, grant.text
    restricted = w.client.post(f"/api/v1/recordings/{rid}/restriction",
                               headers=bearer(w.tokens["standards"]),
                               json={"kind": "restricted", "reason": hostile("restriction")})
    assert restricted.status_code == 201, restricted.text
    pages["recording trail"] = get(w, f"/audit/recordings/{rid}", headers=standards)
    pages["user trail"] = get(w, "/audit/users/standards", headers=standards)
    fields += ["audit-reason", "restriction"]
    # What a visitor types comes back in pages too.
    fields += ["filter-officer", "filter-device", "purpose", "reason", "username"]
    pages["filters"] = get(w, "/", headers=standards, params={
        "officer": hostile("filter-officer"), "device": hostile("filter-device")})
    standards_csrf = w.caller("standards").csrf
    w.client.cookies.clear()
    pages["justification"] = w.client.post(
        f"/recordings/{rid}/access", headers=standards, follow_redirects=False,
        data={"purpose": hostile("purpose"), "reason": hostile("reason"), "clip": "1",
              "csrf": standards_csrf})
    cookie, csrf = login_form(w.client)
    pages["login"] = w.client.post("/login", headers={"Cookie": f"{LOGIN_CSRF_COOKIE}={cookie}"},
                                   data={"username": hostile("username"),
                                         "password": "wrong-password-1", "csrf": csrf})
    w.client.cookies.clear()
    for what, page in pages.items():
        assert page.status_code < 500, (what, page.status_code)
        assert "<svg" not in page.text, f"raw markup on the {what} page"
    shown = "\n".join(p.text for p in pages.values())
    unseen = [f for f in fields if escaped(f) not in shown and escaped(f, True) not in shown]
    # Echoing a visitor's own input back is not required (the login page does not repeat the
    # user name; a refused justification says why, not what was typed).
    assert set(unseen) <= {"username", "purpose"}, f"never shown, so never checked: {unseen}"


# --- CSRF ---------------------------------------------------------------------------------------


def _grants(runtime: Runtime) -> int:
    with transaction(runtime.sessions) as s:
        return s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "recording.access_granted")) or 0


def _live_sessions(runtime: Runtime) -> int:
    with transaction(runtime.sessions) as s:
        return s.scalar(select(func.count()).select_from(WebSession).where(
            WebSession.ended_at.is_(None))) or 0


def test_every_state_changing_form_needs_its_sessions_csrf_token(world: World,
                                                                  runtime: Runtime) -> None:
    """Every form route of the app (the sign-in form has its own cookie-bound token, tested in
    test_pages): without the token, with a forged one, or with another session's, it is refused
    and changes nothing."""
    w = world
    forms = sorted(k for k, route in app_routes(w.client.app).items()
                   if takes_form(route) and k != ("POST", "/login"))
    assert ("POST", "/logout") in forms and ("POST", "/recordings/{recording_id}/access") in forms
    other_cookie, other_csrf = w.sign_in("evidence1")
    victim = w.caller("evidence1")
    assert victim.cookie and other_csrf != victim.csrf
    for method, path in forms:
        url = fill_path(path, {"recording_id": w.recording, "flag_id": "1", "hold_id": "1",
                               "username": "sergeant1", "case_id": w.case_id,
                               "grant_id": w.case_grant_id})
        body = {"purpose": "investigation", "reason": "Reviewing the arrest on 21 November",
                "clip": "1"}
        for label, token in (("missing", None), ("forged", "forged-token"), ("empty", ""),
                             ("another session's", other_csrf)):
            grants, sessions, events = _grants(runtime), _live_sessions(runtime), \
                counts(runtime)[2]
            form = dict(body) if token is None else {**body, "csrf": token}
            w.client.cookies.clear()
            r = w.client.request(method, url, data=form, follow_redirects=False,
                                 headers=session_headers(victim.cookie))
            w.client.cookies.clear()
            # A form that declares the token required answers a missing (or empty) one with
            # 422 before the handler runs; either way nothing happened.
            expected = (403, 422) if not token else (403,)
            assert r.status_code in expected, (path, label, r.status_code, r.text[:200])
            assert (_grants(runtime), _live_sessions(runtime)) == (grants, sessions), \
                (path, label)
            assert counts(runtime)[2] == events, (path, label)
    # The victim's session still works: nothing above signed it out.
    assert get(w, "/", headers=session_headers(victim.cookie)).status_code == 200
    assert other_cookie != victim.cookie


def test_json_api_cannot_be_driven_by_a_cross_site_form(world: World, runtime: Runtime) -> None:
    """A page elsewhere can make a signed-in browser POST text/plain, urlencoded or multipart
    bodies with its cookie (SameSite=Lax stops that for cross-site POSTs in today's browsers;
    this is the second lock): every JSON route refuses a body that is not application/json."""
    w = world
    routes = sorted(k for k, route in app_routes(w.client.app).items() if takes_json(route))
    assert ("POST", "/api/v1/recordings/{recording_id}/access") in routes
    standards = w.caller("standards")
    assert standards.cookie
    payload = json.dumps({"purpose": "investigation", "reason": "Reviewing the arrest in full",
                          "kind": "restricted", "username": "sergeant1"})
    for method, path in routes:
        url = fill_path(path, {"recording_id": w.restrictable, "username": "sergeant1",
                               "flag_id": "1", "hold_id": "1", "case_id": w.case_id,
                               "grant_id": w.case_grant_id})
        for content_type, body in (("text/plain", payload),
                                   ("application/x-www-form-urlencoded", f"{payload}=x"),
                                   ("multipart/form-data; boundary=b",
                                    f'--b\r\nContent-Disposition: form-data; name="{payload}"'
                                    "\r\n\r\nx\r\n--b--\r\n")):
            events = counts(runtime)[2]
            w.client.cookies.clear()
            r = w.client.request(method, url, content=body.encode(), follow_redirects=False,
                                 headers={**session_headers(standards.cookie),
                                          "Content-Type": content_type})
            w.client.cookies.clear()
            assert 400 <= r.status_code < 500, (method, path, content_type, r.status_code)
            assert counts(runtime)[2] == events, (method, path, content_type)


# --- session fixation ---------------------------------------------------------------------------


def test_a_planted_session_cookie_is_never_adopted(world: World) -> None:
    """An attacker who sets the victim's session cookie (a value of their choosing, or their own
    live session) gains nothing: the value is not accepted, and signing in replaces it with a
    new session of the victim's while the attacker's stays the attacker's."""
    w = world
    planted = "attacker-chosen-" + "a" * 32
    assert get(w, "/", headers=session_headers(planted)).headers.get("location") == "/login"
    cookie, csrf = login_form(w.client)
    r = w.client.post("/login", follow_redirects=False, headers={
        "Cookie": f"{LOGIN_CSRF_COOKIE}={cookie}; {SESSION_COOKIE}={planted}"}, data={
        "username": "evidence1", "password": w.passwords["evidence1"], "csrf": csrf})
    w.client.cookies.clear()
    assert r.status_code == 303
    issued = r.cookies.get(SESSION_COOKIE)
    assert issued and issued != planted
    assert get(w, "/", headers=session_headers(planted)).status_code == 303
    # The attacker's own live session, planted before the victim signs in.
    attacker = w.caller("prosecutor1").cookie
    assert attacker
    cookie, csrf = login_form(w.client)
    r = w.client.post("/login", follow_redirects=False, headers={
        "Cookie": f"{LOGIN_CSRF_COOKIE}={cookie}; {SESSION_COOKIE}={attacker}"}, data={
        "username": "evidence1", "password": w.passwords["evidence1"], "csrf": csrf})
    w.client.cookies.clear()
    victims = r.cookies.get(SESSION_COOKIE)
    assert victims and victims != attacker
    assert "evidence1 (evidence-officer)" in get(w, "/", headers=session_headers(victims)).text
    still = get(w, "/", headers=session_headers(attacker)).text
    assert "prosecutor1 (prosecutor)" in still and "evidence1" not in still


def test_a_session_cookie_is_not_a_bearer_token_and_vice_versa(world: World) -> None:
    """The two secrets live in different places and are not interchangeable."""
    w = world
    officer = w.caller("officer1")
    assert officer.cookie and officer.bearer
    assert get(w, "/api/v1/recordings", headers=bearer(officer.cookie)).status_code == 401
    assert get(w, "/", headers=session_headers(officer.bearer)).status_code == 303


# --- oversized headers and bodies ---------------------------------------------------------------


def _chunks(total: int, piece: bytes = b" " * 65536) -> Iterator[bytes]:
    sent = 0
    yield b'{"agent_version": "'
    while sent < total:
        yield piece
        sent += len(piece)
    yield b'"}'


def test_oversized_bodies_are_refused_not_crashed_on(world: World) -> None:
    w = world
    big = "x" * MiB
    dock = bearer(w.force.dock_token)
    # A 1 MiB heartbeat without a declared length (chunked): refused while it streams in.
    r = w.client.post("/api/v1/docks/heartbeat", content=_chunks(MiB),
                      headers={**dock, "Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    standards = bearer(w.tokens["standards"])
    for path, body in (
        (f"/api/v1/recordings/{w.recording}/access", {"purpose": "investigation", "reason": big}),
        (f"/api/v1/recordings/{w.restrictable}/restriction", {"kind": big, "reason": "x"}),
        (f"/api/v1/recordings/{w.restrictable}/restriction/access",
         {"username": big, "reason": "x"}),
        (f"/api/v1/recordings/{w.recording}/access", {"purpose": "investigation",
                                                      "reason": "x", "padding": [big] * 4}),
    ):
        r = w.client.post(path, json=body, headers=standards)
        assert 400 <= r.status_code < 500, (path, r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
    # A megabyte of nesting: the JSON parser must not recurse itself to death.
    r = w.client.post(f"/api/v1/recordings/{w.recording}/access", headers={
        **standards, "Content-Type": "application/json"}, content=b"[" * MiB + b"]" * MiB)
    assert 400 <= r.status_code < 500, r.status_code
    # Forms: sign-in with a megabyte of password, the justification form with one of reason.
    cookie, csrf = login_form(w.client)
    r = w.client.post("/login", headers={"Cookie": f"{LOGIN_CSRF_COOKIE}={cookie}"},
                      data={"username": "evidence1", "password": big, "csrf": csrf})
    w.client.cookies.clear()
    assert r.status_code in (400, 422), r.status_code
    evidence = w.caller("evidence1")
    r = w.client.post(f"/recordings/{w.recording}/access",
                      headers=session_headers(evidence.cookie or ""),
                      data={"purpose": "investigation", "reason": big, "csrf": evidence.csrf})
    w.client.cookies.clear()
    assert r.status_code in (400, 422), r.status_code
    # A tus PATCH larger than the upload: refused, and the upload is where it was.
    r = w.client.patch(f"/api/v1/uploads/{w.upload_id}", content=b"m" * MiB, headers={
        **dock, "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream"})
    assert 400 <= r.status_code < 500, r.status_code
    head = w.client.head(f"/api/v1/uploads/{w.upload_id}",
                         headers={**dock, "Tus-Resumable": "1.0.0"})
    assert head.headers["upload-offset"] == "0"


def test_oversized_headers_and_query_strings_are_refused(world: World) -> None:
    w = world
    dock = bearer(w.force.dock_token)
    # Past 64 KiB of headers (or 100 of them) nothing is parsed: 431 before any route runs.
    big = "A" * MiB
    for headers in ({**dock, "Upload-Metadata": "filename " + big},
                    {"Authorization": big}, {"Cookie": "locker_session=" + big},
                    {f"X-Pad-{i}": "x" for i in range(150)}):
        r = w.client.post("/api/v1/uploads/", headers={"Tus-Resumable": "1.0.0",
                                                       "Upload-Length": "10", **headers})
        assert r.status_code == 431, r.status_code
        assert r.headers["content-type"].startswith("application/problem+json")
    # Under the limit, each header's own parser refuses what it cannot use.
    mid = "A" * 50_000
    r = w.client.post("/api/v1/uploads/", headers={
        **dock, "Tus-Resumable": "1.0.0", "Upload-Length": "10",
        "Upload-Metadata": "filename " + mid})
    assert r.status_code == 400, r.status_code
    r = w.client.post("/api/v1/uploads/", headers={
        **dock, "Tus-Resumable": "1.0.0", "Upload-Length": "9" * 4096})
    assert r.status_code in (400, 413), r.status_code
    r = w.client.patch(f"/api/v1/uploads/{w.upload_id}", headers={
        **dock, "Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Upload-Checksum": "sha256 " + mid,
        "Content-Type": "application/offset+octet-stream"}, content=b"m")
    assert r.status_code == 400, r.status_code
    assert get(w, "/api/v1/recordings", headers=bearer("elk_" + mid)).status_code == 401
    assert get(w, "/api/v1/recordings", headers={"Authorization": mid}).status_code == 401
    assert get(w, "/", headers=session_headers(mid)).status_code == 303
    r = get(w, f"/api/v1/recordings/{w.recording}/media", params={"grant": w.grants["evidence1"]},
            headers={**bearer(w.tokens["evidence1"]),
                     "Range": "bytes=" + ",".join(f"{i}-{i}" for i in range(5_000))})
    assert r.status_code in (200, 206, 416), r.status_code
    long = "A" * 60_000  # near the longest URL a client will send
    for path, name in (("/api/v1/recordings", "officer"), ("/api/v1/recordings", "cursor"),
                       ("/api/v1/fleet/rollout", "unit"), ("/api/v1/audit/alerts", "since")):
        token = w.tokens["auditor" if "audit" in path else
                         "fleetadmin" if "fleet" in path else "evidence1"]
        r = get(w, path, params={name: long}, headers=bearer(token))
        assert r.status_code == 422, (path, r.status_code)
    # The pages take the same filters and answer with a page, never a crash.
    for path, name, who in (("/", "device", "evidence1"), ("/", "cursor", "evidence1"),
                            ("/fleet", "unit", "fleetadmin")):
        r = get(w, path, params={name: long},
                headers=session_headers(w.caller(who).cookie or ""))
        assert r.status_code in (200, 400, 404), (path, name, r.status_code)
