"""Kill the sweep half-way (SIGKILL, a real process), run it again: storage and catalogue agree,
every due recording is gone with a finished tombstone, and nothing was deleted twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

from sqlalchemy import func, select

from evidence_locker.audit.models import AuditEvent
from evidence_locker.catalogue.models import Blob, Recording, RecordingFile
from evidence_locker.db import transaction
from evidence_locker.lifecycle.models import Tombstone
from life_helpers import locker, locker_env, seed_past


def test_killed_sweep_is_resumed(client, runtime, force, clock, deployment, scale_out) -> None:
    rids = seed_past(client, force, clock, 20)
    with transaction(runtime.sessions) as s:
        shas = set(s.scalars(select(RecordingFile.sha256).where(
            RecordingFile.recording_id.in_([uuid.UUID(r) for r in rids]))))
    env = locker_env(runtime, deployment, scale_out)
    sweep = subprocess.Popen([sys.executable, "-m", "evidence_locker", "retention", "run",
                              "--batch", "3"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    while sweep.poll() is None:  # kill it once it has decided something
        with transaction(runtime.sessions) as s:
            if s.scalars(select(Tombstone.id)).first() is not None:
                sweep.send_signal(signal.SIGKILL)
                break
    sweep.wait(timeout=120)
    rerun = locker(env, "retention", "run")
    assert rerun.returncode == 0, rerun.stderr
    with transaction(runtime.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Recording)) == 0
        assert s.scalar(select(func.count()).select_from(Blob).where(
            Blob.sha256.in_(shas))) == 0
        tombs = s.scalars(select(Tombstone)).all()
        assert sorted(str(t.recording_id) for t in tombs) == sorted(rids)
        assert all(t.finished_at is not None for t in tombs)
        for action in ("recording.deletion_decided", "recording.deleted"):
            per = s.execute(select(AuditEvent.object_id, func.count()).where(
                AuditEvent.action == action).group_by(AuditEvent.object_id)).all()
            assert sorted(r[0] for r in per) == sorted(rids) and {r[1] for r in per} == {1}
    assert not any(runtime.store.exists(sha) for sha in shas)
