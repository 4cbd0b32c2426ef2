"""/metrics shows footage past its deadline and deletions left unfinished; only the lifecycle
credential deletes on scale-out (the ingest one is refused, and the recording waits)."""

from __future__ import annotations

import datetime as dt

from cat_helpers import record_camera
from evidence_locker.lifecycle.sweep import run_sweep
from life_helpers import bearer, configure


def gauge(client, token: str, name: str) -> float:
    text = client.get("/metrics", headers=bearer(token)).text
    line = next(x for x in text.splitlines() if x.startswith(name + " "))
    return float(line.split()[1])


def test_overdue_and_unfinished_deletions(client, runtime, force, clock, lifecycle_store,
                                          scale_out) -> None:
    configure(runtime)
    admin = force.tokens["admin"]
    record_camera(client, force.dock_token, device="CAM-1", recording="R1", clip=b"c1")
    assert gauge(client, admin, "locker_retention_overdue") == 0
    clock.advance(dt.timedelta(days=60))
    assert gauge(client, admin, "locker_retention_overdue") == 1
    if scale_out is not None:
        refused = run_sweep(runtime.sessions, clock=clock, settings=runtime.settings,
                            store=runtime.store)  # the ingest credential: no delete
        assert len(refused.failed) == 1 and refused.deleted == 0
        assert gauge(client, admin, "locker_retention_deleting") == 1
    done = run_sweep(runtime.sessions, clock=clock, settings=runtime.settings,
                     store=lifecycle_store)
    assert done.failed == [] and done.deleted == 1
    assert gauge(client, admin, "locker_retention_overdue") == 0
    assert gauge(client, admin, "locker_retention_deleting") == 0
