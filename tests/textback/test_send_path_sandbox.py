"""Nothing on the way to the send that the send does not need (issue 13), counted at the sandbox over HTTP.

The whole pipeline runs as in production: the sandbox's signed webhooks to our receiver, the inbox, an RQ
worker, the handlers, the sender. The sandbox's request log is the ground truth for which HighLevel calls a
missed call waited on: everything it logged between the call's webhook and `POST /conversations/messages`.
"""

from __future__ import annotations

import time

from sqlalchemy import select

from integration.extensions import db
from integration.models import WebhookEvent
from integration.sandbox.seed import SEED_COMPANY_ID, SEED_MISSED_CALL_PIPELINE_IDS, SEED_USER_IDS, stage_id
from tests.textback.conftest import ACME
from tests.textback.helpers import run_worker, texts_to
from workers.queues import DEFAULT_QUEUE

CALLER = "+15125550177"
SEND = ("POST", "/conversations/messages")
PIPELINES = ("GET", "/opportunities/pipelines")
SARA = SEED_USER_IDS[ACME][1]


def requests_since(sandbox, start: int) -> list[tuple[str, str]]:
    return [(entry["method"], entry["path"]) for entry in sandbox.requests_log()[start:]]


def before_the_send(requests: list[tuple[str, str]]) -> list[tuple[str, str]]:
    assert SEND in requests, requests
    return requests[:requests.index(SEND)]


def installed_and_warm(sandbox, install, set_location_settings) -> list[tuple[str, str]]:
    """Install Acme through the consent dance and handle its INSTALL webhook; the requests that made."""
    install(ACME)
    # The test clock may be up to a weekend ahead of the call (see live_sender): do not call it stale.
    set_location_settings(max_call_age_minutes=7 * 24 * 60)
    start = len(sandbox.requests_log())
    run_worker()
    return requests_since(sandbox, start)


def missed_call(sandbox, number: str = CALLER) -> tuple[dict, int]:
    """A caller rings Acme; the webhook is stored by our receiver. (The call, the request log position.)"""
    placed = sandbox.place_call(ACME, number, "no-answer")
    assert sandbox.wait_for_delivery(placed["webhookId"])["state"] == "delivered"
    return placed, len(sandbox.requests_log())


def deliver(sandbox, payload: dict) -> str:
    """Have the sandbox sign and deliver a webhook to our receiver, then handle it; its inbox outcome."""
    delivery = sandbox.control("POST", "webhooks", {"payload": payload})
    assert delivery["state"] == "delivered", delivery
    run_worker()
    with db.session() as session:
        event = session.scalar(select(WebhookEvent).where(WebhookEvent.dedupe_key == delivery["webhookId"]))
        return f"{event.status}: {event.status_reason}"


def test_a_known_location_asks_highlevel_only_for_the_contact_before_the_send(
        served_app, sandbox, install, live_sender, set_location_settings):
    # The INSTALL webhook warmed the location's profile: its location and users, not its pipelines.
    warming = installed_and_warm(sandbox, install, set_location_settings)
    assert ("GET", f"/locations/{ACME}") in warming
    assert ("GET", "/users/") in warming
    assert PIPELINES not in warming

    placed, start = missed_call(sandbox)
    run_worker()

    requests = requests_since(sandbox, start)
    assert before_the_send(requests) == [("GET", f"/contacts/{placed['contactId']}")]
    (text,) = texts_to(sandbox, ACME, placed["contactId"])
    assert text["body"].startswith("Hi there, this is Mike at Acme Plumbing. Sorry we missed your call!")

    # The CRM follow-up, after the text, is what asks for the pipelines; its opportunity lands where it did.
    run_worker(DEFAULT_QUEUE)
    requests = requests_since(sandbox, start)
    send_at = requests.index(SEND)
    assert [i for i, request in enumerate(requests) if request == PIPELINES]
    assert all(i > send_at for i, request in enumerate(requests) if request == PIPELINES)
    state = sandbox.server.state
    with state.lock:
        (opportunity,) = [o for o in state.world.opportunities.values() if o["contactId"] == placed["contactId"]]
    pipeline = SEED_MISSED_CALL_PIPELINE_IDS[ACME]
    assert (opportunity["pipelineId"], opportunity["pipelineStageId"]) == (pipeline, stage_id(pipeline, "New Lead"))


def test_with_redis_flushed_the_first_call_fetches_the_profile_alongside_the_contact_and_is_texted(
        served_app, sandbox, install, live_sender, set_location_settings, redis_client):
    installed_and_warm(sandbox, install, set_location_settings)
    redis_client.flushdb()

    placed, start = missed_call(sandbox)
    run_worker()

    # Three reads that do not depend on each other, made together (their order in the log is the sandbox's).
    assert sorted(before_the_send(requests_since(sandbox, start))) == sorted([
        ("GET", f"/contacts/{placed['contactId']}"), ("GET", f"/locations/{ACME}"), ("GET", "/users/")])
    (text,) = texts_to(sandbox, ACME, placed["contactId"])
    assert text["body"].startswith("Hi there, this is Mike at Acme Plumbing.")

    # ... and the profile is cached again: the next caller waits on the contact only.
    placed, start = missed_call(sandbox, "+15125550178")
    run_worker()
    assert before_the_send(requests_since(sandbox, start)) == [("GET", f"/contacts/{placed['contactId']}")]


def test_a_location_update_webhook_makes_the_next_call_use_the_new_name(
        served_app, sandbox, install, live_sender, set_location_settings):
    installed_and_warm(sandbox, install, set_location_settings)
    state = sandbox.server.state
    with state.lock:
        state.world.locations[ACME]["name"] = "Acme Plumbing & Drains"
    # Without the webhook the cached name stands (served for up to the hard TTL): the webhook is what changes it.
    assert live_sender.gatherer.profile(ACME).name == "Acme Plumbing"

    outcome = deliver(sandbox, {"type": "LocationUpdate", "id": ACME, "companyId": SEED_COMPANY_ID,
                                "name": "Acme Plumbing & Drains", "email": "office@acme.example"})
    assert outcome == f"done: the location changed: profile of location {ACME} dropped, 1 fetched again"

    placed, start = missed_call(sandbox)
    run_worker()
    assert before_the_send(requests_since(sandbox, start)) == [("GET", f"/contacts/{placed['contactId']}")]
    (text,) = texts_to(sandbox, ACME, placed["contactId"])
    assert text["body"].startswith("Hi there, this is Mike at Acme Plumbing & Drains. Sorry we missed your call!")


def test_a_user_change_webhook_makes_the_next_call_see_the_new_staff_number(
        served_app, sandbox, install, live_sender, set_location_settings):
    installed_and_warm(sandbox, install, set_location_settings)
    state = sandbox.server.state
    with state.lock:
        state.world.users[SARA]["phone"] = CALLER  # Sara's new mobile

    outcome = deliver(sandbox, {"type": "UserUpdate", "locationId": ACME, "companyId": SEED_COMPANY_ID, "id": SARA,
                                "firstName": "Sara", "lastName": "Kim", "phone": CALLER, "role": "user"})
    assert outcome.startswith("done: a user changed (UserUpdate): profile of location")

    placed, start = missed_call(sandbox)
    run_worker()
    assert texts_to(sandbox, ACME, placed["contactId"]) == []
    with db.session() as session:
        event = session.scalar(select(WebhookEvent).where(WebhookEvent.dedupe_key == placed["webhookId"]))
    assert event.status_reason.endswith("skipped: the caller is a team member (Sara Kim)"), event.status_reason
    # Judged on the cached profile the webhook refreshed: no HighLevel call but the contact.
    assert requests_since(sandbox, start) == [("GET", f"/contacts/{placed['contactId']}")]


def test_location_and_user_webhooks_for_a_location_without_the_app_are_ignored(served_app, sandbox, install,
                                                                                live_sender, set_location_settings):
    installed_and_warm(sandbox, install, set_location_settings)
    start = len(sandbox.requests_log())
    assert deliver(sandbox, {"type": "LocationUpdate", "id": "SbxLocSomebodyElse00", "name": "Other"}) == (
        "ignored: location SbxLocSomebodyElse00 does not have the app installed")
    assert deliver(sandbox, {"type": "UserCreate", "companyId": "SbxAgencyOther000000", "id": "u1",
                             "firstName": "Al"}) == "ignored: not a user of a sub-account with the app installed"
    assert requests_since(sandbox, start) == []


def test_the_follow_up_refreshes_a_profile_past_its_soft_ttl_after_the_text(
        served_app, sandbox, install, live_sender, set_location_settings):
    installed_and_warm(sandbox, install, set_location_settings)
    profiles = live_sender.gatherer.profiles
    real_clock = profiles.clock
    profiles.clock = lambda: real_clock() + profiles.soft_ttl + 1  # six minutes on

    placed, start = missed_call(sandbox)
    run_worker()
    # Stale is still served to the send: nothing fetched on its way.
    assert before_the_send(requests_since(sandbox, start)) == [("GET", f"/contacts/{placed['contactId']}")]

    run_worker(DEFAULT_QUEUE)
    requests = requests_since(sandbox, start)
    after = requests[requests.index(SEND) + 1:]
    assert ("GET", f"/locations/{ACME}") in after
    assert ("GET", "/users/") in after
    assert profiles.lookup(ACME).stale is False


def test_a_contact_read_that_hangs_is_asked_again_and_the_caller_is_texted_without_waiting_for_it(
        served_app, sandbox, install, live_sender, set_location_settings):
    installed_and_warm(sandbox, install, set_location_settings)
    live_sender.gatherer.hedge_after = 0.2
    placed, start = missed_call(sandbox)
    # HighLevel holds the first contact read for 0.8 s (inside our 1 s timeout) and then 504s it.
    sandbox.fault("hang", r"^/contacts/[^/]+$", method="GET", times=1, delay=0.8)
    run_worker()

    # The sandbox logs a request when it answers: the text went out before the held read ended (unhedged,
    # the sender would have waited out the 504 and asked again after it).
    entries = log_once_answered(sandbox, start, fault="hang")
    order = [("hang" if e["fault"] == "hang" else "send" if (e["method"], e["path"]) == SEND else None)
             for e in entries]
    assert order.index("send") < order.index("hang"), entries
    contact = ("GET", f"/contacts/{placed['contactId']}")
    assert [(e["method"], e["path"]) for e in entries].count(contact) == 2
    (text,) = texts_to(sandbox, ACME, placed["contactId"])
    assert text["body"].startswith("Hi there, this is Mike at Acme Plumbing.")


def log_once_answered(sandbox, start: int, *, fault: str, timeout: float = 10.0) -> list[dict]:
    """The request log from `start` on, once the request that took `fault` has been answered."""
    deadline = time.monotonic() + timeout
    while True:
        entries = sandbox.requests_log()[start:]
        if any(entry["fault"] == fault for entry in entries):
            return entries
        assert time.monotonic() < deadline, f"no {fault} request answered: {entries}"
        time.sleep(0.05)
