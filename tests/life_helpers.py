"""Helpers for the lifecycle tests: configured categories, flags and holds through the API."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

from cat_helpers import record_camera
from evidence_locker.config import RetentionCategory
from evidence_locker.db import transaction
from evidence_locker.lifecycle import rules
from evidence_locker.lifecycle.service import apply_categories
from evidence_locker.runtime import Runtime
from support import TEST_ACTOR, bearer

REASON = "Complaint CMP-1234 received about this stop"
CATEGORIES = [
    RetentionCategory(name="use of force", kind="fixed", days=2 * 365),
    RetentionCategory(name="crime - evidential", kind="review", days=6 * 365),
    RetentionCategory(name="training", kind="fixed", days=90),
]
#: A category that keeps until the recording's cases close, plus its days.
CASE_CATEGORY = RetentionCategory(name="case file", kind="case-closed", days=365)


def configure(runtime: Runtime, categories: list[RetentionCategory] | None = None,
              decision: str | None = None) -> None:
    runtime.settings.retention_categories = list(CATEGORIES if categories is None
                                                 else categories)
    with transaction(runtime.sessions) as s:
        apply_categories(s, clock=runtime.clock, actor=TEST_ACTOR, settings=runtime.settings,
                         decision=decision)


def flag(client: Any, token: str, rid: str, category: str = "use of force",
         reference: str = "CRIME/2026/0001", note: str = "arrest", **headers: str) -> Any:
    return client.post(f"/api/v1/recordings/{rid}/flags", headers=bearer(token, **headers),
                       json={"category": category, "reference": reference, "note": note})


def unflag(client: Any, token: str, rid: str, flag_id: int, reason: str = REASON) -> Any:
    return client.request("DELETE", f"/api/v1/recordings/{rid}/flags/{flag_id}",
                          headers=bearer(token), json={"reason": reason})


def hold(client: Any, token: str, rid: str, kind: str = "complaint", reason: str = REASON,
         **headers: str) -> Any:
    return client.post(f"/api/v1/recordings/{rid}/holds", headers=bearer(token, **headers),
                       json={"kind": kind, "reason": reason})


def release(client: Any, token: str, rid: str, hold_id: int, reason: str = REASON) -> Any:
    return client.post(f"/api/v1/recordings/{rid}/holds/{hold_id}/release",
                       headers=bearer(token), json={"reason": reason})


def review(client: Any, token: str, rid: str, flag_id: int, decision: str = "retain",
           reason: str = REASON, next_review_days: int | None = 365, **headers: str) -> Any:
    body: dict[str, Any] = {"decision": decision, "reason": reason}
    if next_review_days is not None:
        body["next_review_days"] = next_review_days
    return client.post(f"/api/v1/recordings/{rid}/flags/{flag_id}/review",
                       headers=bearer(token, **headers), json=body)


def tell(client: Any, token: str, rid: str, told: str = "yes", reason: str = "") -> Any:
    return client.put(f"/api/v1/recordings/{rid}/subject-told", headers=bearer(token),
                      json={"told": told, "reason": reason})


def open_case(client: Any, token: str, reference: str, title: str = "Burglary at 1 High St",
              unit: str | None = None, **headers: str) -> Any:
    body: dict[str, Any] = {"reference": reference, "title": title}
    if unit is not None:
        body["unit"] = unit
    return client.post("/api/v1/cases", headers=bearer(token, **headers), json=body)


def link(client: Any, token: str, case_id: int, rid: str, reason: str = REASON,
         **headers: str) -> Any:
    return client.post(f"/api/v1/cases/{case_id}/recordings", headers=bearer(token, **headers),
                       json={"recording_id": rid, "reason": reason})


def unlink(client: Any, token: str, case_id: int, rid: str, reason: str = REASON) -> Any:
    return client.request("DELETE", f"/api/v1/cases/{case_id}/recordings/{rid}",
                          headers=bearer(token), json={"reason": reason})


def set_status(client: Any, token: str, case_id: int, status: str, reason: str = REASON,
               **headers: str) -> Any:
    return client.post(f"/api/v1/cases/{case_id}/status", headers=bearer(token, **headers),
                       json={"status": status, "reason": reason})


def grant(client: Any, token: str, case_id: int, username: str, reason: str = REASON,
          **headers: str) -> Any:
    return client.post(f"/api/v1/cases/{case_id}/grants", headers=bearer(token, **headers),
                       json={"username": username, "reason": reason})


def revoke(client: Any, token: str, case_id: int, grant_id: int, reason: str = REASON) -> Any:
    return client.post(f"/api/v1/cases/{case_id}/grants/{grant_id}/revoke",
                       headers=bearer(token), json={"reason": reason})


def retention(client: Any, token: str, rid: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/recordings/{rid}/retention", headers=bearer(token))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@dataclass
class Model:
    """What a test did to one recording, for the rule of deletion to judge independently of
    the catalogue."""

    rid: str
    recorded_at: dt.datetime
    received_at: dt.datetime
    flags: dict[int, rules.FlagFacts] = field(default_factory=dict)
    holds: dict[int, rules.HoldFacts] = field(default_factory=dict)
    cases: dict[int, rules.CaseFacts] = field(default_factory=dict)  # the cases it is in now
    gone: bool = False

    def facts(self) -> rules.RecordingFacts:
        cases = tuple(self.cases.values())
        closed = rules.cases_closed_at(cases)
        flags = tuple(dataclasses.replace(f, case_closed_at=closed)
                      for f in self.flags.values())
        return rules.RecordingFacts(self.recorded_at, self.received_at, flags,
                                    tuple(self.holds.values()), cases)


# --- real processes ------------------------------------------------------------------------

DAY = dt.timedelta(days=1)


def locker_env(runtime: Any, deployment: Any, scale_out: Any, **extra: str) -> dict[str, str]:
    env = {**os.environ, **deployment.env,
           "LOCKER_DATA_DIR": str(runtime.settings.data_dir),
           "LOCKER_DATABASE_URL": runtime.settings.resolved_database_url,
           "LOCKER_STORAGE_URL": runtime.settings.resolved_storage_url,
           "LOCKER_RUN_WORKERS": "false", **extra}
    if scale_out is not None:  # the sweep's own environment: the LIFECYCLE credential
        cred = scale_out.services.s3_lifecycle
        env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = cred.access_key, cred.secret_key
    return env


def locker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evidence_locker", *args], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def aged(client: Any, force: Any, clock: Any, device: str, name: str,
         days_ago: float) -> str:
    """A recording received (and recorded an hour before) `days_ago` days back, through the
    real ingest path."""
    clock.advance(-days_ago * DAY)
    try:
        return record_camera(client, force.dock_token, device=device, recording=name,
                             clip=uuid.uuid4().bytes,
                             started_at=(clock.now() - dt.timedelta(hours=1)).isoformat())
    finally:
        clock.advance(days_ago * DAY)


def seed_past(client: Any, force: Any, clock: Any, n: int, days_ago: int = 60) -> list[str]:
    """Recordings received `days_ago` days back, through the real ingest path."""
    return [aged(client, force, clock, "CAM-1", f"OLD{i}", days_ago) for i in range(n)]
