"""Small helpers for tus tests that speak the protocol by hand."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from fastapi.testclient import TestClient

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


def b64(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


def meta_header(data: bytes | None = None, **values: Any) -> str:
    fields: dict[str, Any] = {"device": "CAM-1", "recording": "R1", "kind": "clip", "index": "1",
                              "filename": "R1_001.mp4"}
    if data is not None:
        fields["sha256"] = hashlib.sha256(data).hexdigest()
    fields.update(values)
    return ",".join(f"{k} {b64(str(v))}" for k, v in fields.items() if v is not None)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **TUS}


def create(client: TestClient, token: str, data: bytes, **meta: Any) -> str:
    r = client.post("/api/v1/uploads/", headers={
        **auth(token), "Upload-Length": str(len(data)),
        "Upload-Metadata": meta_header(data, **meta)})
    assert r.status_code == 201, r.text
    return str(r.headers["location"])


def patch(client: TestClient, token: str, url: str, offset: int, body: bytes,
          checksum: str | None = None) -> Any:
    headers = {**auth(token), "Content-Type": OCTETS, "Upload-Offset": str(offset)}
    if checksum:
        headers["Upload-Checksum"] = checksum
    return client.patch(url, content=body, headers=headers)


def upload(client: TestClient, token: str, data: bytes, **meta: Any) -> Any:
    url = create(client, token, data, **meta)
    r = patch(client, token, url, 0, data)
    return url, r


def checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {b64(hashlib.new(algorithm, data).digest())}"
