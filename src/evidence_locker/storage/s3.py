"""Media in an S3-compatible object store with Object Lock (AWS S3, SeaweedFS, Ceph RGW, MinIO).

Configuration: ``s3://BUCKET[/PREFIX]?endpoint_url=http://HOST:PORT[&region=R][&prefix=P]
[&object_lock=true|false][&retention_days=N][&addressing_style=path|virtual]``; credentials come
from the standard boto3 chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN,
profiles, instance roles) and the region from ``region=``, AWS_REGION or AWS_DEFAULT_REGION.
Credentials never go in the URL.

Layout under the prefix::

    blobs/<sha[:2]>/<sha[2:4]>/<sha256>      a blob: content-addressed, written once, kept under
                                             governance-mode Object Lock retention
    partial/<upload id>/.created             zero-byte marker: this upload exists
    partial/<upload id>/<offset, 20 digits>  bytes [offset, offset + size) of the upload

Why partials are ordinary objects: an unfinished multipart upload cannot be read back and
``hashlib`` state cannot be saved, so after a restart, or on another node, the running SHA-256 is
rebuilt by reading the upload's bytes back. A partial's ``append()`` buffers and PUTs a part
object every ``PART_BYTES`` (memory stays flat whatever the request size), ``sync()`` PUTs the
rest, so after ``sync()`` every appended byte has been acknowledged by the object store, which is
what durable means here. Every PUT carries its SHA-256 (``x-amz-checksum-sha256``), so the store
refuses bytes damaged on the way.

``commit_partial`` assembles the blob server-side: a multipart upload (SHA-256 checksums) whose
parts are UploadPartCopy of part objects of at least 5 MiB, or small neighbours merged and
uploaded again (every part but the last must be at least 5 MiB); a blob of at most
``PART_BYTES`` goes up in one PUT whose checksum is the blob's own name, so the store itself
verifies the whole SHA-256. Then it checks the size, sets governance retention
(``retention_days``), and deletes the partial: marker first, so a crash part-way leaves either
a complete partial or none (orphaned part objects without a marker are only garbage).

Concurrency: unlike the local store, ``open_partial`` takes no lock (S3 has none to offer); the
ingest service serialises writers of one upload with a lease in the database.

Permissions: the ingest credential needs read, write, list, ``PutObjectRetention`` and
``GetObjectRetention``/``GetObjectLegalHold``, plus delete on ``partial/`` only; deleting blobs,
lifting holds and bypassing governance belong to the lifecycle credential. See
docs/storage-permissions.md for SeaweedFS identities and AWS policies.

Object Lock dates are enforced by the store's clock, so retention dates are computed from the real
time, not an injected clock.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qs, quote, urlsplit

from evidence_locker.storage.base import (
    BlobLocked,
    BlobNotFound,
    PartialNotFound,
    StorageError,
    check_sha256,
)
from evidence_locker.storage.local import UPLOAD_ID_RE

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

MiB = 1024 * 1024
PART_BYTES = 8 * MiB
MIN_PART_BYTES = 5 * MiB
MAX_PARTS = 10_000
SINGLE_PUT_MAX = PART_BYTES
SPOOL_BYTES = 16 * MiB
COPY_WORKERS = 4
DEFAULT_RETENTION_DAYS = 31 + 7
GOVERNANCE = "GOVERNANCE"

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_OFFSET_RE = re.compile(r"^[0-9]{20}$")
_MARKER = ".created"
_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}
_NO_LOCK = {"NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError",
            "NoSuchObjectRetention"}
_NO_HOLD = {"NoSuchObjectLegalHold", "NoSuchObjectLockConfiguration",
            "ObjectLockConfigurationNotFoundError"}
_DENIED = {"AccessDenied", "403", "Forbidden"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# --- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Settings:
    """What an ``s3://`` URL says."""

    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    prefix: str = ""
    object_lock: bool = True
    retention_days: float = DEFAULT_RETENTION_DAYS
    addressing_style: str | None = None

    def url(self) -> str:
        params: list[str] = []
        if self.endpoint_url:
            params.append(f"endpoint_url={self.endpoint_url}")
        if self.region:
            params.append(f"region={quote(self.region, safe='')}")
        if self.prefix:
            params.append(f"prefix={quote(self.prefix, safe='/')}")
        if not self.object_lock:
            params.append("object_lock=false")
        if self.retention_days != DEFAULT_RETENTION_DAYS:
            params.append(f"retention_days={self.retention_days:g}")
        if self.addressing_style:
            params.append(f"addressing_style={self.addressing_style}")
        return f"s3://{self.bucket}" + (f"?{'&'.join(params)}" if params else "")


def normalise_prefix(prefix: str) -> str:
    """'' or 'a/b/' — never a leading slash, always a trailing one, no empty or dot segments."""
    parts = [p for p in prefix.strip().split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"bad key prefix: {prefix!r}")
    return "".join(f"{p}/" for p in parts)


def _flag(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def parse_s3_url(url: str) -> S3Settings:
    """Parse ``s3://BUCKET[/PREFIX]?endpoint_url=...&region=...&prefix=...``."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ValueError(f"not an s3:// URL: {url}")
    if "@" in parts.netloc:
        raise ValueError("credentials do not belong in the storage URL; use AWS_ACCESS_KEY_ID "
                         "and AWS_SECRET_ACCESS_KEY")
    bucket = parts.netloc
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise ValueError(f"not a valid bucket name: {bucket!r}")
    query = parse_qs(parts.query, keep_blank_values=True)
    known = {"endpoint_url", "region", "prefix", "object_lock", "retention_days",
             "addressing_style"}
    unknown = set(query) - known
    if unknown:
        raise ValueError(f"unknown s3:// URL parameter(s): {', '.join(sorted(unknown))}")
    for name, values in query.items():
        if len(values) != 1:
            raise ValueError(f"{name} given more than once")
    single = {name: values[0] for name, values in query.items()}
    endpoint = single.get("endpoint_url") or None
    if endpoint is not None:
        ep = urlsplit(endpoint)
        if ep.scheme not in ("http", "https") or not ep.netloc:
            raise ValueError(f"endpoint_url must be http(s)://HOST[:PORT], not {endpoint!r}")
        endpoint = endpoint.rstrip("/")
    if "prefix" in single and parts.path not in ("", "/"):
        raise ValueError("give the key prefix either in the path or as prefix=, not both")
    prefix = normalise_prefix(single.get("prefix", parts.path))
    retention_days: float = DEFAULT_RETENTION_DAYS
    if "retention_days" in single:
        retention_days = float(single["retention_days"])
        if not math.isfinite(retention_days) or retention_days <= 0:
            raise ValueError("retention_days must be a positive number")
    style = single.get("addressing_style") or None
    if style not in (None, "path", "virtual", "auto"):
        raise ValueError("addressing_style must be path, virtual or auto")
    return S3Settings(bucket=bucket, endpoint_url=endpoint, region=single.get("region") or None,
                      prefix=prefix,
                      object_lock=_flag("object_lock", single.get("object_lock", "true")),
                      retention_days=retention_days, addressing_style=style)


# --- helpers -------------------------------------------------------------------------------


def _error_code(exc: Exception) -> str:
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _http_status(exc: Exception) -> int:
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _is_not_found(exc: Exception) -> bool:
    return _error_code(exc) in _NOT_FOUND or (
        _http_status(exc) == 404 and _error_code(exc) != "NoSuchBucket")


def _is_denied(exc: Exception) -> bool:
    return _error_code(exc) in _DENIED or _http_status(exc) == 403


def _b64_sha256(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _b64_of_hex(sha256: str) -> str:
    return base64.b64encode(bytes.fromhex(sha256)).decode()


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("retention dates must be timezone-aware")
    return value.astimezone(dt.UTC)


def _ceil_second(value: dt.datetime) -> dt.datetime:
    """Object Lock dates have whole seconds: round up, so that asking for "at least until"
    never shortens by a fraction of a second."""
    if value.microsecond:
        value = value.replace(microsecond=0) + dt.timedelta(seconds=1)
    return value


@dataclass
class _Part:
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class _Version:
    key: str
    version_id: str
    delete_marker: bool


# --- the partial ---------------------------------------------------------------------------


class S3Partial:
    """An upload's bytes as part objects. Not thread-safe: one request writes at a time (the
    caller holds the upload's lease)."""

    def __init__(self, store: S3BlobStore, upload_id: str, parts: list[_Part]) -> None:
        self._store = store
        self._upload_id = upload_id
        self._parts = parts
        self._flushed = parts[-1].end if parts else 0
        self._buffer = bytearray()
        self._closed = False

    @property
    def size(self) -> int:
        return self._flushed + len(self._buffer)

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("partial is closed")

    def append(self, data: bytes | memoryview) -> None:
        self._check_open()
        view = memoryview(data).cast("B")
        part_bytes = self._store.part_bytes
        while view:
            if not self._buffer and len(view) >= part_bytes:
                self._put_part(bytes(view[:part_bytes]))
                view = view[part_bytes:]
                continue
            take = view[: part_bytes - len(self._buffer)]
            self._buffer += take
            view = view[len(take):]
            if len(self._buffer) >= part_bytes:
                self._put_part(bytes(self._buffer))
                self._buffer.clear()

    def sync(self) -> None:
        """After this returns, every appended byte is acknowledged by the object store."""
        self._check_open()
        if self._buffer:
            self._put_part(bytes(self._buffer))
            self._buffer.clear()

    def _put_part(self, data: bytes) -> None:
        offset = self._flushed
        self._store._put(self._store._part_key(self._upload_id, offset), data)
        self._parts.append(_Part(offset, len(data)))
        self._flushed += len(data)

    def truncate(self, size: int) -> None:
        """Forget bytes past `size`: part objects wholly beyond it are deleted, one straddling
        it is rewritten shorter (rare: only bytes never acknowledged, after a crash)."""
        self._check_open()
        if size < 0 or size > self.size:
            raise StorageError(f"cannot truncate a partial of {self.size} bytes to {size}")
        if size >= self._flushed:
            del self._buffer[size - self._flushed:]
            return
        self._buffer.clear()
        store = self._store
        while self._parts and self._parts[-1].offset >= size:
            part = self._parts.pop()
            store._purge(store._part_key(self._upload_id, part.offset), exact=True)
        if self._parts and self._parts[-1].end > size:
            part = self._parts[-1]
            key = store._part_key(self._upload_id, part.offset)
            keep = b"".join(store._iter_object(key, part.size))[: size - part.offset]
            if len(keep) != size - part.offset:
                raise StorageError(f"part object {key} is shorter than listed")
            store._put(key, keep)
            store._purge_noncurrent(key)
            part.size = len(keep)
        self._flushed = size

    def read(self, chunk_size: int = 8 * MiB) -> Iterator[bytes]:
        """The bytes held so far, in order: the part objects, then anything not yet synced."""
        self._check_open()
        for part in list(self._parts):
            key = self._store._part_key(self._upload_id, part.offset)
            got = 0
            for chunk in self._store._iter_object(key, chunk_size):
                got += len(chunk)
                yield chunk
            if got != part.size:
                raise StorageError(f"part object {key} has {got} bytes, expected {part.size}")
        if self._buffer:
            yield bytes(self._buffer)

    def close(self) -> None:
        """Bytes appended but never synced are dropped: they were never acknowledged."""
        self._buffer = bytearray()
        self._closed = True


# --- the store -----------------------------------------------------------------------------


class S3BlobStore:
    """The blob store contract over boto3. See the module docstring."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        prefix: str = "",
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        object_lock: bool = True,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        addressing_style: str | None = None,
        client: S3Client | None = None,
        tmp_dir: Path | None = None,
        part_bytes: int = PART_BYTES,
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES}")
        if retention_days <= 0:
            raise ValueError("retention_days must be positive")
        self.settings = S3Settings(bucket=bucket, endpoint_url=endpoint_url, region=region,
                                   prefix=normalise_prefix(prefix), object_lock=object_lock,
                                   retention_days=retention_days,
                                   addressing_style=addressing_style)
        self.bucket = bucket
        self.prefix = self.settings.prefix
        self.object_lock = object_lock
        self.retention_days = retention_days
        self.part_bytes = part_bytes
        self.tmp_dir = tmp_dir
        self.url = self.settings.url()
        self.client: S3Client = client or self._make_client(
            endpoint_url=endpoint_url, region=region, access_key=access_key,
            secret_key=secret_key, session_token=session_token,
            addressing_style=addressing_style)

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> S3BlobStore:
        s = parse_s3_url(url)
        kwargs: dict[str, Any] = {
            "endpoint_url": s.endpoint_url, "region": s.region, "prefix": s.prefix,
            "object_lock": s.object_lock, "retention_days": s.retention_days,
            "addressing_style": s.addressing_style, **overrides}
        return cls(s.bucket, **kwargs)

    @staticmethod
    def _make_client(*, endpoint_url: str | None, region: str | None, access_key: str | None,
                     secret_key: str | None, session_token: str | None,
                     addressing_style: str | None) -> S3Client:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(aws_access_key_id=access_key,
                                        aws_secret_access_key=secret_key,
                                        aws_session_token=session_token)
        region_name = (region or os.environ.get("AWS_REGION") or session.region_name
                       or ("us-east-1" if endpoint_url else None))
        style = addressing_style or ("path" if endpoint_url else None)
        s3_options: Any = {"addressing_style": style} if style else {}
        config = Config(
            s3=s3_options,
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=5, read_timeout=120, max_pool_connections=max(10, COPY_WORKERS * 2))
        client: S3Client = session.client("s3", endpoint_url=endpoint_url,
                                          region_name=region_name, config=config)
        return client

    # --- keys ---

    def _blob_key(self, sha256: str) -> str:
        check_sha256(sha256)
        return f"{self.prefix}blobs/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def _partial_prefix(self, upload_id: str) -> str:
        if not UPLOAD_ID_RE.match(upload_id):
            raise ValueError("bad upload id")
        return f"{self.prefix}partial/{upload_id}/"

    def _marker_key(self, upload_id: str) -> str:
        return self._partial_prefix(upload_id) + _MARKER

    def _part_key(self, upload_id: str, offset: int) -> str:
        return f"{self._partial_prefix(upload_id)}{offset:020d}"

    # --- low-level calls ---

    def _fail(self, what: str, exc: Exception) -> NoReturn:
        code = _error_code(exc)
        detail = f"{code}: {exc}" if code else str(exc)
        raise StorageError(f"{what}: {detail}") from exc

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            self._fail(what, exc)

    def _put(self, key: str, data: bytes, *, checksum: str | None = None,
             metadata: dict[str, str] | None = None) -> dict[str, Any]:
        """PUT with a SHA-256 checksum the store verifies (refused with BadDigest if the bytes
        arrive different)."""
        result: dict[str, Any] = self._call(
            f"put {key}", self.client.put_object, Key=key, Body=data,
            ChecksumSHA256=checksum or _b64_sha256(data), Metadata=metadata or {})
        return result

    def _head(self, key: str, version_id: str | None = None) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {"Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            result: dict[str, Any] = dict(self.client.head_object(Bucket=self.bucket, **kwargs))
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            self._fail(f"head {key}", exc)
        except BotoCoreError as exc:
            self._fail(f"head {key}", exc)
        return result

    def _iter_body(self, body: Any, chunk_size: int, what: str) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError

        try:
            for chunk in body.iter_chunks(chunk_size):
                if chunk:
                    yield chunk
        except BotoCoreError as exc:
            self._fail(f"read {what}", exc)
        finally:
            body.close()

    def _iter_object(self, key: str, chunk_size: int) -> Iterator[bytes]:
        response = self._call(f"get {key}", self.client.get_object, Key=key)
        return self._iter_body(response["Body"], chunk_size, key)

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield dict(item)
        except (ClientError, BotoCoreError) as exc:
            self._fail(f"list {prefix}", exc)

    def _versions(self, prefix: str, *, exact: bool = False) -> list[_Version]:
        """Every version and delete marker under `prefix` (of exactly that key if `exact`).
        On a bucket without versioning each key has one version, "null"."""
        from botocore.exceptions import BotoCoreError, ClientError

        found: list[_Version] = []
        paginator = self.client.get_paginator("list_object_versions")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for version in page.get("Versions", []):
                    found.append(_Version(version["Key"], version.get("VersionId") or "null",
                                          False))
                for marker in page.get("DeleteMarkers", []):
                    found.append(_Version(marker["Key"], marker.get("VersionId") or "null",
                                          True))
        except (ClientError, BotoCoreError) as exc:
            self._fail(f"list versions of {prefix}", exc)
        if exact:
            found = [v for v in found if v.key == prefix]
        return found

    def _purge(self, prefix: str, *, exact: bool = False, first: str | None = None) -> None:
        """Remove objects for good (every version and delete marker), `first` before the rest.
        Versions the credential may not delete (e.g. under a bucket's default retention) are
        at least hidden behind a delete marker; if even that fails, StorageError."""
        versions = self._versions(prefix, exact=exact)
        if first is not None:
            head = [v for v in versions if v.key == first]
            rest = [v for v in versions if v.key != first]
            self._delete_versions(head)
            self._delete_versions(rest)
        else:
            self._delete_versions(versions)

    def _delete_versions(self, versions: list[_Version]) -> None:
        failed: set[str] = set()
        for start in range(0, len(versions), 1000):
            batch = versions[start:start + 1000]
            result = self._call(
                "delete objects", self.client.delete_objects,
                Delete={"Objects": [{"Key": v.key, "VersionId": v.version_id} for v in batch],
                        "Quiet": True})
            failed.update(err["Key"] for err in result.get("Errors", []) if "Key" in err)
        if failed:
            # Typically a bucket-wide default retention: the versions stay until it expires (a
            # bucket lifecycle rule then removes them); hide what is still visible.
            log.info("%d object(s) keep locked versions; hiding them behind delete markers",
                     len(failed))
        for key in sorted(failed):
            if self._head(key) is None:
                continue  # only locked noncurrent versions are left: invisible already
            self._call(f"delete {key}", self.client.delete_object, Key=key)

    def _purge_noncurrent(self, key: str) -> None:
        """After overwriting `key`, drop its older versions (best effort)."""
        try:
            old = self._versions(key, exact=True)
            current = self._head(key)
            current_id = (current or {}).get("VersionId")
            if not current_id or current_id == "null":
                return
            stale = [v for v in old if v.version_id != current_id]
            if stale:
                self._call("delete objects", self.client.delete_objects,
                           Delete={"Objects": [{"Key": v.key, "VersionId": v.version_id}
                                               for v in stale], "Quiet": True})
        except StorageError as exc:
            log.warning("old versions of %s kept: %s", key, exc)

    # --- partials ---

    def _load_parts(self, upload_id: str) -> list[_Part]:
        prefix = self._partial_prefix(upload_id)
        marker = False
        parts: list[_Part] = []
        for item in self._list(prefix):
            name = item["Key"][len(prefix):]
            if name == _MARKER:
                marker = True
            elif _OFFSET_RE.match(name):
                parts.append(_Part(int(name), int(item.get("Size", 0))))
        if not marker:
            raise PartialNotFound(upload_id)
        parts.sort(key=lambda p: p.offset)
        expected = 0
        for part in parts:
            if part.offset != expected:
                raise StorageError(f"upload {upload_id} is damaged: bytes at {part.offset}, "
                                   f"expected {expected}")
            expected = part.end
        return parts

    def create_partial(self, upload_id: str) -> None:
        key = self._marker_key(upload_id)
        if self._head(key) is not None:
            raise FileExistsError(f"upload {upload_id} already exists")
        self._put(key, b"")

    @contextlib.contextmanager
    def open_partial(self, upload_id: str) -> Iterator[S3Partial]:
        """The upload's partial (PartialNotFound if there is none). No lock is taken: the
        ingest service holds a database lease per upload, so one request writes at a time."""
        partial = S3Partial(self, upload_id, self._load_parts(upload_id))
        try:
            yield partial
        finally:
            partial.close()

    def partial_ids(self) -> Iterator[str]:
        """Uploads that still hold bytes here (for sweeps and checks)."""
        seen: set[str] = set()
        for obj in self._list(f"{self.prefix}partial/"):
            upload_id = obj["Key"][len(self.prefix) + len("partial/"):].split("/", 1)[0]
            if upload_id not in seen:
                seen.add(upload_id)
                yield upload_id

    def discard_partial(self, upload_id: str) -> None:
        self._purge(self._partial_prefix(upload_id), first=self._marker_key(upload_id))

    def _drop_partial_after_commit(self, upload_id: str) -> None:
        """The blob is durable whatever happens here: a failure only leaves garbage."""
        try:
            self._purge(self._partial_prefix(upload_id), first=self._marker_key(upload_id))
        except StorageError as exc:
            log.warning("upload %s: blob stored, partial objects left behind: %s",
                        upload_id, exc)

    # --- committing ---

    def commit_partial(self, upload_id: str, sha256: str) -> bool:
        key = self._blob_key(sha256)
        parts = self._load_parts(upload_id)
        if self._head(key) is not None:
            self._ensure_retention(key)
            self._drop_partial_after_commit(upload_id)
            return False
        total = parts[-1].end if parts else 0
        metadata = {"sha256": sha256}
        if total <= SINGLE_PUT_MAX:
            data = b"".join(chunk for part in parts for chunk in
                            self._iter_object(self._part_key(upload_id, part.offset), MiB))
            if len(data) != total:
                raise StorageError(f"upload {upload_id}: read {len(data)} bytes of {total}")
            # The checksum is the blob's name: the store verifies the whole SHA-256 itself.
            version = self._put(key, data, checksum=_b64_of_hex(sha256),
                                metadata=metadata).get("VersionId")
        else:
            version = self._multipart(key, upload_id, parts, total, metadata)
        head = self._head(key, version)
        if head is None or int(head.get("ContentLength", -1)) != total:
            got = None if head is None else head.get("ContentLength")
            raise StorageError(f"blob {sha256}: stored {got} bytes, expected {total}")
        if self.object_lock:
            self._put_retention(key, version, self._default_until(), bypass=False)
        self._drop_partial_after_commit(upload_id)
        return True

    def _default_until(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(days=self.retention_days)

    def _ensure_retention(self, key: str) -> None:
        """A blob found already stored gets the default retention if it has none (a previous
        commit may have died between storing and locking it)."""
        if not self.object_lock:
            return
        if self._retention_of(key, None) is None:
            self._put_retention(key, None, self._default_until(), bypass=False)

    @staticmethod
    def _plan(parts: list[_Part], target: int) -> list[list[_Part]]:
        """Group part objects into multipart parts: every group but the last has at least
        `target` bytes (>= 5 MiB); a group of one object is copied server-side."""
        groups: list[list[_Part]] = []
        current: list[_Part] = []
        size = 0
        for part in parts:
            current.append(part)
            size += part.size
            if size >= target:
                groups.append(current)
                current, size = [], 0
        if current:
            groups.append(current)
        return groups

    def _multipart(self, key: str, upload_id: str, parts: list[_Part], total: int,
                   metadata: dict[str, str]) -> str | None:
        target = max(MIN_PART_BYTES, math.ceil(total / MAX_PARTS))
        groups = self._plan(parts, target)
        mpu = self._call(f"create multipart upload {key}", self.client.create_multipart_upload,
                         Key=key, ChecksumAlgorithm="SHA256", Metadata=metadata)
        mpu_id: str = mpu["UploadId"]

        def upload(numbered: tuple[int, list[_Part]]) -> CompletedPartTypeDef:
            return self._upload_group(key, mpu_id, numbered[0], upload_id, numbered[1])

        try:
            with ThreadPoolExecutor(max_workers=min(COPY_WORKERS, len(groups))) as pool:
                completed = list(pool.map(upload, enumerate(groups, start=1)))
            done = self._call(f"complete multipart upload {key}",
                              self.client.complete_multipart_upload, Key=key, UploadId=mpu_id,
                              MultipartUpload={"Parts": completed})
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=mpu_id)
            raise
        version: str | None = done.get("VersionId")
        return version

    def _upload_group(self, key: str, mpu_id: str, number: int, upload_id: str,
                      group: list[_Part]) -> CompletedPartTypeDef:
        if len(group) == 1:
            source = self._part_key(upload_id, group[0].offset)
            result = self._call(f"copy {source} into {key}", self.client.upload_part_copy,
                                Key=key, UploadId=mpu_id, PartNumber=number,
                                CopySource={"Bucket": self.bucket, "Key": source})
            copied = result["CopyPartResult"]
            part: CompletedPartTypeDef = {"PartNumber": number, "ETag": copied["ETag"]}
            if copied.get("ChecksumSHA256"):
                part["ChecksumSHA256"] = copied["ChecksumSHA256"]
            return part
        expected = sum(p.size for p in group)
        hasher = hashlib.sha256()
        tmp_dir = str(self.tmp_dir) if self.tmp_dir is not None else None
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=tmp_dir) as spool:
            for p in group:
                for chunk in self._iter_object(self._part_key(upload_id, p.offset), MiB):
                    hasher.update(chunk)
                    spool.write(chunk)
            if spool.tell() != expected:
                raise StorageError(f"upload {upload_id}: read {spool.tell()} bytes of "
                                   f"{expected} for part {number}")
            spool.seek(0)
            checksum = base64.b64encode(hasher.digest()).decode()
            result = self._call(f"upload part {number} of {key}", self.client.upload_part,
                                Key=key, UploadId=mpu_id, PartNumber=number, Body=spool,
                                ContentLength=expected, ChecksumSHA256=checksum)
        return {"PartNumber": number, "ETag": result["ETag"], "ChecksumSHA256": checksum}

    # --- blobs ---

    def put_bytes(self, data: bytes) -> str:
        """Small derived bytes (posters): one PUT verified against their SHA-256. Not placed
        under retention: they are derived, not evidence."""
        sha256 = hashlib.sha256(data).hexdigest()
        key = self._blob_key(sha256)
        if self._head(key) is None:
            self._put(key, data, checksum=_b64_of_hex(sha256), metadata={"sha256": sha256})
        return sha256

    def exists(self, sha256: str) -> bool:
        return self._head(self._blob_key(sha256)) is not None

    def size(self, sha256: str) -> int:
        head = self._head(self._blob_key(sha256))
        if head is None:
            raise BlobNotFound(sha256)
        return int(head["ContentLength"])

    def read_range(
        self, sha256: str, start: int = 0, end: int | None = None, chunk_size: int = 1024 * 1024
    ) -> Iterator[bytes]:
        """Bytes [start, end] inclusive (end None: to the last byte), streamed in chunks; one
        ranged GET. Past the end: nothing."""
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._blob_key(sha256)
        if start < 0 or (end is not None and end < 0):
            raise ValueError("negative offset")
        if end is not None and end < start:
            if not self.exists(sha256):
                raise BlobNotFound(sha256)
            return iter(())
        kwargs: dict[str, Any] = {"Key": key}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            response = self.client.get_object(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if _is_not_found(exc):
                raise BlobNotFound(sha256) from exc
            if _error_code(exc) == "InvalidRange" or _http_status(exc) == 416:
                return iter(())  # start is at or past the end
            self._fail(f"get {key}", exc)
        except BotoCoreError as exc:
            self._fail(f"get {key}", exc)
        return self._iter_body(response["Body"], chunk_size, key)

    @contextlib.contextmanager
    def local_path(self, sha256: str) -> Iterator[Path]:
        """The blob downloaded to a temporary file, deleted on exit."""
        chunks = self.read_range(sha256, chunk_size=8 * MiB)
        fd, name = tempfile.mkstemp(prefix=f"blob-{sha256[:12]}-", dir=self.tmp_dir)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
            path.chmod(0o400)
            yield path
        finally:
            path.unlink(missing_ok=True)

    def delete(self, sha256: str, bypass_governance: bool = False) -> None:
        """Every version of the blob, for good. AccessDenied (a credential without delete, a
        legal hold, retention without permitted bypass) becomes StorageError, BlobLocked when
        the refusal is explained by a hold or an unexpired retention."""
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._blob_key(sha256)
        versions = self._versions(key, exact=True)
        # Real versions before delete markers, so the key stays hidden until the end.
        for version in sorted(versions, key=lambda v: v.delete_marker):
            kwargs: dict[str, Any] = {"Key": key, "VersionId": version.version_id}
            if bypass_governance and not version.delete_marker:
                kwargs["BypassGovernanceRetention"] = True
            try:
                self.client.delete_object(Bucket=self.bucket, **kwargs)
            except ClientError as exc:
                if _is_not_found(exc):
                    continue
                if _is_denied(exc) and not version.delete_marker:
                    self._explain_denial(key, version.version_id, exc, sha256)
                self._fail(f"delete {key}", exc)
            except BotoCoreError as exc:
                self._fail(f"delete {key}", exc)

    def _explain_denial(self, key: str, version_id: str | None, exc: Exception,
                        sha256: str) -> None:
        """Raise BlobLocked if a legal hold or an unexpired retention explains a refusal (if
        the credential may not even read them, the caller reports the bare refusal)."""
        held = False
        with contextlib.suppress(StorageError):
            held = self._hold_of(key, version_id)
        if held:
            raise BlobLocked(f"{sha256} is under legal hold") from exc
        until = None
        with contextlib.suppress(StorageError):
            until = self._retention_of(key, version_id)
        if until is not None and until > dt.datetime.now(dt.UTC):
            raise BlobLocked(f"{sha256} is retained until {until.isoformat()} "
                             "(governance; bypass refused or not requested)") from exc

    def ping(self) -> None:
        self._call(f"reach bucket {self.bucket}", self.client.head_bucket)

    def free_bytes(self) -> int | None:
        return None

    # --- retention and legal hold ---

    def _object_versions(self, sha256: str) -> tuple[str, list[str]]:
        key = self._blob_key(sha256)
        ids = [v.version_id for v in self._versions(key, exact=True) if not v.delete_marker]
        if not ids or self._head(key) is None:
            raise BlobNotFound(sha256)
        return key, ids

    def _lockless(self, exc: Exception) -> bool:
        """A bucket without Object Lock answers retention questions with InvalidRequest; for a
        store configured without Object Lock that simply means "none"."""
        return not self.object_lock and _error_code(exc) == "InvalidRequest"

    def _retention_of(self, key: str, version_id: str | None) -> dt.datetime | None:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {"Key": key}
        if version_id and version_id != "null":
            kwargs["VersionId"] = version_id
        try:
            result = self.client.get_object_retention(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if _error_code(exc) in _NO_LOCK or self._lockless(exc):
                return None
            if _is_not_found(exc):
                raise BlobNotFound(key) from exc
            self._fail(f"get retention of {key}", exc)
        except BotoCoreError as exc:
            self._fail(f"get retention of {key}", exc)
        retention = result.get("Retention") or {}
        until = retention.get("RetainUntilDate")
        if not retention.get("Mode") or until is None:
            return None
        return _utc(until)

    def _hold_of(self, key: str, version_id: str | None) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {"Key": key}
        if version_id and version_id != "null":
            kwargs["VersionId"] = version_id
        try:
            result = self.client.get_object_legal_hold(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if _error_code(exc) in _NO_HOLD or self._lockless(exc):
                return False
            if _is_not_found(exc):
                raise BlobNotFound(key) from exc
            self._fail(f"get legal hold of {key}", exc)
        except BotoCoreError as exc:
            self._fail(f"get legal hold of {key}", exc)
        return (result.get("LegalHold") or {}).get("Status") == "ON"

    def _put_retention(self, key: str, version_id: str | None, until: dt.datetime, *,
                       bypass: bool) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {
            "Key": key,
            "Retention": {"Mode": GOVERNANCE, "RetainUntilDate": _ceil_second(_utc(until))}}
        if version_id and version_id != "null":
            kwargs["VersionId"] = version_id
        if bypass:
            kwargs["BypassGovernanceRetention"] = True
        try:
            self.client.put_object_retention(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if _is_denied(exc):
                current = None
                with contextlib.suppress(StorageError):
                    current = self._retention_of(key, version_id)
                if current is not None and current > _ceil_second(_utc(until)):
                    raise BlobLocked(f"{key} is retained until {current.isoformat()}; "
                                     "shortening needs a permitted bypass") from exc
            self._fail(f"set retention of {key}", exc)
        except BotoCoreError as exc:
            self._fail(f"set retention of {key}", exc)

    def set_retention(self, sha256: str, until: dt.datetime, *, bypass: bool = False) -> None:
        """Governance retention until `until` on every version of the blob. Extending is
        allowed to any credential with PutObjectRetention; shortening raises BlobLocked unless
        `bypass=True` and the credential may bypass governance (the store refuses otherwise)."""
        wanted = _ceil_second(_utc(until))
        key, version_ids = self._object_versions(sha256)
        if not bypass:
            current = self._retention_of(key, None)
            if current is not None and wanted < current and current > dt.datetime.now(dt.UTC):
                raise BlobLocked(f"{sha256} is retained until {current.isoformat()}; "
                                 "shortening needs bypass")
        for version_id in version_ids:
            self._put_retention(key, version_id, wanted, bypass=bypass)

    def get_retention(self, sha256: str) -> dt.datetime | None:
        key = self._blob_key(sha256)
        try:
            return self._retention_of(key, None)
        except BlobNotFound as exc:
            raise BlobNotFound(sha256) from exc

    def set_legal_hold(self, sha256: str, on: bool) -> None:
        key, version_ids = self._object_versions(sha256)
        for version_id in version_ids:
            kwargs: dict[str, Any] = {"Key": key,
                                      "LegalHold": {"Status": "ON" if on else "OFF"}}
            if version_id != "null":
                kwargs["VersionId"] = version_id
            self._call(f"set legal hold of {key}", self.client.put_object_legal_hold, **kwargs)

    def legal_hold(self, sha256: str) -> bool:
        key = self._blob_key(sha256)
        try:
            return self._hold_of(key, None)
        except BlobNotFound as exc:
            raise BlobNotFound(sha256) from exc
