"""The exactly-once sender against the sandbox over real HTTP, with PostgreSQL/SQLite and Redis."""

from __future__ import annotations

from sqlalchemy import select

from integration.extensions import db
from tests.textback.conftest import ACME, AUSTIN
from tests.textback.helpers import call_webhook, intent_of, missed, row_of, texts_to

CALLER = "+15125550177"


def test_a_missed_call_gets_one_text_in_its_conversation(acme, sandbox, clock, sender):
    payload = call_webhook(sandbox, clock, ACME, CALLER)
    missed_call_id, first = sender.record(missed(payload), event_id=1)
    assert first

    outcome = sender.process(missed_call_id)

    texts = texts_to(sandbox, ACME, payload["contactId"])
    assert len(texts) == 1
    assert texts[0]["body"] == ("Hi there, this is Mike at Acme Plumbing. Sorry we missed your call! "
                                "What can we help you with?")
    assert outcome == "texted at 15:00 (business-hours message, 1 segment)"
    row, intent = row_of(missed_call_id), intent_of(missed_call_id)
    assert (row.status, row.outcome) == ("sent", outcome)
    assert intent.status == "sent"
    assert intent.message_id == texts[0]["messageId"]
    assert texts[0]["toNumber"] == CALLER
    assert intent.conversation_id == payload["conversationId"]
    # The text is in the contact's HighLevel conversation, after the call.
    thread = sandbox.thread(payload["contactId"])
    assert [m["messageType"] for m in thread["messages"]][-2:] == ["TYPE_CALL", "TYPE_SMS"]
    # Processing again (a retry, a duplicate job) sends nothing more.
    assert sender.process(missed_call_id) == outcome
    assert len(texts_to(sandbox, ACME)) == 1


# --- Who is not texted, and why ---

def sandbox_contact(sandbox, **fields) -> dict:
    return sandbox.control("POST", "contacts", json={"locationId": ACME, **fields})["contact"]


def crafted_call(contact_id: str, clock, **fields) -> dict:
    """An InboundMessage for a call the sandbox cannot place (no number, anonymous)."""
    from datetime import timedelta

    payload = {"type": "InboundMessage", "locationId": ACME, "contactId": contact_id, "direction": "inbound",
               "messageType": "CALL", "status": "no-answer", "callStatus": "no-answer", "callDuration": 0,
               "conversationId": None, "messageId": f"crafted{contact_id[:13]}",
               "dateAdded": (clock.now - timedelta(seconds=3)).isoformat()}
    payload.update(fields)
    return {k: v for k, v in payload.items() if v is not None}


def skip_reason(sender, payload) -> str:
    missed_call_id, _ = sender.record(missed(payload), event_id=None)
    outcome = sender.process(missed_call_id)
    assert row_of(missed_call_id).status == "skipped"
    assert intent_of(missed_call_id) is None
    return outcome


def test_a_dnd_contact_is_not_texted(acme, sandbox, clock, sender):
    payload = call_webhook(sandbox, clock, ACME, "+15125550122")  # Priya Shah: SMS DND in the seed
    assert skip_reason(sender, payload) == "skipped: the caller has Do Not Disturb on for SMS"
    assert texts_to(sandbox, ACME) == []


def test_an_international_number_is_not_texted(acme, sandbox, clock, sender):
    payload = call_webhook(sandbox, clock, ACME, "+447911123456")
    assert skip_reason(sender, payload) == \
        "skipped: +447911123456 is an international number (texts go to US, CA numbers)"
    assert texts_to(sandbox, ACME) == []


def test_an_anonymous_caller_is_not_texted(acme, sandbox, clock, sender):
    contact = sandbox_contact(sandbox)
    payload = crafted_call(contact["id"], clock, **{"from": "Restricted"})
    assert skip_reason(sender, payload) == "skipped: anonymous caller (no caller id)"
    assert texts_to(sandbox, ACME) == []


def test_a_contact_with_no_phone_is_not_texted(acme, sandbox, clock, sender):
    contact = sandbox_contact(sandbox, firstName="Walk-in")
    assert skip_reason(sender, crafted_call(contact["id"], clock)) == "skipped: the caller has no phone number"
    assert texts_to(sandbox, ACME) == []


def test_a_team_members_call_is_not_texted(acme, sandbox, clock, sender):
    payload = call_webhook(sandbox, clock, ACME, "+15125550111")  # Sara Kim, a user of Acme Plumbing
    assert skip_reason(sender, payload) == "skipped: the caller is a team member (Sara Kim)"


def test_an_uninstalled_location_is_skipped_without_calling_highlevel(acme, sandbox, clock, sender):
    from integration.models import Location

    payload = call_webhook(sandbox, clock, ACME, CALLER)
    with db.transaction() as session:
        session.get(Location, ACME).status = "uninstalled"
    before = len(sandbox.requests_log(resource=ACME))
    assert skip_reason(sender, payload) == "skipped: the app is not installed on this sub-account"
    assert len(sandbox.requests_log(resource=ACME)) == before


def test_an_installation_that_needs_reconnecting_is_skipped_with_that_reason(acme, sandbox, clock, sender):
    from integration.models import Installation

    payload = call_webhook(sandbox, clock, ACME, CALLER)
    with db.transaction() as session:
        installation = session.scalar(select(Installation).where(Installation.resource_id == ACME))
        installation.status = "needs_reconnect"
    assert skip_reason(sender, payload) == \
        "skipped: the app must be reconnected to HighLevel for this sub-account"


def test_text_back_turned_off(acme, sandbox, clock, sender, set_location_settings):
    set_location_settings(enabled=False)
    payload = call_webhook(sandbox, clock, ACME, CALLER)
    assert skip_reason(sender, payload) == "skipped: text back is turned off for this sub-account"


# --- Deferral ---

def test_quiet_hours_defer_the_text_to_the_morning_then_it_goes(acme, sandbox, clock, sender, scheduled):
    from datetime import timedelta

    evening = clock.now.astimezone(AUSTIN)
    while (evening + timedelta(days=1)).weekday() >= 5:  # the morning after is a weekday: Acme is open then
        evening += timedelta(days=1)
    clock.now = evening.replace(hour=22, minute=30)
    payload = call_webhook(sandbox, clock, ACME, CALLER)
    missed_call_id, _ = sender.record(missed(payload), event_id=None)

    outcome = sender.process(missed_call_id)

    assert outcome == "deferred to 09:00 tomorrow caller time (quiet hours)"
    row = row_of(missed_call_id)
    assert row.status == "deferred"
    assert scheduled.runs == [(missed_call_id, row.next_attempt_at)]
    assert row.next_attempt_at.astimezone(AUSTIN).hour == 9
    assert texts_to(sandbox, ACME) == []
    # The job runs at 09:00 (Texas rules): the guards run again; Acme is open by then.
    clock.now = row.next_attempt_at + timedelta(seconds=1)
    assert sender.process(missed_call_id).startswith("texted at 09:00 (business-hours message")
    assert len(texts_to(sandbox, ACME)) == 1


def test_an_opt_out_reply_while_deferred_blocks_the_text(acme, sandbox, clock, sender):
    from integration.textback.conversation import record_inbound_sms
    from integration.textback.models import Caller

    clock.now = clock.now.astimezone(AUSTIN).replace(hour=22, minute=30)
    payload = call_webhook(sandbox, clock, ACME, CALLER)
    missed_call_id, _ = sender.record(missed(payload), event_id=None)
    assert sender.process(missed_call_id).startswith("deferred to 09:00")

    # "Stop please." is not one of HighLevel's exact STOP words (no DND is set), but it is an opt-out.
    reply = sandbox.reply(ACME, CALLER, "Stop please.")
    stop = sandbox.deliveries(webhookId=reply["webhookId"])[0]["payload"]
    assert record_inbound_sms(db, stop, now=clock.now) == "recorded: the caller opted out of texts"
    with db.session() as session:
        assert session.get(Caller, (ACME, CALLER)).opt_out_source == "replied 'Stop please.'"

    clock.now = row_of(missed_call_id).next_attempt_at
    assert sender.process(missed_call_id) == "skipped: the caller opted out of texts 10 h ago"
    assert texts_to(sandbox, ACME) == []

    # START undoes it.
    start = sandbox.deliveries(webhookId=sandbox.reply(ACME, CALLER, "START")["webhookId"])[0]["payload"]
    assert record_inbound_sms(db, start, now=clock.now) == "recorded: the caller opted back in to texts"
    with db.session() as session:
        assert session.get(Caller, (ACME, CALLER)).opted_out_at is None


# --- Existing customers ---

def test_an_existing_customer_gets_their_own_message(acme, sandbox, clock, sender):
    sandbox_contact(sandbox, firstName="Dale", phone="+15125550166", tags=["Customer"])
    payload = call_webhook(sandbox, clock, ACME, "+15125550166")
    missed_call_id, _ = sender.record(missed(payload), event_id=None)

    assert sender.process(missed_call_id).startswith("texted at 15:00 (existing-customer message")
    (text,) = texts_to(sandbox, ACME)
    assert text["body"] == ("Hi Dale, this is Mike at Acme Plumbing. Sorry we missed your call! "
                            "Reply here and we'll get right back to you.")


def test_an_open_opportunity_marks_a_customer_unless_it_is_in_the_missed_call_pipeline(acme, sandbox, sender):
    from integration.textback.settings import effective_settings

    client, gatherer = sender.client, sender.gatherer
    contact = sandbox_contact(sandbox, firstName="Ola", phone="+15125550167")
    pipelines = {p["name"]: p["id"] for p in client.get_pipelines(ACME)}
    settings = effective_settings()

    client.create_opportunity(ACME, pipeline_id=pipelines["Missed Call"], name="Missed call", contact_id=contact["id"])
    facts = gatherer.contact(ACME, contact["id"], settings=settings)
    assert facts.open_opportunity is None  # our own pipeline does not make anyone a customer

    client.create_opportunity(ACME, pipeline_id=pipelines["Sales"], name="Water heater", contact_id=contact["id"])
    facts = gatherer.contact(ACME, contact["id"], settings=settings)
    assert facts.open_opportunity == "Water heater"
