"""Stateless ingest: an upload started on one server process is finished on another, even after
the first was killed in the middle of a PATCH."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cat_helpers import grant_for
from live_server import LiveServer, free_port, locker
from tus_helpers import auth, b64

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("live-server")]
MiB = 1024 * 1024


@pytest.fixture
def nodes(tmp_path: Path, deployment) -> Iterator[tuple[LiveServer, LiveServer]]:
    data_dir = tmp_path / "var"  # shared by both on the embedded default; unused on scale-out
    a = LiveServer(data_dir, free_port(), env=deployment.env)
    b = LiveServer(data_dir, free_port(), env=deployment.env)
    data_dir.mkdir(parents=True)
    assert locker("db", "upgrade", env=a.env).returncode == 0
    a.start()
    b.start()
    yield a, b
    a.stop()
    b.stop()


def test_upload_started_on_one_node_finishes_on_another(nodes, tmp_path: Path) -> None:
    a, b = nodes
    dock = locker("docks", "register", "dock-x", env=a.env)
    assert dock.returncode == 0, dock.stderr
    token = dock.stdout.strip().splitlines()[-1]
    data = os.urandom(6 * MiB + 17)
    sha = hashlib.sha256(data).hexdigest()
    meta = ",".join(f"{k} {b64(v)}" for k, v in {
        "device": "CAM-N", "recording": "R-NODES", "kind": "clip", "index": "1",
        "filename": "n.mp4", "sha256": sha}.items())
    created = httpx.post(f"{a.url}/api/v1/uploads/", headers={
        **auth(token), "Upload-Length": str(len(data)), "Upload-Metadata": meta})
    assert created.status_code == 201
    path = httpx.URL(created.headers["location"]).path
    first = httpx.patch(f"{a.url}{path}", content=data[:2 * MiB], headers={
        **auth(token), "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})
    assert first.status_code == 204
    # A second PATCH is cut off on node A by killing it mid-body.
    sock = socket.create_connection(("127.0.0.1", a.port))
    sock.sendall((
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: {2 * MiB}\r\nContent-Length: {3 * MiB}\r\n\r\n").encode()
        + data[2 * MiB: 4 * MiB])
    time.sleep(0.5)
    a.kill()
    sock.close()

    # Node B knows the upload from the shared database and store, and resumes it.
    deadline = time.monotonic() + 60
    while True:
        head = httpx.head(f"{b.url}{path}", headers=auth(token))
        assert head.status_code == 200
        offset = int(head.headers["upload-offset"])
        rest = httpx.patch(f"{b.url}{path}", content=data[offset:], headers={
            **auth(token), "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset)}, timeout=60)
        if rest.status_code != 423 or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # node A's lease on the upload runs out
    assert offset == 2 * MiB  # only what node A acknowledged counts
    assert rest.status_code == 204, rest.text
    assert rest.headers["locker-outcome"] == "stored"

    made = locker("users", "create", "pso", "--role", "professional-standards", env=b.env)
    assert made.returncode == 0
    user = locker("tokens", "create", "--user", "pso", env=b.env).stdout.strip().splitlines()[-1]
    rec = rest.headers["locker-recording"]
    media = httpx.get(f"{b.url}/api/v1/recordings/{rec}/media",
                      params={"grant": grant_for(httpx, user, rec, base=b.url)},
                      headers={"Authorization": f"Bearer {user}"})
    assert hashlib.sha256(media.content).hexdigest() == sha
