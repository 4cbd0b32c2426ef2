"""The object store goes away mid-upload and comes back: uploads get 503 with Retry-After,
/readyz says why, nothing acknowledged is lost, and ingest recovers by itself."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator

import pytest

from support import make_force, serving
from tus_helpers import auth, create, patch

pytestmark = [pytest.mark.slow, pytest.mark.scale_out_only,
              pytest.mark.xdist_group("live-server")]
MiB = 1024 * 1024


@pytest.fixture
def own_seaweedfs() -> Iterator[object]:
    """A SeaweedFS of this test's own, so stopping it disturbs no other test."""
    import services as svc

    server = svc.start_seaweedfs()
    try:
        yield server
    finally:
        server.stop()


def test_upload_survives_an_object_store_outage(own_seaweedfs, deployment, tmp_path,
                                                clock, monkeypatch) -> None:
    server = own_seaweedfs
    bucket = f"outage-{secrets.token_hex(3)}"
    server.create_bucket(bucket)  # type: ignore[attr-defined]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.ingest.access_key)  # type: ignore[attr-defined]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.ingest.secret_key)  # type: ignore[attr-defined]
    storage_url = f"s3://{bucket}?endpoint_url={server.endpoint}&region={server.region}"  # type: ignore[attr-defined]
    with serving(tmp_path / "var", clock,
                 **{**deployment.overrides, "storage_url": storage_url}) as (runtime, client):
        token = make_force(runtime).dock_token
        data = os.urandom(3 * MiB)
        url = create(client, token, data)
        assert patch(client, token, url, 0, data[:MiB]).status_code == 204

        server.crash()  # type: ignore[attr-defined]
        down = patch(client, token, url, MiB, data[MiB:2 * MiB])
        assert down.status_code == 503
        assert down.headers["retry-after"]
        assert down.headers["content-type"] == "application/problem+json"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["storage"].startswith("error")

        server.restart()  # type: ignore[attr-defined]
        assert client.get("/readyz").status_code == 200
        head = client.head(url, headers=auth(token))
        assert head.headers["upload-offset"] == str(MiB)  # what was acknowledged survived
        done = patch(client, token, url, MiB, data[MiB:])
        assert done.status_code == 204, done.text
        stored = b"".join(runtime.store.read_range(hashlib.sha256(data).hexdigest()))
        assert stored == data
