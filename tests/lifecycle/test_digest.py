"""The weekly digest per unit: each unit's own unrestricted recordings due for deletion in the
next week, soonest first, one file per unit written atomically, the run audited; through the
service on the injected clock and through `locker retention digest` in a real process."""

from __future__ import annotations

import json

from sqlalchemy import select

from evidence_locker.audit.models import AuditEvent
from evidence_locker.db import transaction
from evidence_locker.lifecycle.digest import render, unit_digests, write_digests
from life_helpers import REASON, aged, configure, flag, locker, locker_env
from support import bearer


def _world(client, runtime, force, clock) -> dict[str, str]:
    configure(runtime)
    rids = {
        "soon": aged(client, force, clock, "CAM-1", "G30", 30),  # U1, due in about a day
        "later": aged(client, force, clock, "CAM-2", "G26", 26),  # U1, in about five
        "u2": aged(client, force, clock, "CAM-3", "G27", 27),  # U2
        "next_week": aged(client, force, clock, "CAM-1", "G10", 10),  # U1, not this week
        "covert": aged(client, force, clock, "CAM-1", "G29", 29),  # U1, restricted
        "flagged": aged(client, force, clock, "CAM-2", "G28", 28),  # U1, evidence
    }
    r = client.post(f"/api/v1/recordings/{rids['covert']}/restriction",
                    headers=bearer(force.tokens["standards"]),
                    json={"kind": "restricted", "reason": REASON})
    assert r.status_code == 201, r.text
    assert flag(client, force.tokens["sergeant1"],
                rids["flagged"]).status_code == 201
    return rids


def test_each_unit_gets_its_own_due_recordings(client, runtime, force, clock,
                                               tmp_path) -> None:
    rids = _world(client, runtime, force, clock)
    with transaction(runtime.sessions) as s:
        digests = {d.code: d for d in unit_digests(s, now=clock.now())}
    assert set(digests) == {"U1", "U2"}
    u1 = digests["U1"]
    assert [i[4] for i in u1.items] == [rids["soon"], rids["later"]] and u1.total == 2
    assert [i[4] for i in digests["U2"].items] == [rids["u2"]]
    text = render(u1, force_name="Test Force", zone="Europe/London")
    assert rids["soon"] in text and rids["covert"] not in text and rids["flagged"] not in text
    assert text.index(rids["soon"]) < text.index(rids["later"])
    assert "PC 1001 (1001) / CAM-1" in text and "2 recording(s) of U1" in text
    with transaction(runtime.sessions) as s:
        short = unit_digests(s, now=clock.now(), listed_max=1)
    assert "... and 1 more." in render(next(d for d in short if d.code == "U1"),
                                       force_name="F", zone="UTC")

    with transaction(runtime.sessions) as s:
        paths = write_digests(s, clock=clock, settings=runtime.settings, out_dir=tmp_path)
    assert sorted(p.name for p in paths) == ["U1.txt", "U2.txt"]
    assert all(p.parent.parent == tmp_path for p in paths)
    assert rids["u2"] in (paths[0].parent / "U2.txt").read_text()
    assert not list(tmp_path.rglob("*.tmp"))
    with transaction(runtime.sessions) as s:
        event = s.scalars(select(AuditEvent).where(
            AuditEvent.action == "retention.digest_written")).one()
    assert json.loads(event.details or "{}")["units"] == {"U1": 2, "U2": 1}


def test_cli_writes_the_digests(client, runtime, force, clock, deployment, scale_out,
                                tmp_path) -> None:
    rids = _world(client, runtime, force, clock)
    env = locker_env(runtime, deployment, scale_out)
    r = locker(env, "retention", "digest", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "unit digests written" in r.stdout
    u1 = next(tmp_path.rglob("U1.txt")).read_text()
    # The real clock is at or after the test's: at least what is due by the test's week.
    assert rids["soon"] in u1 and rids["later"] in u1 and rids["covert"] not in u1
    bad = locker(env, "retention", "digest", "--days", "0")
    assert bad.returncode != 0
