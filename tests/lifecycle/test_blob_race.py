"""Identical bytes docked while the sweep deletes them: the new recording keeps its footage.

Storage is content-addressed, so a clip whose bytes equal an expired recording's clip is stored
once. If the sweep decided that nobody else used the blob and then deleted it just after the new
upload linked a file to it, the camera would erase its copy of footage the locker no longer has.
Ingest and the sweep therefore take the blob's row lock around installing and deleting bytes
(catalogue.service.lock_blob); this test docks the identical clip at the moment the sweep is
deleting the blob, on both profiles."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from cat_helpers import record_camera
from evidence_locker.catalogue.models import Blob, Recording, RecordingFile
from evidence_locker.db import transaction
from evidence_locker.lifecycle.sweep import run_sweep
from life_helpers import configure, retention


def test_a_clip_docked_while_the_sweep_deletes_its_bytes_is_kept(client, runtime, force, clock,
                                                                 lifecycle_store) -> None:
    configure(runtime)
    clip = b"the same clip bytes, recorded twice " * 64
    sha = hashlib.sha256(clip).hexdigest()
    old = record_camera(client, force.dock_token, device="CAM-1", recording="OLD", clip=clip)
    deadline = dt.datetime.fromisoformat(
        retention(client, force.tokens["officer1"], old)["delete_after"])
    clock.advance(deadline - clock.now() + dt.timedelta(seconds=1))

    outcome: dict[str, Any] = {}

    def dock_again() -> None:
        # Another dock, another camera, the same bytes: its own client on the same app.
        with TestClient(client.app) as other:
            outcome["recording"] = record_camera(other, force.dock_token, device="CAM-2",
                                                 recording="NEW", clip=clip)

    real_delete = lifecycle_store.delete
    docking: list[threading.Thread] = []

    def delete(blob: str, **kwargs: Any) -> None:
        if blob == sha and not docking:
            docking.append(threading.Thread(target=dock_again))
            docking[0].start()
            # Give the upload every chance to finish before the bytes go: with the row lock it
            # waits for the sweep instead (and this join runs out); without it, it completes.
            docking[0].join(timeout=3)
        real_delete(blob, **kwargs)

    lifecycle_store.delete = delete  # type: ignore[method-assign]
    try:
        result = run_sweep(runtime.sessions, clock=clock, settings=runtime.settings,
                           store=lifecycle_store)
    finally:
        lifecycle_store.delete = real_delete  # type: ignore[method-assign]
    assert docking, "the sweep never deleted the shared clip's blob"
    docking[0].join(timeout=60)
    assert not docking[0].is_alive()
    assert result.deleted == 1 and result.failed == []
    new = outcome["recording"]
    with transaction(runtime.sessions) as s:
        assert s.get(Recording, uuid.UUID(old)) is None
        files = s.scalars(select(RecordingFile).where(
            RecordingFile.recording_id == uuid.UUID(new), RecordingFile.kind == "clip")).all()
        assert [f.sha256 for f in files] == [sha]
        assert s.get(Blob, sha) is not None
    # The bytes the camera was told are safe are in the store, whole.
    assert runtime.store.exists(sha)
    assert b"".join(runtime.store.read_range(sha, 0, len(clip) - 1)) == clip
