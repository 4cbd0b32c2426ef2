"""Media on the local filesystem: write to a partial, fsync, rename into place, fsync the
directory."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from evidence_locker.storage.base import (
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


class LocalBlobStore:
    """`blobs/ab/cd/<sha256>` (read-only), `partial/<upload id>` for uploads in progress."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.resolve().as_uri()
        self._blobs = root / "blobs"
        self._partial = root / "partial"
        self._tmp = root / "tmp"
        for d in (self._blobs, self._partial, self._tmp):
            _makedirs_durable(d)

    @classmethod
    def from_url(cls, url: str) -> LocalBlobStore:
        parsed = urlparse(url)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise ValueError(f"not a local file URL: {url}")
        return cls(Path(unquote(parsed.path)))

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
        return self._install(src, sha256)

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

    def delete(self, sha256: str) -> None:
        path = self._blob_path(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:  # pragma: no cover - permissions
            raise StorageError(str(exc)) from exc
        _fsync_dir(path.parent)

    def free_bytes(self) -> int | None:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize
