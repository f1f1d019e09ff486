"""Every app page with the keyboard alone, in Chromium, embedded as HighLevel embeds it (the host page of
test_app_page_in_browser plays HighLevel): Tab from the top of each page reaches every control in the order the
page reads (no control skipped, none out of order), each one with a name a screen reader announces and a visible
focus ring; then the page's actions are done with Enter and Space only and the test checks they happened and
where the focus went. Pages: the sub-account's settings (form, placeholder chips, preview, test text, CRM
options), Activity (filters, paging, CSV), the Lead Leak report (period, job value, CSV, the numbers per week)
and the agency's page (sub-account table and bulk actions, agency defaults). Screenshots go to test-artifacts/."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import expect
from sqlalchemy import select

from integration.db import utcnow
from integration.extensions import db
from integration.models import LocationSettings
from integration.settings_page.test_text import TestText
from tests.activity import seed
from tests.browser.test_app_page_in_browser import highlevel_host, install_everything, shot  # noqa: F401
from tests.textback.conftest import ACME

# Installs window.__describe(element): a key naming the element, whether a screen reader has a name for it, and
# whether its focus shows (an outline of at least 2 px, or a shadow).
DESCRIBE = """window.__describe = window.__describe || ((e) => {
  const s = getComputedStyle(e);
  const ring = (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2) || s.boxShadow !== 'none';
  const text = (e.innerText || e.textContent || '').trim().replace(/\\s+/g, ' ');
  const labelled = e.getAttribute('aria-label') || e.getAttribute('aria-labelledby')
    || (e.labels && e.labels.length && Array.from(e.labels).some(l => l.innerText.trim()))
    || (['A', 'BUTTON', 'SUMMARY'].includes(e.tagName) && text);
  const key = e.id || [e.tagName.toLowerCase(), e.getAttribute('name'), e.getAttribute('value'),
    e.dataset.target, e.dataset.insert, e.tagName === 'A' || e.tagName === 'BUTTON' || e.tagName === 'SUMMARY'
    ? text.slice(0, 40) : ''].filter(Boolean).join('|');
  return {key, ring, labelled: Boolean(labelled), tag: e.tagName};
});"""
# The focused element of the frame (None when the focus is outside it).
FOCUSED = "() => { " + DESCRIBE + """
  const e = document.activeElement;
  if (!document.hasFocus() || !e || e === document.body || e === document.documentElement) { return null; }
  return window.__describe(e);
}"""
# Every control a keyboard user must reach, in document order (what Tab should walk through).
CONTROLS = "() => { " + DESCRIBE + """
  return Array.from(document.querySelectorAll('a[href], button, input, select, textarea, summary, [tabindex]'))
    .filter(e => !e.disabled && e.type !== 'hidden' && e.getAttribute('tabindex') !== '-1'
      && e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden'
      && !(e.closest('details:not([open])') && e.tagName !== 'SUMMARY'))
    .map(e => window.__describe(e).key);
}"""


def open_in_highlevel(page, app_url, host: str, path: str, ready):
    page.goto(f"{host}/{'agency' if path == 'agency' else 'location'}")
    app = page.frame_locator("#app")
    expect(app.get_by_role("heading", name="Sub-accounts" if path == "agency" else "Missed-call text back",
                           exact=False).first).to_be_visible(timeout=20_000)
    frame = page.frame(url=lambda url: url.startswith(app_url))
    if path not in ("", "agency"):
        frame.goto(f"{app_url}/app/{path}")
    expect(ready(app)).to_be_visible(timeout=20_000)
    return app, frame


def tab_through(page, frame) -> list[dict]:
    """Tab from the top of the page until the focus leaves it; the focused elements in order."""
    page.mouse.click(2, 2)  # the host page's banner: the next Tab enters the app from its top
    seen: list[dict] = []
    for _ in range(400):
        page.keyboard.press("Tab")
        focused = frame.evaluate(FOCUSED)
        if focused is None:
            if seen:
                return seen
            continue
        if not seen or seen[-1]["key"] != focused["key"]:  # (a date field's month, day and year: one control)
            seen.append(focused)
    raise AssertionError("Tab never left the page")


def assert_tab_order(page, frame) -> list[str]:
    """Tab reaches every control, in document order, each with a name and a visible focus ring."""
    walked = tab_through(page, frame)
    keys = [f["key"] for f in walked]
    assert keys == frame.evaluate(CONTROLS)
    assert [f["key"] for f in walked if not f["labelled"]] == []
    assert [f["key"] for f in walked if not f["ring"]] == []
    return keys


def tab_to(page, frame, key: str, *, limit: int = 300) -> None:
    for _ in range(limit):
        focused = frame.evaluate(FOCUSED)
        if focused and focused["key"] == key:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {key}")


def focused_key(frame) -> str | None:
    focused = frame.evaluate(FOCUSED)
    return focused and focused["key"]


def test_the_settings_page_by_keyboard(sandbox, app_url, page, highlevel_host):  # noqa: F811
    install_everything(page, app_url)
    app, frame = open_in_highlevel(page, app_url, highlevel_host, "",
                                   lambda app: app.get_by_role("heading", name="Messages"))
    keys = assert_tab_order(page, frame)
    # The first stop skips the navigation; the form reads top to bottom, then the test text, then the CRM card.
    assert keys[0] == "skip-link"
    order = [keys.index(k) for k in ("enabled", "template_business_hours", "sender_name", "daily_cap",
                                     "input|missed_statuses|no-answer", "hours_mon", "quiet_window", "excluded_numbers",
                                     "average_job_value", "button|Save settings", "test-template",
                                     "button|Send me a test text", "pipeline_id", "crm_average_job_value")]
    assert order == sorted(order)

    # Skip link: Enter puts the focus on the page's content; the next Tab is its first control.
    page.mouse.click(2, 2)
    page.keyboard.press("Tab")
    assert focused_key(frame) == "skip-link"
    expect(app.locator(".skip-link")).to_be_in_viewport()
    page.keyboard.press("Enter")
    assert focused_key(frame) == "main"
    page.keyboard.press("Tab")
    assert focused_key(frame) == "enabled"
    # Space toggles the on/off switch.
    page.keyboard.press("Space")
    expect(app.locator("#enabled")).not_to_be_checked()
    page.keyboard.press("Space")
    expect(app.locator("#enabled")).to_be_checked()

    # A chip with Enter inserts its placeholder at the cursor; the preview follows.
    tab_to(page, frame, "template_after_hours")
    page.keyboard.press("Control+A")
    page.keyboard.type("Hi {first_name|there}, we are closed. ")
    page.keyboard.press("Shift+Tab")  # back through the chips: the last one is right before the message
    assert focused_key(frame) == "button|template_after_hours|{booking_link}|+ Booking link"
    page.keyboard.press("Enter")
    expect(app.locator("#template_after_hours")).to_have_value("Hi {first_name|there}, we are closed. {booking_link}")
    expect(app.locator("#template_after_hours-preview")).to_contain_text("Hi Jordan, we are closed.")
    assert focused_key(frame) == "template_after_hours"  # the focus goes back to the message

    # A tick box in the "Text back when" group with Space; the job value typed; saved with Enter from a field.
    tab_to(page, frame, "input|missed_statuses|busy")
    page.keyboard.press("Space")
    expect(app.locator('input[name="missed_statuses"][value="busy"]')).not_to_be_checked()
    tab_to(page, frame, "average_job_value")
    page.keyboard.press("Control+A")
    page.keyboard.type("lots")
    page.keyboard.press("Enter")
    # A bad value: the focus lands on the summary, whose link takes the keyboard to the field.
    expect(app.locator("#form-errors")).to_be_visible(timeout=20_000)
    assert focused_key(frame) == "form-errors"
    shot(page, "keyboard-settings-error")
    page.keyboard.press("Tab")
    assert focused_key(frame) == "a|Average job value"
    page.keyboard.press("Enter")
    assert focused_key(frame) == "average_job_value"
    page.keyboard.press("Control+A")
    page.keyboard.type("1250")
    page.keyboard.press("Enter")
    expect(app.get_by_text("Saved. The next missed call uses these settings.")).to_be_visible(timeout=20_000)
    with db.session() as session:
        values = session.get(LocationSettings, ACME).values
    assert values["crm"]["average_job_value"] == 1250
    assert "busy" not in values["missed_statuses"]
    assert values["templates"]["after_hours"] == "Hi {first_name|there}, we are closed. {booking_link}"
    shot(page, "keyboard-settings-saved")

    # The test text: the message picked with the arrow keys, sent with Space.
    tab_to(page, frame, "test-template")
    page.keyboard.press("ArrowDown")
    expect(app.locator("#test-template")).to_have_value("after_hours")
    page.keyboard.press("Tab")
    assert focused_key(frame) == "button|Send me a test text"
    page.keyboard.press("Space")
    expect(app.locator("#test-text-status")).to_be_visible(timeout=20_000)
    with db.session() as session:
        (sent,) = session.scalars(select(TestText).where(TestText.location_id == ACME)).all()
    assert sent.template_key == "after_hours"
    shot(page, "keyboard-settings-test-text")


CALLS: list = []


ZONE = "America/Chicago"


def _seed_calls(count: int) -> None:
    with db.transaction() as session:  # the zone the page shows days in, so the test knows them too
        row = session.get(LocationSettings, ACME) or LocationSettings(location_id=ACME, values={})
        row.values = {**(row.values or {}), "timezone": ZONE}
        session.add(row)
    now = utcnow()
    CALLS.clear()
    for n in range(count):
        status = ("sent", "skipped", "failed")[n % 3]
        CALLS.append((now - timedelta(hours=2 + n * 5), status))
        seed.missed_call(ACME, now - timedelta(hours=2 + n * 5), status=status, name=f"Caller {n:02d}",
                         number=f"+1512555{n:04d}", sent_after=3 if status == "sent" else None,
                         lead={} if status == "sent" else None)


def test_activity_and_report_by_keyboard(sandbox, app_url, page, highlevel_host):  # noqa: F811
    install_everything(page, app_url)
    _seed_calls(75)  # more than a page (50)
    app, frame = open_in_highlevel(page, app_url, highlevel_host, "activity",
                                   lambda app: app.get_by_role("heading", name="Latest calls"))
    keys = assert_tab_order(page, frame)
    assert keys[:4] == ["skip-link", "a|Settings", "a|Activity", "a|Report"]
    expected = ["f-outcome", "f-from", "f-to", "f-q", "button|Show calls", "a|Clear", "a|Download CSV",
                "a|Older calls »"]
    assert [k for k in keys if k in expected] == expected

    # The result filter with the arrow keys, a date typed, Enter: the filtered list.
    tab_to(page, frame, "f-outcome")
    page.keyboard.press("Home")
    while app.locator("#f-outcome").input_value() != "skipped":
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")
    assert focused_key(frame) == "f-from"
    since = (utcnow() - timedelta(days=5)).date()  # typed as the date field's month, day, year
    page.keyboard.type(since.strftime("%m%d%Y"))
    expect(app.locator("#f-from")).to_have_value(since.isoformat())
    page.keyboard.press("Enter")
    expect(app.locator("#f-outcome")).to_have_value("skipped", timeout=20_000)
    expect(app.get_by_role("table").get_by_role("row")).not_to_have_count(0)
    rows = app.get_by_role("table").locator("tbody tr")
    zone = ZoneInfo(ZONE)
    skipped_since = sum(1 for at, status in CALLS if status == "skipped" and at.astimezone(zone).date() >= since)
    assert rows.count() == skipped_since and all("Skipped" in t for t in rows.all_inner_texts())
    shot(page, "keyboard-activity-filtered")

    # Clear with Enter; then paging with Enter: older calls, and back to the newest.
    tab_to(page, frame, "a|Clear")
    page.keyboard.press("Enter")
    expect(app.locator("#f-outcome")).to_have_value("all", timeout=20_000)
    expect(app.locator("#f-from")).to_have_value("")
    tab_to(page, frame, "a|Older calls »")
    page.keyboard.press("Enter")
    expect(app.get_by_role("heading", name="Older calls")).to_be_visible(timeout=20_000)
    expect(app.get_by_role("table").locator("tbody tr")).to_have_count(25)
    tab_to(page, frame, "a|« Newest calls")
    page.keyboard.press("Enter")
    expect(app.get_by_role("heading", name="Latest calls")).to_be_visible(timeout=20_000)

    # The CSV with Enter.
    tab_to(page, frame, "a|Download CSV")
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert download.value.suggested_filename.endswith(".csv")

    # The report: the navigation link with Enter, then the period, the job value and the CSV.
    tab_to(page, frame, "a|Report")
    page.keyboard.press("Enter")
    expect(app.get_by_role("heading", name="Lead Leak report")).to_be_visible(timeout=20_000)
    keys = assert_tab_order(page, frame)
    expected = ["r-weeks", "button|Show", "a|Download CSV", "average_job_value", "button|Save",
                "summary|The numbers per week"]
    assert [k for k in keys if k in expected] == expected
    tab_to(page, frame, "r-weeks")
    page.keyboard.press("ArrowDown")  # 12 -> 26 weeks
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    frame.wait_for_url("**/app/report?weeks=26", timeout=20_000)
    expect(app.locator("#r-weeks")).to_have_value("26")
    tab_to(page, frame, "average_job_value")
    page.keyboard.press("Control+A")
    page.keyboard.type("-3")
    page.keyboard.press("Enter")
    expect(app.locator("#average_job_value-error")).to_contain_text("from 0 to 10,000,000", timeout=20_000)
    assert focused_key(frame) == "average_job_value"  # back on the field, its message read out with it
    page.keyboard.press("Control+A")
    page.keyboard.type("900")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the Save button
    expect(app.get_by_text("Saved: the report uses $900 now.")).to_be_visible(timeout=20_000)
    expect(app.locator("#r-weeks")).to_have_value("26")
    tab_to(page, frame, "summary|The numbers per week")
    page.keyboard.press("Enter")
    expect(app.locator("details")).to_have_attribute("open", "")
    tab_to(page, frame, "a|Download CSV")
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert download.value.suggested_filename == "textback-report-26-weeks.csv"
    shot(page, "keyboard-report")


def test_the_agency_page_by_keyboard(sandbox, app_url, page, highlevel_host):  # noqa: F811
    install_everything(page, app_url)
    app, frame = open_in_highlevel(page, app_url, highlevel_host, "agency",
                                   lambda app: app.get_by_role("heading", name="Agency defaults"))
    keys = assert_tab_order(page, frame)
    assert keys.index(f"pick-{ACME}") < keys.index("button|action|off|Turn text back off") < keys.index(
        "cooldown_hours") < keys.index("button|Save agency defaults")

    # A sub-account ticked with Space and turned off with Enter.
    tab_to(page, frame, f"pick-{ACME}")
    page.keyboard.press("Space")
    expect(app.locator(f"#pick-{ACME}")).to_be_checked()
    tab_to(page, frame, "button|action|off|Turn text back off")
    page.keyboard.press("Enter")
    expect(app.get_by_text("Text back turned off for the chosen sub-accounts.")).to_be_visible(timeout=20_000)
    with db.session() as session:
        assert session.get(LocationSettings, ACME).enabled is False

    # A default changed and saved with Enter.
    tab_to(page, frame, "cooldown_hours")
    page.keyboard.press("Control+A")
    page.keyboard.type("6")
    page.keyboard.press("Enter")
    expect(app.get_by_text("Agency defaults saved.")).to_be_visible(timeout=20_000)
    expect(app.locator("#cooldown_hours")).to_have_value("6")
    shot(page, "keyboard-agency")
