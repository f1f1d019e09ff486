"""Issue 13, defect 1, on the stack as it ships: an agency approves one more sub-account, HighLevel sends the
Location INSTALL, and a missed call for that location arrives a few milliseconds later, while `python -m workers`
is still minting the location's token (HighLevel is slow to answer /oauth/locationToken here). Another slot of
the worker takes the call first. Before the fix the receiver had stored it as `ignored (unknown location)` and
nobody texted the caller; now it waits, and is texted once, within moments of the token being stored: sooner
than its next scheduled look could come round, so the install's wake-up is what ran it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import select

from integration.extensions import db
from integration.models import Company, WebhookEvent
from integration.sandbox.seed import SEED_COMPANY_ID, SEED_LOCATION_IDS
from oauth.store import is_location_active
from tests.daytime import daytime_callers
from tests.live.conftest import wait_for

MINT_DELAY = 6.0  # HighLevel's answer to the new location's token request; the call's looks come at +2 s, +5 s, +10 s


def _live(location_id: str) -> bool:
    with db.session() as session:
        return is_location_active(session, location_id)


def test_a_missed_call_arriving_while_its_install_is_processed_is_texted_once(live, sandbox):
    worker = live.start_worker()
    assert live.dance.install(company_id=SEED_COMPANY_ID).status_code == 302
    for location_id in SEED_LOCATION_IDS:
        wait_for(lambda location_id=location_id: _live(location_id), what=f"{location_id} installed", logs=live.logs)
    [caller], region = daytime_callers(datetime.now(UTC), 1)
    with db.transaction() as session:  # agency defaults: the new sub-account has them from its first moment
        session.get(Company, SEED_COMPANY_ID).default_settings = {"allowed_countries": ["US", "CA", region]}

    [location] = sandbox.control("POST", "locations", {"count": 1})["locationIds"]
    sandbox.fault("slow", "^/oauth/locationToken$", method="POST", delay=MINT_DELAY, times=1)
    sandbox.control("POST", "install", {"companyId": SEED_COMPANY_ID, "locationIds": [location]})
    placed = sandbox.place_call(location, caller, "no-answer")

    def call_event() -> WebhookEvent | None:
        with db.session() as session:
            return session.scalar(select(WebhookEvent).where(WebhookEvent.dedupe_key == placed["webhookId"]))

    stored = wait_for(call_event, what="the call to be stored", logs=live.logs)
    assert stored.status != "ignored", stored.status_reason  # before the fix: "unknown location"
    waiting = wait_for(lambda: (event := call_event()).install_waits > 0 and event,
                       what="the call to wait for the install", logs=live.logs)
    assert waiting.status in ("pending", "processing"), (waiting.status, waiting.status_reason)
    assert not _live(location)

    live_at = wait_for(lambda: _live(location) and time.monotonic(), what="the new location's token",
                       timeout=MINT_DELAY + 30, logs=live.logs)
    texts = lambda: [m for m in sandbox.sent_messages(locationId=location) if m.get("toNumber") == caller]  # noqa: E731
    wait_for(texts, what="the text to the caller", timeout=30, logs=live.logs)
    texted_after = time.monotonic() - live_at
    print(f"\ntoken stored -> caller texted after {texted_after:.2f} s")
    assert texted_after < 2.5, f"texted {texted_after:.1f} s after the install settled\n{live.logs()}"

    time.sleep(2.0)  # a duplicate would show up here
    assert len(texts()) == 1
    event = call_event()
    assert event.status == "done" and event.status_reason.startswith("missed call"), event.status_reason
    assert "waiting event(s) run now" in worker.output()
