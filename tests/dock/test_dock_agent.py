"""The dock agent in-process: against the real app, and against scripted servers for the policy
(back-off, outages, refused tokens, lost uploads), with fakes for time."""

from __future__ import annotations

import datetime as dt
import json
import random
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from dock_helpers import footage, make_camera
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from evidence_locker.cli import app
from evidence_locker.dock.agent import (
    DockAgent,
    DockConfig,
    InsecureServer,
    check_server_url,
    make_http,
)
from evidence_locker.dock.camera import (
    clock_drift,
    read_camera_clock,
    read_device_status,
    scan_camera,
)
from evidence_locker.dock.journal import Journal
from evidence_locker.dock.pacing import RetryPolicy, TokenBucket, retry_after_seconds
from evidence_locker.dock.transfer import Confirmed, Hooks, Pulled, Refused, Transfer, headers

FAST = RetryPolicy(base=0.001, cap=0.01, budget=3, outage_wait=0.02, auth_wait=0.03)


# --- the real app, in-process ------------------------------------------------------------------


class Heartbeats(httpx.BaseTransport):
    """Routes heartbeats to a recorder (404 first, as before the server end exists, then 200)
    and everything else to the app."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.bodies: list[dict[str, object]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/docks/heartbeat":
            self.bodies.append(json.loads(request.read()))
            if len(self.bodies) == 1:
                return httpx.Response(404, json={"title": "Not Found"})
            return httpx.Response(200, json={"dock": "dock-1",
                                             "received_at": "2026-11-21T10:00:00+00:00"})
        return self.inner.handle_request(request)


def _agent(client: TestClient, token: str, watch: Path, journal: Journal,
           transport: httpx.BaseTransport | None = None, **kw: object) -> DockAgent:
    http = httpx.Client(transport=transport or client._transport, base_url=client.base_url,
                        headers=headers(token))
    config = DockConfig(watch=watch, server=str(client.base_url), bays=1, once=True,
                        poll_interval=0.01, heartbeat_interval=3600, policy=FAST)
    return DockAgent(config, http=http, journal=journal, **kw)  # type: ignore[arg-type]


def test_a_docked_camera_uploads_with_its_drift_and_is_emptied(client: TestClient, force,
                                                               tmp_path: Path) -> None:
    cam = tmp_path / "watch" / "bay-cam"
    make_camera(cam, serial="CAM-1", clip_sizes=(200_000, 5_000), clock_offset=90.0)
    journal = Journal(tmp_path / "journal.sqlite3")
    transport = Heartbeats(client._transport)
    beats: list[dict[str, object]] = []
    on_camera: list[int] = []  # bytes still on the camera when that heartbeat was sent
    agent: DockAgent

    def on_confirmed(f: object, outcome: str) -> None:
        if not beats:  # mid-docking: the bay knows its camera
            agent.send_heartbeat()
            beats.append(transport.bodies[-1])
            on_camera.extend(p.stat().st_size for p in cam.iterdir() if p.name in footage(cam))

    agent = _agent(client, force.dock_token, tmp_path / "watch", journal, transport,
                   on_confirmed=on_confirmed)
    summary = agent.run()
    assert (summary.confirmed, summary.refused, summary.left_behind) == (4, 0, 0)
    assert footage(cam) == set()  # everything confirmed, so everything deleted
    assert {e.state for e in journal.entries()} == {"deleted"}
    assert all(e.upload_url for e in journal.entries())

    listed = client.get("/api/v1/recordings", params={"device": "CAM-1"},
                        headers={"Authorization": f"Bearer {force.tokens['standards']}"}).json()
    assert len(listed["items"]) == 1
    rid = listed["items"][0]["id"]
    body = client.get(f"/api/v1/recordings/{rid}",
                      headers={"Authorization": f"Bearer {force.tokens['standards']}"}).json()
    assert body["state"] == "complete"
    assert body["clock_drift_seconds"] == pytest.approx(90.0, abs=2.0)

    # The first heartbeat found no endpoint (404) and changed nothing; the one sent while the
    # camera was docked carries its health, in the fixed contract's shape.
    assert transport.bodies[0]["cameras"] == [] or transport.bodies[0]["bays"] == 1
    beat = beats[0]
    assert set(beat) == {"agent_version", "bays", "sent_at", "cameras"}
    assert dt.datetime.fromisoformat(str(beat["sent_at"])).utcoffset() is not None
    (camera,) = beat["cameras"]  # type: ignore[misc]
    assert camera["bay"] == 1 and camera["serial"] == "CAM-1"
    assert camera["model"] == "EL-SIM-1" and camera["firmware"] == "1.4.2"
    assert camera["battery_percent"] == 77 and camera["free_bytes"] > 0
    assert camera["clock_drift_seconds"] == pytest.approx(90.0, abs=2.0)
    # ... and what was still on the camera then: one file (confirmed, deleted) fewer than four.
    assert camera["files_waiting"] == len(on_camera) == 3
    assert camera["bytes_waiting"] == sum(on_camera)
    journal.close()


class Refusing(httpx.BaseTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected: {request.method} {request.url}")


def test_a_file_confirmed_before_a_crash_is_deleted_without_uploading_again(
        tmp_path: Path) -> None:
    cam = tmp_path / "watch" / "cam"
    make_camera(cam, clip_sizes=(1000,))
    journal = Journal(tmp_path / "j.sqlite3")
    for f in scan_camera(cam).files:  # the dock died between "confirmed" and the unlink
        e = journal.record_hashed(serial=f.serial, recording=f.recording, kind=f.kind,
                                  index=f.index, path=f.path, size=f.size, mtime_ns=f.mtime_ns,
                                  sha256="0" * 64)
        journal.set_url(e.id, "http://127.0.0.1:1/api/v1/uploads/x")
        journal.confirm(e.id, "stored")
    http = httpx.Client(transport=Refusing())
    config = DockConfig(watch=tmp_path / "watch", server="http://127.0.0.1:1", bays=2, once=True,
                        poll_interval=0.01, heartbeat_interval=3600, policy=FAST)
    agent = DockAgent(config, http=http, journal=journal)
    agent.send_heartbeat = lambda: True  # type: ignore[method-assign]
    summary = agent.run()
    assert footage(cam) == set()
    assert summary.confirmed == 0 and {e.state for e in journal.entries()} == {"deleted"}


def test_the_journal_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    j = Journal(path)
    e = j.record_hashed(serial="C", recording="R", kind="clip", index=1, path=Path("/x/a.mp4"),
                        size=10, mtime_ns=5, sha256="a" * 64)
    j.set_url(e.id, "https://locker/api/v1/uploads/abc")
    j.close()
    j = Journal(path)
    found = j.find(serial="C", path=Path("/x/a.mp4"), size=10, mtime_ns=5)
    assert found is not None and found.state == "uploading"
    assert found.upload_url == "https://locker/api/v1/uploads/abc"
    # The same name with other contents (size or time changed) is another file.
    assert j.find(serial="C", path=Path("/x/a.mp4"), size=11, mtime_ns=5) is None
    assert j.counts() == {"uploading": 1}
    j.close()


# --- the policy against a scripted tus server --------------------------------------------------


class ScriptedTus:
    """A tiny tus server in memory; `script` forces answers (status, headers) in order."""

    def __init__(self, script: list[tuple[str, int, dict[str, str]]] | None = None) -> None:
        self.script = list(script or [])
        self.uploads: dict[str, bytearray] = {}
        self.length: dict[str, int] = {}
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.method)
        if self.script and self.script[0][0] == request.method:
            _, status, hdrs = self.script.pop(0)
            if status == 0:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(status, headers=hdrs)
        if request.method == "POST":
            uid = f"u{len(self.uploads)}"
            self.uploads[uid] = bytearray()
            self.length[uid] = int(request.headers["upload-length"])
            return httpx.Response(201, headers={"Location": f"/api/v1/uploads/{uid}"})
        uid = request.url.path.rsplit("/", 1)[-1]
        if uid not in self.uploads:
            return httpx.Response(404)
        if request.method == "HEAD":
            return httpx.Response(200, headers={"Upload-Offset": str(len(self.uploads[uid])),
                                                "Upload-Length": str(self.length[uid])})
        assert int(request.headers["upload-offset"]) == len(self.uploads[uid])
        self.uploads[uid] += request.read()
        return httpx.Response(204, headers={"Upload-Offset": str(len(self.uploads[uid])),
                                            "Locker-Outcome": "stored"})


def _transfer(server: ScriptedTus, waits: list[float], *, docked: bool = True,
              urls: list[str | None] | None = None) -> Transfer:
    hooks = Hooks(docked=lambda: docked, stopping=lambda: False, wait=waits.append,
                  on_url=(urls if urls is not None else []).append, on_sent=lambda _n: None,
                  on_state=lambda _t: None)
    http = httpx.Client(transport=httpx.MockTransport(server), base_url="http://127.0.0.1:1")
    return Transfer(http, "http://127.0.0.1:1/api/v1/uploads/", policy=FAST, chunk_size=1000,
                    bucket=None, hooks=hooks)


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    p = tmp_path / "c.mp4"
    p.write_bytes(bytes(range(256)) * 10)
    return p


def test_503_retry_after_is_honoured_and_507_outlasts_the_budget(a_file: Path) -> None:
    server = ScriptedTus([("POST", 503, {"Retry-After": "7"})] +
                         [("POST", 507, {})] * 5 + [("PATCH", 0, {})])
    waits: list[float] = []
    result = _transfer(server, waits).run(a_file, length=2560, metadata={}, url=None)
    assert isinstance(result, Confirmed) and result.outcome == "stored"
    assert waits[0] >= 7  # Retry-After, not a shorter back-off
    # Three quick retries (the budget), then one outage wait, then quick again: never give up.
    assert FAST.outage_wait in waits[1:]
    assert bytes(server.uploads["u0"]) == a_file.read_bytes()


def test_a_refused_token_waits_slowly_and_keeps_going(a_file: Path) -> None:
    server = ScriptedTus([("POST", 401, {}), ("POST", 403, {})])
    waits: list[float] = []
    result = _transfer(server, waits).run(a_file, length=2560, metadata={}, url=None)
    assert isinstance(result, Confirmed)
    assert waits[:2] == [FAST.auth_wait, FAST.auth_wait]


def test_an_upload_the_server_lost_starts_again(a_file: Path) -> None:
    server = ScriptedTus()
    urls: list[str | None] = []
    result = _transfer(server, [], urls=urls).run(
        a_file, length=2560, metadata={}, url="http://127.0.0.1:1/api/v1/uploads/expired")
    assert isinstance(result, Confirmed)
    assert urls == [None, "http://127.0.0.1:1/api/v1/uploads/u0"]  # the journal is told both


def test_a_known_upload_resumes_from_the_servers_offset(a_file: Path) -> None:
    server = ScriptedTus()
    server.uploads["u7"] = bytearray(a_file.read_bytes()[:1500])
    server.length["u7"] = 2560
    result = _transfer(server, []).run(a_file, length=2560, metadata={},
                                       url="http://127.0.0.1:1/api/v1/uploads/u7")
    assert isinstance(result, Confirmed)
    # No new upload, only the missing 1060 bytes (PATCHes of at most 1000).
    assert server.requests == ["HEAD", "PATCH", "PATCH"]
    assert bytes(server.uploads["u7"]) == a_file.read_bytes()


def test_a_refused_file_and_a_pulled_camera_are_outcomes(a_file: Path) -> None:
    result = _transfer(ScriptedTus([("POST", 400, {})]), []).run(
        a_file, length=2560, metadata={}, url=None)
    assert isinstance(result, Refused) and result.status == 400
    server = ScriptedTus()
    assert isinstance(_transfer(server, [], docked=False).run(
        a_file, length=2560, metadata={}, url=None), Pulled)
    assert server.requests == []


# --- pacing, clocks, TLS -----------------------------------------------------------------------


def test_the_bandwidth_cap_holds_over_many_takes() -> None:
    now = [0.0]
    bucket = TokenBucket(100_000, burst=10_000, monotonic=lambda: now[0],
                         sleep=lambda s: now.__setitem__(0, now[0] + s))
    for _ in range(100):
        bucket.take(10_000)
    # 1 MB at 100 kB/s, less the initial burst.
    assert now[0] == pytest.approx((1_000_000 - 10_000) / 100_000, rel=1e-6)


def test_full_jitter_stays_within_its_bound() -> None:
    policy = RetryPolicy(base=0.5, cap=30)
    rng = random.Random(1)
    for attempt in range(12):
        bound = min(30, 0.5 * 2**attempt)
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= bound for d in delays)
        assert max(delays) > bound / 2  # spread over the range, not pinned
    assert retry_after_seconds("12") == 12
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None


def test_files_no_sidecar_explains_are_uploaded_kept_and_marked(client: TestClient, force,
                                                                tmp_path: Path) -> None:
    """A clip whose sidecar was never written and a sidecar that does not parse are footage
    too: they reach the server as recordings of their own and only then leave the camera."""
    cam = tmp_path / "watch" / "bay-cam"
    make_camera(cam, serial="CAM-1", clip_sizes=(5_000,))
    (cam / "orphan.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"o" * 3000)
    (cam / "garbled.json").write_text('{"recording_id": ')
    summary = _agent(client, force.dock_token, tmp_path / "watch",
                     Journal(tmp_path / "journal.sqlite3")).run()
    assert (summary.confirmed, summary.refused, summary.left_behind) == (5, 0, 0)
    assert footage(cam) == set()
    auth = {"Authorization": f"Bearer {force.tokens['standards']}"}
    items = client.get("/api/v1/recordings", params={"device": "CAM-1"}, headers=auth).json()
    by_id = {i["camera_recording_id"]: i for i in items["items"]}
    assert set(by_id) >= {"unexplained-orphan.mp4", "unexplained-garbled.json"}
    orphan = client.get(f"/api/v1/recordings/{by_id['unexplained-orphan.mp4']['id']}",
                        headers=auth).json()
    assert orphan["state"] == "incomplete"  # no sidecar: marked, and kept
    assert [f["filename"] for f in orphan["files"]] == ["orphan.mp4"]
    garbled = client.get(f"/api/v1/recordings/{by_id['unexplained-garbled.json']['id']}",
                         headers=auth).json()
    assert garbled["sidecar_state"] not in ("parsed", "missing"), garbled["sidecar_state"]


def test_the_camera_clock_is_read_against_the_dock(tmp_path: Path) -> None:
    make_camera(tmp_path, clock_offset=-3600.0)
    status = read_device_status(tmp_path)
    assert status is not None and status.serial == "CAM-1"
    camera_now = read_camera_clock(status, true_now=1_000_000.0)
    dock_now = dt.datetime.fromtimestamp(1_000_000.0 + 2.5, dt.UTC)  # the dock is 2.5 s ahead
    assert clock_drift(camera_now, dock_now) == -3602.5
    (tmp_path / "device.json").write_text("{not json")
    assert read_device_status(tmp_path) is None  # an old firmware: drift unknown, not guessed


def test_the_folder_is_read_in_upload_order(tmp_path: Path) -> None:
    make_camera(tmp_path, clip_sizes=(10, 20))
    (tmp_path / "stray <1>.mp4").write_bytes(b"x")
    (tmp_path / "broken.json").write_text("{not a sidecar")
    contents = scan_camera(tmp_path)
    assert [(f.kind, f.index) for f in contents.files] == [
        ("clip", 1), ("clip", 2), ("track", 1), ("sidecar", 1),
        ("sidecar", 1), ("clip", 1)]  # then what no sidecar explains: kept, never dropped
    assert [p.name for p in contents.unlisted] == ["stray <1>.mp4"]
    assert [p.name for p in contents.unreadable_sidecars] == ["broken.json"]
    assert [f.recording for f in contents.files[-2:]] == [
        "unexplained-broken.json", "unexplained-stray__1_.mp4"]
    assert len({f.serial for f in contents.files}) == 1


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://127.9.9.9", "http://[::1]:8000",
                                 "http://localhost:8000/", "https://locker.example.police.uk"])
def test_tls_or_loopback_is_accepted(url: str) -> None:
    assert check_server_url(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://locker.example.police.uk", "http://10.1.2.3:8000",
                                 "http://[2001:db8::1]/", "ftp://127.0.0.1/", "locker"])
def test_plain_http_beyond_this_machine_is_refused(url: str) -> None:
    with pytest.raises(InsecureServer):
        check_server_url(url)


def test_the_command_refuses_plain_http_with_a_clear_error(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("elk_x\n")
    r = CliRunner().invoke(app, ["dock", "--watch", str(tmp_path), "--server",
                                 "http://evidence.example.police.uk", "--token-file", str(token),
                                 "--journal", str(tmp_path / "j.sqlite3"), "--once"])
    assert r.exit_code == 2
    assert "refusing plain http://" in r.output and "https://" in r.output


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTPS server whose certificate only our own CA vouches for."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca_file = tmp_path / "force-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["content-length"]))
            body = json.dumps({"dock": "dock-1", "received_at": "2026-11-21T10:00:00+00:00"})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"https://localhost:{httpd.server_address[1]}", ca_file
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_tls_is_verified_against_the_forces_ca(tls_server: tuple[str, Path],
                                               tmp_path: Path) -> None:
    url, ca_file = tls_server
    config = DockConfig(watch=tmp_path, server=url, bays=1)
    trusted = DockAgent(config, http=make_http(url, "elk_x", bays=1, ca_file=ca_file),
                        journal=Journal(tmp_path / "a.sqlite3"))
    assert trusted.send_heartbeat() is True
    # Without the force's CA the same server is not trusted: nothing is sent to it.
    untrusted = DockAgent(config, http=make_http(url, "elk_x", bays=1),
                          journal=Journal(tmp_path / "b.sqlite3"))
    assert untrusted.send_heartbeat() is False


def test_stopping_sends_a_last_heartbeat_with_what_is_left(client: TestClient, force,
                                                           tmp_path: Path) -> None:
    """Stopped mid-docking, the agent's last heartbeat names the camera still in its bay and
    the files still on it, instead of leaving the register with the counts of a minute ago."""
    cam = tmp_path / "watch" / "bay-cam"
    make_camera(cam, serial="CAM-1", clip_sizes=(5_000, 5_000, 5_000))
    journal = Journal(tmp_path / "journal.sqlite3")
    transport = Heartbeats(client._transport)
    agent: DockAgent

    def on_confirmed(f: object, outcome: str) -> None:
        agent.stop()  # the service is stopped after the first confirmed file

    agent = _agent(client, force.dock_token, tmp_path / "watch", journal, transport,
                   on_confirmed=on_confirmed)
    summary = agent.run()
    assert summary.confirmed >= 1
    left = footage(cam)
    assert left  # stopped before the camera was empty
    last = transport.bodies[-1]
    (camera,) = last["cameras"]  # type: ignore[misc]
    assert camera["serial"] == "CAM-1"
    assert camera["files_waiting"] == len(left)
    assert camera["bytes_waiting"] == sum((cam / name).stat().st_size for name in left)
    journal.close()
