"""HighLevel failing on each call the CRM follow-up makes, in the sandbox: retried with backoff until it
works (each change made exactly once, even when a create took effect but its answer was lost), then
recorded as failed with the reason; a refusal is recorded at once."""

from __future__ import annotations

import pytest

from integration.crm.settings import DEFAULT_CRM_SETTINGS
from tests.textback.conftest import ACME
from tests.textback.crm.conftest import STAGES, actions_of
from tests.textback.helpers import texts_to

CALLER = "+15125550177"
ON_CALL = "+15125550188"
TAGS = r"^/contacts/[^/]+/tags$"
NOTES = r"^/contacts/[^/]+/notes$"
TASKS = r"^/contacts/[^/]+/tasks$"
CONTACT = r"^/contacts/[A-Za-z0-9]+$"
SEARCH = r"^/opportunities/search$"
OPPORTUNITIES = r"^/opportunities/$"
OPPORTUNITY = r"^/opportunities/[A-Za-z0-9]+$"
DUPLICATE = r"^/contacts/search/duplicate$"
SEND = r"^/conversations/messages$"


def texted_with_crm_held(story) -> dict:
    """A missed call texted back; its CRM changes are queued but not run yet (faults go in now)."""
    placed = story.held("place_call", CALLER, "no-answer")
    story.process(placed["webhookId"])
    assert len(texts_to(story.sandbox, ACME, placed["contactId"])) == 1
    return placed


def replied_with_crm_held(story, body: str = "Please call me back") -> dict:
    placed = story.call(CALLER)
    reply = story.held("reply", CALLER, body)
    story.process(reply["webhookId"])
    return placed


@pytest.fixture
def on_call(sandbox, set_location_settings):
    contact = sandbox.control("POST", "contacts", {"locationId": ACME, "phone": ON_CALL, "firstName": "On"})
    set_location_settings(crm={**DEFAULT_CRM_SETTINGS, "on_call_number": ON_CALL})
    return contact["contact"]


def exactly_one_of_everything(story, contact_id: str) -> None:
    view = story.highlevel(contact_id)
    assert view.tags == ["missed-call"]
    assert len(view.notes) == 1
    assert [o["pipelineStageId"] for o in view.opportunities] == [STAGES["New Lead"]]


@pytest.mark.parametrize(("step", "method", "path", "mode"), [
    ("tag", "POST", TAGS, "500"),
    ("tag", "POST", TAGS, "429"),
    ("note", "POST", NOTES, "500"),
    ("note", "POST", NOTES, "html_error"),
    ("opportunity", "GET", SEARCH, "500"),
    ("opportunity", "GET", CONTACT, "500"),
    ("opportunity", "POST", OPPORTUNITIES, "500"),
    ("opportunity", "POST", OPPORTUNITIES, "429"),
])
def test_failures_after_the_text_are_retried_until_each_change_is_made_once(story, sandbox, step, method, path,
                                                                             mode):
    placed = texted_with_crm_held(story)
    sandbox.fault(mode, path, method=method, times=3, delay=0.05)

    story.settle()

    action = actions_of(placed["contactId"])[step]
    assert action.status == "done", action.outcome
    assert action.attempts >= 2
    assert f"{method} " in action.last_error and f"-> {'502' if mode == 'html_error' else mode}" in action.last_error
    exactly_one_of_everything(story, placed["contactId"])


@pytest.mark.parametrize(("step", "path", "mode"), [
    ("note", NOTES, "timeout_after_accept"),
    ("note", NOTES, "empty_body"),
    ("opportunity", OPPORTUNITIES, "timeout_after_accept"),
    ("opportunity", OPPORTUNITIES, "empty_body"),
])
def test_a_create_that_took_effect_but_lost_its_answer_is_found_not_made_twice(story, sandbox, step, path, mode):
    placed = texted_with_crm_held(story)
    sandbox.fault(mode, path, method="POST", times=1, delay=2.0)

    story.settle()

    action = actions_of(placed["contactId"])[step]
    assert (action.status, action.attempts, action.maybe_done) == ("done", 2, True)
    exactly_one_of_everything(story, placed["contactId"])


@pytest.mark.parametrize(("step", "method", "path", "mode"), [
    ("tag:replied", "POST", TAGS, "500"),
    ("stage:replied", "PUT", OPPORTUNITY, "500"),
    ("task", "POST", TASKS, "500"),
    ("task", "POST", TASKS, "timeout_after_accept"),
    ("task", "GET", CONTACT, "500"),
    ("alert", "GET", DUPLICATE, "500"),
    ("alert", "POST", SEND, "500"),
    ("alert", "POST", SEND, "timeout_after_accept"),
])
def test_failures_after_a_reply_are_retried_until_each_change_is_made_once(story, sandbox, on_call, step, method,
                                                                           path, mode):
    placed = replied_with_crm_held(story)
    # The caller's contact is read by both the task and the alert: a GET fault hits whichever runs first.
    sandbox.fault(mode, path, method=method, times=3 if mode != "timeout_after_accept" else 1, delay=2.0
                  if mode == "timeout_after_accept" else 0.05)

    story.settle()

    steps = actions_of(placed["contactId"])
    assert {key: a.status for key, a in steps.items()} == {key: "done" for key in steps}
    assert steps[step].attempts >= 2 or method == "GET"
    view = story.highlevel(placed["contactId"])
    assert view.tags == ["missed-call", "missed-call-replied"]
    assert [o["pipelineStageId"] for o in view.opportunities] == [STAGES["Replied"]]
    assert len(view.tasks) == 1
    assert len(texts_to(sandbox, ACME, on_call["id"])) == 1
    assert len(texts_to(sandbox, ACME, placed["contactId"])) == 1


@pytest.mark.parametrize(("method", "path"), [("GET", CONTACT), ("PUT", CONTACT)])
def test_setting_dnd_after_an_opt_out_is_retried(story, sandbox, method, path):
    placed = story.call(CALLER)
    reply = story.held("reply", CALLER, "revoke")
    story.process(reply["webhookId"])
    sandbox.fault("500", path, method=method, times=3)

    story.settle()

    [dnd] = [a for key, a in actions_of(placed["contactId"]).items() if key.startswith("dnd:")]
    assert (dnd.status, dnd.outcome) == ("done", "turned SMS DND on at HighLevel")
    assert story.highlevel(placed["contactId"]).sms_dnd


def test_highlevel_failing_every_time_is_recorded_as_failed_with_the_reason(story, sandbox):
    placed = texted_with_crm_held(story)
    sandbox.fault("500", TAGS, method="POST", times=None)

    story.settle()

    steps = actions_of(placed["contactId"])
    tag = steps["tag"]
    assert (tag.status, tag.attempts) == ("failed", 4)
    assert tag.outcome.startswith(f"failed after 4 attempts: POST /contacts/{placed['contactId']}/tags -> 500")
    assert "500" in tag.last_error
    # The other changes did not wait for it.
    assert (steps["note"].status, steps["opportunity"].status) == ("done", "done")
    assert story.highlevel(placed["contactId"]).tags == []


def test_a_refusal_is_recorded_at_once_with_highlevels_reason(story, sandbox, set_location_settings):
    dnd_contact = sandbox.control("POST", "contacts", {"locationId": ACME, "phone": ON_CALL, "smsDnd": True})
    set_location_settings(crm={**DEFAULT_CRM_SETTINGS, "on_call_number": ON_CALL})
    placed = replied_with_crm_held(story)

    story.settle()

    alert = actions_of(placed["contactId"])["alert"]
    assert (alert.status, alert.attempts) == ("failed", 1)
    assert alert.outcome == ("failed: HighLevel refused it: POST /conversations/messages -> 400: "
                             "Cannot send message: the contact has DND enabled for SMS")
    assert texts_to(sandbox, ACME, dnd_contact["contact"]["id"]) == []


def test_an_on_call_number_without_a_contact_is_a_clear_failure(story, sandbox, set_location_settings):
    set_location_settings(crm={**DEFAULT_CRM_SETTINGS, "on_call_number": "(512) 555-0199"})
    placed = replied_with_crm_held(story)

    story.settle()

    alert = actions_of(placed["contactId"])["alert"]
    assert alert.outcome == ("failed: no contact in HighLevel has the on-call number +15125550199; "
                             "add one so TextBack can text it")
    assert actions_of(placed["contactId"])["task"].status == "done"
