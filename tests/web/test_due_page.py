"""The /retention/due page: what the sweep will delete in the next N days among the recordings
the caller may see, counted by unit (the count is what the list shows), each linked to its
evidence page to flag it in time; the search audited; roles without footage refused."""

from __future__ import annotations

import json

from matrix_world import sign_in
from sqlalchemy import select

from evidence_locker.audit.models import AuditEvent
from evidence_locker.db import transaction
from life_helpers import aged, configure


def _events(runtime, action: str) -> list[AuditEvent]:
    with transaction(runtime.sessions) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_due_page_counts_by_unit_what_the_list_shows(client, runtime, force, clock) -> None:
    configure(runtime)
    a = aged(client, force, clock, "CAM-1", "P30", 30)
    b = aged(client, force, clock, "CAM-2", "P27", 27)  # officer 1002, also U1
    c = aged(client, force, clock, "CAM-3", "P25", 25)  # U2
    aged(client, force, clock, "CAM-3", "P10", 10)  # not due this week

    def page(username: str, query: str = "") -> str:
        cookie, _ = sign_in(client, username, force.passwords[username])
        client.cookies.clear()
        r = client.get(f"/retention/due{query}", headers={"Cookie": f"locker_session={cookie}"},
                       follow_redirects=False)
        assert r.status_code == 200, (username, r.status_code)
        return r.text

    sergeant = page("sergeant1")
    assert '<a href="/retention/due?days=7&amp;unit=U1">U1</a></td><td class="count">2' \
        in sergeant
    assert "U2" not in sergeant.split('id="due"')[0].split('id="due-by-unit"')[1]
    for rid in (a, b):
        assert f'href="/recordings/{rid}/evidence"' in sergeant
    assert c not in sergeant
    standards = page("standards")
    assert '<th class="count">3</th>' in standards
    assert all(f'href="/recordings/{rid}/evidence"' in standards for rid in (a, b, c))
    only_u2 = page("standards", "?unit=U2")
    assert f'href="/recordings/{c}/evidence"' in only_u2 and a not in only_u2
    assert 'id="nothing-due"' in page("officer2", "?days=0")

    cookie, _ = sign_in(client, "fleetadmin", force.passwords["fleetadmin"])
    client.cookies.clear()
    refused = client.get("/retention/due", headers={"Cookie": f"locker_session={cookie}"},
                         follow_redirects=False)
    assert refused.status_code == 403
    client.cookies.clear()
    assert client.get("/retention/due", follow_redirects=False).headers["location"] \
        .endswith("/login")
    assert any(json.loads(e.details or "{}").get("via") == "web-due"
               for e in _events(runtime, "recording.searched"))
