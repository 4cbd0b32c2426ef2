"""Resumption against a real server process: the tuspy client, client disconnects, SIGKILL."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tusclient import client as tus_client
from tusclient.storage.filestorage import FileStorage

from cat_helpers import grant_for
from live_server import LiveServer, free_port, locker
from tus_helpers import auth, b64

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("live-server")]

MiB = 1024 * 1024


@pytest.fixture
def server(tmp_path: Path, deployment) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "var", free_port(), env=deployment.env)
    env = srv.env
    srv.data_dir.mkdir(parents=True)
    assert locker("db", "upgrade", env=env).returncode == 0
    srv.start()
    yield srv
    srv.stop()


def _tokens(srv: LiveServer) -> tuple[str, str]:
    dock = locker("docks", "register", "dock-a", env=srv.env)
    assert dock.returncode == 0, dock.stderr
    made = locker("users", "create", "standards", "--role", "professional-standards",
                  env=srv.env)
    assert made.returncode == 0, made.stderr
    user = locker("tokens", "create", "--user", "standards", env=srv.env)
    assert user.returncode == 0, user.stderr
    return dock.stdout.strip().splitlines()[-1], user.stdout.strip().splitlines()[-1]


def _stored_bytes(srv: LiveServer, user_token: str, sha: str) -> bytes:
    found = httpx.get(f"{srv.url}/api/v1/recordings", params={"sha256": sha},
                      headers={"Authorization": f"Bearer {user_token}"}).json()
    assert len(found["items"]) == 1
    rid = found["items"][0]["id"]
    media = httpx.get(f"{srv.url}/api/v1/recordings/{rid}/media",
                      params={"grant": grant_for(httpx, user_token, rid, base=srv.url)},
                      headers={"Authorization": f"Bearer {user_token}"})
    assert media.status_code == 200
    return media.content


def test_tuspy_upload_survives_server_sigkill_and_restart(server: LiveServer,
                                                          tmp_path: Path) -> None:
    dock_token, user_token = _tokens(server)
    data = os.urandom(6 * MiB + 123)
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    store = FileStorage(str(tmp_path / "tuspy-urls.json"))
    meta = {"device": "CAM-9", "recording": "R-TUSPY", "kind": "clip", "index": "1",
            "filename": "clip.mp4", "sha256": sha}

    def uploader() -> object:
        client = tus_client.TusClient(f"{server.url}/api/v1/uploads/",
                                      headers={"Authorization": f"Bearer {dock_token}"})
        return client.uploader(str(path), chunk_size=MiB, metadata=meta, store_url=True,
                               url_storage=store, upload_checksum=True)

    first = uploader()
    for _ in range(3):
        first.upload_chunk()  # type: ignore[attr-defined]
    assert first.offset == 3 * MiB  # type: ignore[attr-defined]

    server.kill()  # SIGKILL: no shutdown hooks, no flushing
    server.start()

    second = uploader()  # finds its URL in the storage and asks the server for the offset
    assert second.url == first.url  # type: ignore[attr-defined]
    assert second.offset == 3 * MiB  # type: ignore[attr-defined]
    second.upload()  # type: ignore[attr-defined]

    head = httpx.head(second.url, headers=auth(dock_token))  # type: ignore[attr-defined]
    assert int(head.headers["upload-offset"]) == len(data)
    stored = _stored_bytes(server, user_token, sha)
    assert hashlib.sha256(stored).hexdigest() == sha


def _send_partial_patch(url: str, token: str, offset: int, body: bytes, declared: int) -> None:
    """Open a PATCH that promises `declared` bytes, send `body`, then vanish."""
    u = httpx.URL(url)
    with socket.create_connection((u.host, u.port)) as sock:
        head = (
            f"PATCH {u.raw_path.decode()} HTTP/1.1\r\nHost: {u.host}:{u.port}\r\n"
            f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        ).encode()
        sock.sendall(head + body)
        time.sleep(0.5)  # let the server take what was sent


def _create(srv: LiveServer, token: str, data: bytes, recording: str) -> str:
    sha = hashlib.sha256(data).hexdigest()
    meta = ",".join(f"{k} {b64(v)}" for k, v in {
        "device": "CAM-9", "recording": recording, "kind": "clip", "index": "1",
        "filename": "c.mp4", "sha256": sha}.items())
    r = httpx.post(f"{srv.url}/api/v1/uploads/", headers={
        **auth(token), "Upload-Length": str(len(data)), "Upload-Metadata": meta})
    assert r.status_code == 201, r.text
    return str(r.headers["location"])


def _offset(url: str, token: str) -> int:
    for _ in range(50):
        r = httpx.head(url, headers=auth(token))
        if r.status_code == 200:
            return int(r.headers["upload-offset"])
        assert r.status_code == 423  # still finishing the interrupted request
        time.sleep(0.1)
    raise AssertionError("upload stayed locked")


def _finish(url: str, token: str, data: bytes) -> httpx.Response:
    offset = _offset(url, token)
    return httpx.patch(url, content=data[offset:], headers={
        **auth(token), "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": str(offset)}, timeout=60)


def test_client_disconnect_mid_patch_keeps_what_arrived(server: LiveServer) -> None:
    dock_token, user_token = _tokens(server)
    data = os.urandom(3 * MiB)
    url = _create(server, dock_token, data, "R-DISCONNECT")
    _send_partial_patch(url, dock_token, 0, data[: 2 * MiB], declared=len(data))
    # The server stores and acknowledges what arrived once it notices the client has gone;
    # a HEAD before that sees less, which is still safe (the dock just sends more again).
    deadline = time.monotonic() + 20
    while (offset := _offset(url, dock_token)) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert 0 < offset <= 2 * MiB  # what arrived is durable and acknowledged, nothing more
    r = _finish(url, dock_token, data)
    assert r.status_code == 204
    assert r.headers["locker-outcome"] == "stored"
    assert _stored_bytes(server, user_token, hashlib.sha256(data).hexdigest()) == data


def test_server_killed_mid_patch_acknowledges_only_durable_bytes(server: LiveServer) -> None:
    dock_token, user_token = _tokens(server)
    data = os.urandom(4 * MiB)
    url = _create(server, dock_token, data, "R-KILLED")
    ok = httpx.patch(url, content=data[:MiB], headers={
        **auth(dock_token), "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": "0"})
    assert ok.status_code == 204
    u = httpx.URL(url)
    sock = socket.create_connection((u.host, u.port))
    sock.sendall((
        f"PATCH {u.raw_path.decode()} HTTP/1.1\r\nHost: {u.host}:{u.port}\r\n"
        f"Authorization: Bearer {dock_token}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {MiB}\r\n"
        f"Content-Length: {3 * MiB}\r\n\r\n").encode() + data[MiB: 3 * MiB])
    time.sleep(0.5)  # the server has written some of it, acknowledged none of it
    server.kill()
    sock.close()
    server.start()
    assert _offset(url, dock_token) == MiB
    r = _finish(url, dock_token, data)
    assert r.status_code == 204
    assert _stored_bytes(server, user_token, hashlib.sha256(data).hexdigest()) == data


def test_locker_upload_sends_a_simulated_camera(server: LiveServer, tmp_path: Path) -> None:
    dock_token, user_token = _tokens(server)
    cam = tmp_path / "cam"
    made = locker("simulate", "camera", "--serial", "BWV-7", "--officer", "4521", "--out",
                  str(cam), "--recordings", "2", "--seconds", "2", "--resolution", "160x90",
                  env=server.env)
    assert made.returncode == 0, made.stderr
    token_file = tmp_path / "token"
    token_file.write_text(dock_token + "\n")
    sent = locker("upload", str(cam), "--server", server.url, "--token-file", str(token_file),
                  env=server.env)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.count(": stored") == len(list(cam.iterdir()))
    listed = httpx.get(f"{server.url}/api/v1/recordings", params={"device": "BWV-7"},
                       headers={"Authorization": f"Bearer {user_token}"}).json()["items"]
    assert len(listed) == 2
    assert {i["state"] for i in listed} == {"complete"}
    bad = locker("upload", str(cam), "--server", server.url, "--token", "elk_forged",
                 env=server.env)
    assert bad.returncode == 1
    assert "401" in bad.stderr
    plain = locker("upload", str(cam), "--server", "http://locker.example.police.uk",
                   "--token-file", str(token_file), env=server.env)
    assert plain.returncode == 2 and "refusing plain http://" in plain.stderr
