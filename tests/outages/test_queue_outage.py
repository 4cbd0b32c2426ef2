"""The job queue goes down: uploads still complete (the answer never depends on the queue),
/readyz says so, and the jobs that could not be sent are sent by the sweep once it is back."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator

import pytest

from evidence_locker.dock.client import TusClient, upload_camera_folder
from evidence_locker.jobs.tasks import requeue_stalled_jobs
from evidence_locker.simulate.camera import simulate_camera
from support import make_force, serving

pytestmark = [pytest.mark.slow, pytest.mark.scale_out_only]


@pytest.fixture
def own_redis() -> Iterator[object]:
    import services as svc

    server = svc.start_redis()
    try:
        yield server
    finally:
        server.stop()


def test_uploads_complete_while_the_queue_is_down(own_redis, deployment, tmp_path,
                                                  clock) -> None:
    redis = own_redis
    queue_url = f"{redis.url}?name=outage-{secrets.token_hex(3)}"  # type: ignore[attr-defined]
    with serving(tmp_path / "var", clock,
                 **{**deployment.overrides, "queue_url": queue_url}) as (runtime, client):
        force = make_force(runtime)
        folder = tmp_path / "cam"
        simulate_camera(serial="CAM-1", officer="1001", out=folder, recordings=1,
                        seconds=1, resolution=(160, 90), fps=5)
        redis.crash()  # type: ignore[attr-defined]
        assert client.get("/readyz").json()["checks"]["queue"].startswith("error")
        tus = TusClient(str(client.base_url), force.dock_token, http=client)
        done = upload_camera_folder(tus, folder, log_line=lambda _: None)
        assert [u.outcome for u in done] == ["stored"] * 3
        rid = done[-1].recording_id

        redis.restart()  # type: ignore[attr-defined]
        assert client.get("/readyz").status_code == 200
        assert runtime.jobs.pending() == 0  # those jobs were never sent
        clock.advance(dt.timedelta(minutes=runtime.settings.stalled_job_minutes + 1))
        assert requeue_stalled_jobs(runtime) == 2
        assert runtime.jobs.run_pending() == 2
        body = client.get(f"/api/v1/recordings/{rid}", headers={
            "Authorization": f"Bearer {force.tokens['standards']}"}).json()
        assert [f["media_state"] for f in body["files"] if f["kind"] == "clip"] == ["ready"]
