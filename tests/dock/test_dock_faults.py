"""Faults the dock must survive, each with real processes: `locker serve` and `locker dock` are
SIGKILLed, cameras pulled and docked elsewhere, the server unreachable or full. Afterwards: one
recording, each file stored once and byte-identical, every file deleted from the camera only
after it was confirmed.

"Mid-upload" is made certain, not timed: uploads are slowed with --max-mbps and each test waits
until the server acknowledges part of the clip (HEAD offset > 0) before it strikes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from dock_helpers import DockProcess, MiB, footage, make_camera, wait_for
from sqlalchemy import create_engine, text

from cat_helpers import grant_for
from live_server import LiveServer, free_port, locker

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("live-server")]

CLIP = 3 * MiB
# 8 Mbit/s: the 3 MiB clip takes about three seconds; PATCHes of 256 KiB are acknowledged as
# they go. Retries are quick so that outages in tests last a moment, not minutes.
SLOW = ("--max-mbps", "8", "--chunk-mib", "0.25", "--retry-base", "0.05", "--retry-cap", "0.3",
        "--retry-budget", "30", "--outage-wait", "0.5", "--auth-wait", "1", "--once")


@dataclass
class Site:
    server: LiveServer
    dock_a: str
    dock_b: str
    viewer: str
    database_url: str

    def sql(self, query: str, **params: object) -> list[tuple[object, ...]]:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(query), params)]
        finally:
            engine.dispose()


@pytest.fixture
def site(tmp_path: Path, deployment) -> Iterator[Site]:
    srv = LiveServer(tmp_path / "var", free_port(), env=deployment.env)
    srv.data_dir.mkdir(parents=True)
    assert locker("db", "upgrade", env=srv.env).returncode == 0
    tokens = []
    for name in ("dock-a", "dock-b"):
        made = locker("docks", "register", name, env=srv.env)
        assert made.returncode == 0, made.stderr
        tokens.append(made.stdout.strip().splitlines()[-1])
    made = locker("users", "create", "standards", "--role", "professional-standards", env=srv.env)
    assert made.returncode == 0, made.stderr
    user = locker("tokens", "create", "--user", "standards", env=srv.env)
    assert user.returncode == 0, user.stderr
    db = srv.env.get("LOCKER_DATABASE_URL") or f"sqlite:///{srv.data_dir / 'locker.db'}"
    srv.start()
    try:
        yield Site(srv, tokens[0], tokens[1], user.stdout.strip().splitlines()[-1], db)
    finally:
        srv.stop()


def _dock(site: Site, tmp_path: Path, name: str, token: str, *extra: str) -> DockProcess:
    watch = tmp_path / name / "bays"
    watch.mkdir(parents=True, exist_ok=True)
    return DockProcess(watch=watch, server=site.server.url, token=token,
                       state=tmp_path / name / "state", env=site.server.env, extra=extra)


def _clip_url(dock: DockProcess) -> str | None:
    for row in dock.rows():
        if row["kind"] == "clip" and row["upload_url"]:
            return str(row["upload_url"])
    return None


def _offset(url: str, token: str) -> int:
    try:
        r = httpx.head(url, headers={"Authorization": f"Bearer {token}",
                                     "Tus-Resumable": "1.0.0"}, timeout=5)
    except httpx.HTTPError:
        return -1
    return int(r.headers["upload-offset"]) if r.status_code == 200 else -1


def _mid_upload(dock: DockProcess, token: str) -> str:
    """Wait until the server holds part, not all, of the clip; return its upload URL."""
    url = wait_for("the clip's upload URL in the journal", lambda: _clip_url(dock))
    assert isinstance(url, str)
    wait_for("part of the clip acknowledged", lambda: 0 < _offset(url, token) < CLIP)
    return url


def _check_stored_once(site: Site, files: dict[str, bytes], recording: str = "R1") -> str:
    """One complete recording; each file stored once and byte-identical; returns its id."""
    listed = httpx.get(f"{site.server.url}/api/v1/recordings", params={"device": "CAM-1"},
                       headers={"Authorization": f"Bearer {site.viewer}"}).json()["items"]
    assert len(listed) == 1, listed
    rid = listed[0]["id"]
    assert listed[0]["state"] == "complete"
    grant = grant_for(httpx, site.viewer, rid, base=site.server.url)
    media = httpx.get(f"{site.server.url}/api/v1/recordings/{rid}/media", params={"grant": grant},
                      headers={"Authorization": f"Bearer {site.viewer}"}, timeout=30)
    assert media.status_code == 200
    assert media.content == files[f"{recording}_001.mp4"]
    stored = site.sql("SELECT f.sha256 FROM recording_files f JOIN recordings r "
                      "ON r.id = f.recording_id WHERE r.camera_recording_id = :r", r=recording)
    assert sorted(s for (s,) in stored) == sorted(
        hashlib.sha256(d).hexdigest() for d in files.values())
    blobs = site.sql("SELECT count(*) FROM blobs")
    assert blobs[0][0] == len(files)
    return str(rid)


def _uploads_created(site: Site, data: bytes) -> list[str]:
    """Who started an upload of these bytes, from the audit log."""
    sha = hashlib.sha256(data).hexdigest()
    rows = site.sql("SELECT actor_name, details FROM audit_events WHERE action='upload.created'")
    return [str(name).removeprefix("dock:") for name, details in rows
            if json.loads(str(details))["sha256"] == sha]


def test_server_killed_mid_upload_and_restarted(site: Site, tmp_path: Path) -> None:
    dock = _dock(site, tmp_path, "a", site.dock_a, *SLOW)
    cam = dock.watch / "cam"
    files = make_camera(cam, clip_sizes=(CLIP,))
    dock.start()
    url = _mid_upload(dock, site.dock_a)

    site.server.kill()  # SIGKILL: no shutdown, no flush
    site.server.start()

    assert dock.wait() == 0, dock.output()[-3000:]
    assert footage(cam) == set()
    _check_stored_once(site, files)
    assert _clip_url(dock) == url  # resumed, not started again
    assert _uploads_created(site, files["R1_001.mp4"]) == ["dock-a"]


def test_dock_killed_mid_upload_and_restarted(site: Site, tmp_path: Path) -> None:
    dock = _dock(site, tmp_path, "a", site.dock_a, *SLOW)
    cam = dock.watch / "cam"
    files = make_camera(cam, clip_sizes=(CLIP,))
    dock.start()
    url = _mid_upload(dock, site.dock_a)

    dock.kill()
    assert "R1_001.mp4" in footage(cam)  # unconfirmed: still on the camera
    dock.start()

    assert dock.wait() == 0, dock.output()[-3000:]
    assert footage(cam) == set()
    _check_stored_once(site, files)
    assert _clip_url(dock) == url
    assert _uploads_created(site, files["R1_001.mp4"]) == ["dock-a"]


def test_camera_pulled_mid_upload_then_docked_at_another_dock(site: Site,
                                                              tmp_path: Path) -> None:
    dock_a = _dock(site, tmp_path, "a", site.dock_a, *SLOW)
    cam = dock_a.watch / "cam"
    files = make_camera(cam, clip_sizes=(CLIP,))
    dock_a.start()
    _mid_upload(dock_a, site.dock_a)

    pocket = tmp_path / "pocket"
    cam.rename(pocket)  # the officer takes the camera out of its bay
    assert dock_a.wait() == 0, dock_a.output()[-3000:]
    assert "pulled" in dock_a.output()
    assert "R1_001.mp4" in footage(pocket)  # the unconfirmed clip stays on the camera
    for name in footage(pocket):
        assert (pocket / name).read_bytes() == files[name]

    dock_b = _dock(site, tmp_path, "b", site.dock_b, *SLOW)  # its own journal and token
    pocket.rename(dock_b.watch / "cam")
    dock_b.start()
    assert dock_b.wait() == 0, dock_b.output()[-3000:]
    assert footage(dock_b.watch / "cam") == set()
    _check_stored_once(site, files)
    # Dock A's half upload is left to expire; dock B started its own and finished it.
    assert _uploads_created(site, files["R1_001.mp4"]) == ["dock-a", "dock-b"]


def test_network_down_longer_than_the_retry_budget(site: Site, tmp_path: Path) -> None:
    dock = _dock(site, tmp_path, "a", site.dock_a, "--max-mbps", "8", "--chunk-mib", "0.25",
                 "--retry-base", "0.01", "--retry-cap", "0.05", "--retry-budget", "2",
                 "--outage-wait", "0.2", "--once")
    cam = dock.watch / "cam"
    files = make_camera(cam, clip_sizes=(CLIP,))
    dock.start()
    url = _mid_upload(dock, site.dock_a)

    site.server.kill()  # connections refused from now on
    # The budget is spent and the agent waits, more than once: it has not given up.
    wait_for("two outage waits", lambda: dock.output().count("retry budget exhausted") >= 2)
    assert dock.proc is not None and dock.proc.poll() is None
    assert "R1_001.mp4" in footage(cam)
    site.server.start()

    assert dock.wait() == 0, dock.output()[-3000:]
    assert footage(cam) == set()
    _check_stored_once(site, files)
    assert _clip_url(dock) == url


@pytest.mark.embedded_only  # an S3 store reports no free space: the floor is a local-disk guard
def test_server_storage_full_keeps_the_footage_until_there_is_room(site: Site,
                                                                   tmp_path: Path) -> None:
    site.server.stop()
    site.server.env["LOCKER_MIN_FREE_BYTES"] = str(10**18)  # far more than any disk has
    site.server.start()
    dock = _dock(site, tmp_path, "a", site.dock_a, "--retry-base", "0.01", "--retry-cap",
                 "0.05", "--retry-budget", "2", "--outage-wait", "0.2", "--once")
    cam = dock.watch / "cam"
    files = make_camera(cam, clip_sizes=(256 * 1024,))
    dock.start()
    wait_for("507 waited out", lambda: "server storage full (507); retry budget exhausted"
             in dock.output())
    assert footage(cam) == set(files)  # nothing deleted
    assert dock.proc is not None and dock.proc.poll() is None

    site.server.stop()
    site.server.env["LOCKER_MIN_FREE_BYTES"] = "0"
    site.server.start()
    assert dock.wait() == 0, dock.output()[-3000:]
    assert footage(cam) == set()
    _check_stored_once(site, files)


def test_two_docks_upload_the_same_recording(site: Site, tmp_path: Path) -> None:
    """A camera's files copied at two docks at once (as after a camera moved between docks
    mid-upload): one recording, each file stored once, both docks' uploads audited."""
    fast = ("--retry-base", "0.05", "--retry-cap", "0.3", "--once")
    dock_a = _dock(site, tmp_path, "a", site.dock_a, *fast)
    dock_b = _dock(site, tmp_path, "b", site.dock_b, *fast)
    files = make_camera(dock_a.watch / "cam", clip_sizes=(MiB, 1000), seed=b"same")
    assert make_camera(dock_b.watch / "cam", clip_sizes=(MiB, 1000), seed=b"same") == files
    for name in files:  # byte-identical copies, and the same modification times
        st = (dock_a.watch / "cam" / name).stat()
        os.utime(dock_b.watch / "cam" / name, ns=(st.st_atime_ns, st.st_mtime_ns))
    dock_a.start()
    dock_b.start()
    assert dock_a.wait() == 0, dock_a.output()[-3000:]
    assert dock_b.wait() == 0, dock_b.output()[-3000:]
    assert footage(dock_a.watch / "cam") == footage(dock_b.watch / "cam") == set()
    rid = _check_stored_once(site, files)
    for data in files.values():
        assert sorted(_uploads_created(site, data)) == ["dock-a", "dock-b"]
    # Each file: one upload stored, the other recognised as a duplicate; both in the log.
    sha_clip = hashlib.sha256(files["R1_001.mp4"]).hexdigest()
    outcomes = site.sql("SELECT state FROM uploads WHERE declared_sha256 = :s", s=sha_clip)
    assert sorted(s for (s,) in outcomes) == ["completed", "duplicate"]
    dup = site.sql("SELECT count(*) FROM audit_events WHERE action = 'upload.duplicate'")
    assert dup[0][0] == len(files)
    assert rid
