"""Duplicates and reordering of every webhook involved, in the sandbox: the same webhook (or job) twice
changes nothing twice, and events processed out of order end where the in-order story ends."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from integration.crm.models import CrmAction, CrmAppointment, CrmContact, CrmLead
from integration.crm.settings import DEFAULT_CRM_SETTINGS
from integration.extensions import db
from integration.sandbox.seed import SEED_USER_IDS
from integration.textback.models import Caller
from oauth.services import get_oauth
from tests.textback.conftest import ACME
from tests.textback.crm.conftest import STAGES, actions_of, lead_of, person_text
from tests.textback.crm.test_story_sandbox import book
from tests.textback.helpers import texts_to
from workers.crm import run_crm_action

CALLER = "+15125550177"
ON_CALL = "+15125550188"
SARA = SEED_USER_IDS[ACME][1]
_OURS = ("id", "missed_call_id", "replied_at", "reply_message_id", "booked_at", "appointment_id", "opportunity_id",
         "stage_id", "outcome", "outcome_value")


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def writes(sandbox) -> list[tuple[str, str]]:
    """Every change our app asked HighLevel for (not reads, not the test's own control calls)."""
    return [(r["method"], r["path"]) for r in sandbox.requests_log() if r["method"] in {"POST", "PUT", "DELETE"}
            and not r["path"].startswith(("/_sandbox", "/oauth"))]


def our_rows() -> dict:
    """Our CRM rows without their bookkeeping timestamps."""
    with db.session() as session:
        return {
            "leads": [tuple(getattr(r, c) for c in _OURS) for r in session.scalars(select(CrmLead))],
            "actions": [(r.key, r.status, r.outcome, r.result_id, r.attempts)
                        for r in session.scalars(select(CrmAction).order_by(CrmAction.id))],
            "contacts": [(r.contact_id, r.sms_dnd, r.human_takeover_at, r.human_user_id)
                         for r in session.scalars(select(CrmContact))],
            "appointments": [(r.appointment_id, r.lead_id) for r in session.scalars(select(CrmAppointment))],
            "callers": [(r.phone, r.opted_out_at, r.opt_out_source) for r in session.scalars(select(Caller))],
        }


def highlevel_world(sandbox) -> dict:
    state = sandbox.server.state
    with state.lock:
        world = state.world
        return copy.deepcopy({"contacts": {c: (v["tags"], v["dndSettings"]) for c, v in world.contacts.items()},
                              "notes": sorted(world.notes), "tasks": sorted(world.tasks),
                              "opportunities": {k: (o["pipelineStageId"], o["status"])
                                                for k, o in world.opportunities.items()},
                              "sent": len(world.sent)})


def test_every_webhook_of_the_story_twice_changes_nothing_twice(story, sandbox, set_location_settings):
    contact = sandbox.control("POST", "contacts", {"locationId": ACME, "phone": ON_CALL, "firstName": "On"})
    set_location_settings(crm={**DEFAULT_CRM_SETTINGS, "on_call_number": ON_CALL})
    placed = story.call(CALLER)
    story.reply(CALLER, "Can you come today?")
    book(placed["contactId"])
    story.settle()
    opportunity = lead_of(placed["contactId"]).opportunity_id
    get_oauth().client.update_opportunity_status(ACME, opportunity, "won")
    story.settle()
    story.deliver(person_text(placed, "See you at 3", user_id=SARA))
    story.reply(CALLER, "STOP")
    assert len(texts_to(sandbox, ACME, contact["contact"]["id"])) == 1

    before = (our_rows(), highlevel_world(sandbox), writes(sandbox))
    delivered = [d["payload"] for d in sandbox.deliveries()]
    assert {"InboundMessage", "OutboundMessage", "AppointmentCreate", "OpportunityStatusUpdate",
            "OpportunityStageUpdate", "ContactDndUpdate"} <= {p["type"] for p in delivered}

    for payload in delivered:  # the same events again, as HighLevel does, with new webhook ids
        story.deliver_held({**payload, "webhookId": str(uuid.uuid4())})
    for payload in delivered[:3]:  # and a few with their own ids: the receiver keeps one row
        story.deliver_held(payload)
    story.settle()
    with db.session() as session:
        done = list(session.scalars(select(CrmAction.id)))
    for action_id in done:  # every job run again
        assert "not due, finished" in run_crm_action(action_id)

    assert (our_rows(), highlevel_world(sandbox), writes(sandbox)) == before


def test_a_reply_and_a_booking_processed_before_the_text_are_applied_when_it_goes_out(story, sandbox):
    placed = story.held("place_call", CALLER, "no-answer")
    reply = story.held("reply", CALLER, "It's the kitchen sink")
    book(placed["contactId"])
    [booking] = sandbox.deliveries(type="AppointmentCreate")
    sandbox.wait_for_delivery(booking["webhookId"])
    appointment_id = booking["payload"]["appointment"]["id"]

    assert story.process(booking["webhookId"]) == (f"done: appointment {appointment_id} recorded "
                                                   "(not for a texted missed call)")
    assert story.process(reply["webhookId"]) == "done: recorded: a text from the caller"
    story.settle()

    lead = lead_of(placed["contactId"])
    assert (lead.stage, lead.reply_body) == ("booked", "It's the kitchen sink")
    view = story.highlevel(placed["contactId"])
    assert view.tags == ["missed-call", "missed-call-replied"]
    assert [o["pipelineStageId"] for o in view.opportunities] == [STAGES["Booked"]]
    assert len(view.tasks) == 1
    steps = actions_of(placed["contactId"])
    assert steps["stage:replied"].outcome == "skipped: the lead is already booked"
    assert steps["stage:booked"].outcome == "moved the opportunity to Booked"


# "revoke" rather than "STOP": the sandbox, like HighLevel, sets DND itself for carrier keywords, which would
# mirror into a suppression whatever our order; here only the caller's words and our API calls decide.
@pytest.mark.parametrize(("first", "last"), [("revoke", "START"), ("START", "revoke")])
def test_opt_out_and_start_processed_in_reverse_the_callers_latest_word_stands(story, sandbox, first, last):
    placed = story.call(CALLER)
    earlier = story.held("reply", CALLER, first)
    later = story.held("reply", CALLER, last)

    story.process(later["webhookId"])
    story.process(earlier["webhookId"])
    story.settle()

    with db.session() as session:
        opted_out = session.get(Caller, (ACME, CALLER)).opted_out_at is not None
    assert opted_out is (last == "revoke")
    assert story.highlevel(placed["contactId"]).sms_dnd is (last == "revoke")


def test_older_status_stage_and_dnd_events_do_not_undo_newer_ones(story, sandbox):
    placed = story.call(CALLER)
    contact_id = placed["contactId"]
    opportunity = lead_of(contact_id).opportunity_id
    now = datetime.now(UTC)
    status = {"type": "OpportunityStatusUpdate", "locationId": ACME, "id": opportunity, "contactId": contact_id,
              "pipelineId": lead_of(contact_id).pipeline_id, "pipelineStageId": STAGES["Booked"],
              "monetaryValue": 800, "name": "x", "status": "won", "timestamp": iso(now + timedelta(minutes=2))}

    story.deliver(status)
    story.deliver({**status, "status": "open", "monetaryValue": 0, "timestamp": iso(now + timedelta(minutes=1))})
    story.deliver({**status, "type": "OpportunityStageUpdate", "pipelineStageId": STAGES["Won"],
                   "timestamp": iso(now + timedelta(minutes=3))})
    story.deliver({**status, "type": "OpportunityStageUpdate", "pipelineStageId": STAGES["Replied"],
                   "timestamp": iso(now + timedelta(minutes=1))})
    dnd = {"type": "ContactDndUpdate", "locationId": ACME, "id": contact_id, "phone": CALLER,
           "dndSettings": {"SMS": {"status": "active"}}, "timestamp": iso(now + timedelta(minutes=2))}
    story.deliver(dnd)
    story.deliver({**dnd, "dndSettings": {"SMS": {"status": "inactive"}}, "timestamp": iso(now + timedelta(minutes=1))})

    lead = lead_of(contact_id)
    assert (lead.outcome, lead.outcome_value, lead.stage_id) == ("won", 800, STAGES["Won"])
    with db.session() as session:
        assert session.get(CrmContact, (ACME, contact_id)).sms_dnd is True
        assert session.get(Caller, (ACME, CALLER)).opted_out_at is not None


def test_an_opportunity_that_is_not_ours_is_ignored(story, sandbox):
    placed = story.call(CALLER)
    foreign = {"type": "OpportunityStatusUpdate", "locationId": ACME, "id": "SomeoneElsesOpp00001",
               "contactId": placed["contactId"], "status": "won", "monetaryValue": 5}
    webhook_id = story.deliver_held(foreign)
    assert story.process(webhook_id) == "ignored: not the opportunity of a texted missed call"
    assert lead_of(placed["contactId"]).outcome is None
