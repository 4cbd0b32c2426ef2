"""Fixtures for the browser tests: a real `locker serve` holding the demo force and one docked
simulated recording, and Debian's Chromium driven by Playwright (never `playwright install`)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest

from evidence_locker.accounts.service import Passwords, create_api_token, user_by_username
from evidence_locker.audit.service import Actor
from evidence_locker.clock import SystemClock
from evidence_locker.config import Settings
from evidence_locker.db import make_engine, make_session_factory, transaction
from evidence_locker.demo import seed

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
SERIAL = "BWV-0001"
COLLAR = "4521"  # PC Alex Morgan in the demo force
CLIP_SECONDS = 3.0
RESOLUTION = (320, 180)
# A deadline so that a broken server fails the run instead of hanging it; not a performance bound.
READY_DEADLINE_SECONDS = 120.0

T = TypeVar("T")


import live_server as root  # noqa: E402  (tests/ is on sys.path: tests/conftest.py)


def _log_tail(log: Path | None) -> str:
    """The end of the server's log without the access lines, which would bury any traceback."""
    if log is None or not log.exists():
        return ""
    lines = [line for line in log.read_text(errors="replace").splitlines()
             if not line.startswith("INFO:     127.0.0.1:")]
    return "\n".join(lines)[-6000:]


def wait_for(what: str, probe: Callable[[], T | None], *, log: Path | None = None,
             deadline_seconds: float = READY_DEADLINE_SECONDS) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` (and the server's log)
    only once a generous deadline has passed."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}\n--- server log ---\n{_log_tail(log)}")
        time.sleep(0.2)


@dataclass(frozen=True)
class Site:
    url: str
    db_path: Path
    server_log: Path
    passwords: dict[str, str]  # demo username -> password
    recording_id: str
    camera_recording_id: str
    camera_dir: Path  # what the simulated camera wrote, as docked
    clip: Path
    serial: str = SERIAL
    collar: str = COLLAR
    clip_seconds: float = CLIP_SECONDS
    width: int = RESOLUTION[0]
    height: int = RESOLUTION[1]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        # `make test` installs it (scripts/system-deps.sh): missing is a failure, never a skip.
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it")
    from playwright.sync_api import sync_playwright  # here: the other tests/web need no browser

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _seed(settings: Settings) -> tuple[dict[str, str], str, str]:
    """The demo force straight into the server's database (no CLI for units and officers yet):
    demo passwords, the demo dock's upload token, and an API token for `evidence` to poll with."""
    clock = SystemClock()
    engine = make_engine(settings.resolved_database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            accounts, dock_token = seed(session, clock=clock,
                                        passwords=Passwords.from_settings(settings),
                                        settings=settings)
            evidence = user_by_username(session, "evidence")
            assert evidence is not None
            api_token = create_api_token(session, clock=clock,
                                         actor=Actor(type="system", name="browser-test"),
                                         user=evidence, scopes={"api"}, name="browser-test")
    finally:
        engine.dispose()
    return {a.username: a.password for a in accounts}, dock_token, api_token


def _probed(srv: Any, api_token: str, camera_recording_id: str) -> dict[str, Any] | None:
    """The recording's detail once it is complete and every clip is probed with a poster."""
    auth = {"Authorization": f"Bearer {api_token}"}
    found = httpx.get(f"{srv.url}/api/v1/recordings", params={"device": SERIAL},
                      headers=auth, timeout=10)
    assert found.status_code == 200, found.text
    mine = [i for i in found.json()["items"] if i["camera_recording_id"] == camera_recording_id]
    if not mine or mine[0]["state"] != "complete":
        return None
    detail = httpx.get(f"{srv.url}/api/v1/recordings/{mine[0]['id']}", headers=auth, timeout=10)
    assert detail.status_code == 200, detail.text
    body: dict[str, Any] = detail.json()
    clips = [f for f in body["files"] if f["kind"] == "clip"]
    for f in clips:
        assert f["media_state"] != "unreadable", f"probe refused the clip: {f}"
    if clips and all(f["media_state"] == "ready" and f["has_poster"] for f in clips):
        return body
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from evidence_locker.dock.client import TusClient, upload_camera_folder
    from evidence_locker.simulate.camera import simulate_camera

    base = tmp_path_factory.mktemp("browser")
    srv = root.LiveServer(base / "var", root.free_port())
    srv.data_dir.mkdir(parents=True)
    upgraded = root.locker("db", "upgrade", env=srv.env)
    assert upgraded.returncode == 0, upgraded.stderr
    settings = Settings(data_dir=srv.data_dir, min_free_bytes=0,
                        argon2_time_cost=1, argon2_memory_cost=1024)
    passwords, dock_token, api_token = _seed(settings)

    camera_dir = base / "camera" / SERIAL
    made = simulate_camera(serial=SERIAL, officer=COLLAR, out=camera_dir, recordings=1,
                           seconds=CLIP_SECONDS, resolution=RESOLUTION,
                           start=dt.datetime.now(dt.UTC).replace(microsecond=0)
                           - dt.timedelta(minutes=10))
    assert len(made) == 1 and len(made[0].clips) == 1, made

    srv.start()
    try:
        with TusClient(srv.url, dock_token) as client:
            uploaded = upload_camera_folder(client, camera_dir, log_line=lambda _line: None)
        assert {u.outcome for u in uploaded} == {"stored"}, uploaded
        detail = wait_for("the docked recording to be complete and probed",
                          lambda: _probed(srv, api_token, made[0].recording_id), log=srv.log)
        yield Site(url=srv.url, db_path=settings.data_dir / "locker.db", server_log=srv.log,
                   passwords=passwords, recording_id=detail["id"],
                   camera_recording_id=made[0].recording_id, camera_dir=camera_dir,
                   clip=made[0].clips[0])
    finally:
        srv.stop()


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    """A fresh browser context (no cookies) per test, pointed at the server."""
    context = browser.new_context(base_url=site.url)
    context.set_default_timeout(20_000)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
