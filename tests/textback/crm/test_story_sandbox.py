"""The whole story in the sandbox: missed call -> text -> reply -> task and stage -> appointment -> won."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from integration.sandbox.seed import SEED_CALENDAR_IDS, SEED_USER_IDS
from oauth.services import get_oauth
from tests.textback.conftest import ACME
from tests.textback.crm.conftest import MISSED_CALL_PIPELINE, STAGES, actions_of, lead_of
from tests.textback.helpers import texts_to

CALLER = "+15125550177"
MIKE = SEED_USER_IDS[ACME][0]


def book(contact_id: str) -> dict:
    """Book the first free slot on Acme's calendar for the contact, as a person (or the AI agent) would."""
    client = get_oauth().client
    calendar_id = SEED_CALENDAR_IDS[ACME]
    now = datetime.now(UTC)
    slots = client.free_slots(ACME, calendar_id, start=now, end=now + timedelta(days=7))
    first = datetime.fromisoformat(min(s for day in slots.values() for s in day))
    return client.create_appointment(ACME, calendar_id=calendar_id, contact_id=contact_id, start_time=first)


def test_missed_call_reply_booking_and_win_end_up_in_highlevel(story, sandbox):
    placed = story.call(CALLER)
    contact_id = placed["contactId"]

    # The text went out; the contact is tagged, noted, and has one opportunity in New Lead.
    assert len(texts_to(sandbox, ACME, contact_id)) == 1
    crm = story.highlevel(contact_id)
    assert crm.tags == ["missed-call"]
    assert len(crm.notes) == 1 and crm.notes[0]["body"].startswith("Missed call at ")
    assert ", texted at " in crm.notes[0]["body"]
    [opportunity] = crm.opportunities
    assert opportunity["pipelineId"] == MISSED_CALL_PIPELINE
    assert opportunity["pipelineStageId"] == STAGES["New Lead"]
    assert opportunity["assignedTo"] == MIKE
    assert opportunity["name"] == f"{CALLER} (missed call)"
    assert opportunity["status"] == "open"
    assert crm.tasks == []
    assert lead_of(contact_id).stage == "texted"

    # The caller replies: tagged, moved to Replied, one task for Mike due in 15 minutes; nothing echoed.
    story.reply(CALLER, "Hi, my water heater is leaking in the garage")
    crm = story.highlevel(contact_id)
    assert crm.tags == ["missed-call", "missed-call-replied"]
    assert [o["pipelineStageId"] for o in crm.opportunities] == [STAGES["Replied"]]
    [task] = crm.tasks
    assert task["assignedTo"] == MIKE
    assert task["title"] == (f"Call back {CALLER} — replied to missed-call text: "
                             "'Hi, my water heater is leaking in the garage'")
    lead = lead_of(contact_id)
    assert lead.stage == "replied"
    due = datetime.fromisoformat(task["dueDate"])
    assert due == lead.replied_at + timedelta(minutes=15)
    assert len(texts_to(sandbox, ACME, contact_id)) == 1

    # A booking moves it to Booked; winning it records the outcome and its value.
    book(contact_id)
    story.settle()
    assert [o["pipelineStageId"] for o in story.highlevel(contact_id).opportunities] == [STAGES["Booked"]]
    assert lead_of(contact_id).stage == "booked"

    get_oauth().client.update_opportunity(ACME, opportunity["id"], monetary_value=450)
    get_oauth().client.update_opportunity_status(ACME, opportunity["id"], "won")
    story.settle()
    lead = lead_of(contact_id)
    assert (lead.stage, lead.outcome_value) == ("won", 450)

    crm = story.highlevel(contact_id)
    assert len(crm.opportunities) == 1 and crm.opportunities[0]["status"] == "won"
    assert len(crm.tasks) == 1 and len(crm.notes) == 1
    assert {key: action.status for key, action in actions_of(contact_id).items()} == {
        "tag": "done", "note": "done", "opportunity": "done", "tag:replied": "done", "stage:replied": "done",
        "task": "done", "stage:booked": "done",
    }


def test_the_sandbox_ui_shows_the_contact_tagged_one_opportunity_one_task_and_nothing_after_stop(
        story, sandbox, set_location_settings):
    set_location_settings(cooldown_hours=0)  # a second call could be texted: only the STOP prevents it
    placed = story.call(CALLER)
    story.reply(CALLER, "Hi, my water heater is leaking")
    book(placed["contactId"])
    story.settle()
    story.reply(CALLER, "STOP")
    story.call(CALLER)

    html = sandbox.http.get(f"{sandbox.url}/ui/contacts/{placed['contactId']}", timeout=10).text
    assert '<span class="pill">missed-call</span><span class="pill">missed-call-replied</span>' in html
    assert html.count("(missed call)<br>") == 1
    assert '<span class="pill">Booked</span><span class="pill">open</span>' in html
    assert html.count("<li>Task: ") == 1
    assert ('replied to missed-call text: &#39;Hi, my water heater is leaking&#39; '
            '<span class="muted">for Mike Alvarez') in html
    assert '<span class="pill dnd">SMS DND</span>' in html
    assert len(texts_to(sandbox, ACME, placed["contactId"])) == 1
