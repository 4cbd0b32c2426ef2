"""The server-rendered pages through the real app: sign-in, CSRF, sessions, escaping."""

from __future__ import annotations

import hashlib
import json
import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from cat_helpers import record_camera, send
from evidence_locker.audit.models import AuditEvent
from evidence_locker.db import transaction


def login_csrf(client: TestClient) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def sign_in(client: TestClient, username: str, password: str) -> None:
    r = client.post("/login", data={"username": username, "password": password,
                                    "csrf": login_csrf(client)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/"


def test_anonymous_visitors_are_sent_to_sign_in(client) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    r = client.get("/recordings/00000000-0000-0000-0000-000000000000", follow_redirects=False)
    assert r.status_code == 303


def test_sign_in_sets_a_hardened_cookie_and_lists_recordings(client, force) -> None:
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="R1", clip=b"c" * 10)
    csrf = login_csrf(client)
    r = client.post("/login", data={"username": "evidence1",
                                    "password": force.passwords["evidence1"], "csrf": csrf},
                    follow_redirects=False)
    cookie = r.headers["set-cookie"]
    assert "locker_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    page = client.get("/")
    assert page.status_code == 200
    assert f"/recordings/{rid}" in page.text
    assert "PC 1001" in page.text
    detail = client.get(f"/recordings/{rid}")
    assert detail.status_code == 200
    assert hashlib.sha256(b"c" * 10).hexdigest() in detail.text
    # Not their footage: a purpose and a reason before it plays.
    assert "/media" not in detail.text and 'action="/recordings/' in detail.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', detail.text)
    assert csrf
    vague = client.post(f"/recordings/{rid}/access", follow_redirects=False,
                        data={"purpose": "investigation", "reason": "why not", "clip": "1",
                              "csrf": csrf.group(1)})
    assert vague.status_code == 422 and "reason of 10" in vague.text
    forged = client.post(f"/recordings/{rid}/access", follow_redirects=False,
                         data={"purpose": "investigation", "reason": "Reviewing the arrest",
                               "clip": "1", "csrf": "forged"})
    assert forged.status_code == 403
    ok = client.post(f"/recordings/{rid}/access", follow_redirects=False,
                     data={"purpose": "investigation", "reason": "Reviewing the arrest",
                           "clip": "1", "csrf": csrf.group(1)})
    assert ok.status_code == 303
    player = client.get(ok.headers["location"])
    grant = re.search(rf'src="/api/v1/recordings/{rid}/media\?clip=1&amp;grant=([^"]+)"',
                      player.text)
    assert grant, player.text
    assert client.get(f"/api/v1/recordings/{rid}/media",
                      params={"grant": grant.group(1)}).content == b"c" * 10


def test_wrong_password_is_refused_and_audited(client, runtime, force) -> None:
    r = client.post("/login", data={"username": "evidence1", "password": "wrong-password-1",
                                    "csrf": login_csrf(client)}, follow_redirects=False)
    assert r.status_code == 401
    assert "Sign-in failed" in r.text
    assert client.get("/", follow_redirects=False).status_code == 303
    with transaction(runtime.sessions) as s:
        assert "session.login_failed" in s.scalars(select(AuditEvent.action)).all()


def test_login_without_the_form_token_is_refused(client, force) -> None:
    client.get("/login")
    r = client.post("/login", data={"username": "evidence1",
                                    "password": force.passwords["evidence1"], "csrf": "forged"},
                    follow_redirects=False)
    assert r.status_code == 403
    assert r.json()["title"] == "Forbidden"


def test_each_sign_in_gets_a_new_session_and_logout_ends_it(client, force) -> None:
    sign_in(client, "evidence1", force.passwords["evidence1"])
    first = client.cookies.get("locker_session")
    sign_in(client, "evidence1", force.passwords["evidence1"])
    second = client.cookies.get("locker_session")
    assert first and second and first != second  # no session fixation
    page = client.get("/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    bad = client.post("/logout", data={"csrf": "nope"}, follow_redirects=False)
    assert bad.status_code == 403
    assert client.post("/logout", follow_redirects=False).status_code == 403  # none at all
    out = client.post("/logout", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.set("locker_session", second)
    assert client.get("/", follow_redirects=False).status_code == 303  # the session is over


def test_administrators_see_no_footage_page(client, force) -> None:
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="R1", clip=b"c" * 10)
    sign_in(client, "admin", force.passwords["admin"])
    page = client.get("/")
    assert "No footage for this role" in page.text
    assert rid not in page.text
    detail = client.get(f"/recordings/{rid}")
    assert detail.status_code == 403
    assert "/media" not in detail.text


def test_device_supplied_text_is_escaped(client, force) -> None:
    evil = "<img src=x onerror=alert(1)>.mp4"
    send(client, force.dock_token, b"evil", device="CAM-1", recording="R-XSS", kind="clip",
         filename=evil)
    sign_in(client, "standards", force.passwords["standards"])
    listing = client.get("/")
    rid = re.search(r'/recordings/([0-9a-f-]{36})', listing.text)
    assert rid
    detail = client.get(f"/recordings/{rid.group(1)}")
    assert "<img src=x" not in detail.text
    assert "&lt;img src=x onerror=alert(1)&gt;.mp4" in detail.text


def test_own_footage_plays_without_a_justification(client, runtime, force) -> None:
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="R1", clip=b"o" * 10)
    sign_in(client, "officer1", force.passwords["officer1"])
    detail = client.get(f"/recordings/{rid}")
    grant = re.search(rf'src="/api/v1/recordings/{rid}/media\?clip=1&amp;grant=([^"]+)"',
                      detail.text)
    assert grant and "form" not in detail.text.split("<dl")[0].split("</h1>")[1]
    assert client.get(f"/api/v1/recordings/{rid}/media",
                      params={"grant": grant.group(1)}).content == b"o" * 10
    with transaction(runtime.sessions) as s:
        granted = s.scalars(select(AuditEvent).where(
            AuditEvent.action == "recording.access_granted")).all()
    assert [json.loads(e.details)["purpose"] for e in granted] == ["own footage"]
