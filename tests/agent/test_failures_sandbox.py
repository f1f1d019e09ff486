"""HighLevel failing on the agent's way, and the rules it keeps, in the sandbox over real HTTP: free slots 500,
a booking refused (409, 422, the slot taken meanwhile), a send answered 429, the grace period, the same reply
twice, STOP and the hourly cap. Every request the agent's client makes is checked against the official specs."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from integration.agent.models import AgentInbound
from integration.extensions import db
from integration.sandbox import crm as sandbox_crm
from integration.sandbox.seed import SEED_USER_IDS
from tests.agent.conftest import CALLER, agent_inbound, agent_texts, conversation_of
from tests.textback.conftest import ACME
from tests.textback.crm.conftest import actions_of
from tests.textback.helpers import texts_to

SARA = SEED_USER_IDS[ACME][1]


@pytest.fixture
def recorded(agent, contract_recorder):
    """The agent's API client sends through a contract-recording session (requests and answers checked)."""
    contract_recorder.attach(agent.client.session)
    return contract_recorder


def _offered(story, sandbox, agent_on, **options):
    agent_on(**options)
    placed = story.call(CALLER)
    story.reply(CALLER, "my kitchen sink is clogged, can someone come out?")
    conversation = conversation_of(placed["contactId"])
    assert conversation.state == "offered", conversation.reason
    return placed, conversation.memory["offered"]


def test_free_slots_failing_is_retried_then_the_caller_is_offered_slots(story, sandbox, agent, agent_on, recorded):
    agent_on()
    placed = story.call(CALLER)
    # Three 500s: the client's own two retries and the first turn; the turn's retry then succeeds.
    sandbox.fault("500", r"/free-slots$", method="GET", times=3)
    story.reply(CALLER, "my kitchen sink is clogged, can someone come out?")
    [text] = agent_inbound(placed["contactId"])
    assert (text.status, text.attempts) == ("done", 1)
    assert agent_texts(placed["contactId"])[0].body.startswith("I can send someone: 1) ")
    assert recorded.validated("GET", "/calendars/{calendarId}/free-slots")


def test_free_slots_down_for_good_hands_over_with_a_task(story, sandbox, agent, agent_on):
    agent_on()
    placed = story.call(CALLER)
    sandbox.fault("500", r"/free-slots$", method="GET", times=None)
    story.reply(CALLER, "my kitchen sink is clogged, can someone come out?")
    conversation = conversation_of(placed["contactId"])
    assert conversation.state == "handed_over"
    assert [t.body for t in agent_texts(placed["contactId"])] == [
        "Thanks! Someone from our team will get back to you shortly."]
    steps = actions_of(placed["contactId"])
    assert steps["task"].status == "done"
    notes = [n["body"] for n in story.highlevel(placed["contactId"]).notes]
    assert any(n.startswith("TextBack agent handed this conversation to the team: HighLevel did not answer")
               for n in notes)
    assert "Caller: my kitchen sink is clogged, can someone come out?" in next(n for n in notes if "handed" in n)


@pytest.mark.parametrize("mode", ["409", "taken"])
def test_a_slot_taken_meanwhile_is_never_booked_and_new_slots_are_offered(story, sandbox, agent, agent_on, mode):
    placed, offered = _offered(story, sandbox, agent_on)
    if mode == "409":
        sandbox.fault("409", r"/calendars/events/appointments$", method="POST", times=1)
    else:
        # Someone else books it between our offer and the caller's answer: the re-check sees it.
        other = sandbox.control("POST", "contacts", {"locationId": ACME, "phone": "+15125550166"})["contact"]
        sandbox_crm.book_appointment(sandbox.server.state, contact_id=other["id"],
                                     start=datetime.fromisoformat(offered[0]))
    story.reply(CALLER, "1")
    conversation = conversation_of(placed["contactId"])
    assert conversation.state == "offered"
    assert offered[0] not in conversation.memory["offered"]
    assert agent_texts(placed["contactId"])[-1].body.startswith("Sorry, that time was just taken.")
    state = sandbox.server.state
    with state.lock:
        assert not [a for a in state.world.appointments.values() if a["contactId"] == placed["contactId"]]
    story.reply(CALLER, "1")
    assert conversation_of(placed["contactId"]).state == "booked"


def test_the_slot_taken_between_the_recheck_and_the_post_gets_highlevels_refusal(story, sandbox, agent, agent_on):
    placed, _ = _offered(story, sandbox, agent_on)
    real_free = agent.slots.is_free
    other = sandbox.control("POST", "contacts", {"locationId": ACME, "phone": "+15125550166"})["contact"]

    def free_then_taken(location_id, calendar_id, *, slot):
        answer = real_free(location_id, calendar_id, slot=slot)
        sandbox_crm.book_appointment(sandbox.server.state, contact_id=other["id"], start=slot)
        return answer

    agent.slots.is_free = free_then_taken
    story.reply(CALLER, "2")
    assert conversation_of(placed["contactId"]).state == "offered"
    assert agent_texts(placed["contactId"])[-1].body.startswith("Sorry, that time was just taken.")


def test_a_booking_refused_with_422_hands_over(story, sandbox, agent, agent_on):
    placed, _ = _offered(story, sandbox, agent_on)
    sandbox.fault("422", r"/calendars/events/appointments$", method="POST", times=1)
    story.reply(CALLER, "2")
    conversation = conversation_of(placed["contactId"])
    assert (conversation.state, conversation.booking_status) == ("handed_over", "refused")
    assert actions_of(placed["contactId"])["task"].status == "done"


def test_a_booking_that_times_out_is_never_retried_and_the_team_checks(story, sandbox, agent, agent_on):
    placed, _ = _offered(story, sandbox, agent_on)
    sandbox.fault("500", r"/calendars/events/appointments$", method="POST", times=1)
    story.reply(CALLER, "2")
    conversation = conversation_of(placed["contactId"])
    assert (conversation.state, conversation.booking_status) == ("handed_over", "unknown")
    assert agent_texts(placed["contactId"])[-1].body == "Thanks! Someone from our team will confirm your time shortly."
    posts = sandbox.requests_log(path=r"/calendars/events/appointments$", method="POST")
    assert len(posts) == 1


def test_a_send_answered_429_is_sent_once_later(story, sandbox, agent, agent_on, recorded):
    agent_on()
    placed = story.call(CALLER)
    sandbox.fault("429", r"^/conversations/messages$", method="POST", times=3, delay=0)
    story.reply(CALLER, "my kitchen sink is clogged, can someone come out?")
    # The client's own retries met three 429s: the text waited for its job after Retry-After (certainly not sent).
    [offer] = agent_texts(placed["contactId"])
    if offer.status == "pending":  # that job is still scheduled: run it now
        assert "429" in offer.last_error
        agent.run(conversation_of(placed["contactId"]).id)
        story.settle()
    [offer] = agent_texts(placed["contactId"])
    assert offer.status == "sent" and offer.message_id and offer.attempts == 2
    refused = [r for r in sandbox.requests_log(path=r"^/conversations/messages$", method="POST") if r["status"] == 429]
    assert len(refused) == 3
    sent = [m["body"] for m in texts_to(sandbox, ACME, placed["contactId"])]
    assert sent.count(offer.body) == 1
    assert recorded.validated("POST", "/conversations/messages")


def test_the_same_reply_delivered_twice_is_answered_once(story, sandbox, agent, agent_on):
    agent_on()
    placed = story.call(CALLER)
    reply = story.reply(CALLER, "my kitchen sink is clogged, can someone come out?")
    payload = sandbox.deliveries(webhookId=reply["webhookId"])[0]["payload"]
    story.deliver({**payload, "webhookId": "replayed-with-a-new-id"})
    assert len(agent_inbound(placed["contactId"])) == 1
    assert len(agent_texts(placed["contactId"])) == 1


def test_two_replies_racing_are_answered_in_order(story, sandbox, agent, agent_on):
    agent_on()
    placed = story.call(CALLER)
    first = story.held("reply", CALLER, "my kitchen sink is clogged, can someone come out?")
    second = story.held("reply", CALLER, "friday afternoon if you can")
    # The second is processed first; the agent still answers them in the order the caller sent them.
    story.process(second["webhookId"])
    story.process(first["webhookId"])
    story.settle()
    bodies = [t.body for t in agent_texts(placed["contactId"])]
    assert len(bodies) == 2
    assert "Fri" in bodies[1] and "afternoon" not in bodies[0]
    with db.session() as session:
        order = list(session.scalars(select(AgentInbound.body).order_by(AgentInbound.processed_at)))
    assert order == ["my kitchen sink is clogged, can someone come out?", "friday afternoon if you can"]


def test_the_grace_period_lets_a_person_answer_first(story, sandbox, agent, agent_on):
    agent_on(grace_minutes=2)
    placed = story.call(CALLER)
    story.reply(CALLER, "my kitchen sink is clogged, can someone come out?")
    [text] = agent_inbound(placed["contactId"])
    assert text.status == "pending" and text.due_at >= agent.clock() + timedelta(seconds=100)
    assert agent_texts(placed["contactId"]) == []
    sandbox.control("POST", "person-messages", {"contactId": placed["contactId"], "userId": SARA,
                                                "body": "Hi! Sara here, calling you now."})
    story.settle()
    agent.clock.advance(minutes=3)
    agent.run(conversation_of(placed["contactId"]).id)
    assert conversation_of(placed["contactId"]).state == "silenced"
    assert agent_texts(placed["contactId"]) == []
    assert agent_inbound(placed["contactId"])[0].status == "ignored"


def test_the_grace_period_passes_and_the_agent_answers(story, sandbox, agent, agent_on):
    agent_on(grace_minutes=2)
    placed = story.call(CALLER)
    story.reply(CALLER, "my kitchen sink is clogged, can someone come out?")
    assert agent_texts(placed["contactId"]) == []
    agent.clock.advance(minutes=3)
    agent.run(conversation_of(placed["contactId"]).id)
    story.settle()
    assert agent_texts(placed["contactId"])[0].status == "sent"


def test_stop_mid_dialogue_stops_the_agent_and_turns_dnd_on(story, sandbox, agent, agent_on):
    placed, _ = _offered(story, sandbox, agent_on)
    story.reply(CALLER, "STOP")
    assert conversation_of(placed["contactId"]).state == "stopped"
    assert len(agent_texts(placed["contactId"])) == 1
    assert story.highlevel(placed["contactId"]).sms_dnd


def test_the_hourly_cap_hands_over_instead_of_texting_more(story, sandbox, agent, agent_on):
    placed, _ = _offered(story, sandbox, agent_on, max_messages_per_hour=2)
    story.reply(CALLER, "anything later?")
    story.reply(CALLER, "anything later?")
    conversation = conversation_of(placed["contactId"])
    assert conversation.state == "handed_over"
    assert "the limit of 2 agent texts an hour" in conversation.reason
    assert [t.status for t in agent_texts(placed["contactId"])] == ["sent", "sent", "dropped"]
    assert actions_of(placed["contactId"])["task"].status == "done"


def test_an_emergency_texts_the_on_call_number_at_once(story, sandbox, agent, agent_on):
    on_call = sandbox.control("POST", "contacts", {"locationId": ACME, "phone": "+15125550188",
                                                   "firstName": "On", "lastName": "Call"})["contact"]
    agent_on(crm={"on_call_number": "+15125550188"})
    placed = story.call(CALLER)
    story.reply(CALLER, "I smell gas in the kitchen")
    [alert] = texts_to(sandbox, ACME, on_call["id"])
    assert alert["body"].startswith("TextBack EMERGENCY (gas): ")
    assert "I smell gas in the kitchen" in alert["body"]
    [text] = agent_texts(placed["contactId"])
    assert "leave the building now and call your gas company or 911" in text.body
    assert conversation_of(placed["contactId"]).state == "handed_over"


def test_the_agent_off_leaves_replies_to_the_team(story, sandbox, agent, set_location_settings):
    placed = story.call(CALLER)
    story.reply(CALLER, "my kitchen sink is clogged, can someone come out?")
    assert conversation_of(placed["contactId"]) is None
    assert actions_of(placed["contactId"])["task"].status == "done"
    assert len(texts_to(sandbox, ACME, placed["contactId"])) == 1
