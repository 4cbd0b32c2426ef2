"""Helpers for the blob store tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from evidence_locker.storage.base import BlobStore
from evidence_locker.storage.s3 import S3BlobStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def load_services() -> ModuleType:
    """tests/services.py, loaded by path (tests/ is not a package)."""
    name = "_evidence_locker_tests_services"
    if name not in sys.modules:
        path = Path(__file__).parents[1] / "services.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@dataclass
class Backend:
    kind: str
    store: BlobStore
    """The store under test: for S3, the ingest credential."""
    lifecycle: BlobStore
    """The same place through the lifecycle credential (local: another store object)."""
    reopen: Callable[[], BlobStore]
    """A new store object on the same place, as a restarted process would make."""
    fresh: Callable[[], BlobStore]
    """A store on a new, empty place."""
    admin: S3Client | None = None
    bucket: str | None = None
    prefix: str | None = None

    @property
    def s3(self) -> bool:
        return self.kind == "s3"


def make_s3_store(s3_services: Any, bucket: str, prefix: str, role: str,
                  **kwargs: Any) -> S3BlobStore:
    credential = getattr(s3_services, f"s3_{role}")
    return S3BlobStore(bucket, endpoint_url=s3_services.s3_endpoint,
                       region=s3_services.s3_region, prefix=prefix,
                       access_key=credential.access_key, secret_key=credential.secret_key,
                       **kwargs)



def new_id() -> str:
    return uuid.uuid4().hex


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_partial(store: BlobStore, upload_id: str) -> bytes:
    with store.open_partial(upload_id) as partial:
        return b"".join(partial.read())


def write_upload(store: BlobStore, data: bytes, *, pieces: list[int] | None = None,
                 sync_each: bool = True) -> str:
    """A new upload holding `data`, appended in `pieces` (sizes), synced after each piece."""
    upload_id = new_id()
    store.create_partial(upload_id)
    sizes = pieces or [len(data)]
    assert sum(sizes) == len(data)
    with store.open_partial(upload_id) as partial:
        at = 0
        for n in sizes:
            partial.append(data[at:at + n])
            at += n
            if sync_each:
                partial.sync()
        partial.sync()
        assert partial.size == len(data)
    return upload_id


def store_blob(store: BlobStore, data: bytes, *, pieces: list[int] | None = None) -> str:
    upload_id = write_upload(store, data, pieces=pieces)
    digest = sha(data)
    assert store.commit_partial(upload_id, digest) is True
    return digest


def blob_bytes(store: BlobStore, digest: str) -> bytes:
    return b"".join(store.read_range(digest))
