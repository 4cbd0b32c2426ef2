"""Jobs: sent after commit, run by real worker processes, and never lost with a dead worker."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from evidence_locker.dock.client import TusClient, upload_camera_folder
from evidence_locker.jobs.tasks import requeue_stalled_jobs
from evidence_locker.simulate.camera import simulate_camera
from live_server import LiveServer, free_port, locker


def _clip_states(client, token: str, rid: str) -> list[str]:
    body = client.get(f"/api/v1/recordings/{rid}", headers={"Authorization": f"Bearer {token}"})
    return [f["media_state"] for f in body.json()["files"] if f["kind"] == "clip"]


def test_a_job_lost_with_its_worker_is_sent_again(client, runtime, force, clock,
                                                  tmp_path: Path) -> None:
    folder = tmp_path / "CAM-1"
    simulate_camera(serial="CAM-1", officer="1001", out=folder, recordings=1, seconds=1,
                    resolution=(160, 90), fps=5)
    tus = TusClient(str(client.base_url), force.dock_token, http=client)
    rid = upload_camera_folder(tus, folder, log_line=lambda _: None)[-1].recording_id
    assert rid is not None
    # A worker takes the jobs off the queue and is killed before running them.
    taken = 0
    while runtime.jobs.huey.dequeue() is not None:
        taken += 1
    assert taken == 2  # the clip's probe and the track's
    assert runtime.jobs.pending() == 0
    assert _clip_states(client, force.tokens["standards"], rid) == ["pending"]
    assert requeue_stalled_jobs(runtime) == 0  # not stalled yet: it may just be slow
    clock.advance(dt.timedelta(minutes=runtime.settings.stalled_job_minutes + 1))
    assert requeue_stalled_jobs(runtime) == 2
    assert runtime.jobs.run_pending() == 2
    assert _clip_states(client, force.tokens["standards"], rid) == ["ready"]
    assert requeue_stalled_jobs(runtime) == 0


@pytest.fixture
def ingest_and_worker(tmp_path: Path, deployment) -> Iterator[tuple[LiveServer, object]]:
    import subprocess
    import sys

    server = LiveServer(tmp_path / "var", free_port(), env=deployment.env)
    server.data_dir.mkdir(parents=True)
    assert locker("db", "upgrade", env=server.env).returncode == 0
    server.env["LOCKER_RUN_WORKERS"] = "false"  # an ingest-only node
    server.start()
    log = open(tmp_path / "worker.log", "ab")  # noqa: SIM115
    env = {**server.env, "LOCKER_SEQUENCER_INTERVAL_SECONDS": "0.2"}
    env.pop("LOCKER_RUN_WORKERS")
    worker = subprocess.Popen([sys.executable, "-m", "evidence_locker", "worker"], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    yield server, worker
    worker.kill()
    worker.wait()
    server.stop()
    log.close()


@pytest.mark.slow
@pytest.mark.xdist_group("live-server")
def test_worker_process_runs_jobs_that_an_ingest_only_node_sent(ingest_and_worker,
                                                                tmp_path: Path) -> None:
    server, worker = ingest_and_worker
    dock = locker("docks", "register", "d1", env=server.env).stdout.strip().splitlines()[-1]
    locker("users", "create", "pso", "--role", "professional-standards", env=server.env)
    user = locker("tokens", "create", "--user", "pso", env=server.env).stdout.split()[-1]
    folder = tmp_path / "cam"
    simulate_camera(serial="W-1", officer="1", out=folder, recordings=1, seconds=1,
                    resolution=(160, 90), fps=5)
    with TusClient(server.url, dock) as tus:
        rid = upload_camera_folder(tus, folder, log_line=lambda _: None)[-1].recording_id
    deadline = time.monotonic() + 60
    states: list[str] = []
    while time.monotonic() < deadline:
        body = httpx.get(f"{server.url}/api/v1/recordings/{rid}",
                         headers={"Authorization": f"Bearer {user}"}).json()
        states = [f["media_state"] for f in body["files"] if f["kind"] == "clip"]
        if states == ["ready"]:
            break
        time.sleep(0.2)
    assert states == ["ready"], (tmp_path / "worker.log").read_text()[-3000:]
    # The ingest-only node links nothing; the worker's sequencer does.
    audit = locker("audit", "verify", env=server.env)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    linked = re.search(r"OK: (\d+) events", audit.stdout)
    assert linked and int(linked.group(1)) > 10, audit.stdout
