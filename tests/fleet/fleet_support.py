"""Helpers for the fleet tests (imported by name: pytest puts tests/fleet on sys.path)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from cat_helpers import send, sidecar
from evidence_locker.catalogue.models import Recording
from evidence_locker.db import transaction
from evidence_locker.fleet.models import AttributionConflict, Officer
from evidence_locker.runtime import Runtime


def dock_recording(client: TestClient, token: str, *, device: str, recording: str,
                   started_at: dt.datetime, officer: str | None) -> str:
    """One clip and a sidecar naming `officer`, recorded at `started_at`; returns the id."""
    clip = f"clip of {device}/{recording}".encode()
    start = started_at.isoformat()
    stop = (started_at + dt.timedelta(minutes=1)).isoformat()
    send(client, token, clip, device=device, recording=recording, kind="clip",
         filename=f"{recording}_001.mp4")
    sc = sidecar(device=device, recording=recording, started_at=start, stopped_at=stop,
                 officer=officer, files=[("clip", 1, f"{recording}_001.mp4", clip)])
    r = send(client, token, sc, device=device, recording=recording, kind="sidecar",
             filename=f"{recording}.json")
    return str(r.headers["locker-recording"])


def attributed(runtime: Runtime, camera_recording_id: str) -> tuple[str | None, list[str]]:
    """(collar of the officer a recording is attributed to, its attribution notes)."""
    with transaction(runtime.sessions) as s:
        rec = s.scalars(select(Recording).where(
            Recording.camera_recording_id == camera_recording_id)).one()
        officer = None if rec.officer_id is None else s.get(Officer, rec.officer_id)
        return (None if officer is None else officer.collar,
                [n for n in rec.attribution_issues.split("; ") if n])


def conflicts(runtime: Runtime) -> dict[str, Any]:
    """camera recording id -> (kind, camera officer) of every open attribution conflict."""
    with transaction(runtime.sessions) as s:
        rows = s.execute(select(Recording.camera_recording_id, AttributionConflict.kind,
                                AttributionConflict.camera_officer)
                         .join(Recording, Recording.id == AttributionConflict.recording_id)).all()
        return {rid: (kind, cam) for rid, kind, cam in rows}


def beat(*cameras: dict[str, Any], sent_at: dt.datetime | None = None,
         bays: int = 8) -> dict[str, Any]:
    """A heartbeat body as the dock agent sends it."""
    when = sent_at or dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
    return {"agent_version": "locker-dock 0.1", "bays": bays, "sent_at": when.isoformat(),
            "cameras": list(cameras)}


def camera(serial: str, bay: int = 1, **extra: Any) -> dict[str, Any]:
    return {"bay": bay, "serial": serial, "model": "EL-SIM-1", "battery_percent": 80,
            "firmware": "1.4.2", "free_bytes": 10**9, "clock_drift_seconds": 1.5,
            "files_waiting": 0, "bytes_waiting": 0, **extra}


def sign_in(client: TestClient, username: str, password: str) -> None:
    """A web session for `username` in the client's cookie jar."""
    import re

    page = client.get("/login")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text
    r = client.post("/login", data={"username": username, "password": password,
                                    "csrf": match.group(1)}, follow_redirects=False)
    assert r.status_code == 303, r.text
