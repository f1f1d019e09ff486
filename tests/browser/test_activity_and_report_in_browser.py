"""Activity and the Lead Leak report in Chromium, embedded as HighLevel embeds them (the host page of
test_app_page_in_browser plays HighLevel): a missed call placed in the sandbox shows up texted with its time, a
DND caller's call shows why it was skipped, the filters work from the keyboard with labelled fields, the report
shows the funnel and the chart, and both CSVs download. Screenshots go to test-artifacts/."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import expect

from integration.extensions import db
from integration.models import LocationSettings
from tests.browser.test_app_page_in_browser import highlevel_host, install_everything, shot  # noqa: F401
from tests.daytime import daytime_caller
from tests.textback.conftest import ACME

DND_CALLER = "+15125550122"  # Priya Shah: SMS DND in the sandbox's seed


def place_call(page, sandbox, number: str, outcome: str = "no-answer") -> None:
    page.goto(f"{sandbox.url}/")
    page.fill("#call-from", number)
    page.select_option("#call-location", ACME)
    page.select_option("#call-outcome", outcome)
    page.get_by_role("button", name="Place call").click()


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_the_contractor_sees_why_each_call_was_texted_or_not_and_the_report(sandbox, app_url, worker, page,
                                                                            highlevel_host):  # noqa: F811
    install_everything(page, app_url)
    caller, region = daytime_caller(datetime.now(UTC))
    with db.transaction() as session:
        row = session.get(LocationSettings, ACME) or LocationSettings(location_id=ACME, values={})
        row.values = {**row.values, "allowed_countries": ["US", "CA", region],
                      "crm": {**row.values.get("crm", {}), "average_job_value": 450}}
        session.add(row)
    place_call(page, sandbox, caller)
    wait_for(lambda: sandbox.sent_messages(locationId=ACME))
    place_call(page, sandbox, DND_CALLER)
    place_call(page, sandbox, "+15125550178", outcome="answered")

    page.goto(f"{highlevel_host}/location")
    app = page.frame_locator("#app")
    expect(app.get_by_role("link", name="Activity")).to_be_visible(timeout=15_000)
    app.get_by_role("link", name="Activity").click()
    # (Generous timeouts: the page also re-asks HighLevel for the user on every load, on a busy machine.)
    expect(app.get_by_role("heading", name="Activity")).to_be_visible(timeout=20_000)
    table = app.get_by_role("table")
    texted = table.get_by_role("row").filter(has_text=caller)
    expect(texted).to_contain_text("Texted at", timeout=30_000)
    expect(texted).to_contain_text("business-hours message")
    # The DND caller's call and the answered call arrive through the same pipeline; look again until they are in.
    frame = page.frame(url=lambda url: url.startswith(app_url) and "/app/activity" in url)
    deadline = time.monotonic() + 60
    # (Not "Not missed": the result filter offers that choice on every page.)
    while not ("Priya Shah" in frame.content() and "Not texted: answered" in frame.content()):
        assert time.monotonic() < deadline, "the skipped and answered calls never showed up"
        time.sleep(0.5)
        frame.goto(f"{app_url}/app/activity")
    dnd = app.get_by_role("row").filter(has_text="Priya Shah")
    expect(dnd).to_contain_text("Skipped: the caller has Do Not Disturb on")
    expect(app.get_by_role("row").filter(has_text="Not missed")).to_contain_text("Not texted: answered")
    shot(page, "activity-all-calls")

    # Every filter has a label a screen reader announces; the filters work from the keyboard alone.
    unlabelled = frame.evaluate("""Array.from(document.querySelectorAll(
        'form[role=search] input, form[role=search] select')).filter(e => !(e.labels && e.labels.length))
        .map(e => e.name)""")
    assert unlabelled == []
    app.get_by_label("Result").focus()
    page.keyboard.press("End")  # the last choice (Not missed), then three up: Skipped
    for _ in range(3):
        page.keyboard.press("ArrowUp")
    expect(app.get_by_label("Result")).to_have_value("skipped")
    app.get_by_label("Search").focus()
    page.keyboard.type("priya")
    page.keyboard.press("Enter")
    expect(app.get_by_role("table").get_by_role("row")).to_have_count(2, timeout=20_000)  # header + Priya
    expect(app.get_by_role("table")).to_contain_text("Do Not Disturb")
    shot(page, "activity-filtered-skipped")

    with page.expect_download() as download:
        app.get_by_role("link", name="Download CSV").click()
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8-sig"))))
    assert rows[0][:3] == ["call time", "caller name", "caller number"]
    assert len(rows) == 2 and rows[1][1] == "Priya Shah" and rows[1][4] == "Skipped"

    app.get_by_role("link", name="Report").click()
    expect(app.get_by_role("heading", name="Lead Leak report")).to_be_visible(timeout=20_000)
    expect(app.locator(".kpi").filter(has_text="Average job value")).to_contain_text("$450")
    expect(app.get_by_role("img", name="Missed calls, texts and bookings per week")).to_be_visible()
    expect(app.get_by_role("row", name="Missed calls 2 100%")).to_be_visible()
    expect(app.get_by_role("row", name="Texted 1 50% 100%")).to_be_visible()
    shot(page, "report")
    with page.expect_download() as download:
        app.get_by_role("link", name="Download CSV").click()
    report = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8-sig"))))
    assert report[0][0] == "week starting" and report[-5][:4] == ["total", "2", "1", "1"]
