"""OpenID Connect sign-in against a real provider: the certified `oidc-provider` package from npm
(tests/oidc_provider/, installed by `make test` with `npm ci`), run with the machine's Node.js.

The browser is played by httpx: one client for the IdP (its own cookies), the app's TestClient
for Evidence Locker. A missing node or npm package fails these tests; it never skips them.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select
from typer.testing import CliRunner

from evidence_locker.accounts.cli import users_app
from evidence_locker.accounts.models import UserIdentity
from evidence_locker.accounts.oidc import STATE_COOKIE
from evidence_locker.accounts.service import (
    Passwords,
    authenticate,
    deactivate_user,
    user_by_username,
)
from evidence_locker.audit.models import AuditEvent
from evidence_locker.config import Settings
from evidence_locker.db import transaction, upgrade
from evidence_locker.runtime import Runtime, build_runtime
from evidence_locker.web.app import create_app
from evidence_locker.web.auth import SESSION_COOKIE
from support import TEST_ACTOR, make_force, make_settings, serving

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "oidc_provider"
CLIENT_ID = "evidence-locker"
REDIRECT_URI = "http://testserver/login/oidc/callback"

# Account id (the IdP's `sub`) -> claims. Each test uses its own accounts.
ACCOUNTS: dict[str, dict[str, Any]] = {
    "sub-officer1": {"preferred_username": "officer1", "name": "PC 1001"},
    "sub-impostor": {"preferred_username": "officer1", "name": "Someone else"},
    "sub-nobody": {"preferred_username": "nobody"},
    "sub-officer2": {"preferred_username": "officer2"},
    "sub-sergeant": {"preferred_username": "sergeant1"},
    "sub-renamed": {"preferred_username": "evidence1"},
    "sub-standards": {"preferred_username": "standards"},
    "sub-noclaim": {"name": "No username"},
    "sub-collar": {"preferred_username": "whatever", "collar_number": "1001"},
}


@dataclass
class Idp:
    issuer: str
    client_secret: str
    accounts_file: Path

    def rename(self, sub: str, username: str) -> None:
        accounts = json.loads(self.accounts_file.read_text())
        accounts[sub]["preferred_username"] = username
        self.accounts_file.write_text(json.dumps(accounts))


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is needed for the OpenID Connect tests (make system-deps)")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("oidc-provider is not installed: npm ci --prefix tests/oidc_provider "
                    "(make test does it)")
    work = tmp_path_factory.mktemp("idp")
    accounts_file = work / "accounts.json"
    accounts_file.write_text(json.dumps(ACCOUNTS))
    secret = secrets.token_urlsafe(32)  # generated per run; never in the repository
    log = (work / "idp.log").open("w+")
    proc = subprocess.Popen(
        [node, str(PROVIDER_DIR / "server.mjs"), "--port", "0", "--client-id", CLIENT_ID,
         "--redirect-uri", REDIRECT_URI, "--accounts", str(accounts_file)],
        stdout=subprocess.PIPE, stderr=log, text=True, env={"OIDC_CLIENT_SECRET": secret,
                                                            "PATH": "/usr/bin:/bin"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            log.seek(0)
            pytest.fail(f"the OIDC provider did not start: {log.read()}")
        yield Idp(json.loads(line)["issuer"], secret, accounts_file)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def oidc_settings(idp: Idp, **more: object) -> dict[str, object]:
    return {"oidc_issuer": idp.issuer, "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": idp.client_secret, "oidc_display_name": "Test IdP", **more}


@pytest.fixture
def oidc_runtime(tmp_path: Path, clock: Any, deployment: Any, idp: Idp) -> Iterator[Runtime]:
    settings = make_settings(tmp_path / "var", **deployment.overrides, **oidc_settings(idp))
    upgrade(settings.resolved_database_url)
    rt = build_runtime(settings, clock=clock)
    make_force(rt)
    yield rt
    rt.close()


@pytest.fixture
def app(oidc_runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(oidc_runtime, background=False)) as c:
        yield c


def to_idp_and_back(app: TestClient, account: str) -> str:
    """Press "Sign in with ..." and sign in at the IdP as `account`; returns the callback URL
    the IdP sends the browser back to (not yet visited)."""
    start = app.get("/login/oidc", follow_redirects=False)
    assert start.status_code == 303, start.text
    url = start.headers["location"]
    with httpx.Client(follow_redirects=False, timeout=15) as browser:
        for _ in range(10):
            if url.startswith(REDIRECT_URI):
                return url
            if urlsplit(url).path.startswith("/interaction/"):
                form = browser.get(url)
                assert form.status_code == 200, form.text
                r = browser.post(url, data={"login": account})
            else:
                r = browser.get(url)
            assert r.status_code in (302, 303), (r.status_code, r.text)
            url = urljoin(url, r.headers["location"])
    raise AssertionError(f"the IdP never sent the browser back: {url}")


def come_back(app: TestClient, callback: str) -> httpx.Response:
    parts = urlsplit(callback)
    return app.get(f"{parts.path}?{parts.query}", follow_redirects=False)


def events(rt: Runtime, action: str) -> list[AuditEvent]:
    with transaction(rt.sessions) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)))


def details(event: AuditEvent) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(event.details) if event.details else {}
    return found


def oidc_failures(rt: Runtime) -> list[AuditEvent]:
    return [e for e in events(rt, "session.login_failed") if details(e).get("method") == "oidc"]


def test_mapped_user_signs_in_and_lands_on_the_recordings(app: TestClient,
                                                         oidc_runtime: Runtime) -> None:
    page = app.get("/login")
    assert "Sign in with Test IdP" in page.text and 'href="/login/oidc"' in page.text
    # A session id planted beforehand (session fixation) must not survive the sign-in.
    app.cookies.set(SESSION_COOKIE, "chosen-by-an-attacker", domain="testserver.local")

    back = come_back(app, to_idp_and_back(app, "sub-officer1"))

    assert back.status_code == 303 and back.headers["location"] == "/"
    set_cookies = back.headers.get_list("set-cookie")
    session_cookie = next(c for c in set_cookies if c.startswith(f"{SESSION_COOKIE}="))
    assert "HttpOnly" in session_cookie and "samesite=lax" in session_cookie.lower()
    secret = app.cookies.get(SESSION_COOKIE)
    assert secret and secret != "chosen-by-an-attacker"  # a fresh session id: no fixation
    assert any(c.startswith(f"{STATE_COOKIE}=") and "Max-Age=0" in c for c in set_cookies)
    listing = app.get("/")
    assert listing.status_code == 200
    assert "officer1 (officer)" in listing.text  # the local user and the local role

    (login,) = events(oidc_runtime, "session.login")
    with transaction(oidc_runtime.sessions) as s:
        user = user_by_username(s, "officer1")
        assert user is not None
        (link,) = s.scalars(select(UserIdentity)).all()
        assert (link.user_id, link.issuer, link.subject) == (user.id, app.app.state.runtime
                                                            .settings.oidc_issuer, "sub-officer1")
    assert login.object_id == str(user.id)
    assert details(login)["method"] == "oidc" and details(login)["subject"] == "sub-officer1"
    assert details(login)["bound_now"] is True
    (bound,) = events(oidc_runtime, "user.identity_bound")
    assert bound.object_id == str(user.id)
    assert len(events(oidc_runtime, "session.created")) == 1

    # Signing in again checks the binding, and binds nothing new.
    app.cookies.clear()
    again = come_back(app, to_idp_and_back(app, "sub-officer1"))
    assert again.status_code == 303
    assert details(events(oidc_runtime, "session.login")[-1])["bound_now"] is False
    assert len(events(oidc_runtime, "user.identity_bound")) == 1


def test_unmapped_user_is_refused(app: TestClient, oidc_runtime: Runtime) -> None:
    back = come_back(app, to_idp_and_back(app, "sub-nobody"))
    assert back.status_code == 403
    assert "has no Evidence Locker account" in back.text and "nobody" in back.text
    assert SESSION_COOKIE not in app.cookies
    (failed,) = oidc_failures(oidc_runtime)
    assert failed.reason == "unknown-user" and failed.object_id is None
    assert details(failed)["claim"] == "preferred_username"
    assert details(failed)["claimed"] == "nobody"
    assert events(oidc_runtime, "session.login") == []
    with transaction(oidc_runtime.sessions) as s:
        assert s.scalars(select(UserIdentity)).all() == []


def test_deactivated_user_is_refused(app: TestClient, oidc_runtime: Runtime) -> None:
    with transaction(oidc_runtime.sessions) as s:
        user = user_by_username(s, "officer2")
        assert user is not None
        deactivate_user(s, clock=oidc_runtime.clock, actor=TEST_ACTOR, user=user)
        user_id = user.id
    back = come_back(app, to_idp_and_back(app, "sub-officer2"))
    assert back.status_code == 403 and "is deactivated" in back.text
    assert SESSION_COOKIE not in app.cookies
    (failed,) = oidc_failures(oidc_runtime)
    assert failed.reason == "inactive" and failed.object_id == str(user_id)
    with transaction(oidc_runtime.sessions) as s:
        assert s.scalars(select(UserIdentity)).all() == []  # nothing bound on a refusal


def test_locked_out_user_is_refused(app: TestClient, oidc_runtime: Runtime) -> None:
    with transaction(oidc_runtime.sessions) as s:
        for _ in range(5):
            assert authenticate(s, clock=oidc_runtime.clock, passwords=Passwords(1, 1024),
                                username="sergeant1", password="wrong-password-123", ip=None,
                                user_agent=None) is None
    back = come_back(app, to_idp_and_back(app, "sub-sergeant"))
    assert back.status_code == 403 and "locked" in back.text
    (failed,) = oidc_failures(oidc_runtime)
    assert failed.reason == "locked-out"


def test_state_mismatch_and_replays_are_refused(app: TestClient, oidc_runtime: Runtime) -> None:
    callback = to_idp_and_back(app, "sub-standards")
    state_cookie = app.cookies.get(STATE_COOKIE, path="/login/oidc")
    assert state_cookie

    def put_back(value: str) -> None:
        app.cookies.set(STATE_COOKIE, value, domain="testserver.local", path="/login/oidc")

    parts = urlsplit(callback)
    query = parse_qs(parts.query)
    forged = urlencode({"code": query["code"][0], "state": "not-the-state",
                        "iss": query["iss"][0]})
    assert come_back(app, f"{parts.path}?{forged}").status_code == 400
    # A refusal ends the flow: the state cookie is gone.
    assert app.cookies.get(STATE_COOKIE, path="/login/oidc") is None
    # The same callback from another browser (no state cookie) is refused: no login CSRF.
    with TestClient(app.app) as elsewhere:
        assert come_back(elsewhere, callback).status_code == 400
    # A tampered state cookie is refused too.
    put_back(state_cookie[:-4] + ("AAAA" if not state_cookie.endswith("AAAA") else "BBBB"))
    assert come_back(app, callback).status_code == 400

    put_back(state_cookie)
    assert come_back(app, callback).status_code == 303  # the real one works, once
    # Replayed: the state was used up with its cookie...
    replay = come_back(app, callback)
    assert replay.status_code == 400 and "Start again" in replay.text
    # ...and even with the old state cookie put back, the IdP refuses a code used before.
    put_back(state_cookie)
    assert come_back(app, callback).status_code == 400

    reasons = [e.reason for e in oidc_failures(oidc_runtime)]
    assert reasons == ["state-mismatch"] * 4 + ["token-refused"]
    assert details(oidc_failures(oidc_runtime)[-1])["detail"].startswith("invalid_grant")
    assert len(events(oidc_runtime, "session.login")) == 1


def test_an_expired_state_is_refused(app: TestClient, oidc_runtime: Runtime) -> None:
    callback = to_idp_and_back(app, "sub-standards")
    oidc_runtime.clock.advance(dt.timedelta(minutes=11))  # type: ignore[attr-defined]
    assert come_back(app, callback).status_code == 400
    assert [e.reason for e in oidc_failures(oidc_runtime)] == ["state-mismatch"]


def test_a_response_naming_another_issuer_is_refused(app: TestClient,
                                                     oidc_runtime: Runtime) -> None:
    """RFC 9207: the IdP names itself in the response; a code said to come from elsewhere (a
    mix-up attack) is not redeemed, and neither is one with the name left out."""
    callback = to_idp_and_back(app, "sub-standards")
    parts = urlsplit(callback)
    query = parse_qs(parts.query)
    assert query["iss"] == [app.app.state.runtime.settings.oidc_issuer]
    state_cookie = app.cookies.get(STATE_COOKIE, path="/login/oidc")
    assert state_cookie
    for iss in ({"iss": "https://evil.example"}, {}):
        app.cookies.set(STATE_COOKIE, state_cookie, domain="testserver.local", path="/login/oidc")
        other = urlencode({"code": query["code"][0], "state": query["state"][0], **iss})
        back = come_back(app, f"{parts.path}?{other}")
        assert back.status_code == 400 and "did not come from Test IdP" in back.text
    assert [e.reason for e in oidc_failures(oidc_runtime)] == ["issuer-mismatch"] * 2
    assert events(oidc_runtime, "session.login") == []


def test_an_idp_error_is_refused(app: TestClient, oidc_runtime: Runtime) -> None:
    start = app.get("/login/oidc", follow_redirects=False)
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    issuer = app.app.state.runtime.settings.oidc_issuer
    back = app.get("/login/oidc/callback", params={"error": "access_denied", "state": state,
                                                   "iss": issuer}, follow_redirects=False)
    assert back.status_code == 401 and "did not sign you in" in back.text
    (failed,) = oidc_failures(oidc_runtime)
    assert failed.reason == "idp-error" and "access_denied" in details(failed)["detail"]


def test_another_idp_account_claiming_a_bound_username_is_refused(
        app: TestClient, oidc_runtime: Runtime, deployment: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert come_back(app, to_idp_and_back(app, "sub-officer1")).status_code == 303
    app.cookies.clear()
    back = come_back(app, to_idp_and_back(app, "sub-impostor"))
    assert back.status_code == 403 and "linked to a different Test IdP account" in back.text
    assert SESSION_COOKIE not in app.cookies
    (failed,) = oidc_failures(oidc_runtime)
    assert failed.reason == "subject-mismatch" and details(failed)["subject"] == "sub-impostor"
    with transaction(oidc_runtime.sessions) as s:
        assert [i.subject for i in s.scalars(select(UserIdentity))] == ["sub-officer1"]

    # An administrator decides the new IdP account is officer1's now (the old one was replaced).
    for key, value in deployment.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LOCKER_DATA_DIR", str(oidc_runtime.settings.data_dir))
    done = CliRunner().invoke(users_app, ["unbind-idp", "officer1"])
    assert done.exit_code == 0 and "unbound 1 identity provider account(s)" in done.output
    (unbound,) = events(oidc_runtime, "user.identity_unbound")
    assert details(unbound)["subject"] == "sub-officer1"
    app.cookies.clear()
    assert come_back(app, to_idp_and_back(app, "sub-impostor")).status_code == 303
    with transaction(oidc_runtime.sessions) as s:
        assert [i.subject for i in s.scalars(select(UserIdentity))] == ["sub-impostor"]


def test_a_rename_at_the_idp_does_not_take_over_another_account(
        app: TestClient, oidc_runtime: Runtime, idp: Idp) -> None:
    assert come_back(app, to_idp_and_back(app, "sub-renamed")).status_code == 303  # evidence1
    app.cookies.clear()
    idp.rename("sub-renamed", "standards")
    try:
        back = come_back(app, to_idp_and_back(app, "sub-renamed"))
    finally:
        idp.rename("sub-renamed", "evidence1")
    assert back.status_code == 403 and "linked to a different Evidence Locker account" in back.text
    assert SESSION_COOKIE not in app.cookies
    (failed,) = oidc_failures(oidc_runtime)
    assert failed.reason == "claim-changed"
    assert [details(e)["username"] for e in events(oidc_runtime, "session.login")] == ["evidence1"]


def test_a_missing_claim_is_refused(app: TestClient, oidc_runtime: Runtime) -> None:
    back = come_back(app, to_idp_and_back(app, "sub-noclaim"))
    assert back.status_code == 403 and "no preferred_username claim" in back.text
    assert [e.reason for e in oidc_failures(oidc_runtime)] == ["missing-claim"]


def test_matching_by_collar_number(tmp_path: Path, clock: Any, deployment: Any,
                                   idp: Idp) -> None:
    settings = make_settings(tmp_path / "var", **deployment.overrides, **oidc_settings(
        idp, oidc_claim="collar_number", oidc_claim_matches="collar"))
    upgrade(settings.resolved_database_url)
    rt = build_runtime(settings, clock=clock)
    try:
        make_force(rt)
        with TestClient(create_app(rt, background=False)) as app:
            assert come_back(app, to_idp_and_back(app, "sub-collar")).status_code == 303
            assert "officer1 (officer)" in app.get("/").text
    finally:
        rt.close()


def test_an_unreachable_or_mismatched_idp_is_reported(tmp_path: Path, clock: Any,
                                                      deployment: Any, idp: Idp) -> None:
    port = urlsplit(idp.issuer).port
    # Nothing listens on the first; the second reaches the provider under another name, which
    # its discovery document does not give as the issuer (so its keys are not trusted).
    for n, issuer in enumerate(("http://127.0.0.1:9", f"http://localhost:{port}")):
        with serving(tmp_path / f"var{n}", clock, **deployment.overrides,
                     **oidc_settings(idp, oidc_issuer=issuer)) as (_, app):
            start = app.get("/login/oidc", follow_redirects=False)
            assert start.status_code == 502 and "cannot be reached" in start.text
            assert app.cookies.get(STATE_COOKIE, path="/login/oidc") is None


def test_not_configured(client: TestClient) -> None:
    assert "Sign in with" not in client.get("/login").text
    assert client.get("/login/oidc", follow_redirects=False).status_code == 404
    assert client.get("/login/oidc/callback", follow_redirects=False).status_code == 404


def test_issuer_must_be_https_beyond_loopback(tmp_path: Path) -> None:
    for bad in ("http://idp.example.org", "ftp://idp.example.org", "idp.example.org"):
        with pytest.raises(ValidationError):
            Settings(data_dir=tmp_path, oidc_issuer=bad)
    for good in ("https://idp.example.org/realms/force", "http://127.0.0.1:9000",
                 "http://localhost:9000", "http://[::1]:9000"):
        assert Settings(data_dir=tmp_path, oidc_issuer=good).oidc_issuer == good
