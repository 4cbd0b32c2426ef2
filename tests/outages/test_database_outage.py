"""The database restarts under load: requests get 503 with Retry-After, /readyz says so, nothing
acknowledged is lost, and the service recovers by itself when it returns."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from support import make_force, serving
from tus_helpers import auth, create, patch

pytestmark = [pytest.mark.slow, pytest.mark.scale_out_only]
MiB = 1024 * 1024


@pytest.fixture
def own_postgres() -> Iterator[object]:
    import services as svc

    server = svc.start_postgres(durable=True)
    try:
        yield server
    finally:
        server.stop()


def test_ingest_recovers_after_a_database_restart(own_postgres, deployment, tmp_path,
                                                  clock) -> None:
    pg = own_postgres
    overrides = {**deployment.overrides, "database_url": pg.database_url}  # type: ignore[attr-defined]
    with serving(tmp_path / "var", clock, **overrides) as (runtime, client):
        token = make_force(runtime).dock_token
        data = os.urandom(2 * MiB)
        url = create(client, token, data)
        assert patch(client, token, url, 0, data[:MiB]).status_code == 204

        pg.crash()  # type: ignore[attr-defined]
        down = patch(client, token, url, MiB, data[MiB:])
        assert down.status_code == 503
        assert down.headers["retry-after"]
        assert client.get("/readyz").json()["checks"]["database"].startswith("error")

        pg.restart()  # type: ignore[attr-defined]
        assert client.get("/readyz").status_code == 200
        head = client.head(url, headers=auth(token))
        assert head.status_code == 200, (head.status_code, head.headers)
        assert head.headers["upload-offset"] == str(MiB)
        done = patch(client, token, url, MiB, data[MiB:])
        assert done.status_code == 204, done.text
        assert done.headers["locker-outcome"] == "stored"
