"""The blob store contract: every backend (local files, S3) implements it and passes one suite.

Blobs are content-addressed by SHA-256 and never modified once stored. Bytes of an upload in
progress live in a *partial* that any process can reopen, so an upload survives restarts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Protocol

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class StorageError(Exception):
    """A backend failed; the caller must not acknowledge bytes."""


class BlobNotFound(StorageError):
    pass


class PartialNotFound(StorageError):
    """No bytes held for this upload: never created, discarded, or already made a blob."""


class PartialLocked(StorageError):
    """Another request (in this or another process) is writing this upload."""


class BlobLocked(StorageError):
    """Refused by retention or legal hold: deleting a held or retained blob, or shortening a
    retention period without bypass. (An S3 backend raises it when it can tell that a refusal
    came from Object Lock; a bare AccessDenied is a plain StorageError.)"""


def check_sha256(sha256: str) -> str:
    """Blob names come from clients: only a lowercase hex SHA-256 may ever reach a path."""
    if not SHA256_RE.match(sha256):
        raise ValueError("not a lowercase hex SHA-256")
    return sha256


class PartialBlob(Protocol):
    """The bytes of one upload as they arrive. Appends are durable only after `sync()`."""

    @property
    def size(self) -> int: ...

    def append(self, data: bytes | memoryview) -> None: ...

    def sync(self) -> None: ...

    def truncate(self, size: int) -> None:
        """Forget bytes past `size` (e.g. written but never acknowledged before a crash)."""
        ...

    def read(self, chunk_size: int = 8 * 1024 * 1024) -> Iterator[bytes]:
        """The bytes held so far, from the start (to rebuild a hash after a restart)."""
        ...

    def close(self) -> None: ...


class BlobStore(Protocol):
    url: str

    def create_partial(self, upload_id: str) -> None: ...

    def open_partial(self, upload_id: str) -> AbstractContextManager[PartialBlob]:
        """The upload's partial, locked for this caller alone (PartialLocked if busy,
        PartialNotFound if there is none). Closed and unlocked on exit."""
        ...

    def partial_ids(self) -> Iterator[str]:
        """Uploads that still hold bytes in the store."""
        ...

    def discard_partial(self, upload_id: str) -> None: ...

    def commit_partial(self, upload_id: str, sha256: str) -> bool:
        """Make the partial's bytes the durable blob `sha256`. The caller has verified the hash.

        Returns True if stored now, False if the blob already existed (the partial is discarded).
        When this returns, the blob is durable.
        """
        ...

    def put_bytes(self, data: bytes) -> str:
        """Store small derived bytes (posters); returns their SHA-256."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int: ...

    def read_range(
        self, sha256: str, start: int = 0, end: int | None = None, chunk_size: int = 1024 * 1024
    ) -> Iterator[bytes]:
        """Bytes [start, end] inclusive (end None: to the last byte)."""
        ...

    def local_path(self, sha256: str) -> AbstractContextManager[Path]:
        """A readable local file with the blob's bytes, for tools that want a path (PyAV)."""
        ...

    def delete(self, sha256: str, bypass_governance: bool = False) -> None:
        """Remove the blob for good. Refused (BlobLocked/StorageError) while it is under legal
        hold, whatever the caller; refused while under retention unless `bypass_governance` and
        the caller's credential may bypass governance retention. A missing blob is not an error.
        """
        ...

    def ping(self) -> None:
        """Raise StorageError unless the store can be reached now (for /readyz)."""
        ...

    def free_bytes(self) -> int | None:
        """Free space for new uploads, or None when the backend has no meaningful figure."""
        ...

    # --- retention and legal hold (Object Lock semantics, governance mode) -----------------

    def set_retention(self, sha256: str, until: datetime, *, bypass: bool = False) -> None:
        """Keep the blob at least until `until` (timezone-aware). Extending is always allowed;
        shortening (or removing) raises BlobLocked unless `bypass=True` and the credential may
        bypass governance retention."""
        ...

    def get_retention(self, sha256: str) -> datetime | None:
        """The blob's retain-until date (UTC), or None when it has none."""
        ...

    def set_legal_hold(self, sha256: str, on: bool) -> None:
        """Place (`on=True`) or lift a legal hold. A held blob cannot be deleted by anyone."""
        ...

    def legal_hold(self, sha256: str) -> bool: ...


def open_store(url: str) -> BlobStore:
    """Configuration picks the backend."""
    if url.startswith("file://"):
        from evidence_locker.storage.local import LocalBlobStore

        return LocalBlobStore.from_url(url)
    if url.startswith("s3://"):
        from evidence_locker.storage.s3 import S3BlobStore

        return S3BlobStore.from_url(url)
    raise ValueError(f"unsupported storage URL scheme: {url.split(':', 1)[0]}")
