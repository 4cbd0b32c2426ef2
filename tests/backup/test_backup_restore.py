"""Backup and restore of the embedded default: restored into an empty deployment, the audit
chain verifies and a fixity sweep finds every blob intact."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cat_helpers import record_camera
from evidence_locker.audit.chain import sequence_pending
from evidence_locker.catalogue.models import Blob, Recording, RecordingFile
from evidence_locker.db import transaction
from live_server import locker

pytestmark = pytest.mark.embedded_only  # scale-out: base backups + WAL, see deploy/BACKUP.md


def _env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "LOCKER_DATA_DIR": str(data_dir)}


def test_restore_into_an_empty_deployment_verifies(client, runtime, force, tmp_path) -> None:
    for n in range(3):
        record_camera(client, force.dock_token, device="CAM-1", recording=f"R{n}",
                      clip=f"footage {n}".encode() * 1000)
    runtime.jobs.run_pending()
    sequence_pending(runtime.sessions, clock=runtime.clock)
    with transaction(runtime.sessions) as s:
        held = s.scalars(select(RecordingFile.sha256).where(RecordingFile.kind == "clip")).first()
    assert held is not None
    runtime.store.set_legal_hold(held, True)
    live = runtime.settings.data_dir

    made = locker("backup", str(tmp_path / "backup"), env=_env(live))
    assert made.returncode == 0, made.stderr
    assert "blobs" in made.stdout

    fresh = tmp_path / "restored"
    restored = locker("restore", str(tmp_path / "backup"), env=_env(fresh))
    assert restored.returncode == 0, restored.stderr
    verify = locker("audit", "verify", env=_env(fresh))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    fixity = locker("fixity", "--max-age-days", "0", "--batches", "100", env=_env(fresh))
    assert fixity.returncode == 0, fixity.stdout + fixity.stderr
    counts = re.search(r"(\d+) checked, (\d+) ok, 0 failed", fixity.stdout)
    assert counts and counts.group(1) == counts.group(2)
    with transaction(runtime.sessions) as s:
        blobs = s.scalar(select(func.count()).select_from(Blob))
    assert int(counts.group(1)) == blobs  # each blob once: 3 clips, 3 sidecars, 1 shared track

    from evidence_locker.db import make_engine, make_session_factory
    from evidence_locker.storage.local import LocalBlobStore

    assert LocalBlobStore(fresh / "media").legal_hold(held)  # holds travel with the media

    engine = make_engine(f"sqlite:///{fresh / 'locker.db'}")
    with transaction(make_session_factory(engine)) as s:
        assert s.scalar(select(func.count()).select_from(Recording)) == 3
    engine.dispose()

    again = locker("restore", str(tmp_path / "backup"), env=_env(fresh))
    assert again.returncode == 2
    assert "empty data directory" in again.stderr


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
