"""The recording's "Evidence and retention" page: forms that call the same services as the API,
each behind a CSRF token and its role, each refusal shown back with nothing changed."""

from __future__ import annotations

import re

from matrix_world import page_session, post_form

from cat_helpers import record_camera
from life_helpers import REASON, configure, retention
from support import count_events


def test_flag_withdraw_hold_release_through_the_page(client, runtime, force) -> None:
    configure(runtime)
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="EP1",
                        clip=b"e" * 64)
    base = f"/recordings/{rid}/evidence"
    officer, csrf = page_session(client, "officer1", force.passwords["officer1"])

    page = client.get(base, headers=officer)
    assert page.status_code == 200
    assert 'id="flag"' in page.text and 'id="hold"' not in page.text
    assert "use of force" in page.text  # the applied categories are offered

    r = post_form(client, officer, f"{base}/flags", csrf=csrf, category="use of force",
              reference="CRIME/2026/7", note="<script>alert(1)</script>")
    assert r.status_code == 303 and r.headers["location"] == base
    flags = retention(client, force.tokens["officer1"], rid)["flags"]
    assert [f["reference"] for f in flags] == ["CRIME/2026/7"]
    shown = client.get(base, headers=officer).text
    assert "<script>alert(1)</script>" not in shown and "&lt;script&gt;" in shown
    withdraw_form = re.search(
        rf'action="{base}/flags/{flags[0]["id"]}/withdraw">\s*<input type="hidden" '
        r'name="csrf" value="([^"]+)"', shown)
    assert withdraw_form and withdraw_form.group(1) == csrf  # the form carries the session's

    # A refusal is shown with its reason, and changes nothing.
    r = post_form(client, officer, f"{base}/flags/{flags[0]['id']}/withdraw", csrf=csrf,
              reason="short")
    assert r.status_code == 422 and 'id="error"' in r.text
    assert retention(client, force.tokens["officer1"], rid)["flags"][0]["withdrawn_at"] is None
    r = post_form(client, officer, f"{base}/flags/{flags[0]['id']}/withdraw", csrf=csrf,
              reason=REASON)
    assert r.status_code == 303
    assert retention(client, force.tokens["officer1"], rid)["flags"][0]["withdrawn_at"]

    standards, s_csrf = page_session(client, "standards", force.passwords["standards"])
    r = post_form(client, standards, f"{base}/holds", csrf=s_csrf, kind="sideways", reason=REASON)
    assert r.status_code == 422 and "kind must be one of" in r.text
    assert count_events(runtime, "hold.placed") == 0
    r = post_form(client, standards, f"{base}/holds", csrf=s_csrf, kind="legal", reason=REASON)
    assert r.status_code == 303
    state = retention(client, force.tokens["standards"], rid)
    assert state["held"] and state["delete_after"] is None
    hold_id = state["holds"][0]["id"]
    r = post_form(client, standards, f"{base}/holds/{hold_id}/release", csrf=s_csrf, reason=REASON)
    assert r.status_code == 303
    assert not retention(client, force.tokens["standards"], rid)["held"]
    assert count_events(runtime, "hold.placed") == 1 and count_events(runtime, "hold.released") == 1


def test_forms_need_the_sessions_csrf_token(client, runtime, force) -> None:
    configure(runtime)
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="EP2",
                        clip=b"f" * 64)
    officer, _csrf = page_session(client, "officer1", force.passwords["officer1"])
    r = post_form(client, officer, f"/recordings/{rid}/evidence/flags", csrf="forged",
              category="use of force", reference="CRIME/2026/8")
    assert r.status_code == 403
    assert retention(client, force.tokens["officer1"], rid)["flags"] == []


def test_an_officer_cannot_flag_anothers_footage_by_page(client, runtime, force) -> None:
    configure(runtime)
    rid = record_camera(client, force.dock_token, device="CAM-3", recording="EP3",
                        clip=b"g" * 64)  # officer2's camera
    officer, csrf = page_session(client, "officer1", force.passwords["officer1"])
    assert client.get(f"/recordings/{rid}/evidence", headers=officer).status_code == 404
    r = post_form(client, officer, f"/recordings/{rid}/evidence/flags", csrf=csrf,
              category="use of force", reference="CRIME/2026/9")
    assert r.status_code == 404
    assert retention(client, force.tokens["officer2"], rid)["flags"] == []


def test_restriction_managed_through_the_page(client, runtime, force) -> None:
    rid = record_camera(client, force.dock_token, device="CAM-1", recording="EP4",
                        clip=b"h" * 64)
    base = f"/recordings/{rid}/evidence"
    sergeant = force.tokens["sergeant1"]
    assert client.get(f"/api/v1/recordings/{rid}", headers={
        "Authorization": f"Bearer {sergeant}"}).status_code == 200
    standards, csrf = page_session(client, "standards", force.passwords["standards"])

    assert post_form(client, standards, f"{base}/restriction", csrf=csrf, kind="restricted",
                 reason=REASON).status_code == 303
    client.cookies.clear()
    assert client.get(f"/api/v1/recordings/{rid}", headers={
        "Authorization": f"Bearer {sergeant}"}).status_code == 404  # hidden from the unit
    assert post_form(client, standards, f"{base}/restriction/access", csrf=csrf,
                 username="nobody-here", reason=REASON).status_code == 422
    assert post_form(client, standards, f"{base}/restriction/access", csrf=csrf,
                 username="sergeant1", reason=REASON).status_code == 303
    client.cookies.clear()
    assert client.get(f"/api/v1/recordings/{rid}", headers={
        "Authorization": f"Bearer {sergeant}"}).status_code == 200  # listed
    page = client.get(base, headers=standards).text
    assert re.search(r"<td>sergeant1</td>", page)
    assert post_form(client, standards, f"{base}/restriction/access/sergeant1/remove", csrf=csrf,
                 reason=REASON).status_code == 303
    assert post_form(client, standards, f"{base}/restriction/release", csrf=csrf,
                 reason=REASON).status_code == 303
    client.cookies.clear()
    assert client.get(f"/api/v1/recordings/{rid}", headers={
        "Authorization": f"Bearer {sergeant}"}).status_code == 200
