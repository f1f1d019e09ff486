"""The whole product in a real browser (Debian's Chromium driven by Playwright), over real HTTP:
install from the sandbox's consent page, open the app's page embedded with SSO, place a missed
call in the sandbox UI and see exactly one text arrive in the contact's thread."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from playwright.sync_api import expect

from integration.extensions import db
from integration.models import LocationSettings
from integration.sandbox.seed import SEED_LOCATION_IDS
from tests.daytime import daytime_caller

ACME = SEED_LOCATION_IDS[0]


def test_some_caller_is_always_in_daytime():
    for hour in range(24):
        for minute in (0, 30):
            daytime_caller(datetime(2026, 7, 1, hour, minute, tzinfo=UTC))
            daytime_caller(datetime(2026, 12, 1, hour, minute, tzinfo=UTC))


def test_install_open_the_page_and_text_back_a_missed_call(sandbox, app_url, worker, page):
    # 1. The agency installs for all its sub-accounts in one consent.
    page.goto(f"{app_url}/oauth/install")
    page.get_by_label("Bulk install", exact=False).check()
    page.get_by_role("button", name="Install").click()
    expect(page.get_by_text("TextBack is installed")).to_be_visible()

    # 2. Inside the sub-account, HighLevel embeds the app's page and hands it the user by SSO.
    page.goto(f"{sandbox.url}/ui/locations/{ACME}")
    embedded = page.frame_locator("#app-page")
    expect(embedded.get_by_text("Missed-call text back for Acme Plumbing")).to_be_visible(timeout=15_000)
    expect(embedded.get_by_text("active")).to_be_visible()

    # 3. A caller rings and nobody answers. (The business takes calls from the caller's country.)
    caller, region = daytime_caller(datetime.now(UTC))
    with db.transaction() as session:
        row = session.get(LocationSettings, ACME) or LocationSettings(location_id=ACME, values={})
        row.values = {**row.values, "allowed_countries": ["US", "CA", region]}
        session.add(row)
    page.goto(f"{sandbox.url}/")
    page.fill("#call-from", caller)
    page.select_option("#call-location", ACME)
    page.select_option("#call-outcome", "no-answer")
    page.get_by_role("button", name="Place call").click()

    # 4. The text appears in the caller's thread, as the contractor sees it in HighLevel.
    deadline = time.monotonic() + 60
    while not sandbox.sent_messages(locationId=ACME) and time.monotonic() < deadline:
        time.sleep(0.2)
    (text,) = sandbox.sent_messages(locationId=ACME)
    page.goto(f"{sandbox.url}/ui/contacts/{text['contactId']}")
    expect(page.get_by_text("Sorry we missed your call!")).to_be_visible()
    time.sleep(2)  # a late duplicate would show up here
    assert len(sandbox.sent_messages(locationId=ACME)) == 1
