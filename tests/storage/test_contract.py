"""The blob store contract: the same tests on LocalBlobStore and on S3BlobStore (SeaweedFS)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid

import pytest
from storage_helpers import (
    Backend,
    blob_bytes,
    new_id,
    read_partial,
    sha,
    store_blob,
    write_upload,
)

from evidence_locker.storage.base import (
    BlobLocked,
    BlobNotFound,
    PartialNotFound,
    StorageError,
)
from evidence_locker.storage.s3 import DEFAULT_RETENTION_DAYS, PART_BYTES, S3BlobStore

MiB = 1024 * 1024


# --- partials ------------------------------------------------------------------------------


def test_partial_append_sync_size_read(backend: Backend) -> None:
    store = backend.store
    upload_id = new_id()
    store.create_partial(upload_id)
    data = os.urandom(300_000)
    with store.open_partial(upload_id) as partial:
        assert partial.size == 0
        assert b"".join(partial.read()) == b""
        partial.append(data[:1000])
        partial.append(memoryview(data)[1000:100_000])
        assert partial.size == 100_000
        partial.sync()
        partial.append(data[100_000:])
        partial.sync()
        assert partial.size == len(data)
        assert b"".join(partial.read(chunk_size=4096)) == data
    assert read_partial(store, upload_id) == data


def test_missing_partial(backend: Backend) -> None:
    with pytest.raises(PartialNotFound), backend.store.open_partial(new_id()):
        pass
    with pytest.raises(PartialNotFound):
        backend.store.commit_partial(new_id(), sha(b"x"))
    with pytest.raises(ValueError):
        backend.store.create_partial("../../etc")


def test_reopen_after_restart_sees_the_same_bytes(backend: Backend) -> None:
    data = os.urandom(200_000)
    upload_id = write_upload(backend.store, data, pieces=[50_000, 150_000])
    restarted = backend.reopen()
    with restarted.open_partial(upload_id) as partial:
        assert partial.size == len(data)
        assert b"".join(partial.read()) == data
        partial.append(b"more")
        partial.sync()
    assert read_partial(backend.reopen(), upload_id) == data + b"more"


@pytest.mark.parametrize("cut", [0, 100, 150, 300, 450, 599, 600])
def test_truncate(backend: Backend, cut: int) -> None:
    """Synced pieces of 100, 200 and 300 bytes: cuts at a boundary, inside a piece, at 0 and at
    the end; the rest survives a reopen."""
    data = os.urandom(600)
    upload_id = write_upload(backend.store, data, pieces=[100, 200, 300])
    with backend.store.open_partial(upload_id) as partial:
        partial.truncate(cut)
        assert partial.size == cut
        assert b"".join(partial.read()) == data[:cut]
    with backend.reopen().open_partial(upload_id) as partial:
        assert partial.size == cut
        assert b"".join(partial.read()) == data[:cut]
        partial.append(b"tail")
        partial.sync()
    assert read_partial(backend.reopen(), upload_id) == data[:cut] + b"tail"


def test_truncate_unsynced_bytes_then_append(backend: Backend) -> None:
    """A PATCH that fails mid-body is rolled back to where it started."""
    data = os.urandom(5000)
    upload_id = write_upload(backend.store, data[:2000])
    with backend.store.open_partial(upload_id) as partial:
        partial.append(b"garbage" * 100)
        partial.truncate(2000)
        partial.append(data[2000:])
        partial.sync()
    assert read_partial(backend.reopen(), upload_id) == data


def test_discard_partial(backend: Backend) -> None:
    upload_id = write_upload(backend.store, os.urandom(1000), pieces=[400, 600])
    backend.store.discard_partial(upload_id)
    with pytest.raises(PartialNotFound), backend.store.open_partial(upload_id):
        pass
    backend.store.discard_partial(upload_id)  # twice is fine
    backend.store.discard_partial(new_id())  # never existed: fine


# --- committing ----------------------------------------------------------------------------


def test_commit_is_durable_and_content_addressed(backend: Backend) -> None:
    data = os.urandom(123_457)
    upload_id = write_upload(backend.store, data, pieces=[23_457, 100_000])
    digest = sha(data)
    assert not backend.store.exists(digest)
    assert backend.store.commit_partial(upload_id, digest) is True
    restarted = backend.reopen()
    assert restarted.exists(digest)
    assert restarted.size(digest) == len(data)
    assert blob_bytes(restarted, digest) == data
    with pytest.raises(PartialNotFound), restarted.open_partial(upload_id):
        pass


def test_duplicate_commit_returns_false_and_drops_the_partial(backend: Backend) -> None:
    data = os.urandom(10_000)
    digest = store_blob(backend.store, data)
    again = write_upload(backend.store, data, pieces=[5000, 5000])
    assert backend.store.commit_partial(again, digest) is False
    with pytest.raises(PartialNotFound), backend.store.open_partial(again):
        pass
    assert blob_bytes(backend.store, digest) == data


def test_zero_length_blob(backend: Backend) -> None:
    upload_id = new_id()
    backend.store.create_partial(upload_id)
    empty = sha(b"")
    assert backend.store.commit_partial(upload_id, empty) is True
    assert backend.store.exists(empty)
    assert backend.store.size(empty) == 0
    assert blob_bytes(backend.store, empty) == b""
    with backend.store.local_path(empty) as path:
        assert path.read_bytes() == b""


def test_one_big_append_and_many_small_ones_make_the_same_blob(backend: Backend) -> None:
    """More than PART_BYTES in one call (the S3 partial PUTs 8 MiB part objects as it goes and
    holds no more than that) versus 64 KiB appends synced every 1 MiB."""
    data = os.urandom(2 * PART_BYTES + 3 * MiB + 17)
    digest = sha(data)
    one = backend.store
    big = new_id()
    one.create_partial(big)
    with one.open_partial(big) as partial:
        partial.append(data)
        if isinstance(one, S3BlobStore):
            assert len(partial._buffer) < PART_BYTES  # type: ignore[attr-defined]
        partial.sync()
    other = backend.fresh()
    small = new_id()
    other.create_partial(small)
    with other.open_partial(small) as partial:
        for at in range(0, len(data), 64 * 1024):
            partial.append(data[at:at + 64 * 1024])
            if (at + 64 * 1024) % MiB == 0:
                partial.sync()
        partial.sync()
        assert hashlib.sha256(b"".join(partial.read())).hexdigest() == digest
    assert one.commit_partial(big, digest) is True
    assert other.commit_partial(small, digest) is True
    assert blob_bytes(one, digest) == data
    assert blob_bytes(other, digest) == data


def test_multipart_blob_from_uneven_parts_is_byte_identical(backend: Backend) -> None:
    """13 MiB in synced pieces of 1, 6 and 6 MiB: on S3 the 1 MiB piece is merged with the next
    and uploaded again, the last is copied server-side."""
    data = os.urandom(13 * MiB)
    digest = store_blob(backend.store, data, pieces=[1 * MiB, 6 * MiB, 6 * MiB])
    assert backend.store.size(digest) == 13 * MiB
    assert blob_bytes(backend.reopen(), digest) == data
    if backend.s3:
        assert backend.admin is not None and isinstance(backend.store, S3BlobStore)
        head = backend.admin.head_object(Bucket=backend.store.bucket,
                                         Key=backend.store._blob_key(digest))
        assert head["ETag"].strip('"').endswith("-2")
        assert head["Metadata"].get("sha256") == digest


# --- reading -------------------------------------------------------------------------------


def test_read_range(backend: Backend) -> None:
    data = os.urandom(10_000)
    digest = store_blob(backend.store, data)
    store = backend.store

    def rng(start: int = 0, end: int | None = None, chunk: int = 1024 * 1024) -> bytes:
        return b"".join(store.read_range(digest, start, end, chunk_size=chunk))

    assert rng() == data
    assert rng(0, 0) == data[:1]
    assert rng(10, 19) == data[10:20]
    assert rng(9_999) == data[-1:]
    assert rng(9_999, 9_999) == data[-1:]
    assert rng(5_000) == data[5_000:]
    assert rng(9_000, 20_000) == data[9_000:]
    assert rng(10_000) == b""
    assert rng(10, 5) == b""
    chunks = list(store.read_range(digest, 0, None, chunk_size=3000))
    assert b"".join(chunks) == data
    assert all(len(c) <= 3000 for c in chunks)


def test_missing_blob(backend: Backend) -> None:
    digest = sha(b"never stored " + os.urandom(8))
    store = backend.store
    assert not store.exists(digest)
    with pytest.raises(BlobNotFound):
        store.size(digest)
    with pytest.raises(BlobNotFound):
        store.read_range(digest)
    with pytest.raises(BlobNotFound), store.local_path(digest):
        pass
    with pytest.raises(BlobNotFound):
        store.get_retention(digest)
    with pytest.raises(BlobNotFound):
        store.legal_hold(digest)
    with pytest.raises(ValueError):
        store.exists("../" + digest[3:])
    backend.lifecycle.delete(digest, bypass_governance=True)  # missing: not an error


def test_put_bytes(backend: Backend) -> None:
    poster = os.urandom(20_000)
    digest = backend.store.put_bytes(poster)
    assert digest == sha(poster)
    assert backend.store.put_bytes(poster) == digest
    assert backend.store.exists(digest)
    assert blob_bytes(backend.reopen(), digest) == poster


def test_local_path(backend: Backend) -> None:
    data = os.urandom(50_000)
    digest = store_blob(backend.store, data)
    with backend.store.local_path(digest) as path:
        assert path.read_bytes() == data
        seen = path
    if backend.s3:
        assert not seen.exists()  # a temporary download, removed on exit


def test_free_bytes(backend: Backend) -> None:
    free = backend.store.free_bytes()
    assert free is None if backend.s3 else (free is not None and free > 0)


# --- retention and legal hold --------------------------------------------------------------


def test_commit_sets_governance_retention(backend: Backend) -> None:
    digest = store_blob(backend.store, os.urandom(1000))
    until = backend.store.get_retention(digest)
    assert until is not None
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(days=DEFAULT_RETENTION_DAYS)
    assert abs((until - expected).total_seconds()) < 120
    assert backend.store.legal_hold(digest) is False


def test_retention_extends_freely_and_shortens_only_with_bypass(backend: Backend) -> None:
    digest = store_blob(backend.store, os.urandom(1000))
    lifecycle = backend.lifecycle
    first = lifecycle.get_retention(digest)
    assert first is not None
    later = first + dt.timedelta(days=30)
    lifecycle.set_retention(digest, later)
    assert lifecycle.get_retention(digest) == later.replace(microsecond=0) or \
        abs((lifecycle.get_retention(digest) or first) - later).total_seconds() <= 1
    with pytest.raises(BlobLocked):
        lifecycle.set_retention(digest, first)
    lifecycle.set_retention(digest, first, bypass=True)
    got = lifecycle.get_retention(digest)
    assert got is not None and abs((got - first).total_seconds()) <= 1
    with pytest.raises(ValueError):
        lifecycle.set_retention(digest, dt.datetime(2099, 1, 1))  # naive: refused


def test_retained_blob_is_deleted_only_with_bypass(backend: Backend) -> None:
    data = os.urandom(2000)
    digest = store_blob(backend.store, data)
    with pytest.raises(BlobLocked):
        backend.lifecycle.delete(digest)
    assert backend.store.exists(digest)
    backend.lifecycle.delete(digest, bypass_governance=True)
    assert not backend.store.exists(digest)
    assert not backend.reopen().exists(digest)


def test_held_blob_cannot_be_deleted_until_the_hold_is_lifted(backend: Backend) -> None:
    data = os.urandom(3000)
    digest = store_blob(backend.store, data)
    backend.lifecycle.set_legal_hold(digest, True)
    assert backend.store.legal_hold(digest) is True
    for store in (backend.store, backend.lifecycle):
        for bypass in (False, True):
            with pytest.raises(StorageError):
                store.delete(digest, bypass_governance=bypass)
    with pytest.raises(BlobLocked):
        backend.lifecycle.delete(digest, bypass_governance=True)
    if backend.s3:
        # Not even the admin identity can delete the held version.
        assert backend.admin is not None and isinstance(backend.store, S3BlobStore)
        key = backend.store._blob_key(digest)
        version = backend.admin.head_object(Bucket=backend.store.bucket, Key=key)["VersionId"]
        from botocore.exceptions import ClientError

        with pytest.raises(ClientError):
            backend.admin.delete_object(Bucket=backend.store.bucket, Key=key, VersionId=version,
                                        BypassGovernanceRetention=True)
    assert blob_bytes(backend.store, digest) == data
    backend.lifecycle.set_legal_hold(digest, False)
    assert backend.store.legal_hold(digest) is False
    backend.lifecycle.delete(digest, bypass_governance=True)
    assert not backend.store.exists(digest)


def test_ping_and_partial_listing(backend: Backend) -> None:
    backend.store.ping()
    assert list(backend.store.partial_ids()) == []
    ids = [uuid.uuid4().hex for _ in range(2)]
    for upload_id in ids:
        backend.store.create_partial(upload_id)
    assert sorted(backend.store.partial_ids()) == sorted(ids)
    backend.store.discard_partial(ids[0])
    assert list(backend.store.partial_ids()) == [ids[1]]
