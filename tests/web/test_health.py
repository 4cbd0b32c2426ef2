"""/healthz, /readyz and /metrics."""

from __future__ import annotations

import re

from cat_helpers import record_camera
from evidence_locker.accounts.service import create_api_token, user_by_username
from evidence_locker.audit.service import Actor
from evidence_locker.db import transaction


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


def test_liveness_and_readiness(client) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "storage": "ok", "queue": "ok"}


def test_metrics_need_the_metrics_scope(client, runtime, force) -> None:
    assert client.get("/metrics").status_code == 401
    denied = client.get("/metrics", headers={"Authorization": f"Bearer {force.tokens['officer1']}"})
    assert denied.status_code == 403
    with transaction(runtime.sessions) as s:
        auditor = user_by_username(s, "auditor")
        token = create_api_token(s, clock=runtime.clock, actor=Actor(type="system", name="t"),
                                 user=auditor, scopes={"metrics"})
    clip = b"x" * 4096
    record_camera(client, force.dock_token, device="CAM-1", recording="R1", clip=clip)
    r = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    text = r.text
    assert metric(text, 'locker_uploads_total{outcome="stored"}') == 3
    assert metric(text, "locker_upload_bytes_total") >= len(clip)
    assert metric(text, "locker_queue_depth") == 2  # probe jobs for the clip and the track
    assert metric(text, "locker_fixity_failures") == 0
    assert metric(text, "locker_ingest_finish_seconds_count") == 3
