"""The minimal web interface in a real Chromium against a real `locker serve`: sign in, list
recordings, open one and play it; roles that see no footage; sign out; the audit trail; the
evidence page's flag and hold; a case opened, worked and closed."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from evidence_locker.demo import OFFICERS

if TYPE_CHECKING:
    from conftest import Site  # tests/web/conftest.py

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

OFFICER_NAME = {collar: name for collar, name, *_ in OFFICERS}


def sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def session_cookie(page: Page) -> str | None:
    found = [c["value"] for c in page.context.cookies() if c["name"] == "locker_session"]
    return found[0] if found else None


def video_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("""() => {
        const v = document.getElementById('player');
        return {readyState: v.readyState, duration: v.duration, videoWidth: v.videoWidth,
                videoHeight: v.videoHeight, currentTime: v.currentTime, paused: v.paused,
                error: v.error && `${v.error.code} ${v.error.message}`, src: v.currentSrc,
                poster: v.poster};
    }""")
    return state


def audit_rows(site: Site, action: str, actor: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(site.db_path, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(
            "SELECT * FROM audit_events WHERE action = ? AND actor_name = ? ORDER BY id",
            (action, actor)).fetchall()
    finally:
        conn.close()


def test_chromium_is_installed() -> None:
    """A missing browser is a failure, never a skip: `make test` installs it."""
    chromium = Path("/usr/bin/chromium")
    assert chromium.exists(), f"{chromium} is missing (apt-get install chromium)"


def test_signed_out_visitor_is_sent_to_login(page: Page, site: Site) -> None:
    page.goto("/")
    expect(page).to_have_url(f"{site.url}/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    page.goto(f"/recordings/{site.recording_id}")
    expect(page).to_have_url(f"{site.url}/login")
    expect(page.locator("video")).to_have_count(0)

    media = page.request.get(f"/api/v1/recordings/{site.recording_id}/media")
    assert media.status == 401


def test_wrong_password_is_refused_and_stays_on_login(page: Page, site: Site) -> None:
    sign_in(page, "evidence", site.passwords["evidence"] + "-wrong")

    expect(page.get_by_role("alert")).to_have_text("Sign-in failed.")
    expect(page).to_have_url(f"{site.url}/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert session_cookie(page) is None
    page.goto("/")
    expect(page).to_have_url(f"{site.url}/login")


def test_evidence_officer_lists_opens_plays_and_signs_out(page: Page, site: Site) -> None:
    # Sign in: straight to the recordings list.
    sign_in(page, "evidence", site.passwords["evidence"])
    expect(page).to_have_url(f"{site.url}/")
    expect(page.get_by_role("heading", name="Recordings")).to_be_visible()
    expect(page.locator("header .who")).to_have_text("evidence (evidence-officer)")

    # The docked recording is listed with its officer.
    rows = page.locator("table.recordings tr.recording")
    expect(rows).to_have_count(1)
    row = rows.filter(has=page.locator(f'[href="/recordings/{site.recording_id}"]'))
    expect(row).to_have_count(1)
    expect(row).to_contain_text(f"{OFFICER_NAME[site.collar]} ({site.collar})")
    expect(row).to_contain_text(site.serial)
    expect(row.locator("td.state")).to_have_text("complete")

    # Open it.
    row.get_by_role("link").click()
    expect(page).to_have_url(f"{site.url}/recordings/{site.recording_id}")
    heading = page.get_by_role("heading", name=f"Recording {site.camera_recording_id}")
    expect(heading).to_be_visible()

    # Not the evidence officer's own footage: no player until a purpose and reason are given.
    expect(page.locator("video#player")).to_have_count(0)
    form = page.locator("form#justify")
    form.get_by_label("Purpose").select_option("investigation")
    form.get_by_label("Reason").fill("Too short")
    form.get_by_role("button", name="Play the footage").click()
    expect(page.locator("video#player")).to_have_count(0)  # the browser refuses < 10 chars
    form.get_by_label("Reason").fill("Reviewing the arrest at the station for the file")
    form.get_by_role("button", name="Play the footage").click()
    expect(page).to_have_url(re.compile(
        rf"{re.escape(site.url)}/recordings/{site.recording_id}\?clip=1&grant=.+"))

    # The player loads the clip's metadata...
    player = page.locator("video#player")
    expect(player).to_have_count(1)
    page.wait_for_function(
        "() => { const v = document.getElementById('player');"
        " return v.readyState >= 1 || v.error !== null; }")
    state = video_state(page)
    assert state["error"] is None, state
    assert state["duration"] == pytest.approx(site.clip_seconds, abs=0.25), state
    assert (state["videoWidth"], state["videoHeight"]) == (site.width, site.height), state
    assert re.search(rf"/api/v1/recordings/{site.recording_id}/media\?clip=1&grant=.+$",
                     state["src"]), state

    # ... its poster frame is a real image ...
    poster: dict[str, Any] = page.evaluate("""async () => {
        const img = new Image();
        img.src = document.getElementById('player').poster;
        await img.decode();
        return {width: img.naturalWidth, height: img.naturalHeight};
    }""")
    assert poster["width"] > 0 and poster["height"] > 0, poster

    # ... the media URL serves the original bytes by Range, as the player asks for them ...
    clip_bytes = site.clip.read_bytes()
    fetched: dict[str, Any] = page.evaluate("""async (src) => {
        const r = await fetch(src, {headers: {Range: 'bytes=0-1023'}});
        const body = new Uint8Array(await r.arrayBuffer());
        return {status: r.status, range: r.headers.get('content-range'),
                type: r.headers.get('content-type'), body: Array.from(body)};
    }""", state["src"])
    assert fetched["status"] == 206
    assert fetched["range"] == f"bytes 0-1023/{len(clip_bytes)}"
    assert fetched["type"] == "video/mp4"
    assert bytes(fetched["body"]) == clip_bytes[:1024]

    # ... and playing it (a click on the video, as a user would) advances the playhead.
    player.click()
    page.wait_for_function("() => document.getElementById('player').currentTime > 0.5")
    state = video_state(page)
    assert state["error"] is None and not state["paused"], state
    page.evaluate("() => document.getElementById('player').pause()")

    # The file table shows each docked file's SHA-256, matching what the camera wrote.
    on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
               for p in site.camera_dir.iterdir()}
    file_rows = page.locator("table.files tbody tr")
    expect(file_rows).to_have_count(len(on_disk))
    shown = {}
    for i in range(file_rows.count()):
        cells = file_rows.nth(i).locator("td")
        shown[cells.nth(2).inner_text()] = cells.nth(4).inner_text()
    assert shown == on_disk
    clip_row = file_rows.filter(has_text=site.clip.name)
    expect(clip_row.locator("code")).to_have_text(
        hashlib.sha256(clip_bytes).hexdigest())
    expect(clip_row).to_contain_text(f"{site.width}×{site.height}")

    # Sign out: back to login, the session is gone on the server too.
    old_session = session_cookie(page)
    assert old_session
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{site.url}/login")
    assert session_cookie(page) is None
    page.goto("/")
    expect(page).to_have_url(f"{site.url}/login")
    replayed = httpx.get(f"{site.url}/", cookies={"locker_session": old_session},
                         follow_redirects=False)
    assert replayed.status_code == 303 and replayed.headers["location"] == "/login"

    # The server recorded the justification once, from the browser, and no event for each of
    # the player's Range requests.
    granted = audit_rows(site, "recording.access_granted", "evidence")
    assert len(granted) == 1, granted
    ev = granted[0]
    assert ev["actor_type"] == "user"
    assert ev["object_type"] == "recording" and ev["object_id"] == site.recording_id
    assert re.search(r"Chrom", ev["user_agent"] or ""), ev["user_agent"]
    details = json.loads(ev["details"])
    assert details["purpose"] == "investigation"
    assert details["reason"] == "Reviewing the arrest at the station for the file"
    assert not audit_rows(site, "media.stream", "evidence")


def test_administrator_sees_no_footage(page: Page, site: Site) -> None:
    sign_in(page, "admin", site.passwords["admin"])
    expect(page).to_have_url(f"{site.url}/")
    expect(page.get_by_role("heading", name="No footage for this role")).to_be_visible()
    expect(page.locator("table.recordings")).to_have_count(0)
    expect(page.locator(f'[href="/recordings/{site.recording_id}"]')).to_have_count(0)

    response = page.goto(f"/recordings/{site.recording_id}")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="No footage for this role")).to_be_visible()
    expect(page.locator("video")).to_have_count(0)

    media = page.request.get(f"/api/v1/recordings/{site.recording_id}/media")
    assert media.status == 403
    poster = page.request.get(f"/api/v1/recordings/{site.recording_id}/poster")
    assert poster.status == 403
    assert not audit_rows(site, "media.stream", "admin")


def test_officer_flags_own_footage_and_standards_hold_it(page: Page, site: Site) -> None:
    """The evidence page in a real browser: the officer flags their own recording (no
    justification asked), professional standards place a hold; each change is one audit event
    and the page shows the new deadline."""
    sign_in(page, "morgan", site.passwords["morgan"])
    page.goto(f"/recordings/{site.recording_id}")
    page.locator("a#evidence-link").click()
    expect(page).to_have_url(f"{site.url}/recordings/{site.recording_id}/evidence")
    expect(page.locator("#no-flags")).to_be_visible()
    expect(page.locator("form#hold")).to_have_count(0)  # an officer places no holds
    expect(page.locator("form#restrict")).to_have_count(0)
    before = page.locator("#delete-after").inner_text()

    form = page.locator("form#flag")
    form.get_by_label("Category").select_option("use of force")
    form.get_by_label("Crime or case reference").fill("bad reference!")
    form.get_by_role("button", name="Flag as evidence").click()
    expect(page.locator("#error")).to_contain_text("does not match the force's pattern")
    expect(page.locator("table#flags")).to_have_count(0)  # refused: nothing changed

    form = page.locator("form#flag")
    form.get_by_label("Category").select_option("use of force")
    form.get_by_label("Crime or case reference").fill("CRIME/2026/0042")
    form.get_by_label("Note").fill("<b>arrest</b> at the scene")
    form.get_by_role("button", name="Flag as evidence").click()
    expect(page).to_have_url(f"{site.url}/recordings/{site.recording_id}/evidence")
    row = page.locator("table#flags tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("CRIME/2026/0042")
    expect(row).to_contain_text("<b>arrest</b> at the scene")  # shown as text, not markup
    after = page.locator("#delete-after").inner_text()
    assert after != before  # six years, not 31 days
    flagged = audit_rows(site, "evidence.flagged", "morgan")
    assert len(flagged) == 1 and json.loads(flagged[0]["details"])["reference"] == \
        "CRIME/2026/0042"
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, "standards", site.passwords["standards"])
    page.goto(f"/recordings/{site.recording_id}/evidence")
    hold = page.locator("form#hold")
    hold.get_by_label("Kind").select_option("complaint")
    hold.get_by_label("Reason").fill("Complaint CMP-77 received about this arrest")
    hold.get_by_role("button", name="Place hold").click()
    expect(page.locator("table#holds tbody tr")).to_contain_text("complaint")
    expect(page.locator("#delete-after")).to_have_text("never while held")
    assert len(audit_rows(site, "hold.placed", "standards")) == 1


def test_evidence_officer_opens_a_case_and_links_the_recording(page: Page, site: Site) -> None:
    """The case pages in a real browser: from the header's Cases link the evidence officer
    opens a case, adds the recording by its id (the case now holds it, its evidence page links
    the case), and closes it with a reason; each change one audit event."""
    sign_in(page, "evidence", site.passwords["evidence"])
    page.get_by_role("link", name="Cases").click()
    expect(page).to_have_url(f"{site.url}/cases")
    opening = page.locator("form#open-case")
    opening.get_by_label("Reference").fill("CRIME/2026/0077")
    opening.get_by_label("Title").fill("Assault <i>outside</i> the station")
    opening.get_by_role("button", name="Open").click()
    expect(page.locator("h1")).to_have_text("Case CRIME/2026/0077")
    expect(page.locator("dl.facts")).to_contain_text("Assault <i>outside</i> the station")
    case_url = page.url

    adding = page.locator("form#add-recording")
    adding.get_by_label("Recording id").fill(site.recording_id)
    adding.get_by_label("Reason").fill("Shows the arrest and the caution")
    adding.get_by_role("button", name="Add to the case").click()
    expect(page).to_have_url(case_url)
    expect(page.locator(f'table#case-recordings tr[data-id="{site.recording_id}"]')) \
        .to_have_count(1)
    page.goto(f"/recordings/{site.recording_id}/evidence")
    expect(page.locator("#cases")).to_contain_text("CRIME/2026/0077 (open)")
    page.locator("#cases a").click()
    expect(page).to_have_url(case_url)

    adding = page.locator("form#add-recording")
    adding.get_by_label("Recording id").fill("00000000-0000-0000-0000-000000000000")
    adding.get_by_label("Reason").fill("A recording that does not exist")
    adding.get_by_role("button", name="Add to the case").click()
    expect(page.locator("#error")).to_contain_text("no such recording")  # refused, shown
    expect(page.locator("table#case-recordings tbody tr")).to_have_count(1)
    closing = page.locator("form#status-form")
    closing.get_by_label("Status").select_option("closed")
    closing.get_by_label("Reason").fill("No further action: complainant withdrew")
    closing.get_by_role("button", name="Change status").click()
    expect(page.locator("#status")).to_have_text("closed")
    for action in ("case.opened", "case.recording_added", "case.status_changed"):
        assert len(audit_rows(site, action, "evidence")) == 1, action
