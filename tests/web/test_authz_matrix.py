"""The authorisation matrix: every route of the real app, called as every kind of caller (each
role, by token and by session; a dock; nobody; expired and revoked credentials), checked against
the one table in evidence_locker/web/access_table.py.

A route the table does not know fails here, so does an entry for a route that is gone. A caller
the table admits must never see 401 or 403 (nor, on a page, be sent to sign in); a caller it
refuses must always get 401 (nobody or a stale credential; on a page, the way to sign in) or 403
(the wrong role). How each route is called lives in CALLS below: a new route with path
parameters named like the old ones ({recording_id}, {serial}, {upload_id}, {username},
{case_id}, {grant_id}) and no body needs nothing there."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from matrix_world import (
    Caller,
    Key,
    World,
    app_routes,
    beat_body,
    build_world,
    credentials,
    fill_path,
    login_form,
    takes_form,
    tus_metadata,
)
from starlette.routing import BaseRoute

from evidence_locker.web.access_table import ACCESS, ANONYMOUS, STALE
from evidence_locker.web.app import create_app

# --- how each route is called -----------------------------------------------------------------


@dataclass
class Call:
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: dict[str, str] | None = None
    content: bytes | None = None
    cookies: dict[str, str] = field(default_factory=dict)
    # A session of its own instead of the caller's (signing out must not end the matrix's).
    session: tuple[str, str] | None = None


Recipe = Callable[[World, Caller], Call]
TUS = {"Tus-Resumable": "1.0.0"}
REASON = "Reviewing the arrest on 21 November for the case file"
_upload_no = 0


def _tus_create(w: World, c: Caller) -> Call:
    global _upload_no
    _upload_no += 1
    meta = {"device": "CAM-1", "recording": f"CREATE-{_upload_no}", "kind": "clip",
            "index": "1", "filename": f"CREATE-{_upload_no}_001.mp4", "sha256": "0" * 64}
    return Call(headers={**TUS, "Upload-Length": "10", "Upload-Metadata": tus_metadata(meta)})


def _login(w: World, c: Caller) -> Call:
    cookie, csrf = login_form(w.client)
    username = c.username or "officer1"
    return Call(data={"username": username, "password": w.passwords[username], "csrf": csrf},
                cookies={"locker_login_csrf": cookie})


def _logout(w: World, c: Caller) -> Call:
    return Call(data={}, session=w.sign_in(c.username) if c.username else None)


def _media(w: World, c: Caller) -> Call:
    grant = w.grants.get(c.username or "")
    return Call(params={"clip": 1, **({"grant": grant} if grant else {})})


CALLS: dict[Key, Recipe] = {
    ("GET", "/static/{path:path}"): lambda w, c: Call(),
    ("OPTIONS", "/api/v1/uploads/"): lambda w, c: Call(headers=TUS),
    ("POST", "/api/v1/uploads/"): _tus_create,
    ("HEAD", "/api/v1/uploads/{upload_id}"): lambda w, c: Call(headers=TUS),
    ("PATCH", "/api/v1/uploads/{upload_id}"): lambda w, c: Call(
        headers={**TUS, "Upload-Offset": "0",
                 "Content-Type": "application/offset+octet-stream"}, content=b"m" * 4),
    ("GET", "/api/v1/recordings"): lambda w, c: Call(params={"device": "CAM-1", "limit": 10}),
    ("POST", "/api/v1/recordings/{recording_id}/access"): lambda w, c: Call(
        json={"purpose": "investigation", "reason": REASON}),
    ("GET", "/api/v1/recordings/{recording_id}/media"): _media,
    ("GET", "/api/v1/recordings/{recording_id}/poster"): _media,
    ("POST", "/api/v1/recordings/{recording_id}/restriction"): lambda w, c: Call(
        json={"kind": "restricted", "reason": REASON}),
    ("DELETE", "/api/v1/recordings/{recording_id}/restriction"): lambda w, c: Call(
        json={"reason": REASON}),
    ("POST", "/api/v1/recordings/{recording_id}/restriction/access"): lambda w, c: Call(
        json={"username": "sergeant1", "reason": REASON}),
    ("DELETE", "/api/v1/recordings/{recording_id}/restriction/access/{username}"):
        lambda w, c: Call(json={"reason": REASON}),
    ("DELETE", "/api/v1/uploads/{upload_id}"): lambda w, c: Call(headers=TUS),
    ("POST", "/api/v1/docks/heartbeat"): lambda w, c: Call(json=beat_body()),
    ("POST", "/api/v1/recordings/{recording_id}/flags"): lambda w, c: Call(
        json={"category": "use of force", "reference": "CRIME/2026/1", "note": ""}),
    ("DELETE", "/api/v1/recordings/{recording_id}/flags/{flag_id}"): lambda w, c: Call(
        json={"reason": REASON}),
    ("POST", "/api/v1/recordings/{recording_id}/holds"): lambda w, c: Call(
        json={"kind": "complaint", "reason": REASON}),
    ("POST", "/api/v1/recordings/{recording_id}/holds/{hold_id}/release"): lambda w, c: Call(
        json={"reason": REASON}),
    ("POST", "/api/v1/recordings/{recording_id}/flags/{flag_id}/review"): lambda w, c: Call(
        json={"decision": "retain", "reason": REASON, "next_review_days": 365}),
    ("PUT", "/api/v1/recordings/{recording_id}/subject-told"): lambda w, c: Call(
        json={"told": "not-practicable", "reason": REASON}),
    ("GET", "/api/v1/reviews"): lambda w, c: Call(params={"days": 30}),
    ("POST", "/api/v1/cases"): lambda w, c: Call(
        json={"reference": "CASE/2026/OPENED", "title": "Opened by the matrix"}),
    ("POST", "/api/v1/cases/{case_id}/recordings"): lambda w, c: Call(
        json={"recording_id": w.recording, "reason": REASON}),
    ("DELETE", "/api/v1/cases/{case_id}/recordings/{recording_id}"): lambda w, c: Call(
        json={"reason": REASON}),
    ("POST", "/api/v1/cases/{case_id}/status"): lambda w, c: Call(
        json={"status": "charged", "reason": REASON}),
    ("POST", "/api/v1/cases/{case_id}/owners"): lambda w, c: Call(
        json={"username": "sergeant1"}),
    ("DELETE", "/api/v1/cases/{case_id}/owners/{username}"): lambda w, c: Call(
        json={"reason": REASON}),
    ("POST", "/api/v1/cases/{case_id}/grants"): lambda w, c: Call(
        json={"username": "watchdog1", "reason": REASON}),
    ("POST", "/api/v1/cases/{case_id}/grants/{grant_id}/revoke"): lambda w, c: Call(
        json={"reason": REASON}),
    ("GET", "/api/v1/audit/alerts"): lambda w, c: Call(params={
        "since": (w.runtime.clock.now() - dt.timedelta(days=1)).isoformat()}),
    ("POST", "/login"): _login,
    ("POST", "/logout"): _logout,
    ("POST", "/recordings/{recording_id}/access"): lambda w, c: Call(
        data={"purpose": "investigation", "reason": REASON, "clip": "1"}),
    ("POST", "/recordings/{recording_id}/evidence/flags"): lambda w, c: Call(
        data={"category": "use of force", "reference": "CRIME/2026/2", "note": "page"}),
    ("POST", "/recordings/{recording_id}/evidence/flags/{flag_id}/withdraw"): lambda w, c: Call(
        data={"reason": REASON}),
    ("POST", "/recordings/{recording_id}/evidence/flags/{flag_id}/review"): lambda w, c: Call(
        data={"decision": "retain", "reason": REASON, "next_review_days": "365"}),
    ("POST", "/recordings/{recording_id}/evidence/subject-told"): lambda w, c: Call(
        data={"told": "no", "reason": REASON}),
    ("POST", "/recordings/{recording_id}/evidence/holds"): lambda w, c: Call(
        data={"kind": "legal", "reason": REASON}),
    ("POST", "/recordings/{recording_id}/evidence/holds/{hold_id}/release"): lambda w, c: Call(
        data={"reason": REASON}),
    ("POST", "/recordings/{recording_id}/evidence/restriction"): lambda w, c: Call(
        data={"kind": "restricted", "reason": REASON}),
    ("POST", "/recordings/{recording_id}/evidence/restriction/release"): lambda w, c: Call(
        data={"reason": REASON}),
    ("POST", "/recordings/{recording_id}/evidence/restriction/access"): lambda w, c: Call(
        data={"username": "sergeant1", "reason": REASON}),
    ("POST", "/recordings/{recording_id}/evidence/restriction/access/{username}/remove"):
        lambda w, c: Call(data={"reason": REASON}),
    ("POST", "/cases"): lambda w, c: Call(
        data={"reference": "CASE/2026/PAGE", "title": "Opened on the page"}),
    ("POST", "/cases/{case_id}/recordings"): lambda w, c: Call(
        data={"recording_id": w.recording, "reason": REASON}),
    ("POST", "/cases/{case_id}/recordings/{recording_id}/remove"): lambda w, c: Call(
        data={"reason": REASON}),
    ("POST", "/cases/{case_id}/status"): lambda w, c: Call(
        data={"status": "charged", "reason": REASON}),
    ("POST", "/cases/{case_id}/owners"): lambda w, c: Call(data={"username": "sergeant1"}),
    ("POST", "/cases/{case_id}/owners/{username}/remove"): lambda w, c: Call(
        data={"reason": REASON}),
    ("POST", "/cases/{case_id}/grants"): lambda w, c: Call(
        data={"username": "watchdog1", "reason": REASON}),
    ("POST", "/cases/{case_id}/grants/{grant_id}/revoke"): lambda w, c: Call(
        data={"reason": REASON}),
}

#: Path parameters by name. The restriction routes change R2, so R1 stays as every caller
#: expects; terminating takes an upload of its own each time.
def _path_values(w: World, key: Key) -> dict[str, str]:
    method, path = key
    restriction = "/restriction" in path
    upload = w.start_upload() if method == "DELETE" and "{upload_id}" in path else w.upload_id
    return {"recording_id": w.restrictable if restriction else w.recording,
            "serial": w.serial, "upload_id": upload, "username": "sergeant1",
            "path:path": "locker.css", "flag_id": "1", "hold_id": "1", "tombstone_id": "1",
            "case_id": w.case_id, "grant_id": w.case_grant_id}


def _url(w: World, key: Key) -> str:
    return fill_path(key[1], _path_values(w, key))


def send(w: World, key: Key, route: BaseRoute, caller: Caller, *, bearer: bool) -> Any:
    call = CALLS.get(key, lambda w, c: Call())(w, caller)
    cookies = dict(call.cookies)
    data = call.data
    who = caller
    if call.session is not None:
        who = Caller(caller.name, caller.column, cookie=call.session[0], csrf=call.session[1])
    headers = {**call.headers, **credentials(who, bearer=bearer, cookies=cookies)}
    if takes_form(route):
        # No session, no CSRF token: a browser would send whatever the page held.
        data = {"csrf": who.csrf or "no-session", **(data or {})}
    w.client.cookies.clear()
    response = w.client.request(key[0], _url(w, key), params=call.params, headers=headers,
                                json=call.json, data=data, content=call.content,
                                follow_redirects=False)
    w.client.cookies.clear()
    return response


def transports(caller: Caller, route: BaseRoute) -> list[bool]:
    """True: the caller's bearer token; False: its session cookie (or nothing, anonymously).
    Forms are a browser's, so only sessions post them; everything else takes both."""
    if caller.bearer is None and caller.cookie is None:
        return [False]
    if takes_form(route):
        return [False] if caller.cookie else [True]
    return [b for b, has in ((True, caller.bearer), (False, caller.cookie)) if has]


def sent_to_sign_in(response: Any) -> bool:
    return response.status_code in (302, 303, 307) and \
        response.headers.get("location", "").endswith("/login")


def verdict(key: Key, caller: Caller, response: Any) -> str | None:
    """What is wrong with this answer, or None."""
    admitted = ACCESS[key]
    status = response.status_code
    if status >= 500:
        return f"server error {status}: {response.text[:200]}"
    if caller.column in admitted:
        if status in (401, 403):
            return f"admitted but refused with {status}: {response.text[:200]}"
        if ANONYMOUS not in admitted and sent_to_sign_in(response):
            return "admitted but sent to sign in"
        return None
    if caller.column in (ANONYMOUS, STALE):
        if status == 401 or sent_to_sign_in(response):
            return None
        return f"not signed in, expected 401 or the way to sign in, got {status}"
    if status == 403:
        return None
    if caller.cookie is None and sent_to_sign_in(response):
        return None  # a page, and a dock's or Prometheus's token is not a person signed in
    return f"wrong role or scope, expected 403, got {status}: {response.text[:200]}"


# --- the tests ----------------------------------------------------------------------------------


def test_every_route_has_an_entry_and_every_entry_a_route(runtime) -> None:
    app = create_app(runtime, background=False)
    routes = set(app_routes(app))
    missing = sorted(routes - set(ACCESS))
    gone = sorted(set(ACCESS) - routes)
    assert not missing, f"routes without an entry in web/access_table.py: {missing}"
    assert not gone, f"entries in web/access_table.py for routes that do not exist: {gone}"
    assert not set(CALLS) - routes, f"recipes for routes that do not exist: {set(CALLS) - routes}"
    # The walk found the routers' routes, not just the app's own.
    assert ("GET", "/api/v1/recordings/{recording_id}/media") in routes
    assert ("PATCH", "/api/v1/uploads/{upload_id}") in routes
    assert ("GET", "/fleet/devices/{serial}") in routes


def test_a_route_added_anywhere_is_noticed(runtime) -> None:
    """The walk sees a route however it arrives (a router included with a prefix, a router
    inside a router, a page on the app itself), so a new one cannot slip past the table."""
    app = create_app(runtime, background=False)
    inner = APIRouter(prefix="/deeper")
    inner.add_api_route("/{thing}", lambda thing: {}, methods=["DELETE"])
    outer = APIRouter()
    outer.add_api_route("/{thing}", lambda thing: {}, methods=["GET", "PUT"])
    outer.include_router(inner)
    app.include_router(outer, prefix="/api/v1/new")
    app.add_api_route("/brand-new-page", lambda: {}, methods=["POST"], include_in_schema=False)
    assert set(app_routes(app)) - set(ACCESS) == {
        ("GET", "/api/v1/new/{thing}"), ("PUT", "/api/v1/new/{thing}"),
        ("DELETE", "/api/v1/new/deeper/{thing}"), ("POST", "/brand-new-page")}


def test_every_route_as_every_caller(client, runtime, force, clock) -> None:
    world = build_world(client, runtime, force, clock)
    routes = app_routes(client.app)
    assert set(routes) == set(ACCESS), "see test_every_route_has_an_entry_and_every_entry_a_route"
    failures: list[str] = []
    calls = 0
    for key, route in routes.items():
        for caller in world.callers:
            for bearer in transports(caller, route):
                response = send(world, key, route, caller, bearer=bearer)
                calls += 1
                wrong = verdict(key, caller, response)
                if wrong:
                    how = "token" if bearer else ("session" if caller.cookie else "nothing")
                    failures.append(f"{key[0]} {key[1]} as {caller.name} ({how}): {wrong}")
    assert not failures, f"{len(failures)} of {calls} calls disagree with the table:\n" + \
        "\n".join(failures)
    # Every kind of caller was tried on every route: 9 roles, a dock, a metrics token, nobody,
    # 3 stale ones.
    assert len(world.callers) == 15 and calls >= len(routes) * len(world.callers)


def test_admitted_callers_get_somewhere(client, runtime, force, clock) -> None:
    """The matrix proves nobody is refused wrongly; these prove the calls it makes are real ones
    (an admitted call that only ever 404s or 422s would prove little)."""
    world = build_world(client, runtime, force, clock)
    routes = app_routes(client.app)
    expect = {
        ("GET", "/api/v1/recordings", "evidence1"): 200,
        ("GET", "/api/v1/recordings/{recording_id}", "sergeant1"): 200,
        ("GET", "/api/v1/recordings/{recording_id}", "watchdog1"): 200,  # its case grant
        ("POST", "/api/v1/recordings/{recording_id}/access", "standards"): 201,
        ("GET", "/api/v1/recordings/{recording_id}/media", "evidence1"): 200,
        ("GET", "/api/v1/recordings/{recording_id}/media", "officer1"): 200,
        ("POST", "/api/v1/recordings/{recording_id}/restriction", "standards"): 201,
        ("POST", "/api/v1/recordings/{recording_id}/restriction/access", "standards"): 201,
        ("GET", "/api/v1/recordings/{recording_id}/restriction", "standards"): 200,
        ("DELETE", "/api/v1/recordings/{recording_id}/restriction/access/{username}",
         "standards"): 200,
        ("DELETE", "/api/v1/recordings/{recording_id}/restriction", "standards"): 204,
        ("GET", "/api/v1/recordings/{recording_id}/retention", "officer1"): 200,
        ("POST", "/api/v1/recordings/{recording_id}/holds", "standards"): 201,
        ("POST", "/api/v1/recordings/{recording_id}/flags", "officer1"): 201,
        ("POST", "/api/v1/uploads/", "dock-1"): 201,
        ("HEAD", "/api/v1/uploads/{upload_id}", "dock-1"): 200,
        ("PATCH", "/api/v1/uploads/{upload_id}", "dock-1"): 204,
        ("DELETE", "/api/v1/uploads/{upload_id}", "dock-1"): 204,
        ("POST", "/api/v1/docks/heartbeat", "dock-1"): 200,
        ("GET", "/api/v1/fleet/rollout", "sergeant1"): 200,
        ("GET", "/api/v1/fleet/devices/{serial}", "fleetadmin"): 200,
        ("GET", "/api/v1/fleet/conflicts", "fleetadmin"): 200,
        ("GET", "/metrics", "admin"): 200,
        ("GET", "/metrics", "metrics-token"): 200,
        ("GET", "/api/v1/audit/recordings/{recording_id}", "evidence1"): 200,
        ("GET", "/api/v1/audit/users/{username}", "auditor"): 200,
        ("GET", "/api/v1/audit/alerts", "standards"): 200,
        ("GET", "/", "officer1"): 200,
        ("GET", "/recordings/{recording_id}", "officer1"): 200,
        ("POST", "/recordings/{recording_id}/access", "evidence1"): 303,
        ("GET", "/fleet", "sergeant1"): 200,
        ("GET", "/fleet/devices/{serial}", "sergeant1"): 200,
        ("POST", "/login", "anonymous"): 303,
        ("POST", "/logout", "officer1"): 303,
        ("GET", "/static/{path:path}", "anonymous"): 200,
        ("GET", "/recordings/{recording_id}/evidence", "officer1"): 200,
        ("GET", "/audit/alerts", "auditor"): 200,
        ("POST", "/recordings/{recording_id}/evidence/flags", "officer1"): 303,
        ("POST", "/recordings/{recording_id}/evidence/holds", "standards"): 303,
        ("POST", "/recordings/{recording_id}/evidence/restriction", "standards"): 303,
        ("POST", "/recordings/{recording_id}/evidence/restriction/access", "standards"): 303,
        ("POST", "/recordings/{recording_id}/evidence/restriction/access/{username}/remove",
         "standards"): 303,
        ("POST", "/recordings/{recording_id}/evidence/restriction/release", "standards"): 303,
        # Cases: the watchdog's grant shows it the case and R1 (before R1 leaves the case).
        ("GET", "/api/v1/cases", "watchdog1"): 200,
        ("GET", "/api/v1/cases/{case_id}", "watchdog1"): 200,
        ("GET", "/api/v1/cases/{case_id}", "evidence1"): 200,
        ("POST", "/api/v1/cases", "evidence1"): 201,
        ("POST", "/api/v1/cases/{case_id}/owners", "evidence1"): 201,
        ("DELETE", "/api/v1/cases/{case_id}/owners/{username}", "evidence1"): 200,
        ("POST", "/api/v1/cases/{case_id}/status", "evidence1"): 200,
        ("POST", "/api/v1/cases/{case_id}/recordings", "evidence1"): 409,  # R1 is in it
        ("POST", "/api/v1/cases/{case_id}/grants/{grant_id}/revoke", "standards"): 200,
        ("POST", "/api/v1/cases/{case_id}/grants", "standards"): 201,
        ("DELETE", "/api/v1/cases/{case_id}/recordings/{recording_id}", "evidence1"): 200,
    }
    got = {}
    for (method, path, name), status in expect.items():
        caller = world.caller(name)
        route = routes[(method, path)]
        r = send(world, (method, path), route, caller, bearer=bool(caller.bearer) and
                 not takes_form(route))
        got[(method, path, name)] = (r.status_code, status)
    wrong = {k: v for k, v in got.items() if v[0] != v[1]}
    assert not wrong, f"(got, expected): {wrong}"
