"""Human takeover in the sandbox: a person's text (a userId, not our messageId) makes automation quiet in
that conversation; a workflow's text does not."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from integration.crm.models import CrmContact
from integration.crm.settings import DEFAULT_CRM_SETTINGS
from integration.crm.takeover import human_handling
from integration.extensions import db
from integration.sandbox.seed import SEED_USER_IDS
from integration.textback.models import MissedCall
from tests.textback.conftest import ACME
from tests.textback.crm.conftest import STAGES, actions_of, lead_of, person_text
from tests.textback.helpers import texts_to

CALLER = "+15125550177"
ON_CALL = "+15125550188"
SARA = SEED_USER_IDS[ACME][1]


@pytest.fixture
def on_call(sandbox, set_location_settings) -> dict:
    """An on-call number set in the options, and a HighLevel contact holding it (HighLevel texts contacts)."""
    contact = sandbox.control("POST", "contacts", {"locationId": ACME, "phone": ON_CALL, "firstName": "On",
                                                   "lastName": "Call"})["contact"]
    set_location_settings(crm={**DEFAULT_CRM_SETTINGS, "on_call_number": ON_CALL})
    return contact


def test_a_reply_texts_the_on_call_number_once(story, sandbox, on_call):
    placed = story.call(CALLER)
    story.reply(CALLER, "Water everywhere, please call")
    story.reply(CALLER, "Hello??")

    [alert] = texts_to(sandbox, ACME, on_call["id"])
    assert alert["toNumber"] == ON_CALL
    assert alert["body"] == (f'TextBack: {CALLER} replied to the missed-call text: '
                             '"Water everywhere, please call". Please call them back.')
    assert len(texts_to(sandbox, ACME, placed["contactId"])) == 1  # the caller got only our one text
    assert len(story.highlevel(placed["contactId"]).tasks) == 1
    # Our alert's echo is not a person taking the on-call contact's conversation over.
    with db.session() as session:
        assert human_handling(session, ACME, on_call["id"]) is None


def test_a_person_texting_after_our_text_keeps_the_task_and_alert_quiet(story, sandbox, on_call):
    placed = story.call(CALLER)
    story.deliver(person_text(placed, "Hi, Sara here - I'll call you in 5 minutes", user_id=SARA))

    story.reply(CALLER, "Great, thanks")

    steps = actions_of(placed["contactId"])
    assert steps["task"].status == "skipped"
    assert steps["task"].outcome == f"skipped: a person (user {SARA}) is already handling the conversation"
    assert steps["alert"].status == "skipped"
    assert texts_to(sandbox, ACME, on_call["id"]) == []
    view = story.highlevel(placed["contactId"])
    assert view.tasks == []
    # The reply still counts: tagged and moved, for the report.
    assert view.tags == ["missed-call", "missed-call-replied"]
    assert view.opportunities[0]["pipelineStageId"] == STAGES["Replied"]
    assert lead_of(placed["contactId"]).stage == "replied"
    with db.session() as session:
        row = session.get(CrmContact, (ACME, placed["contactId"]))
        assert (row.human_user_id, row.conversation_id) == (SARA, placed["conversationId"])


def test_a_person_texting_before_our_text_goes_out_stops_it(story, sandbox):
    # The call's webhook waits in the inbox while a person texts the caller back (processed first).
    placed = story.held("place_call", CALLER, "no-answer")
    person = story.deliver_held(person_text(placed, "Sorry I missed you! What's up?", user_id=SARA))
    story.process(person)
    story.settle()

    assert texts_to(sandbox, ACME, placed["contactId"]) == []
    with db.session() as session:
        call = session.scalar(select(MissedCall))
    assert call.status == "skipped"
    assert call.outcome == (f"skipped: a person (user {SARA}) already texted the caller "
                            "(checked again right before sending)")
    # A skipped call is no lead: no tag, note or opportunity.
    assert lead_of(placed["contactId"]) is None
    assert story.highlevel(placed["contactId"]).opportunities == []


def test_a_workflows_text_is_not_a_takeover(story, sandbox):
    placed = story.call(CALLER)
    story.deliver(person_text(placed, "Thanks for calling Acme Plumbing!", user_id=None))
    story.reply(CALLER, "I need a plumber")

    assert actions_of(placed["contactId"])["task"].status == "done"
    with db.session() as session:
        assert human_handling(session, ACME, placed["contactId"]) is None


def test_an_old_persons_text_does_not_silence_a_new_missed_call(story, sandbox, set_location_settings):
    set_location_settings(cooldown_hours=0)
    first = story.call(CALLER)
    story.deliver(person_text(first, "Booked you for Tuesday", user_id=SARA, seconds_after=-3600))

    story.call(CALLER)

    assert len(texts_to(sandbox, ACME, first["contactId"])) == 2
