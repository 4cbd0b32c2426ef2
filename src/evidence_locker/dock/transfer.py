"""One file's journey to the server over tus, until the server confirms it or the camera leaves.

Expected outcomes are values, not exceptions: `Confirmed` (durable and verified: only now may
the camera's copy go), `Pulled` (the camera left the dock), `Stopped` (the agent is shutting
down), `Refused` (the server will not take this file as sent: kept on the camera, reported).
Everything else — connection refused or reset, 5xx, 503 with Retry-After, 507 Insufficient
Storage, a revoked token — is waited out: exponential back-off with full jitter while the retry
budget lasts, then the long wait of an outage, then again. Unconfirmed footage is never given up.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from evidence_locker.dock.client import encode_metadata
from evidence_locker.dock.pacing import RetryPolicy, TokenBucket, retry_after_seconds
from evidence_locker.ingest.tus import OFFSET_CONTENT_TYPE, TUS_VERSION

log = logging.getLogger("evidence_locker.dock")

SLICE = 64 * 1024


@dataclass(frozen=True)
class Confirmed:
    url: str
    outcome: str  # stored | duplicate | confirmed (a HEAD found every byte durable)
    recording_id: str | None


@dataclass(frozen=True)
class Pulled:
    pass


@dataclass(frozen=True)
class Stopped:
    pass


@dataclass(frozen=True)
class Refused:
    status: int
    detail: str


Result = Confirmed | Pulled | Stopped | Refused


class _Interrupted(Exception):
    """Raised from inside a PATCH body when the camera leaves or the agent stops."""


@dataclass
class Hooks:
    """What the transfer needs from its bay: is the camera still here, should we stop, how to
    wait (interruptibly), where to report progress and the URL."""

    docked: Callable[[], bool]
    stopping: Callable[[], bool]
    wait: Callable[[float], None]
    on_url: Callable[[str | None], None]
    on_sent: Callable[[int], None]  # bytes of this file known to be on the server or in flight
    on_state: Callable[[str], None]


# Refusals of the file itself: the server will not take it however often it is sent.
_FINAL = {400, 413, 415}
_AUTH = {401, 403}
_GONE = {404, 410}


class Transfer:
    """Uploads one file, resuming `url` if the journal has one."""

    def __init__(self, http: httpx.Client, endpoint: str, *, policy: RetryPolicy,
                 chunk_size: int, bucket: TokenBucket | None, hooks: Hooks) -> None:
        self.http = http
        self.endpoint = endpoint
        self.policy = policy
        self.chunk_size = chunk_size
        self.bucket = bucket
        self.hooks = hooks
        self._attempt = 0

    # --- waiting -----------------------------------------------------------------------------

    def _retry(self, what: str, retry_after: float | None = None) -> None:
        """Back off once; after the budget, wait as for an outage and start a new budget."""
        self._attempt += 1
        p = self.policy
        if self._attempt <= p.budget:
            delay = max(p.delay(self._attempt), retry_after or 0.0)
            log.debug("%s; retry %d/%d in %.2fs", what, self._attempt, p.budget, delay)
            self.hooks.on_state(f"retrying: {what}")
        else:
            delay = min(p.max_wait, max(p.outage_wait, retry_after or 0.0))
            log.warning("%s; retry budget exhausted, waiting %.1fs before trying again "
                        "(files stay on the camera)", what, delay)
            self.hooks.on_state(f"waiting {delay:.0f}s: {what}")
            self._attempt = 0
        self.hooks.wait(min(delay, p.max_wait))

    def _auth_refused(self, status: int) -> None:
        log.error("the server refused this dock's token (%d): uploads stopped, footage kept on "
                  "the camera; is the dock's token revoked? Trying again in %.0fs",
                  status, self.policy.auth_wait)
        self.hooks.on_state(f"TOKEN REFUSED ({status})")
        self.hooks.wait(self.policy.auth_wait)

    def _interrupted(self) -> Result | None:
        if self.hooks.stopping():
            return Stopped()
        if not self.hooks.docked():
            return Pulled()
        return None

    # --- protocol ----------------------------------------------------------------------------

    def run(self, path: Path, *, length: int, metadata: dict[str, str],
            url: str | None) -> Result:
        gone = 0
        offset: int | None = None  # None: ask the server
        with open(path, "rb") as fh:
            while True:
                if (stop := self._interrupted()) is not None:
                    return stop
                try:
                    if url is None:
                        r = self.http.post(self.endpoint, headers={
                            "Upload-Length": str(length),
                            "Upload-Metadata": encode_metadata(metadata)})
                        if r.status_code == 201:
                            url = str(httpx.URL(self.endpoint).join(r.headers["location"]))
                            self.hooks.on_url(url)
                            offset = 0
                            self._attempt = 0
                            continue
                    elif offset is None:
                        r = self.http.head(url)
                        if r.status_code == 200:
                            offset = int(r.headers["upload-offset"])
                            self.hooks.on_sent(offset)
                            if offset == int(r.headers.get("upload-length", length)):
                                return Confirmed(url, "confirmed", None)
                            continue
                    else:
                        r = self._patch(fh, url, offset, length)
                        if r.status_code == 204:
                            offset = int(r.headers["upload-offset"])
                            self._attempt = 0
                            self.hooks.on_sent(offset)
                            if offset == length:
                                return Confirmed(url, r.headers.get("locker-outcome", "stored"),
                                                 r.headers.get("locker-recording"))
                            continue
                except _Interrupted:
                    offset = None
                    continue
                except httpx.TransportError as exc:
                    offset = None
                    self._retry(f"{type(exc).__name__}: {exc or 'connection failed'}")
                    continue
                status = r.status_code
                offset = None
                detail = r.text[:300]
                if status in _AUTH:
                    self._auth_refused(status)
                elif status in _GONE and url is not None:
                    gone += 1
                    log.warning("%s: the server no longer holds upload %s (%d); starting a new "
                                "upload", path.name, url, status)
                    url = None
                    self.hooks.on_url(None)
                    if gone > 5:
                        return Refused(status, f"upload dropped {gone} times: {detail}")
                elif status in _FINAL or (url is None and 400 <= status < 500
                                          and status not in (408, 423, 429)):
                    return Refused(status, detail)
                else:
                    ra = retry_after_seconds(r.headers.get("retry-after"))
                    what = {507: "server storage full (507)",
                            503: "server unavailable (503)"}.get(status, f"HTTP {status}")
                    self._retry(f"{path.name}: {what}", ra)

    def _patch(self, fh: BinaryIO, url: str, offset: int, length: int) -> httpx.Response:
        fh.seek(offset)
        data = fh.read(min(self.chunk_size, length - offset))
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        return self.http.patch(url, content=self._body(data, offset), headers={
            "Content-Type": OFFSET_CONTENT_TYPE, "Upload-Offset": str(offset),
            "Content-Length": str(len(data)), "Upload-Checksum": f"sha256 {digest}"})

    def _body(self, data: bytes, offset: int) -> Iterator[bytes]:
        view = memoryview(data)
        for start in range(0, len(data), SLICE):
            if self.hooks.stopping() or not self.hooks.docked():
                raise _Interrupted
            piece = view[start:start + SLICE]
            if self.bucket is not None:
                self.bucket.take(len(piece))
            yield bytes(piece)
            self.hooks.on_sent(offset + start + len(piece))


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Tus-Resumable": TUS_VERSION}
