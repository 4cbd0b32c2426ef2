"""Subject told through the API and the compliance report: who may say, a reason unless yes,
history kept, every statement audited; the report per unit for each reading role, as JSON and
CSV, restricted footage left out below professional standards."""

from __future__ import annotations

import csv
import datetime as dt
import io

from cat_helpers import record_camera
from evidence_locker.lifecycle.models import SubjectTold
from life_helpers import REASON, bearer, configure, retention, tell
from support import count_events, count_rows

STARTED = dt.datetime(2026, 11, 21, 8, 15, tzinfo=dt.UTC)
WINDOW = {"from": (STARTED - dt.timedelta(days=1)).isoformat(),
          "to": (STARTED + dt.timedelta(days=1)).isoformat()}


def _rec(client, force, recording: str, device: str = "CAM-1") -> str:
    return record_camera(client, force.dock_token, device=device, recording=recording,
                         clip=b"clip " + recording.encode())


def _report(client, token: str, **params: str):
    return client.get("/api/v1/reports/subject-told", headers=bearer(token),
                      params={**WINDOW, **params})


def test_who_may_say_whether_the_subject_was_told(client, runtime, force) -> None:
    configure(runtime)
    rid = _rec(client, force, "R1")  # officer1's, unit U1, command C1
    assert tell(client, force.tokens["officer2"], rid).status_code == 404
    for user in ("standards", "auditor", "admin", "fleetadmin"):
        assert tell(client, force.tokens[user], rid).status_code == 403, user
    assert count_rows(runtime, SubjectTold) == 0
    for user, told in (("officer1", "yes"), ("sergeant1", "no"),
                       ("evidence1", "not-practicable")):
        r = tell(client, force.tokens[user], rid, told, "" if told == "yes" else REASON)
        assert r.status_code == 200, r.text
        assert r.json()["told"] == told and r.json()["changed"] is True
    state = retention(client, force.tokens["officer1"], rid)["subject_told"]
    assert (state["told"], state["reason"], state["recorded_role"]) == (
        "not-practicable", REASON, "evidence-officer")
    assert [e["told"] for e in state["earlier"]] == ["yes", "no"]
    assert count_events(runtime, "recording.subject_told") == 3


def test_a_reason_unless_yes_and_bad_input_changes_nothing(client, runtime, force) -> None:
    configure(runtime)
    rid = _rec(client, force, "R1")
    tok = force.tokens["officer1"]
    for told, reason in (("no", ""), ("not-practicable", "short"), ("maybe", REASON),
                         ("yes", "x" * 2001)):
        r = tell(client, tok, rid, told, reason)
        assert r.status_code == 422, (told, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert retention(client, tok, rid)["subject_told"] is None
    assert count_rows(runtime, SubjectTold) == 0
    assert tell(client, tok, rid, "no", REASON).status_code == 200
    again = tell(client, tok, rid, "no", REASON)  # the same statement again: nothing new
    assert again.status_code == 200 and again.json()["changed"] is False
    assert count_rows(runtime, SubjectTold) == 1
    assert count_events(runtime, "recording.subject_told") == 1


def test_the_report_counts_per_unit_for_each_role(client, runtime, force) -> None:
    configure(runtime)
    a, b, c = _rec(client, force, "A"), _rec(client, force, "B"), _rec(client, force, "C")
    u2 = _rec(client, force, "D", device="CAM-3")  # officer2's, unit U2 (outside command C1)
    assert tell(client, force.tokens["officer1"], a, "yes").status_code == 200
    assert tell(client, force.tokens["officer1"], b, "no", REASON).status_code == 200
    assert tell(client, force.tokens["officer2"], u2, "not-practicable", REASON).status_code \
        == 200
    del c  # nothing recorded for it
    whole = {"U1": {"yes": 1, "no": 1, "not-practicable": 0, "not-recorded": 1, "total": 3},
             "U2": {"yes": 0, "no": 0, "not-practicable": 1, "not-recorded": 0, "total": 1}}
    for user, units in (("standards", ["U1", "U2"]), ("auditor", ["U1", "U2"]),
                        ("evidence1", ["U1"]), ("sergeant1", ["U1"])):
        r = _report(client, force.tokens[user])
        assert r.status_code == 200, (user, r.text)
        got = {u["unit"]: {k: u[k] for k in whole["U1"]} for u in r.json()["units"]}
        assert got == {u: whole[u] for u in units}, user
        assert r.json()["totals"]["total"] == sum(whole[u]["total"] for u in units)
    for user in ("officer1", "admin", "fleetadmin"):
        assert _report(client, force.tokens[user]).status_code == 403, user
    earlier = {"from": (STARTED - dt.timedelta(days=9)).isoformat(),
               "to": (STARTED - dt.timedelta(days=2)).isoformat()}
    assert _report(client, force.tokens["standards"], **earlier).json()["units"] == []
    assert count_events(runtime, "report.subject_told_read") == 5


def test_the_report_as_csv_and_bad_windows(client, runtime, force) -> None:
    configure(runtime)
    rid = _rec(client, force, "A")
    assert tell(client, force.tokens["officer1"], rid, "no", REASON).status_code == 200
    r = _report(client, force.tokens["auditor"], format="csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["unit", "unit_name", "yes", "no", "not-practicable", "not-recorded",
                       "total"]
    assert rows[1:] == [["U1", "Unit 1", "0", "1", "0", "0", "1"],
                        ["(all)", "", "0", "1", "0", "0", "1"]]
    tok = force.tokens["auditor"]
    assert _report(client, tok, **{"from": WINDOW["to"], "to": WINDOW["from"]}).status_code \
        == 400
    assert _report(client, tok, **{"from": "2026-11-20T00:00:00"}).status_code == 400
    assert _report(client, tok, format="pdf").status_code == 422


def test_restricted_footage_is_not_counted_below_professional_standards(client, runtime,
                                                                        force) -> None:
    configure(runtime)
    _rec(client, force, "A")
    covert = _rec(client, force, "B")
    r = client.post(f"/api/v1/recordings/{covert}/restriction",
                    headers=bearer(force.tokens["standards"]),
                    json={"kind": "restricted", "reason": REASON})
    assert r.status_code in (200, 201), r.text
    totals = {user: _report(client, force.tokens[user]).json()["totals"]["total"]
              for user in ("sergeant1", "evidence1", "standards", "auditor")}
    assert totals == {"sergeant1": 1, "evidence1": 1, "standards": 2, "auditor": 2}
