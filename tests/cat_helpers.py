"""Build camera uploads by hand: files and a sidecar that lists them, sent over tus."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from fastapi.testclient import TestClient


def _b64(v: str) -> str:
    return base64.b64encode(v.encode()).decode()


def send(client: TestClient, token: str, data: bytes, *, device: str, recording: str,
         kind: str, index: int = 1, filename: str = "f.bin", **extra: str) -> Any:
    meta = {"device": device, "recording": recording, "kind": kind, "index": str(index),
            "filename": filename, "sha256": hashlib.sha256(data).hexdigest(), **extra}
    headers = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0",
               "Upload-Length": str(len(data)),
               "Upload-Metadata": ",".join(f"{k} {_b64(v)}" for k, v in meta.items()),
               "Content-Type": "application/offset+octet-stream"}
    r = client.post("/api/v1/uploads/", content=data, headers=headers)
    assert r.status_code == 201, r.text
    return r


def sidecar(*, device: str, recording: str, files: list[tuple[str, int, str, bytes]],
            started_at: str = "2026-11-21T08:15:00+00:00",
            stopped_at: str = "2026-11-21T08:16:00+00:00", officer: str | None = None) -> bytes:
    return json.dumps({
        "schema": "evidence-locker.camera-sidecar/1",
        "recording_id": recording,
        "device": {"serial": device, "model": "EL-SIM-1", "firmware": "1.4.2"},
        "officer": officer,
        "timezone": "Europe/London",
        "started_at": started_at,
        "stopped_at": stopped_at,
        "pre_event_seconds": 30,
        "trigger": {"on": {"reason": "button", "at": started_at},
                    "off": {"reason": "button", "at": stopped_at}},
        "files": [{"kind": k, "index": i, "filename": n, "sha256": hashlib.sha256(d).hexdigest(),
                   "size": len(d)} for k, i, n, d in files],
        "bookmarks": [{"at": started_at, "category": "use-of-force", "note": "test"}],
    }).encode()


def track(points: int = 3) -> bytes:
    return json.dumps({"schema": "evidence-locker.gps-track/1", "points": [
        {"t": f"2026-11-21T08:15:{i:02d}+00:00", "lat": 51.5 + i / 1000, "lon": -0.12}
        for i in range(points)]}).encode()


def record_camera(client: TestClient, token: str, *, device: str, recording: str,
                  clip: bytes, started_at: str = "2026-11-21T08:15:00+00:00",
                  **extra: str) -> str:
    """A whole recording: one clip, a track, a sidecar. Returns the recording id."""
    trk = track()
    send(client, token, clip, device=device, recording=recording, kind="clip",
         filename=f"{recording}_001.mp4", **extra)
    send(client, token, trk, device=device, recording=recording, kind="track",
         filename=f"{recording}.track.json")
    sc = sidecar(device=device, recording=recording, started_at=started_at,
                 files=[("clip", 1, f"{recording}_001.mp4", clip),
                        ("track", 1, f"{recording}.track.json", trk)])
    r = send(client, token, sc, device=device, recording=recording, kind="sidecar",
             filename=f"{recording}.json", **extra)
    return str(r.headers["locker-recording"])


def grant_for(client: Any, token: str, recording_id: str, *, base: str = "",
              purpose: str = "investigation",
              reason: str = "Reviewing the arrest on 21 November for the file") -> str:
    """The justification for someone else's footage, and the grant the media URLs carry.
    `client`: a TestClient, or `httpx` itself with the server's `base` URL."""
    r = client.post(f"{base}/api/v1/recordings/{recording_id}/access",
                    headers={"Authorization": f"Bearer {token}"},
                    json={"purpose": purpose, "reason": reason})
    assert r.status_code == 201, r.text
    grant: str = r.json()["grant"]
    return grant
