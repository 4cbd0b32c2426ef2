"""Our tus client against the real app: whole camera folders, duplicates, damaged PATCHes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from evidence_locker.dock.client import TusClient, UploadFailed, upload_camera_folder


def camera_folder(folder: Path, recording: str = "R1") -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {f"{recording}_001.mp4": b"clip one " * 3000, f"{recording}_002.mp4": b"clip two " * 10,
             f"{recording}.track.json": json.dumps({"schema": "evidence-locker.gps-track/1",
                                                    "points": []}).encode()}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    listed = [{"kind": "clip", "index": i, "filename": f"{recording}_00{i}.mp4",
               "sha256": hashlib.sha256(files[f"{recording}_00{i}.mp4"]).hexdigest(),
               "size": len(files[f"{recording}_00{i}.mp4"])} for i in (1, 2)]
    listed.append({"kind": "track", "index": 1, "filename": f"{recording}.track.json",
                   "sha256": hashlib.sha256(files[f"{recording}.track.json"]).hexdigest(),
                   "size": len(files[f"{recording}.track.json"])})
    sidecar = {"schema": "evidence-locker.camera-sidecar/1", "recording_id": recording,
               "device": {"serial": "CAM-1"}, "officer": "1001",
               "started_at": "2026-11-21T10:00:00+00:00", "files": listed}
    (folder / f"{recording}.json").write_text(json.dumps(sidecar))
    return files


def test_a_camera_folder_uploads_completely_and_again_as_duplicates(client: TestClient, force,
                                                                    tmp_path) -> None:
    camera_folder(tmp_path / "cam")
    tus = TusClient(str(client.base_url), force.dock_token, chunk_size=8192, http=client)
    first = upload_camera_folder(tus, tmp_path / "cam", log_line=lambda _: None)
    assert [u.outcome for u in first] == ["stored"] * 4
    rid = first[-1].recording_id
    body = client.get(f"/api/v1/recordings/{rid}",
                      headers={"Authorization": f"Bearer {force.tokens['standards']}"}).json()
    assert body["state"] == "complete"
    again = upload_camera_folder(tus, tmp_path / "cam", log_line=lambda _: None)
    assert [u.outcome for u in again] == ["duplicate"] * 4


class Corrupting(httpx.BaseTransport):
    """Flips one byte in the first PATCH body that passes through, as a bad cable would."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.corrupted = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH" and not self.corrupted:
            body = bytearray(request.read())
            body[len(body) // 2] ^= 0xFF
            self.corrupted += 1
            request = httpx.Request(request.method, request.url, headers=request.headers,
                                    content=bytes(body))
        return self.inner.handle_request(request)


def test_a_damaged_patch_is_refused_and_sent_again(client: TestClient, force, runtime,
                                                   tmp_path) -> None:
    files = camera_folder(tmp_path / "cam")
    transport = Corrupting(client._transport)
    http = httpx.Client(transport=transport, base_url=client.base_url)
    tus = TusClient(str(client.base_url), force.dock_token, chunk_size=8192, http=http,
                    sleep=lambda _: None)
    path = tmp_path / "cam" / "R1_001.mp4"
    done = tus.upload_file(path, {"device": "CAM-1", "recording": "R1", "kind": "clip",
                                  "index": "1", "filename": path.name})
    assert transport.corrupted == 1
    assert done.outcome == "stored"
    stored = b"".join(runtime.store.read_range(done.sha256))
    assert stored == files["R1_001.mp4"]


def test_a_refused_file_raises(client: TestClient, force, tmp_path) -> None:
    path = tmp_path / "x.mp4"
    path.write_bytes(b"x")
    tus = TusClient(str(client.base_url), force.dock_token, http=client)
    with pytest.raises(UploadFailed):
        tus.upload_file(path, {"device": "../etc", "recording": "R1", "kind": "clip",
                               "index": "1", "filename": "x.mp4"})
