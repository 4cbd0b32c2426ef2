"""Backup and restore on both deployments: restored into an empty one (data directory, or
PostgreSQL database and a new Object Lock bucket), the audit chain verifies, a fixity sweep finds
every blob intact, and legal holds and retention travel with the media."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cat_helpers import record_camera
from evidence_locker.audit.chain import sequence_pending
from evidence_locker.audit.models import AuditEvent
from evidence_locker.catalogue.models import Blob, Recording, RecordingFile
from evidence_locker.db import make_engine, make_session_factory, transaction
from evidence_locker.storage.base import BlobStore
from evidence_locker.storage.local import LocalBlobStore
from live_server import locker
from support import Deployment


def _env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "LOCKER_DATA_DIR": str(data_dir)}


def _database_url(dep: Deployment) -> str:
    return dep.overrides.get("database_url") or \
        f"sqlite:///{dep.overrides['data_dir'] / 'locker.db'}"


def _store(dep: Deployment) -> BlobStore:
    url = dep.overrides.get("storage_url")
    if url is None:
        return LocalBlobStore(dep.overrides["data_dir"] / "media")
    from evidence_locker.storage.s3 import S3BlobStore

    return S3BlobStore.from_url(url, access_key=dep.env["AWS_ACCESS_KEY_ID"],
                                secret_key=dep.env["AWS_SECRET_ACCESS_KEY"])


def test_restore_into_an_empty_deployment_verifies(
    client, runtime, force, deployment, empty_deployment, lifecycle_store, tmp_path,
) -> None:
    for n in range(3):
        record_camera(client, force.dock_token, device="CAM-1", recording=f"R{n}",
                      clip=f"footage {n}".encode() * 1000)
    runtime.jobs.run_pending()
    sequence_pending(runtime.sessions, clock=runtime.clock)
    with transaction(runtime.sessions) as s:
        held = s.scalars(select(RecordingFile.sha256).where(RecordingFile.kind == "clip")).first()
        events = s.scalar(select(func.count()).select_from(AuditEvent))
    assert held is not None
    lifecycle_store.set_legal_hold(held, True)
    source_env = {**_env(runtime.settings.data_dir), **deployment.env}

    made = locker("backup", str(tmp_path / "backup"), env=source_env)
    assert made.returncode == 0, made.stderr
    assert re.search(r"and 7 blobs \(\d+ bytes, [1-9]\d* with retention or legal hold\)",
                     made.stdout), made.stdout
    manifest = json.loads((tmp_path / "backup" / "backup-manifest.json").read_text())
    assert manifest["holds"][held]["legal_hold"] is True

    restored_env = {**os.environ, **empty_deployment.env}
    restored = locker("restore", str(tmp_path / "backup"), env=restored_env)
    assert restored.returncode == 0, restored.stderr
    verify = locker("audit", "verify", env=restored_env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"audit chain OK: {events} events" in verify.stdout, verify.stdout
    fixity = locker("fixity", "--max-age-days", "0", "--batches", "100", env=restored_env)
    assert fixity.returncode == 0, fixity.stdout + fixity.stderr
    counts = re.search(r"(\d+) checked, (\d+) ok, 0 failed", fixity.stdout)
    assert counts and counts.group(1) == counts.group(2)
    with transaction(runtime.sessions) as s:
        blobs = s.scalar(select(func.count()).select_from(Blob))
    assert int(counts.group(1)) == blobs == 7  # 3 clips, 3 sidecars, 1 shared track

    target = _store(empty_deployment)
    assert target.legal_hold(held)  # holds travel with the media
    source_until = runtime.store.get_retention(held)
    if source_until is not None:  # S3 originals carry governance retention: so do the copies
        until = target.get_retention(held)
        assert until is not None and until >= source_until
    engine = make_engine(_database_url(empty_deployment))
    with transaction(make_session_factory(engine)) as s:
        assert s.scalar(select(func.count()).select_from(Recording)) == 3
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == events
    engine.dispose()

    again = locker("restore", str(tmp_path / "backup"), env=restored_env)
    assert again.returncode == 2
    assert "empty" in again.stderr


@pytest.mark.embedded_only  # damages a blob file in place
def test_a_backup_refuses_a_damaged_blob(client, runtime, force, tmp_path) -> None:
    record_camera(client, force.dock_token, device="CAM-1", recording="R1", clip=b"x" * 999)
    with transaction(runtime.sessions) as s:
        clip_sha = s.scalars(select(RecordingFile.sha256)
                             .where(RecordingFile.kind == "clip")).one()
    path = runtime.store._blob_path(clip_sha)  # type: ignore[attr-defined]
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    path.write_bytes(b"y" * 999)
    made = locker("backup", str(tmp_path / "backup"), env=_env(runtime.settings.data_dir))
    assert made.returncode == 2
    assert "does not match" in made.stderr
