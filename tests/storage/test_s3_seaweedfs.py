"""What only the S3 backend can say, on a real SeaweedFS: least privilege per credential, SHA-256
checksums, Object Lock details, configuration through the URL and the AWS environment."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import secrets
from typing import Any

import pytest
from botocore.exceptions import ClientError
from storage_helpers import (
    Backend,
    blob_bytes,
    make_s3_store,
    new_id,
    sha,
    store_blob,
    write_upload,
)

from evidence_locker.storage.base import BlobLocked, PartialNotFound, StorageError, open_store
from evidence_locker.storage.s3 import S3BlobStore

pytestmark = pytest.mark.xdist_group(name="seaweedfs")

MiB = 1024 * 1024


def s3(store: object) -> S3BlobStore:
    assert isinstance(store, S3BlobStore)
    return store


def b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def versions_under(backend: Backend, prefix: str) -> list[tuple[str, str]]:
    assert backend.admin is not None and backend.bucket is not None
    page = backend.admin.list_object_versions(Bucket=backend.bucket, Prefix=prefix)
    return ([(v["Key"], "version") for v in page.get("Versions", [])]
            + [(m["Key"], "marker") for m in page.get("DeleteMarkers", [])])


# --- least privilege -----------------------------------------------------------------------


def test_ingest_credential_cannot_delete_blobs(s3_backend: Backend) -> None:
    poster = s3_backend.store.put_bytes(os.urandom(1000))  # no retention: only policy stops it
    evidence = store_blob(s3_backend.store, os.urandom(1000))  # retained
    for digest in (poster, evidence):
        for bypass in (False, True):
            with pytest.raises(StorageError):
                s3_backend.store.delete(digest, bypass_governance=bypass)
        assert s3_backend.store.exists(digest)
    # Not even a delete marker (which would hide the blob) is allowed.
    ingest = s3(s3_backend.store).client
    with pytest.raises(ClientError) as denied:
        ingest.delete_object(Bucket=s3(s3_backend.store).bucket,
                             Key=s3(s3_backend.store)._blob_key(poster))
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert s3_backend.store.exists(poster)
    # The lifecycle credential can.
    s3_backend.lifecycle.delete(poster)
    assert not s3_backend.store.exists(poster)


def test_ingest_credential_cannot_place_or_lift_holds(s3_backend: Backend) -> None:
    digest = store_blob(s3_backend.store, os.urandom(1000))
    with pytest.raises(StorageError):
        s3_backend.store.set_legal_hold(digest, True)
    assert s3_backend.store.legal_hold(digest) is False
    s3_backend.lifecycle.set_legal_hold(digest, True)
    with pytest.raises(StorageError):
        s3_backend.store.set_legal_hold(digest, False)
    assert s3_backend.store.legal_hold(digest) is True
    s3_backend.lifecycle.set_legal_hold(digest, False)


def test_ingest_credential_cannot_bypass_governance(s3_backend: Backend) -> None:
    digest = store_blob(s3_backend.store, os.urandom(1000))
    before = s3_backend.store.get_retention(digest)
    assert before is not None
    with pytest.raises(BlobLocked):
        s3_backend.store.set_retention(digest, before - dt.timedelta(days=10), bypass=True)
    with pytest.raises(StorageError):
        s3_backend.store.delete(digest, bypass_governance=True)
    assert s3_backend.store.get_retention(digest) == before
    # Extending needs no bypass, so the ingest credential may (commit does exactly that).
    later = before + dt.timedelta(days=1)
    s3_backend.store.set_retention(digest, later)
    assert s3_backend.store.get_retention(digest) == later


def test_lifecycle_credential_cannot_write(s3_backend: Backend) -> None:
    with pytest.raises(StorageError):
        s3_backend.lifecycle.put_bytes(os.urandom(100))
    with pytest.raises(StorageError):
        s3_backend.lifecycle.create_partial(new_id())


def test_only_admin_configures_the_bucket(s3_backend: Backend) -> None:
    """"Write" would let ingest and lifecycle put a bucket lifecycle rule that expires objects,
    or drop the bucket policy: the policy denies it."""
    for store in (s3(s3_backend.store), s3(s3_backend.lifecycle)):
        with pytest.raises(ClientError):
            store.client.put_bucket_lifecycle_configuration(
                Bucket=store.bucket, LifecycleConfiguration={"Rules": [
                    {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": "blobs/"},
                     "Expiration": {"Days": 1}}]})
        with pytest.raises(ClientError):
            store.client.delete_bucket_policy(Bucket=store.bucket)
        with pytest.raises(ClientError):
            store.client.put_object_lock_configuration(
                Bucket=store.bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})


def test_delete_removes_every_version(s3_backend: Backend) -> None:
    digest = store_blob(s3_backend.store, os.urandom(1000))
    key = s3(s3_backend.store)._blob_key(digest)
    s3_backend.lifecycle.delete(digest, bypass_governance=True)
    assert versions_under(s3_backend, key) == []


# --- checksums -----------------------------------------------------------------------------


def test_wrong_sha256_checksum_is_refused(s3_backend: Backend) -> None:
    store = s3(s3_backend.store)
    data = os.urandom(4096)
    key = f"{store.prefix}checksum-probe"
    with pytest.raises(ClientError) as refused:
        store.client.put_object(Bucket=store.bucket, Key=key, Body=data,
                                ChecksumSHA256=b64sha(data + b"!"))
    assert refused.value.response["Error"]["Code"] in ("BadDigest", "InvalidDigest",
                                                       "XAmzContentChecksumMismatch")
    mpu = store.client.create_multipart_upload(Bucket=store.bucket, Key=key,
                                               ChecksumAlgorithm="SHA256")
    try:
        with pytest.raises(ClientError):
            store.client.upload_part(Bucket=store.bucket, Key=key, UploadId=mpu["UploadId"],
                                     PartNumber=1, Body=data, ChecksumSHA256=b64sha(b"other"))
    finally:
        store.client.abort_multipart_upload(Bucket=store.bucket, Key=key,
                                            UploadId=mpu["UploadId"])
    assert versions_under(s3_backend, key) == []


def test_a_small_blob_is_verified_by_the_store_against_its_name(s3_backend: Backend) -> None:
    """Blobs up to 8 MiB go up in one PUT whose checksum is their name: bytes that do not hash
    to the name are refused by SeaweedFS, not stored."""
    data = os.urandom(10_000)
    upload_id = write_upload(s3_backend.store, data)
    wrong = sha(data + b"tampered")
    with pytest.raises(StorageError):
        s3_backend.store.commit_partial(upload_id, wrong)
    assert not s3_backend.store.exists(wrong)
    assert s3_backend.store.commit_partial(upload_id, sha(data)) is True


# --- what the object store holds -----------------------------------------------------------


def test_no_partial_objects_are_left_behind(s3_backend: Backend) -> None:
    data = os.urandom(600)
    upload_id = write_upload(s3_backend.store, data, pieces=[100, 200, 300])
    with s3_backend.store.open_partial(upload_id) as partial:
        partial.truncate(150)  # rewrites the 200-byte piece: its old version is dropped
    prefix = f"{s3_backend.prefix}partial/{upload_id}/"
    assert sorted(versions_under(s3_backend, prefix)) == [
        (f"{prefix}.created", "version"),
        (f"{prefix}{0:020d}", "version"),
        (f"{prefix}{100:020d}", "version"),
    ]
    assert s3_backend.store.commit_partial(upload_id, sha(data[:150])) is True
    assert versions_under(s3_backend, prefix) == []


def test_a_crash_after_the_blob_is_stored_is_recovered(s3_backend: Backend) -> None:
    """Stored but not yet locked nor cleaned up (a process killed in between): committing again
    finds the blob, locks it and drops the partial."""
    store = s3(s3_backend.store)
    data = os.urandom(2000)
    digest = sha(data)
    upload_id = write_upload(store, data)
    store.client.put_object(Bucket=store.bucket, Key=store._blob_key(digest), Body=data,
                            ChecksumSHA256=b64sha(data))
    assert store.get_retention(digest) is None
    assert store.commit_partial(upload_id, digest) is False
    assert store.get_retention(digest) is not None
    assert versions_under(s3_backend, f"{s3_backend.prefix}partial/{upload_id}/") == []


def test_large_blob_metadata_and_parts(s3_backend: Backend) -> None:
    data = os.urandom(17 * MiB)
    digest = store_blob(s3_backend.store, data, pieces=[8 * MiB, 8 * MiB, 1 * MiB])
    assert s3_backend.admin is not None
    head = s3_backend.admin.head_object(Bucket=s3(s3_backend.store).bucket,
                                        Key=s3(s3_backend.store)._blob_key(digest))
    assert head["ContentLength"] == 17 * MiB
    assert head["Metadata"]["sha256"] == digest
    assert head["ETag"].strip('"').endswith("-3")  # three copied parts
    assert blob_bytes(s3_backend.store, digest) == data


def test_bucket_without_object_lock(s3_services: Any, tmp_path: Any) -> None:
    bucket = f"locker-plain-{secrets.token_hex(4)}"
    s3_services.create_bucket(bucket, object_lock=False)
    store = make_s3_store(s3_services, bucket, "", "ingest", object_lock=False,
                          tmp_dir=tmp_path)
    lifecycle = make_s3_store(s3_services, bucket, "", "lifecycle", object_lock=False)
    data = os.urandom(3000)
    digest = store_blob(store, data)
    assert store.get_retention(digest) is None
    with pytest.raises(StorageError):
        store.delete(digest)
    lifecycle.delete(digest)
    assert not store.exists(digest)


def test_bucket_with_default_retention(s3_services: Any, tmp_path: Any) -> None:
    """A bucket-wide default retention (a safety net some forces will want) also locks the
    upload's part objects: the ingest credential cannot remove those versions, so the store
    hides them behind delete markers and everything still works."""
    bucket = f"locker-default-{secrets.token_hex(4)}"
    s3_services.create_bucket(bucket)
    s3_services.client().put_object_lock_configuration(
        Bucket=bucket, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    store = make_s3_store(s3_services, bucket, "", "ingest", tmp_dir=tmp_path)
    data = os.urandom(900)
    upload_id = write_upload(store, data, pieces=[300, 300, 300])
    with store.open_partial(upload_id) as partial:
        partial.truncate(450)
        partial.append(data[450:])
        partial.sync()
    digest = sha(data)
    assert store.commit_partial(upload_id, digest) is True
    assert blob_bytes(store, digest) == data
    with pytest.raises(PartialNotFound), store.open_partial(upload_id):
        pass
    until = store.get_retention(digest)
    assert until is not None and until > dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    gone = write_upload(store, b"abandoned")
    store.discard_partial(gone)
    with pytest.raises(PartialNotFound), store.open_partial(gone):
        pass


# --- configuration -------------------------------------------------------------------------


def test_open_store_from_url_and_aws_environment(s3_services: Any, s3_bucket: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"url-{secrets.token_hex(4)}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_services.s3_ingest.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_services.s3_ingest.secret_key)
    monkeypatch.setenv("AWS_REGION", s3_services.s3_region)
    store = open_store(f"s3://{s3_bucket}?endpoint_url={s3_services.s3_endpoint}"
                       f"&prefix={prefix}")
    assert isinstance(store, S3BlobStore)
    assert store.prefix == f"{prefix}/"
    digest = store.put_bytes(b"poster")
    assert b"".join(store.read_range(digest)) == b"poster"
    assert s3_services.client().head_object(
        Bucket=s3_bucket, Key=f"{prefix}/blobs/{digest[:2]}/{digest[2:4]}/{digest}")
