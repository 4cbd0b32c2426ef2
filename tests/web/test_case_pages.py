"""The case pages: /cases lists and opens cases, /cases/{id} shows one with the forms its
managers use; each form calls the same service as /api/v1/cases behind a CSRF token and its
role, a refusal is shown back with nothing changed, and what the page shows is escaped."""

from __future__ import annotations

import re

from matrix_world import get_page, page_session, post_form

from cat_helpers import record_camera
from evidence_locker.accounts.service import Passwords, create_user
from evidence_locker.db import transaction
from life_helpers import REASON, configure, retention
from support import TEST_ACTOR, bearer, count_events


def _case(client, token: str, case_id: int) -> dict:
    r = client.get(f"/api/v1/cases/{case_id}", headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()


def test_open_work_and_close_a_case_through_the_pages(client, runtime, force, clock) -> None:
    configure(runtime)
    with transaction(runtime.sessions) as s:
        _, watchdog_pw = create_user(s, clock=clock, actor=TEST_ACTOR, passwords=Passwords(1, 1024),
                                     username="watchdog1", role="watchdog")
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="CP1",
                        clip=b"c" * 64)  # officer1's, unit U1 in command C1
    evidence, csrf = page_session(client, "evidence1", force.passwords["evidence1"])

    listing = get_page(client, evidence, "/cases")
    assert listing.status_code == 200 and 'id="open-case"' in listing.text
    assert 'id="no-cases"' in listing.text
    r = post_form(client, evidence, "/cases", csrf=csrf, reference="CASE/2026/PAGE1",
              title='Burglary <script>alert("t")</script>')
    assert r.status_code == 303, r.text
    case_id = int(r.headers["location"].rsplit("/", 1)[1])
    base = f"/cases/{case_id}"
    page = get_page(client, evidence, base)
    assert page.status_code == 200
    assert '<script>alert("t")' not in page.text and "&lt;script&gt;" in page.text
    assert 'id="add-recording"' in page.text and 'id="grant"' not in page.text

    # A refused opening is shown with its reason on the list; nothing is opened.
    again = post_form(client, evidence, "/cases", csrf=csrf, reference="CASE/2026/PAGE1",
                  title="Twice")
    assert again.status_code == 409 and 'id="error"' in again.text
    assert 'value="Twice"' in again.text  # what was typed is kept
    assert count_events(runtime, "case.opened") == 1

    r = post_form(client, evidence, f"{base}/recordings", csrf=csrf, recording_id=rid,
              reason=REASON)
    assert r.status_code == 303 and r.headers["location"] == base
    assert [x["id"] for x in _case(client, force.tokens["evidence1"], case_id)["recordings"]] \
        == [rid]
    assert retention(client, force.tokens["evidence1"], rid)["held"] is True
    linked = get_page(client, evidence, f"/recordings/{rid}/evidence").text
    assert f'<a href="/cases/{case_id}">CASE/2026/PAGE1</a> (open)' in linked
    officer, _ = page_session(client, "officer1", force.passwords["officer1"])  # not an owner
    assert 'id="cases">none you may read<' in get_page(client, officer,
                                                   f"/recordings/{rid}/evidence").text
    twice = post_form(client, evidence, f"{base}/recordings", csrf=csrf, recording_id=rid,
                  reason=REASON)
    assert twice.status_code == 409 and "already in this case" in twice.text
    for bad, said in (("short", 422), ("", 422)):
        r = post_form(client, evidence, f"{base}/status", csrf=csrf, status="closed", reason=bad)
        assert r.status_code == said and 'id="error"' in r.text
    nowhere = post_form(client, evidence, f"{base}/recordings", csrf=csrf,
                    recording_id="00000000-0000-0000-0000-000000000000", reason=REASON)
    assert nowhere.status_code == 422 and "no such recording" in nowhere.text
    forged = post_form(client, evidence, f"{base}/status", csrf="forged", status="closed",
                   reason=REASON)
    assert forged.status_code == 403
    assert _case(client, force.tokens["evidence1"], case_id)["status"] == "open"

    # Owners: sergeant1 added, then removed with a reason.
    assert post_form(client, evidence, f"{base}/owners", csrf=csrf,
                 username="sergeant1").status_code == 303
    assert _case(client, force.tokens["evidence1"], case_id)["owners"] == [
        "evidence1", "sergeant1"]
    assert post_form(client, evidence, f"{base}/owners/sergeant1/remove", csrf=csrf,
                 reason=REASON).status_code == 303
    assert _case(client, force.tokens["evidence1"], case_id)["owners"] == ["evidence1"]

    # Grants: professional standards only; the watchdog then reads the case, changes nothing.
    refused = post_form(client, evidence, f"{base}/grants", csrf=csrf, username="watchdog1",
                    reason=REASON)
    assert refused.status_code == 403
    standards, s_csrf = page_session(client, "standards", force.passwords["standards"])
    assert 'id="grant"' in get_page(client, standards, base).text
    assert post_form(client, standards, f"{base}/grants", csrf=s_csrf, username="watchdog1",
                 reason=REASON).status_code == 303
    watchdog, w_csrf = page_session(client, "watchdog1", watchdog_pw)
    seen = get_page(client, watchdog, base)
    assert seen.status_code == 200 and f'data-id="{rid}"' in seen.text
    assert "<form" not in seen.text.split("<h1>", 1)[1].split("</main>")[0].replace(
        'action="/logout"', "")
    assert f'href="/cases/{case_id}"' in get_page(client, watchdog, "/cases").text
    assert post_form(client, watchdog, f"{base}/status", csrf=w_csrf, status="closed",
                 reason=REASON).status_code == 403
    grant_id = _case(client, force.tokens["standards"], case_id)["grants"][0]["id"]
    assert post_form(client, standards, f"{base}/grants/{grant_id}/revoke", csrf=s_csrf,
                 reason=REASON).status_code == 303
    assert get_page(client, watchdog, base).status_code == 404

    # Closing lets the recording go on its deadline; the page says so.
    r = post_form(client, evidence, f"{base}/status", csrf=csrf, status="closed", reason=REASON)
    assert r.status_code == 303
    closed = get_page(client, evidence, base).text
    assert re.search(r'id="status">closed<', closed) and 'id="add-recording"' not in closed
    assert retention(client, force.tokens["evidence1"], rid)["held"] is False
    assert post_form(client, evidence, f"{base}/recordings/{rid}/remove", csrf=csrf,
                 reason=REASON).status_code == 303
    assert _case(client, force.tokens["evidence1"], case_id)["recordings"] == []
    assert f"{rid}</td>" in get_page(client, evidence, base).text  # in the removed list

    # Not theirs to see: 404; no footage role: 403; nobody: sign in.
    officer2, _ = page_session(client, "officer2", force.passwords["officer2"])
    assert get_page(client, officer2, base).status_code == 404
    assert f'href="/cases/{case_id}"' not in get_page(client, officer2, "/cases").text
    admin, _ = page_session(client, "fleetadmin", force.passwords["fleetadmin"])
    assert get_page(client, admin, base).status_code == 403
    assert get_page(client, admin, "/cases").status_code == 403
    assert get_page(client, {}, base).headers["location"].endswith("/login")
    assert count_events(runtime, "case.viewed") >= 5 and count_events(runtime, "cases.listed")


def test_the_list_filters_and_refuses_a_bad_status(client, runtime, force) -> None:
    evidence, csrf = page_session(client, "evidence1", force.passwords["evidence1"])
    for ref in ("CASE/2026/A1", "CASE/2026/B1"):
        assert post_form(client, evidence, "/cases", csrf=csrf, reference=ref,
                     title="t").status_code == 303
    only = get_page(client, evidence, "/cases?reference=CASE/2026/A").text
    assert "CASE/2026/A1" in only and "CASE/2026/B1" not in only
    assert "CASE/2026/B1" in get_page(client, evidence, "/cases?status=open&unit=").text
    assert 'id="no-cases"' in get_page(client, evidence, "/cases?status=closed").text
    bad = get_page(client, evidence, "/cases?status=sideways")
    assert bad.status_code == 400 and 'id="error"' in bad.text
    officer, o_csrf = page_session(client, "officer1", force.passwords["officer1"])
    assert 'id="open-case"' not in get_page(client, officer, "/cases").text
    assert post_form(client, officer, "/cases", csrf=o_csrf, reference="CASE/2026/O1",
                 title="t").status_code == 403
