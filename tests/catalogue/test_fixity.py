"""Fixity sweeps re-read stored media and catch what changed or vanished underneath us."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat

from sqlalchemy import select

from cat_helpers import record_camera
from evidence_locker.audit.models import AuditEvent
from evidence_locker.catalogue.fixity import fixity_failures, fixity_sweep
from evidence_locker.catalogue.models import Blob, RecordingFile
from evidence_locker.db import transaction
from evidence_locker.storage.local import LocalBlobStore

DAY = dt.timedelta(days=1)


def tamper(runtime, sha256: str, data: bytes | None) -> None:
    """What a failing disk or a careless administrator does: bytes changed, or gone."""
    store = runtime.store
    if isinstance(store, LocalBlobStore):
        path = store._blob_path(sha256)
        if data is None:
            path.unlink()
        else:
            os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)
            path.write_bytes(data)
        return
    import boto3

    admin = boto3.client(
        "s3", endpoint_url=os.environ["LOCKER_TEST_S3_ENDPOINT"],
        aws_access_key_id=os.environ["LOCKER_TEST_S3_ADMIN_ACCESS_KEY"],
        aws_secret_access_key=os.environ["LOCKER_TEST_S3_ADMIN_SECRET_KEY"],
        region_name=os.environ["LOCKER_TEST_S3_REGION"])
    key = store._blob_key(sha256)  # type: ignore[attr-defined]
    if data is None:
        admin.delete_object(Bucket=store.bucket, Key=key)  # type: ignore[attr-defined]
    else:
        admin.put_object(Bucket=store.bucket, Key=key, Body=data)  # type: ignore[attr-defined]


def test_a_sweep_confirms_intact_media_then_waits_until_due(client, runtime, force,
                                                            clock) -> None:
    record_camera(client, force.dock_token, device="CAM-1", recording="R1", clip=b"a" * 5000)
    with transaction(runtime.sessions) as s:
        blobs = s.scalars(select(Blob)).all()
    report = fixity_sweep(runtime, batch=100, max_age=90 * DAY)
    assert report.checked == report.ok == len(blobs) == 3
    assert report.bytes_read == sum(b.size for b in blobs)
    assert fixity_sweep(runtime, batch=100, max_age=90 * DAY).checked == 0  # not due yet
    clock.advance(91 * DAY)
    assert fixity_sweep(runtime, batch=2, max_age=90 * DAY).checked == 2  # batches bound work
    with transaction(runtime.sessions) as s:
        assert set(s.scalars(select(Blob.fixity_state))) == {"ok"}


def test_changed_and_missing_media_raise_an_alert_and_an_audit_event(client, runtime, force,
                                                                     clock) -> None:
    clip = b"original footage " * 300
    record_camera(client, force.dock_token, device="CAM-1", recording="R1", clip=clip)
    clip_sha = hashlib.sha256(clip).hexdigest()
    with transaction(runtime.sessions) as s:
        track_sha = s.scalars(select(RecordingFile.sha256)
                              .where(RecordingFile.kind == "track")).one()
    tamper(runtime, clip_sha, b"edited footage " * 300)
    tamper(runtime, track_sha, None)
    report = fixity_sweep(runtime, batch=100, max_age=90 * DAY)
    assert sorted(report.failures) == sorted([(clip_sha, "mismatch"), (track_sha, "missing")])
    assert fixity_failures(runtime) == 2
    with transaction(runtime.sessions) as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "fixity.failed")).all()
    assert {e.object_id for e in events} == {clip_sha, track_sha}
    assert all("recording_id" in e.details for e in events)
