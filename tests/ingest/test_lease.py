"""One writer per upload: leases across requests, processes and nodes."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
from sqlalchemy import update

from evidence_locker.db import transaction
from evidence_locker.ingest.lease import HOST, Lease, holder_is_dead
from evidence_locker.ingest.models import Upload
from evidence_locker.ingest.tus import TusError
from tus_helpers import auth, create, patch

DATA = b"0123456789" * 100


def _set_holder(runtime, upload_id: str, owner: str, until: dt.datetime) -> None:
    with transaction(runtime.sessions) as s:
        s.execute(update(Upload).where(Upload.id == upload_id)
                  .values(lease_owner=owner, lease_until=until))


def test_a_second_writer_is_refused_while_the_first_holds_the_lease(client, runtime,
                                                                    force) -> None:
    url = create(client, force.dock_token, DATA)
    upload_id = url.rsplit("/", 1)[-1]
    first = Lease(runtime, upload_id)
    first.acquire()
    r = patch(client, force.dock_token, url, 0, DATA)
    assert r.status_code == 423
    assert client.head(url, headers=auth(force.dock_token)).headers["upload-offset"] == "0"
    with pytest.raises(TusError):
        Lease(runtime, upload_id).acquire()
    first.release()
    assert patch(client, force.dock_token, url, 0, DATA).status_code == 204


def test_a_lease_left_by_a_dead_node_expires(client, runtime, force, clock) -> None:
    url = create(client, force.dock_token, DATA)
    upload_id = url.rsplit("/", 1)[-1]
    _set_holder(runtime, upload_id, "other-node:4242:abc",
                clock.now() + dt.timedelta(seconds=30))
    assert patch(client, force.dock_token, url, 0, DATA).status_code == 423
    clock.advance(dt.timedelta(seconds=31))
    assert patch(client, force.dock_token, url, 0, DATA).status_code == 204


def test_a_lease_left_by_a_dead_process_on_this_host_is_taken_at_once(client, runtime, force,
                                                                      clock) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    owner = f"{HOST}:{dead.stdout.strip()}:abc"
    assert holder_is_dead(owner)
    url = create(client, force.dock_token, DATA)
    _set_holder(runtime, url.rsplit("/", 1)[-1], owner, clock.now() + dt.timedelta(hours=1))
    assert patch(client, force.dock_token, url, 0, DATA).status_code == 204


def test_holder_liveness_is_only_judged_on_this_host() -> None:
    assert not holder_is_dead(f"{HOST}:{os.getpid()}:x")  # ourselves
    assert not holder_is_dead(f"{HOST}:1:x")  # init is alive
    assert not holder_is_dead("some-other-host:999999:x")
    assert not holder_is_dead("garbage")
