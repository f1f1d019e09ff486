"""The issue's "done when", end to end in the sandbox through real webhooks: a caller who replies "yeah my water
heater is leaking, can someone come tomorrow?" is booked on a real free slot in a few messages, the opportunity
shows booked, the team is told, and a person writing in silences the agent at once."""

from __future__ import annotations

from datetime import datetime

from integration.sandbox.seed import SEED_USER_IDS
from tests.agent.conftest import CALENDAR, CALLER, agent_texts, conversation_of, thread_bodies
from tests.textback.conftest import ACME
from tests.textback.crm.conftest import STAGES, lead_of
from tests.textback.helpers import texts_to

SARA = SEED_USER_IDS[ACME][1]


def test_a_leaking_water_heater_is_booked_on_a_free_slot_and_a_person_silences_the_agent(
        story, sandbox, agent, agent_on):
    agent_on()
    placed = story.call(CALLER)
    contact_id = placed["contactId"]

    story.reply(CALLER, "yeah my water heater is leaking, can someone come tomorrow?")

    [offer] = agent_texts(contact_id)
    assert offer.status == "sent" and offer.body.startswith(("I can send someone: 1) ", "No openings"))
    conversation = conversation_of(contact_id)
    assert conversation.state == "offered"
    offered = conversation.memory["offered"]
    assert len(offered) == 3

    story.reply(CALLER, "2")

    conversation = conversation_of(contact_id)
    assert conversation.state == "booked", conversation.reason
    state = sandbox.server.state
    with state.lock:
        [appointment] = [dict(a) for a in state.world.appointments.values() if a["contactId"] == contact_id]
    assert appointment["calendarId"] == CALENDAR
    # Booked on the slot the caller picked, which the calendar had free.
    assert datetime.fromisoformat(appointment["startTime"]) == datetime.fromisoformat(offered[1])
    confirm = agent_texts(contact_id)[-1]
    assert confirm.body.startswith("You're booked: ") and confirm.status == "sent"
    assert len(confirm.body) <= 160

    view = story.highlevel(contact_id)
    assert view.opportunities[0]["pipelineStageId"] == STAGES["Booked"]
    assert lead_of(contact_id).stage == "booked"
    notes = [n["body"] for n in view.notes]
    assert any(n.startswith("TextBack agent booked ") for n in notes), notes
    # The whole dialogue is in HighLevel's conversation, through the conversations API.
    bodies = thread_bodies(sandbox, contact_id)
    assert ("inbound", "2") in bodies and ("outbound", confirm.body) in bodies
    assert [m["body"] for m in texts_to(sandbox, ACME, contact_id)][1:] == [offer.body, confirm.body]

    # A person writes in: the agent falls silent at once, and stays silent.
    story.sandbox.control("POST", "person-messages", {"contactId": contact_id, "userId": SARA,
                                                      "body": "Hi, Sara here. See you tomorrow!"})
    story.settle()
    assert conversation_of(contact_id).state == "silenced"
    story.reply(CALLER, "Great, can you also look at my sink?")
    assert len(agent_texts(contact_id)) == 2
    assert conversation_of(contact_id).state == "silenced"

