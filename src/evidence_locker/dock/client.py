"""A tus 1.0 client for docks: create, PATCH in chunks with a per-PATCH SHA-256, resume from the
server's offset after any failure, and report success only on the final 204 (durable and
verified). Shares protocol code only; the dock agent builds on it."""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from evidence_locker.ingest.tus import OFFSET_CONTENT_TYPE, TUS_VERSION

log = logging.getLogger(__name__)


class UploadFailed(Exception):
    """The server refused the file for good (4xx other than a retryable one)."""


class UploadGone(UploadFailed):
    """The server no longer holds this upload (expired, terminated, or refused at the end
    because the bytes it got did not match the declared SHA-256): start a new one."""


@dataclass(frozen=True)
class Uploaded:
    url: str
    outcome: str  # stored | duplicate
    recording_id: str | None
    sha256: str


def file_sha256(path: Path, chunk: int = 8 * 1024 * 1024) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while data := fh.read(chunk):
            h.update(data)
    return h.hexdigest()


def encode_metadata(meta: dict[str, str]) -> str:
    return ",".join(
        f"{k} {base64.b64encode(v.encode('utf-8')).decode()}" for k, v in meta.items()
    )


RETRYABLE = {408, 423, 429, 500, 502, 503, 504, 507}


class TusClient:
    def __init__(self, base_url: str, token: str, *, chunk_size: int = 8 * 1024 * 1024,
                 verify: bool | str = True, timeout: float = 60.0, max_attempts: int = 8,
                 sleep: Callable[[float], None] = time.sleep,
                 http: httpx.Client | None = None) -> None:
        self.endpoint = base_url.rstrip("/") + "/api/v1/uploads/"
        self.chunk_size = chunk_size
        self.max_attempts = max_attempts
        self._sleep = sleep
        self.http = http or httpx.Client(verify=verify, timeout=timeout)
        self.http.headers.update(
            {"Authorization": f"Bearer {token}", "Tus-Resumable": TUS_VERSION})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _backoff(self, attempt: int) -> None:
        self._sleep(min(30.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2))  # noqa: S311

    def create(self, *, length: int, metadata: dict[str, str]) -> str:
        r = self.http.post(self.endpoint, headers={
            "Upload-Length": str(length), "Upload-Metadata": encode_metadata(metadata)})
        if r.status_code != 201:
            raise UploadFailed(f"create refused: {r.status_code} {r.text[:300]}")
        return str(httpx.URL(self.endpoint).join(r.headers["location"]))

    def offset(self, url: str) -> int:
        r = self.http.head(url)
        if r.status_code in (404, 410):
            raise UploadGone(f"HEAD {url}: {r.status_code}")
        if r.status_code != 200:
            raise UploadFailed(f"HEAD {url}: {r.status_code}")
        return int(r.headers["upload-offset"])

    def upload_file(self, path: Path, metadata: dict[str, str], *, url: str | None = None,
                    on_url: Callable[[str], None] | None = None,
                    progress: Callable[[int, int], None] | None = None) -> Uploaded:
        """Upload `path`, resuming `url` if given. `metadata` must not hold sha256: it is
        computed here from the file itself. An upload the server no longer holds is started
        again (a few times at most)."""
        sha256 = file_sha256(path)
        meta = {**metadata, "sha256": sha256}
        for fresh_start in range(3):
            if url is None:
                url = self.create(length=path.stat().st_size, metadata=meta)
                if on_url:
                    on_url(url)
            try:
                return self._send(path, url, sha256, progress)
            except UploadGone:
                if fresh_start == 2:
                    raise
                log.warning("%s: the server dropped upload %s; starting again", path.name, url)
                url = None
        raise AssertionError("unreachable")

    def _send(self, path: Path, url: str, sha256: str,
              progress: Callable[[int, int], None] | None) -> Uploaded:
        length = path.stat().st_size
        attempt = 0
        offset = 0
        with open(path, "rb") as fh:
            while True:
                try:
                    offset = self.offset(url)
                    if offset == length:
                        # The server reports every byte durable and verified.
                        return Uploaded(url, "stored", None, sha256)
                    fh.seek(offset)
                    data = fh.read(min(self.chunk_size, length - offset))
                    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
                    r = self.http.patch(url, content=data, headers={
                        "Content-Type": OFFSET_CONTENT_TYPE, "Upload-Offset": str(offset),
                        "Upload-Checksum": f"sha256 {digest}"})
                except httpx.TransportError as exc:
                    attempt += 1
                    if attempt >= self.max_attempts:
                        raise
                    log.warning("transport error on %s (%s); retrying", path.name, exc)
                    self._backoff(attempt)
                    continue
                if r.status_code == 204:
                    offset = int(r.headers["upload-offset"])
                    attempt = 0
                    if progress:
                        progress(offset, length)
                    if offset == length:
                        return Uploaded(url, r.headers.get("locker-outcome", "stored"),
                                        r.headers.get("locker-recording"), sha256)
                    continue
                if r.status_code in RETRYABLE or r.status_code in (409, 460):
                    # 409: our offset was stale; 460: bytes damaged in transit. HEAD and resend.
                    attempt += 1
                    if attempt >= self.max_attempts:
                        raise UploadFailed(f"{path.name}: {r.status_code} {r.text[:300]}")
                    self._backoff(attempt)
                    continue
                raise UploadFailed(f"{path.name}: {r.status_code} {r.text[:300]}")


def upload_camera_folder(client: TusClient, folder: Path,
                         log_line: Callable[[str], None] = print) -> list[Uploaded]:
    """Every recording a camera folder holds (as the simulator writes it): clips and track first,
    the sidecar last."""
    from evidence_locker.catalogue.sidecar import Sidecar

    results: list[Uploaded] = []
    for sidecar_path in sorted(folder.glob("*.json")):
        if sidecar_path.name.endswith(".track.json") or sidecar_path.name == "device.json":
            continue  # a GPS track, or the camera's health report (see dock/camera.py)
        sc = Sidecar.model_validate_json(sidecar_path.read_bytes())
        base = {"device": sc.device.serial, "recording": sc.recording_id}
        items: list[tuple[Path, str, int]] = [
            (folder / f.filename, f.kind, f.index) for f in sc.files]
        items.append((sidecar_path, "sidecar", 1))
        for path, kind, index in items:
            up = client.upload_file(path, {**base, "kind": kind, "index": str(index),
                                           "filename": path.name})
            log_line(f"{sc.device.serial} {sc.recording_id} {kind} {index}: {up.outcome}")
            results.append(up)
    return results
