"""The opportunity in the sandbox: an open one reused, the chosen pipeline, stage, user and value, none for
a skipped call, and a pipeline that no longer exists recorded as a failure with the reason."""

from __future__ import annotations

from datetime import datetime, timedelta

from integration.crm.settings import DEFAULT_CRM_SETTINGS
from integration.sandbox.seed import SEED_CONTACT_IDS, SEED_DND_CONTACT_ID, SEED_USER_IDS, stage_id
from oauth.services import get_oauth
from tests.textback.conftest import ACME
from tests.textback.crm.conftest import MISSED_CALL_PIPELINE, STAGES, actions_of, lead_of
from tests.textback.helpers import texts_to

LUIS = SEED_CONTACT_IDS[ACME][1]
LUIS_PHONE = "+15125550121"
PRIYA_PHONE = "+15125550122"  # SMS DND in the seed
SARA = SEED_USER_IDS[ACME][1]
SALES_PIPELINE = "SbxPipeSalesAcme0000"


def crm(**changes) -> dict:
    return {**DEFAULT_CRM_SETTINGS, **changes}


def test_the_contacts_open_opportunity_in_the_pipeline_is_reused(story, sandbox):
    client = get_oauth().client
    earlier = client.create_opportunity(ACME, pipeline_id=MISSED_CALL_PIPELINE, name="Luis - leaking tap",
                                        contact_id=LUIS, pipeline_stage_id=STAGES["Replied"])
    story.settle()

    story.call(LUIS_PHONE)
    story.reply(LUIS_PHONE, "Still dripping, can someone come today?")

    view = story.highlevel(LUIS)
    assert [(o["id"], o["name"]) for o in view.opportunities] == [(earlier["id"], "Luis - leaking tap")]
    assert view.opportunities[0]["pipelineStageId"] == STAGES["Replied"]
    steps = actions_of(LUIS)
    assert steps["opportunity"].outcome == "reused the open opportunity 'Luis - leaking tap' in Missed Call"
    assert steps["stage:replied"].outcome == "skipped: already in Replied"
    assert lead_of(LUIS).opportunity_id == earlier["id"]
    [task] = view.tasks
    assert task["title"] == "Call back Luis — replied to missed-call text: 'Still dripping, can someone come today?'"


def test_an_opportunity_in_another_pipeline_is_not_reused(story, sandbox):
    get_oauth().client.create_opportunity(ACME, pipeline_id=SALES_PIPELINE, name="Luis - kitchen remodel",
                                          contact_id=LUIS)
    story.settle()

    story.call(LUIS_PHONE)

    pipelines = sorted(o["pipelineId"] for o in story.highlevel(LUIS).opportunities)
    assert pipelines == sorted([SALES_PIPELINE, MISSED_CALL_PIPELINE])


def test_the_chosen_pipeline_stage_user_value_and_tags_are_used(story, sandbox, set_location_settings):
    new = stage_id(SALES_PIPELINE, "Contacted")
    replied = stage_id(SALES_PIPELINE, "Proposal Sent")
    set_location_settings(crm=crm(pipeline_id=SALES_PIPELINE, new_stage_id=new, replied_stage_id=replied,
                                  assigned_user_id=SARA, average_job_value=375.5, missed_call_tag="mc",
                                  replied_tag="mc-replied", task_due_minutes=45))
    placed = story.call("+15125550177")
    story.reply("+15125550177", "Yes please")

    view = story.highlevel(placed["contactId"])
    [opportunity] = view.opportunities
    assert (opportunity["pipelineId"], opportunity["pipelineStageId"]) == (SALES_PIPELINE, replied)
    assert (opportunity["assignedTo"], opportunity["monetaryValue"]) == (SARA, 375.5)
    assert view.tags == ["mc", "mc-replied"]
    [task] = view.tasks
    assert task["assignedTo"] == SARA
    due = datetime.fromisoformat(task["dueDate"])
    assert due == lead_of(placed["contactId"]).replied_at + timedelta(minutes=45)


def test_a_skipped_call_gets_no_opportunity_tag_or_note(story, sandbox):
    placed = story.call(PRIYA_PHONE)  # SMS DND: the text back skips the call

    assert texts_to(sandbox, ACME) == []
    view = story.highlevel(SEED_DND_CONTACT_ID)
    assert (view.opportunities, view.notes, view.tags) == ([], [], [])
    assert lead_of(placed["contactId"]) is None
    assert actions_of(placed["contactId"]) == {}


def test_a_pipeline_that_no_longer_exists_is_recorded_as_failed_with_the_reason(story, sandbox,
                                                                               set_location_settings):
    set_location_settings(crm=crm(pipeline_id="GonePipeline00000000"))
    placed = story.call("+15125550177")
    story.reply("+15125550177", "Hello?")

    steps = actions_of(placed["contactId"])
    assert steps["opportunity"].status == "failed"
    assert steps["opportunity"].outcome == ("failed: no opportunity opened: the chosen pipeline GonePipeline00000000 "
                                            "no longer exists in HighLevel")
    assert steps["opportunity"].attempts == 1  # retrying cannot help
    assert steps["stage:replied"].status == "skipped"
    assert steps["stage:replied"].outcome.startswith("skipped: there is no opportunity to move (failed: ")
    # The rest still happened.
    assert (steps["tag"].status, steps["note"].status, steps["task"].status) == ("done", "done", "done")
    assert story.highlevel(placed["contactId"]).opportunities == []
