"""A small force with one caller of every kind, for the authorisation matrix and security tests:
every role signed in through /login and holding an API token, a dock token, stale credentials
(expired and revoked tokens, expired and ended sessions), two recordings and a tus upload.

Imported by name (tests/web is on sys.path)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.params import Form
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Mount, Route

from cat_helpers import grant_for, record_camera
from evidence_locker.accounts.roles import Role
from evidence_locker.accounts.service import (
    Passwords,
    create_api_token,
    create_session,
    create_user,
    end_session,
    issue_api_token,
    revoke_token,
    user_by_username,
)
from evidence_locker.db import transaction
from evidence_locker.fleet.models import Dock
from evidence_locker.runtime import Runtime
from evidence_locker.web.access_table import ANONYMOUS, DOCK, METRICS_TOKEN, STALE
from evidence_locker.web.auth import SESSION_COOKIE
from evidence_locker.web.pages import LOGIN_CSRF_COOKIE
from life_helpers import configure, grant, link, open_case
from support import TEST_ACTOR, Force, MovingClock

Key = tuple[str, str]  # (method, path template)

#: The user who holds each role (make_force's users, and a watchdog and a prosecutor added here).
USERNAMES: dict[Role, str] = {
    Role.OFFICER: "officer1",
    Role.SUPERVISOR: "sergeant1",
    Role.EVIDENCE_OFFICER: "evidence1",
    Role.PROFESSIONAL_STANDARDS: "standards",
    Role.WATCHDOG: "watchdog1",
    Role.PROSECUTOR: "prosecutor1",
    Role.FLEET_ADMINISTRATOR: "fleetadmin",
    Role.AUDITOR: "auditor",
    Role.SYSTEM_ADMINISTRATOR: "admin",
}
#: People whose justification grant for R1 the world holds (they see it, it is not theirs; the
#: watchdog through its grant on the world's case).
GRANTED = ("sergeant1", "evidence1", "standards", "watchdog1")


@dataclass
class Caller:
    """One way of calling: `column` is the access table's column it is judged by."""

    name: str
    column: str
    bearer: str | None = None
    cookie: str | None = None  # the session cookie's value
    csrf: str = ""
    username: str | None = None
    password: str | None = None


@dataclass
class World:
    client: TestClient
    runtime: Runtime
    force: Force
    callers: list[Caller]
    passwords: dict[str, str]
    tokens: dict[str, str]
    recording: str  # R1: officer1's (CAM-1, unit U1); supervisors, evidence and PS see it
    restrictable: str  # R2: officer1's too, the one the restriction routes change
    upload_id: str  # a tus upload the dock started and has not finished
    grants: dict[str, str] = field(default_factory=dict)  # username -> grant on R1
    case_id: str = ""  # a case of C1 that holds R1, opened by evidence1, granted to watchdog1
    case_grant_id: str = ""  # watchdog1's grant on that case
    serial: str = "CAM-1"
    uploads_made: int = 0

    def caller(self, name: str) -> Caller:
        return next(c for c in self.callers if c.name == name)

    def sign_in(self, username: str) -> tuple[str, str]:
        """A new session through the real sign-in form: (cookie, CSRF token)."""
        return sign_in(self.client, username, self.passwords[username])

    def start_upload(self, length: int = 10) -> str:
        """A new tus upload by the dock (unfinished): its id."""
        self.uploads_made += 1
        data = b"m" * length
        meta = {"device": self.serial, "recording": f"MATRIX-{self.uploads_made}",
                "kind": "clip", "index": "1", "filename": f"MATRIX-{self.uploads_made}_001.mp4",
                "sha256": hashlib.sha256(data).hexdigest()}
        r = self.client.post("/api/v1/uploads/", headers={
            "Authorization": f"Bearer {self.force.dock_token}", "Tus-Resumable": "1.0.0",
            "Upload-Length": str(length), "Upload-Metadata": tus_metadata(meta)})
        self.client.cookies.clear()
        assert r.status_code == 201, r.text
        return str(r.headers["location"]).rstrip("/").rsplit("/", 1)[1]


def tus_metadata(values: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def login_form(client: TestClient) -> tuple[str, str]:
    """GET /login: (the login CSRF cookie, the form's CSRF field)."""
    client.cookies.clear()
    page = client.get("/login")
    assert page.status_code == 200, page.text
    field_value = re.search(r'name="csrf" value="([^"]+)"', page.text)
    cookie = page.cookies.get(LOGIN_CSRF_COOKIE)
    assert field_value and cookie
    client.cookies.clear()
    return cookie, field_value.group(1)


def sign_in(client: TestClient, username: str, password: str) -> tuple[str, str]:
    """Sign in through the form, as a browser does: (session cookie, the session's CSRF token,
    read from the sign-out form every page carries)."""
    cookie, csrf = login_form(client)
    r = client.post("/login", data={"username": username, "password": password, "csrf": csrf},
                    headers={"Cookie": f"{LOGIN_CSRF_COOKIE}={cookie}"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    session = r.cookies.get(SESSION_COOKIE)
    assert session
    client.cookies.clear()
    home = client.get("/", headers={"Cookie": f"{SESSION_COOKIE}={session}"})
    client.cookies.clear()
    token = re.search(r'name="csrf" value="([^"]+)"', home.text)
    assert home.status_code == 200 and token, home.text
    return session, token.group(1)


def page_session(client: TestClient, username: str, password: str
                 ) -> tuple[dict[str, str], str]:
    """A person signed in through the form: the headers carrying their session cookie, and the
    session's CSRF token for the forms they post."""
    cookie, csrf = sign_in(client, username, password)
    return {"Cookie": f"{SESSION_COOKIE}={cookie}"}, csrf


def post_form(client: TestClient, headers: dict[str, str], url: str, **data: str) -> Any:
    """A form posted as a browser does (its cookie in `headers`), redirects not followed."""
    client.cookies.clear()
    return client.post(url, data=data, headers=headers, follow_redirects=False)


def get_page(client: TestClient, headers: dict[str, str], url: str) -> Any:
    client.cookies.clear()
    return client.get(url, headers=headers, follow_redirects=False)


def build_world(client: TestClient, runtime: Runtime, force: Force,
                clock: MovingClock) -> World:
    passwords = dict(force.passwords)
    tokens = dict(force.tokens)
    pw = Passwords(1, 1024)
    with transaction(runtime.sessions) as s:
        for username, role in (("watchdog1", "watchdog"), ("prosecutor1", "prosecutor")):
            user, password = create_user(s, clock=clock, actor=TEST_ACTOR, passwords=pw,
                                          username=username, role=role)
            assert password
            passwords[username] = password
            tokens[username] = create_api_token(s, clock=clock, actor=TEST_ACTOR, user=user,
                                                scopes={"api"})
        # Stale credentials of the most powerful footage role, and of a dock.
        standards = user_by_username(s, "standards")
        assert standards is not None
        expired = create_api_token(s, clock=clock, actor=TEST_ACTOR, user=standards,
                                   scopes={"api"}, expires_in=dt.timedelta(minutes=1))
        expired_session, _ = create_session(s, clock=clock, user=standards, hours=1 / 60)
        revoked_row, revoked = issue_api_token(s, clock=clock, actor=TEST_ACTOR, user=standards,
                                               scopes={"api"})
        revoke_token(s, clock=clock, actor=TEST_ACTOR, token_id=revoked_row.id)
        ended_session, _ = create_session(s, clock=clock, user=standards, hours=12)
        assert end_session(s, clock=clock, secret=ended_session)
        scraper = create_api_token(s, clock=clock, actor=TEST_ACTOR, user=standards,
                                   scopes={"metrics"}, name="prometheus")
        dock = s.query(Dock).filter_by(name="dock-1").one()
        expired_dock = create_api_token(s, clock=clock, actor=TEST_ACTOR, dock=dock,
                                        scopes={"upload"}, expires_in=dt.timedelta(minutes=1))
    clock.advance(dt.timedelta(minutes=2))
    configure(runtime)  # evidence categories, so flagging can succeed for those admitted

    r1 = record_camera(client, force.dock_token, device="CAM-1", recording="R1", clip=b"1" * 64)
    r2 = record_camera(client, force.dock_token, device="CAM-1", recording="R2", clip=b"2" * 64)
    callers: list[Caller] = []
    for role, username in USERNAMES.items():
        cookie, csrf = sign_in(client, username, passwords[username])
        callers.append(Caller(username, role, bearer=tokens[username], cookie=cookie, csrf=csrf,
                              username=username, password=passwords[username]))
    callers += [
        Caller("dock-1", DOCK, bearer=force.dock_token),
        Caller("metrics-token", METRICS_TOKEN, bearer=scraper),
        Caller("anonymous", ANONYMOUS),
        Caller("expired", STALE, bearer=expired, cookie=expired_session),
        Caller("revoked", STALE, bearer=revoked, cookie=ended_session),
        Caller("expired-dock", STALE, bearer=expired_dock),
    ]
    world = World(client=client, runtime=runtime, force=force, callers=callers,
                  passwords=passwords, tokens=tokens, recording=r1, restrictable=r2,
                  upload_id="")
    world.upload_id = world.start_upload()
    r = open_case(client, tokens["evidence1"], "CASE/2026/MATRIX")
    assert r.status_code == 201, r.text
    world.case_id = str(r.json()["id"])
    r = link(client, tokens["evidence1"], int(world.case_id), r1)
    assert r.status_code == 201, r.text
    r = grant(client, tokens["standards"], int(world.case_id), "watchdog1")
    assert r.status_code == 201, r.text
    world.case_grant_id = str(r.json()["id"])
    for username in GRANTED:
        world.grants[username] = grant_for(client, tokens[username], r1)
    client.cookies.clear()
    return world


def credentials(caller: Caller, *, bearer: bool, cookies: dict[str, str] | None = None,
                ) -> dict[str, str]:
    """Headers that present one credential of a caller (its token, or its session cookie)."""
    headers: dict[str, str] = {}
    jar = dict(cookies or {})
    if bearer and caller.bearer:
        headers["Authorization"] = f"Bearer {caller.bearer}"
    elif not bearer and caller.cookie:
        jar[SESSION_COOKIE] = caller.cookie
    if jar:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
    return headers


def beat_body() -> dict[str, Any]:
    return {"agent_version": "locker-dock 0.1", "bays": 8,
            "sent_at": "2026-11-21T09:00:00+00:00",
            "cameras": [{"bay": 1, "serial": "CAM-1", "files_waiting": 0, "bytes_waiting": 0}]}


# --- the app's routes ---------------------------------------------------------------------


def _walk(routes: list[BaseRoute], prefix: str) -> Iterator[tuple[Key, BaseRoute]]:
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            # FastAPI 0.16x keeps an included router whole; its prefix is in the include context.
            yield from _walk(included.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Mount):
            yield ("GET", f"{prefix}{route.path}/{{path:path}}"), route
        elif isinstance(route, Route | APIRoute):
            for method in sorted(route.methods or ()):
                yield (method, prefix + route.path), route
        else:
            raise AssertionError(f"a route of a kind the matrix does not know: {route!r}")


def fill_path(template: str, values: dict[str, str]) -> str:
    """A route's path with each {parameter} replaced by its value; a parameter without one fails
    the test (so a new route cannot be walked with a literal "{name}" in its URL)."""

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        assert name in values, f"{template}: no value for path parameter {{{name}}}: add one"
        return values[name]

    return re.sub(r"\{([^}]+)\}", fill, template)


def app_routes(app: FastAPI) -> dict[Key, BaseRoute]:
    return dict(_walk(list(app.routes), ""))


def takes_form(route: BaseRoute) -> bool:
    """A form post: called with the session and its CSRF token, as a browser would."""
    return isinstance(route, APIRoute) and any(
        isinstance(f.field_info, Form) for f in route.dependant.body_params)


def takes_json(route: BaseRoute) -> bool:
    """A JSON body the framework parses (not a raw request body, not a form)."""
    return isinstance(route, APIRoute) and bool(route.dependant.body_params) and \
        not takes_form(route)
