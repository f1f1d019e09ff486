"""The existing-customer check costs the send no extra wait: its open-opportunity search runs only when it can
change the text, and alongside the contact read for a caller we texted before. Against the sandbox over HTTP."""

from __future__ import annotations

import threading
from datetime import timedelta

from integration.extensions import db, get_redis
from integration.textback.facts import FactGatherer
from integration.textback.guards import Proceed, evaluate
from integration.textback.models import Caller
from tests.textback.conftest import ACME
from tests.textback.helpers import call_webhook, missed, texts_to

CALLER = "+15125550166"
SEND = ("POST", "/conversations/messages")
SEARCH = ("GET", "/opportunities/search")
LONG_AGO = "2025-01-06T15:00:00.000Z"


def existing_contact(sandbox, **fields) -> dict:
    """A contact HighLevel had long before the call (not the one a first-time call creates)."""
    contact = sandbox.control("POST", "contacts", json={"locationId": ACME, "phone": CALLER, **fields})["contact"]
    state = sandbox.server.state
    with state.lock:
        state.world.contacts[contact["id"]]["dateAdded"] = LONG_AGO
    return contact


def pipeline_ids(client) -> dict[str, str]:
    return {p["name"]: p["id"] for p in client.get_pipelines(ACME)}


def requests_before_the_send(sandbox, start: int) -> list[tuple[str, str]]:
    requests = [(entry["method"], entry["path"]) for entry in sandbox.requests_log()[start:]]
    assert SEND in requests, requests
    return requests[:requests.index(SEND)]


class MeetingClient:
    """The real client, except that the contact read and the opportunity search each wait for the other: both
    pass only when they are in flight at the same time (one after the other, the first times out)."""

    def __init__(self, client) -> None:
        self._client = client
        self._meeting = threading.Barrier(2, timeout=5)

    def get_contact(self, *args, **kwargs):
        self._meeting.wait()
        return self._client.get_contact(*args, **kwargs)

    def search_opportunities(self, *args, **kwargs):
        self._meeting.wait()
        return self._client.search_opportunities(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_caller_we_texted_before_is_searched_together_with_the_contact_read(acme, sandbox, clock, sender):
    contact = existing_contact(sandbox, firstName="Dale")
    sender.client.create_opportunity(ACME, pipeline_id=pipeline_ids(sender.client)["Sales"], name="Water heater",
                                     contact_id=contact["id"])
    first = call_webhook(sandbox, clock, ACME, CALLER)
    assert sender.process(sender.record(missed(first), event_id=None)[0]).startswith("texted at 15:00")

    # Two days later (past the 24 h cooldown) they call again: we texted this contact, so it predates the call.
    clock.advance(days=2)
    gatherer = FactGatherer(database=db, client=MeetingClient(sender.client), redis=get_redis(), clock=clock)
    again = call_webhook(sandbox, clock, ACME, CALLER)
    gathered = gatherer.gather(call=missed(again), first_seen_at=clock.now)

    assert gathered.facts.contact.open_opportunity == "Water heater"
    decision = evaluate(gathered.facts, gathered.settings)
    assert isinstance(decision, Proceed) and decision.template_key == "existing_customer"


def test_a_contact_we_never_texted_is_searched_after_the_contact_read_and_texted_as_a_customer(
        acme, sandbox, clock, sender):
    contact = existing_contact(sandbox, firstName="Dale")
    sender.client.create_opportunity(ACME, pipeline_id=pipeline_ids(sender.client)["Sales"], name="Water heater",
                                     contact_id=contact["id"])
    sender.gatherer.profiles.fetch(ACME)  # a known location
    sender.gatherer.pipelines.fetch(ACME)  # and its follow-up has run before
    payload = call_webhook(sandbox, clock, ACME, CALLER)
    missed_call_id, _ = sender.record(missed(payload), event_id=None)
    start = len(sandbox.requests_log())

    assert sender.process(missed_call_id).startswith("texted at 15:00 (existing-customer message")
    assert requests_before_the_send(sandbox, start) == [("GET", f"/contacts/{contact['id']}"), SEARCH]
    (text,) = texts_to(sandbox, ACME)
    assert text["body"].startswith("Hi Dale, this is Mike at Acme Plumbing. Sorry we missed your call! Reply here")


def test_tags_that_already_decide_and_a_first_time_caller_cost_no_search(acme, sandbox, clock, sender):
    sender.gatherer.profiles.fetch(ACME)
    tagged = existing_contact(sandbox, firstName="Dale", tags=["Customer"])
    payload = call_webhook(sandbox, clock, ACME, CALLER)
    missed_call_id, _ = sender.record(missed(payload), event_id=None)
    start = len(sandbox.requests_log())
    assert sender.process(missed_call_id).startswith("texted at 15:00 (existing-customer message")
    assert requests_before_the_send(sandbox, start) == [("GET", f"/contacts/{tagged['id']}")]

    # A first-time caller: HighLevel created the contact with the call, so it cannot have an opportunity yet.
    payload = call_webhook(sandbox, clock, ACME, "+15125550199")
    missed_call_id, _ = sender.record(missed(payload), event_id=None)
    start = len(sandbox.requests_log())
    assert sender.process(missed_call_id).startswith("texted at 15:00 (business-hours message")
    assert requests_before_the_send(sandbox, start) == [("GET", f"/contacts/{payload['contactId']}")]


def test_a_caller_inside_the_cooldown_is_not_searched(acme, sandbox, clock, sender):
    existing_contact(sandbox, firstName="Dale")
    with db.transaction() as session:  # texted an hour ago (the number, whatever the contact)
        session.add(Caller(location_id=ACME, phone=CALLER, last_texted_at=clock.now - timedelta(hours=1),
                           last_call_key="an-earlier-call"))
    sender.gatherer.profiles.fetch(ACME)
    payload = call_webhook(sandbox, clock, ACME, CALLER)
    missed_call_id, _ = sender.record(missed(payload), event_id=None)
    start = len(sandbox.requests_log())

    assert sender.process(missed_call_id) == "skipped: texted this caller 1 h ago"
    assert [entry["path"] for entry in sandbox.requests_log()[start:]] == [f"/contacts/{payload['contactId']}"]
