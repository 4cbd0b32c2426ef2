"""Media on the local filesystem: write to a partial, fsync, rename into place, fsync the
directory.

Retention and legal hold: a filesystem cannot enforce them (whoever can write the directory can
delete a file), so this store keeps them in a small JSON sidecar per blob under `holds/` and
enforces them only at this API: `delete()` refuses a held blob even with bypass and a retained
one without it, exactly as the S3 store does, so code and tests behave the same on both
deployments. There are no credentials here, so "bypass" is always permitted. For tamper-evident
retention at scale use the S3 store on a bucket with Object Lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlparse

from evidence_locker.clock import Clock, SystemClock
from evidence_locker.storage.base import (
    BlobLocked,
    BlobNotFound,
    PartialLocked,
    PartialNotFound,
    StorageError,
    check_sha256,
)

UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durable(path: Path) -> None:
    """Create missing directories and fsync each parent so the new entries survive a crash."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir()
        _fsync_dir(d.parent)


class LocalPartial:
    def __init__(self, path: Path, fd: int) -> None:
        self._path = path
        self._fd = fd
        self._size = os.fstat(fd).st_size

    @property
    def size(self) -> int:
        return self._size

    def append(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            self._size += n
            view = view[n:]

    def sync(self) -> None:
        os.fsync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)
        self._size = size

    def read(self, chunk_size: int = 8 * 1024 * 1024) -> Iterator[bytes]:
        with open(self._path, "rb") as fh:
            remaining = self._size
            while remaining > 0:
                data = fh.read(min(chunk_size, remaining))
                if not data:
                    break
                remaining -= len(data)
                yield data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("retention dates must be timezone-aware")
    return value.astimezone(dt.UTC)


class LocalBlobStore:
    """`blobs/ab/cd/<sha256>` (read-only), `partial/<upload id>` for uploads in progress,
    `holds/<sha256>.json` for retention and legal hold (see the module docstring).

    `retention_days`: when set, a blob made by `commit_partial` gets a retention date that many
    days ahead (as the S3 store's governance retention); None (the default) sets none.
    """

    def __init__(self, root: Path, *, retention_days: float | None = None,
                 clock: Clock | None = None) -> None:
        self.root = root
        self.url = root.resolve().as_uri()
        self.retention_days = retention_days
        self.clock: Clock = clock or SystemClock()
        self._blobs = root / "blobs"
        self._partial = root / "partial"
        self._tmp = root / "tmp"
        self._holds = root / "holds"
        for d in (self._blobs, self._partial, self._tmp, self._holds):
            _makedirs_durable(d)

    @classmethod
    def from_url(cls, url: str) -> LocalBlobStore:
        """`file:///path[?retention_days=N]`."""
        parsed = urlparse(url)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise ValueError(f"not a local file URL: {url}")
        query = parse_qs(parsed.query)
        days = query.get("retention_days", [None])[0]
        return cls(Path(unquote(parsed.path)),
                   retention_days=float(days) if days is not None else None)

    def _blob_path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self._blobs / sha256[:2] / sha256[2:4] / sha256

    def _partial_path(self, upload_id: str) -> Path:
        if not UPLOAD_ID_RE.match(upload_id):
            raise ValueError("bad upload id")
        return self._partial / upload_id

    def create_partial(self, upload_id: str) -> None:
        path = self._partial_path(upload_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        _fsync_dir(path.parent)

    @contextlib.contextmanager
    def open_partial(self, upload_id: str) -> Iterator[LocalPartial]:
        """flock serialises writers across threads and processes; the inode check catches a
        partial that was renamed into a blob between our open and our lock."""
        path = self._partial_path(upload_id)
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError as exc:
            raise PartialNotFound(upload_id) from exc
        partial = LocalPartial(path, fd)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise PartialLocked(upload_id) from exc
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                raise PartialNotFound(upload_id)
            partial._size = os.fstat(fd).st_size
            yield partial
        finally:
            partial.close()

    def partial_ids(self) -> Iterator[str]:
        """Uploads that still hold bytes here (for sweeps and checks)."""
        for entry in sorted(self._partial.iterdir()):
            if UPLOAD_ID_RE.match(entry.name):
                yield entry.name

    def discard_partial(self, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._partial_path(upload_id).unlink()

    def _install(self, src: Path, sha256: str) -> bool:
        dest = self._blob_path(sha256)
        if dest.exists():
            src.unlink()
            return False
        _makedirs_durable(dest.parent)
        fd = os.open(src, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(src, 0o444)
        os.rename(src, dest)
        _fsync_dir(dest.parent)
        _fsync_dir(src.parent)
        return True

    def commit_partial(self, upload_id: str, sha256: str) -> bool:
        src = self._partial_path(upload_id)
        if not src.exists():
            raise PartialNotFound(upload_id)
        installed = self._install(src, sha256)
        if self.retention_days is not None and self.get_retention(sha256) is None:
            until = self.clock.now() + dt.timedelta(days=self.retention_days)
            self._write_holds(sha256, {**self._read_holds(sha256),
                                       "retain_until": until.astimezone(dt.UTC).isoformat()})
        return installed

    def put_bytes(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if self.exists(sha256):
            return sha256
        tmp = self._tmp / f"{sha256}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        self._install(tmp, sha256)
        return sha256

    def exists(self, sha256: str) -> bool:
        return self._blob_path(sha256).exists()

    def size(self, sha256: str) -> int:
        try:
            return self._blob_path(sha256).stat().st_size
        except FileNotFoundError as exc:
            raise BlobNotFound(sha256) from exc

    def read_range(
        self, sha256: str, start: int = 0, end: int | None = None, chunk_size: int = 1024 * 1024
    ) -> Iterator[bytes]:
        path = self._blob_path(sha256)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError as exc:
            raise BlobNotFound(sha256) from exc
        return self._iter(fh, start, end, chunk_size)

    @staticmethod
    def _iter(fh: BinaryIO, start: int, end: int | None, chunk_size: int) -> Iterator[bytes]:
        with fh:
            fh.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                n = chunk_size if remaining is None else min(chunk_size, remaining)
                data = fh.read(n)
                if not data:
                    break
                if remaining is not None:
                    remaining -= len(data)
                yield data

    @contextlib.contextmanager
    def local_path(self, sha256: str) -> Iterator[Path]:
        path = self._blob_path(sha256)
        if not path.exists():
            raise BlobNotFound(sha256)
        yield path

    def delete(self, sha256: str, bypass_governance: bool = False) -> None:
        path = self._blob_path(sha256)
        if path.exists():
            holds = self._read_holds(sha256)
            if holds.get("legal_hold"):
                raise BlobLocked(f"{sha256} is under legal hold")
            until = self._retain_until(holds)
            if until is not None and until > self.clock.now() and not bypass_governance:
                raise BlobLocked(f"{sha256} is retained until {until.isoformat()}")
        try:
            path.unlink()
        except FileNotFoundError:
            self._drop_holds(sha256)
            return
        except OSError as exc:  # pragma: no cover - permissions
            raise StorageError(str(exc)) from exc
        _fsync_dir(path.parent)
        self._drop_holds(sha256)

    # --- retention and legal hold: enforced at this API only (see the module docstring) ---

    def _holds_path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self._holds / f"{sha256}.json"

    def _require_blob(self, sha256: str) -> None:
        if not self._blob_path(sha256).exists():
            raise BlobNotFound(sha256)

    def _read_holds(self, sha256: str) -> dict[str, Any]:
        try:
            data = json.loads(self._holds_path(sha256).read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StorageError(f"unreadable retention record for {sha256}: {exc}") from exc
        return data if isinstance(data, dict) else {}

    def _write_holds(self, sha256: str, holds: dict[str, Any]) -> None:
        path = self._holds_path(sha256)
        tmp = self._tmp / f"{sha256}.holds.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "w") as fh:
            json.dump(holds, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, path)
        _fsync_dir(path.parent)

    def _drop_holds(self, sha256: str) -> None:
        path = self._holds_path(sha256)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            _fsync_dir(path.parent)

    @staticmethod
    def _retain_until(holds: dict[str, Any]) -> dt.datetime | None:
        value = holds.get("retain_until")
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else None

    def set_retention(self, sha256: str, until: dt.datetime, *, bypass: bool = False) -> None:
        until = _aware(until)
        self._require_blob(sha256)
        holds = self._read_holds(sha256)
        current = self._retain_until(holds)
        if (current is not None and until < current and current > self.clock.now()
                and not bypass):
            raise BlobLocked(f"{sha256} is retained until {current.isoformat()}; shortening "
                             "needs bypass")
        self._write_holds(sha256, {**holds, "retain_until": until.isoformat()})

    def get_retention(self, sha256: str) -> dt.datetime | None:
        self._require_blob(sha256)
        return self._retain_until(self._read_holds(sha256))

    def set_legal_hold(self, sha256: str, on: bool) -> None:
        self._require_blob(sha256)
        self._write_holds(sha256, {**self._read_holds(sha256), "legal_hold": bool(on)})

    def legal_hold(self, sha256: str) -> bool:
        self._require_blob(sha256)
        return bool(self._read_holds(sha256).get("legal_hold"))

    def ping(self) -> None:
        if not os.access(self._blobs, os.R_OK | os.W_OK | os.X_OK):
            raise StorageError(f"{self._blobs} is not readable and writable")

    def free_bytes(self) -> int | None:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize
