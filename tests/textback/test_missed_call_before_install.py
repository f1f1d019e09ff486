"""Issue 13, defect 1, seen from outside: an agency approves one more sub-account; HighLevel sends its Location
INSTALL and, a few milliseconds later, a missed call for it. Both reach our receiver over HTTP before a worker
has provisioned the location. Before the fix the call was stored as `ignored (unknown location)` and the caller
never got a text; now it waits for the install and is texted once, right after the install settles.

The sandbox over real HTTP delivers the webhooks and takes the text; the workers run in-process (burst). A
scheduled look is never run by a burst worker (it has no scheduler), so a text that is there when the burst ends
was sent because the install woke the waiting call, not because a timer came round.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from integration.extensions import db, get_redis
from integration.models import Company, WebhookEvent
from integration.sandbox.seed import SEED_COMPANY_ID
from integration.textback.models import MissedCall, SendIntent
from oauth.store import is_location_active
from tests.oauth.conftest import ConsentDance
from tests.textback.helpers import run_worker, texts_to
from workers.jobs import process_event
from workers.queues import WEBHOOKS_QUEUE, event_job_id, get_queue

CALLER = "+15125550177"


@pytest.fixture
def agency(served_app, sandbox, live_sender):
    """The agency installed the app on all its sub-accounts ("and future ones"), and those INSTALLs are done."""
    response = ConsentDance(served_app.test_client(), sandbox).install(company_id=SEED_COMPANY_ID)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    with db.transaction() as session:
        # The sender's test clock may be up to a weekend ahead of the call (see live_sender): not stale. Agency
        # defaults, so the new sub-account has it from its first moment.
        session.get(Company, SEED_COMPANY_ID).default_settings = {"max_call_age_minutes": 7 * 24 * 60}
    wait_for(lambda: _all_delivered(sandbox), "the agency's INSTALLs")
    run_worker()
    return SEED_COMPANY_ID


def wait_for(condition, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _all_delivered(sandbox) -> bool:
    return all(d["state"] in ("delivered", "failed", "gave_up") for d in sandbox.deliveries())


def event_of(webhook_id: str) -> WebhookEvent:
    with db.session() as session:
        return session.scalar(select(WebhookEvent).where(WebhookEvent.dedupe_key == webhook_id))


def one_more_sub_account_approved_then_a_missed_call(sandbox) -> tuple[str, WebhookEvent, WebhookEvent]:
    """The new sub-account's INSTALL, then its missed call a few ms later, both stored by our receiver."""
    [location] = sandbox.control("POST", "locations", {"count": 1})["locationIds"]
    [install_webhook] = sandbox.control("POST", "install", {"companyId": SEED_COMPANY_ID,
                                                            "locationIds": [location]})["webhookIds"]
    placed = sandbox.place_call(location, CALLER, "no-answer")
    for webhook_id in (install_webhook, placed["webhookId"]):
        assert sandbox.wait_for_delivery(webhook_id)["state"] == "delivered"
    install, call = event_of(install_webhook), event_of(placed["webhookId"])
    with db.session() as session:
        assert not is_location_active(session, location)  # nobody has processed the INSTALL yet
    # Before the fix: ("ignored", "unknown location").
    assert (call.status, call.status_reason) == ("pending", "unknown location: waiting for its install")
    return location, install, call


def test_a_call_delivered_before_its_install_was_processed_is_texted_once(agency, sandbox):
    location, install, call = one_more_sub_account_approved_then_a_missed_call(sandbox)

    run_worker()  # the INSTALL first (it arrived first), then the call

    assert len(texts_to(sandbox, location)) == 1
    assert event_of(install.dedupe_key).status == "done"
    assert event_of(call.dedupe_key).status == "done"


def a_worker_takes_the_call_first_then_the_install(sandbox) -> tuple[str, WebhookEvent]:
    """One worker slot takes the call while another has not provisioned the location yet; then the INSTALL."""
    location, install, call = one_more_sub_account_approved_then_a_missed_call(sandbox)
    assert process_event(call.id) == f"waiting for the install of location {location}"
    waiting = event_of(call.dedupe_key)
    assert (waiting.status, waiting.install_waits) == ("pending", 1)
    assert texts_to(sandbox, location) == []
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(MissedCall)) == 0  # nothing decided about it

    # The INSTALL: the location's token is stored, and the waiting call's next look is brought forward.
    assert "provisioned" in process_event(install.id)
    assert event_job_id(call.id, 1) in get_queue(WEBHOOKS_QUEUE, get_redis()).get_job_ids()
    return location, call


def test_a_call_a_worker_takes_before_the_install_is_texted_as_soon_as_the_install_settles(agency, sandbox):
    location, call = a_worker_takes_the_call_first_then_the_install(sandbox)
    provisioned = time.monotonic()

    run_worker()  # no scheduler: only the wake-up can have put the call's next look in the queue

    texts = texts_to(sandbox, location)
    assert len(texts) == 1, texts
    assert time.monotonic() - provisioned < 5
    done = event_of(call.dedupe_key)
    assert done.status == "done" and done.status_reason.startswith("missed call 1: texted at")
    assert (done.attempts, done.install_waits) == (2, 1)


def test_the_woken_call_and_workers_racing_for_it_send_one_text(agency, sandbox, served_app):
    location, call = a_worker_takes_the_call_first_then_the_install(sandbox)

    # Two more workers take the call at the same moment (its first job, a sweeper's rescue), then the woken job.
    barrier = threading.Barrier(2)
    results: list[str] = []

    def racing_worker():
        with served_app.app_context():
            barrier.wait()
            results.append(process_event(call.id))

    racers = [threading.Thread(target=racing_worker) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    run_worker()

    texts = texts_to(sandbox, location)
    assert len(texts) == 1, texts
    assert sorted(result.startswith("done") for result in results) == [False, True], results
    assert event_of(call.dedupe_key).status == "done"
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(MissedCall)) == 1
        assert session.scalar(select(func.count()).select_from(SendIntent)) == 1
