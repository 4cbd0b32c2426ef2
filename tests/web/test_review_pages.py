"""The review decision and subject-told forms on the evidence page, the /reviews queue page and
the subject-told report page: the same services as the API, each behind its role and the
session's CSRF token, refusals shown with nothing changed."""

from __future__ import annotations

import datetime as dt
import re

from matrix_world import get_page, page_session, post_form

from cat_helpers import record_camera
from evidence_locker.config import RetentionCategory
from life_helpers import CATEGORIES, REASON, configure, flag, retention
from support import count_events

SHORT = RetentionCategory(name="short review", kind="review", days=30)
DUE = dt.datetime(2026, 11, 21, 8, 15, tzinfo=dt.UTC) + dt.timedelta(days=30)


def test_review_through_the_queue_and_the_evidence_page(client, runtime, force, clock) -> None:
    configure(runtime, [*CATEGORIES, SHORT])
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="RP1",
                        clip=b"r" * 64)
    fid = flag(client, force.tokens["officer1"], rid, category=SHORT.name).json()["id"]
    base = f"/recordings/{rid}/evidence"
    ev, csrf = page_session(client, "evidence1", force.passwords["evidence1"])
    assert 'id="no-reviews"' in get_page(client, ev, "/reviews").text
    assert f'id="review-form-{fid}"' not in get_page(client, ev, base).text  # not due yet
    clock.advance(DUE - clock.now() + dt.timedelta(hours=1))
    # the first session timed out meanwhile
    ev, csrf = page_session(client, "evidence1", force.passwords["evidence1"])

    queue = get_page(client, ev, "/reviews")
    assert queue.status_code == 200
    assert f'href="{base}#review-{fid}"' in queue.text
    page = get_page(client, ev, base).text
    form = re.search(rf'action="{base}/flags/{fid}/review" class="filters" '
                     rf'id="review-form-{fid}">\s*<input type="hidden" name="csrf" '
                     r'value="([^"]+)"', page)
    assert form and form.group(1) == csrf

    r = post_form(client, ev, f"{base}/flags/{fid}/review", csrf=csrf, decision="retain",
              reason=REASON, next_review_days="7")
    assert r.status_code == 422 and 'id="error"' in r.text and "30 to 3650" in r.text
    r = post_form(client, ev, f"{base}/flags/{fid}/review", csrf=csrf, decision="retain",
              reason=REASON, next_review_days="abc")
    assert r.status_code == 422
    assert retention(client, force.tokens["evidence1"], rid)["flags"][0]["reviews"] == []
    r = post_form(client, ev, f"{base}/flags/{fid}/review", csrf=csrf, decision="retain",
              reason=REASON, next_review_days="400")
    assert r.status_code == 303 and r.headers["location"] == base
    assert 'id="no-reviews"' in get_page(client, ev, "/reviews").text
    shown = get_page(client, ev, base).text
    assert "retain" in shown and f'id="review-form-{fid}"' not in shown
    assert count_events(runtime, "evidence.retained") == 1

    # Supervisors and officers see the review but have no form, and are refused if they post.
    for user in ("sergeant1", "officer1"):
        headers, token = page_session(client, user, force.passwords[user])
        assert f'id="review-form-{fid}"' not in get_page(client, headers, base).text
        r = post_form(client, headers, f"{base}/flags/{fid}/review", csrf=token,
                  decision="dispose", reason=REASON)
        assert r.status_code == 403, user
        assert get_page(client, headers, "/reviews").status_code == 403, user
    assert count_events(runtime, "evidence.disposed") == 0


def test_subject_told_through_the_page(client, runtime, force) -> None:
    configure(runtime)
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="ST1",
                        clip=b"s" * 64)
    base = f"/recordings/{rid}/evidence"
    officer, csrf = page_session(client, "officer1", force.passwords["officer1"])
    page = get_page(client, officer, base).text
    assert 'id="tell"' in page and "Not recorded yet." in page
    r = post_form(client, officer, f"{base}/subject-told", csrf=csrf, told="no", reason="")
    assert r.status_code == 422 and "say why" in r.text
    assert retention(client, force.tokens["officer1"], rid)["subject_told"] is None
    r = post_form(client, officer, f"{base}/subject-told", csrf=csrf, told="not-practicable",
              reason="Subject was violent and shouting throughout")
    assert r.status_code == 303
    assert "not-practicable: Subject was violent" in get_page(client, officer, base).text
    standards, s_csrf = page_session(client, "standards", force.passwords["standards"])
    assert 'id="tell"' not in get_page(client, standards, base).text
    r = post_form(client, standards, f"{base}/subject-told", csrf=s_csrf, told="yes")
    assert r.status_code == 403
    r = post_form(client, officer, f"{base}/subject-told", csrf="forged", told="yes")
    assert r.status_code == 403
    assert retention(client, force.tokens["officer1"], rid)["subject_told"]["told"] == \
        "not-practicable"
    assert count_events(runtime, "recording.subject_told") == 1


def test_the_report_page(client, runtime, force) -> None:
    configure(runtime)
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="RR1",
                        clip=b"q" * 64)
    assert client.put(f"/api/v1/recordings/{rid}/subject-told",
                      headers={"Authorization": f"Bearer {force.tokens['officer1']}"},
                      json={"told": "yes"}).status_code == 200
    sergeant, _ = page_session(client, "sergeant1", force.passwords["sergeant1"])
    page = get_page(client, sergeant, "/reports/subject-told?days=60")
    assert page.status_code == 200
    row = re.search(r"<tr><td>Unit 1</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>"
                    r"<td>(\d+)</td><td>(\d+)</td></tr>", page.text)
    assert row and row.groups() == ("1", "0", "0", "0", "1")
    csv_link = re.search(r'id="csv" href="([^"]+)"', page.text)
    assert csv_link
    csv = get_page(client, sergeant, csv_link.group(1).replace("&amp;", "&"))
    assert csv.status_code == 200 and "U1,Unit 1,1,0,0,0,1" in csv.text
    assert 'href="/reports/subject-told"' in page.text  # in the header for this role
    officer, _ = page_session(client, "officer1", force.passwords["officer1"])
    assert get_page(client, officer, "/reports/subject-told").status_code == 403
    auditor, _ = page_session(client, "auditor", force.passwords["auditor"])
    assert get_page(client, auditor, "/reports/subject-told").status_code == 200
