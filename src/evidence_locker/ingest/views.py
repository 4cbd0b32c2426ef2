"""tus 1.0 at /api/v1/uploads/: thin handlers that stream the body into a `Receiver`.

Raw request streaming (no framework body parsing) keeps memory flat and throughput near the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from anyio import to_thread
from fastapi import APIRouter
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from evidence_locker.accounts.roles import Principal
from evidence_locker.ingest import service
from evidence_locker.ingest.models import Upload
from evidence_locker.ingest.tus import (
    CHECKSUM_ALGORITHMS,
    EXTENSIONS,
    OFFSET_CONTENT_TYPE,
    TUS_VERSION,
    TusError,
    http_date,
    parse_checksum,
    parse_length,
)
from evidence_locker.web.auth import actor_from, require_principal, runtime_of
from evidence_locker.web.problems import problem

router = APIRouter(prefix="/api/v1/uploads", tags=["ingest (tus 1.0)"])

FLUSH_BYTES = 1024 * 1024


def _header(name: str, description: str, *, pattern: str | None = None,
            required: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if pattern is not None:
        schema["pattern"] = pattern
    return {"name": name, "in": "header", "required": required, "description": description,
            "schema": schema}


#: What the tus routes read from headers and raw bodies, for the OpenAPI description (FastAPI
#: sees none of it: the routes read the request themselves to stream it).
_VERSION = _header("Tus-Resumable", "The tus version; must be 1.0.0.", pattern=r"^1\.0\.0$",
                   required=True)
_LENGTH = r"^[0-9]{1,19}$"
_CHECKSUM = _header("Upload-Checksum", "sha1 or sha256 of this request's bytes, base64.",
                    pattern=r"^(sha1|sha256) [A-Za-z0-9+/=]+$")
_BYTES = {"content": {OFFSET_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}}}
CREATE_DOC: dict[str, Any] = {
    "parameters": [
        _VERSION,
        _header("Upload-Length", "The whole file's size in bytes.", pattern=_LENGTH,
                required=True),
        _header("Upload-Metadata", "Comma-separated `key base64(value)` pairs: device, "
                "recording, kind, index, filename, sha256 (the whole file's digest)."),
        _CHECKSUM,
    ],
    "requestBody": {"required": False, **_BYTES},
}
HEAD_DOC: dict[str, Any] = {"parameters": [_VERSION]}
PATCH_DOC: dict[str, Any] = {
    "parameters": [_VERSION, _header("Upload-Offset", "Where these bytes start.",
                                     pattern=_LENGTH, required=True), _CHECKSUM],
    "requestBody": {"required": True, **_BYTES},
}


def tus_headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **extra}


def _check_version(request: Request) -> None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise TusError(412, "Precondition Failed", f"Tus-Resumable must be {TUS_VERSION}")


def _uploader(request: Request) -> Principal:
    principal = require_principal(request, scope=None)
    if "upload" not in principal.scopes:
        raise TusError(403, "Forbidden", "this token may not upload")
    return principal


def _upload_headers(upload: Upload) -> dict[str, str]:
    return tus_headers(**{"Upload-Offset": str(upload.offset),
                          "Upload-Expires": http_date(upload.expires_at)})


@router.options("/", include_in_schema=True, status_code=204)
@router.options("/{upload_id}", include_in_schema=False)
async def discover(request: Request) -> Response:
    """tus discovery: version, extensions, limits. Open to all, like any CORS preflight."""
    runtime = runtime_of(request)
    return Response(status_code=204, headers={
        "Tus-Resumable": TUS_VERSION,
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": EXTENSIONS,
        "Tus-Max-Size": str(runtime.settings.tus_max_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    })


@router.post("/", status_code=201, openapi_extra=CREATE_DOC)
async def create(request: Request) -> Response:
    """Creation (and creation-with-upload): `Upload-Length` and `Upload-Metadata` with the keys
    device, recording, kind, index, filename, sha256."""
    _check_version(request)
    runtime = runtime_of(request)
    principal = await to_thread.run_sync(_uploader, request)
    if request.headers.get("upload-defer-length") is not None:
        raise TusError(400, "Deferred length not supported", "send Upload-Length")
    length = parse_length(request.headers.get("upload-length"), "Upload-Length")
    actor = actor_from(request, principal)
    upload, _meta = await to_thread.run_sync(
        lambda: service.create_upload(runtime, principal=principal, actor=actor, length=length,
                                      metadata_header=request.headers.get("upload-metadata", "")))
    location = str(request.url_for("upload", upload_id=upload.id))
    headers = tus_headers(Location=location, **{"Upload-Expires": http_date(upload.expires_at)})
    has_body = request.headers.get("content-type", "").startswith(OFFSET_CONTENT_TYPE)
    # An empty file is complete on creation (tus clients send no PATCH for it).
    if length == 0 or (has_body and (request.headers.get("content-length") or "0") != "0"):
        response = await _receive(request, principal=principal, upload_id=upload.id, offset=0)
        response.status_code = 201 if response.status_code == 204 else response.status_code
        response.headers.update(headers)
        return response
    headers["Upload-Offset"] = "0"
    return Response(status_code=201, headers=headers)


@router.head("/{upload_id}", name="upload", openapi_extra=HEAD_DOC)
async def head(upload_id: str, request: Request) -> Response:
    """Where to resume. `Upload-Offset == Upload-Length` means durable, verified and stored."""
    _check_version(request)
    runtime = runtime_of(request)
    principal = await to_thread.run_sync(_uploader, request)
    actor = actor_from(request, principal)
    upload = await to_thread.run_sync(
        lambda: service.head_upload(runtime, principal=principal, actor=actor,
                                    upload_id=upload_id))
    meta = service.metadata_header_of(upload)
    headers = _upload_headers(upload)
    headers["Upload-Length"] = str(upload.length)
    if meta:
        headers["Upload-Metadata"] = meta
    return Response(status_code=200, headers=headers)


@router.patch("/{upload_id}", status_code=204, openapi_extra=PATCH_DOC)
async def patch(upload_id: str, request: Request) -> Response:
    """Append bytes at `Upload-Offset`; optional `Upload-Checksum` (sha1 or sha256) per PATCH.
    The 204 for the last byte means durable and verified."""
    _check_version(request)
    if not request.headers.get("content-type", "").startswith(OFFSET_CONTENT_TYPE):
        raise TusError(415, "Unsupported Media Type", f"Content-Type must be {OFFSET_CONTENT_TYPE}")
    offset = parse_length(request.headers.get("upload-offset"), "Upload-Offset")
    principal = await to_thread.run_sync(_uploader, request)
    return await _receive(request, principal=principal, upload_id=upload_id, offset=offset)


@router.delete("/{upload_id}", status_code=204, openapi_extra=HEAD_DOC)
async def terminate(upload_id: str, request: Request) -> Response:
    """Termination: abandon an unfinished upload and free its bytes."""
    _check_version(request)
    runtime = runtime_of(request)
    principal = await to_thread.run_sync(_uploader, request)
    actor = actor_from(request, principal)
    await to_thread.run_sync(
        lambda: service.terminate_upload(runtime, principal=principal, actor=actor,
                                         upload_id=upload_id))
    return Response(status_code=204, headers=tus_headers())


async def _receive(request: Request, *, principal: Principal, upload_id: str,
                   offset: int) -> Response:
    runtime = runtime_of(request)
    content_length = request.headers.get("content-length")
    receiver = service.Receiver(
        runtime,
        principal=principal,
        actor=actor_from(request, principal),
        upload_id=upload_id,
        offset=offset,
        checksum=parse_checksum(request.headers.get("upload-checksum")),
        content_length=int(content_length) if content_length and content_length.isdigit() else None,
    )
    await to_thread.run_sync(receiver.open)
    started_at = receiver.start
    loop = asyncio.get_running_loop()
    # One buffer is hashed and written in a worker thread while the event loop receives the
    # next: receiving and hashing/writing overlap, and one write at a time keeps the order.
    inflight: asyncio.Future[None] | None = None
    try:
        body_complete = True
        pending: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                if not chunk:
                    continue
                pending.append(chunk)
                size += len(chunk)
                if size >= FLUSH_BYTES:
                    data = b"".join(pending)
                    pending, size = [], 0
                    if inflight is not None:
                        await inflight
                    inflight = loop.run_in_executor(None, receiver.write, data)
        except ClientDisconnect:
            body_complete = False
        if inflight is not None:
            await inflight
            inflight = None
        if pending:
            await to_thread.run_sync(receiver.write, b"".join(pending))
        last_byte = time.monotonic()
        outcome = await to_thread.run_sync(
            lambda: receiver.commit(body_complete=body_complete))
    except BaseException:
        if inflight is not None:
            with contextlib.suppress(Exception):
                await inflight  # never truncate while a write is still running
        await to_thread.run_sync(receiver.abort)
        raise
    finally:
        await to_thread.run_sync(receiver.close)
    metrics = runtime.metrics
    metrics.upload_bytes.inc(receiver.start - started_at)
    headers = tus_headers(**{"Upload-Offset": str(receiver.start)})
    if outcome is not None:
        metrics.finish_seconds.observe(time.monotonic() - last_byte)
        metrics.uploads.labels(outcome=type(outcome).__name__.lower()).inc()
    if isinstance(outcome, service.Rejected):
        return problem(460, "Checksum Mismatch", outcome.reason, headers=tus_headers())
    if isinstance(outcome, service.Stored | service.Duplicate):
        duplicate = isinstance(outcome, service.Duplicate)
        headers["Locker-Outcome"] = "duplicate" if duplicate else "stored"
        headers["Locker-Recording"] = outcome.recording_id
    return Response(status_code=204, headers=headers)
