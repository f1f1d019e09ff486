"""The CRM options: day-one defaults, overlays, errors that name the field; and which pipeline, stages and
user they pick from what HighLevel lists."""

from __future__ import annotations

import json

import pytest

from integration.crm.directory import pick_pipeline, pick_stage, pick_user, stage_position
from integration.crm.pipelines import PipelineDirectory
from integration.crm.settings import DEFAULT_CRM_SETTINGS
from integration.textback.profiles import LocationProfile
from integration.textback.settings import SettingsError, effective_settings

PIPELINES = [
    {"id": "sales", "name": "Sales", "stages": [{"id": "s-new", "name": "New", "position": 0}]},
    {"id": "missed", "name": "Missed Call", "stages": [
        # Listed out of order: position decides.
        {"id": "m-booked", "name": "Booked", "position": 2}, {"id": "m-new", "name": "New Lead", "position": 0},
        {"id": "m-replied", "name": "Replied", "position": 1}]},
]
USERS = [{"id": "u-sara", "name": "Sara Kim", "roles": {"role": "user"}},
         {"id": "u-mike", "firstName": "Mike", "lastName": "Alvarez", "roles": {"role": "admin"}},
         {"id": "u-gone", "name": "Old Hand", "deleted": True, "roles": {"role": "admin"}}]


def profile(users=USERS) -> LocationProfile:
    return LocationProfile.from_api("loc", location={"name": "Acme", "timezone": "America/Chicago"}, users=users)


def directory(listed=PIPELINES) -> PipelineDirectory:
    return PipelineDirectory.from_api("loc", listed)


def crm(**values):
    return effective_settings(location_values={"crm": values}).crm


def test_defaults_work_on_day_one():
    options = effective_settings().crm
    assert (options.missed_call_tag, options.replied_tag) == ("missed-call", "missed-call-replied")
    assert (options.reply_window_hours, options.task_due_minutes, options.average_job_value) == (72, 15, 0.0)
    assert (options.pipeline_id, options.assigned_user_id, options.on_call_number) == ("", "", None)


def test_agency_defaults_then_location_values_overlay():
    options = effective_settings(company_defaults={"crm": {"average_job_value": 300, "task_due_minutes": 5}},
                                 location_values={"crm": {"task_due_minutes": 20, "on_call_number": "512-555-0188"}}
                                 ).crm
    assert (options.average_job_value, options.task_due_minutes) == (300.0, 20)
    assert options.on_call_number == "+15125550188"
    assert options.replied_tag == DEFAULT_CRM_SETTINGS["replied_tag"]


@pytest.mark.parametrize(("values", "message"), [
    ({"bogus": 1}, "crm.bogus: Unknown field."),
    ({"reply_window_hours": 0}, "crm.reply_window_hours: Must be greater than or equal to 1"),
    ({"task_due_minutes": "soon"}, "crm.task_due_minutes: Not a valid integer."),
    ({"average_job_value": -1}, "crm.average_job_value: Must be greater than or equal to 0"),
    ({"average_job_value": "NaN"}, "crm.average_job_value: Special numeric values (nan or infinity) are not"),
    ({"average_job_value": "lots"}, "crm.average_job_value: Not a valid number."),
    ({"missed_call_tag": "  "}, "crm.missed_call_tag: a tag cannot be blank"),
    ({"replied_tag": "a,b"}, "crm.replied_tag: a tag cannot hold commas or control characters"),
    ({"on_call_number": "call me"}, "crm.on_call_number: 'call me' is not a phone number"),
    ({"pipeline_id": "x" * 65}, "crm.pipeline_id: Longer than maximum length 64."),
])
def test_bad_crm_options_name_the_field(values, message):
    with pytest.raises(SettingsError) as error:
        crm(**values)
    assert message in str(error.value)


def test_nothing_picked_means_the_missed_call_pipeline_its_first_stage_named_stages_and_the_first_admin():
    options, where = crm(), directory()
    pipeline = pick_pipeline(options, where)
    assert (pipeline.id, pipeline.name) == ("missed", "Missed Call")
    assert pick_stage(options, where, pipeline_id="missed", step="new").id == "m-new"
    assert pick_stage(options, where, pipeline_id="missed", step="replied").id == "m-replied"
    assert pick_stage(options, where, pipeline_id="missed", step="booked").id == "m-booked"
    assert (pick_user(options, profile()).id, pick_user(options, profile()).name) == ("u-mike", "Mike Alvarez")


def test_without_a_missed_call_pipeline_the_first_one_is_used_and_missing_stages_are_said():
    where = directory(PIPELINES[:1])
    assert pick_pipeline(crm(), where).id == "sales"
    replied = pick_stage(crm(), where, pipeline_id="sales", step="replied")
    assert (replied.id, replied.problem) == (None, "no replied stage is chosen and the pipeline has none named "
                                                   "'Replied'")


def test_picked_ids_are_used_and_stale_ones_are_reported():
    options = crm(pipeline_id="sales", new_stage_id="s-new", replied_stage_id="m-replied", assigned_user_id="u-sara")
    where = directory()
    assert pick_pipeline(options, where).id == "sales"
    assert pick_stage(options, where, pipeline_id="sales", step="new").id == "s-new"
    assert pick_stage(options, where, pipeline_id="sales", step="replied").problem == (
        "the chosen replied stage m-replied is not a stage of the pipeline")
    assert pick_user(options, profile()).id == "u-sara"
    assert pick_user(crm(assigned_user_id="u-gone"), profile()).problem == (
        "the chosen user u-gone is not a user of the sub-account")
    assert pick_pipeline(crm(pipeline_id="gone"), where).problem == (
        "the chosen pipeline gone no longer exists in HighLevel")


def test_nothing_to_pick_from_is_said():
    assert pick_pipeline(crm(), directory([])).problem == "the sub-account has no pipeline in HighLevel"
    assert pick_user(crm(), profile(users=[])).problem == "the sub-account has no users"


def test_stage_positions_follow_highlevels_order_and_survive_the_cache():
    cached = PipelineDirectory.from_dict(json.loads(json.dumps(directory().to_dict())))
    assert [stage_position(cached, pipeline_id="missed", stage_id=s) for s in ("m-new", "m-replied", "m-booked")
            ] == [0, 1, 2]
    assert stage_position(cached, pipeline_id="missed", stage_id="nope") is None
    users = LocationProfile.from_dict(json.loads(json.dumps(profile().to_dict())))
    assert users.admin_user_ids == ("u-mike",)
    assert list(users.user_names) == ["u-sara", "u-mike"]
    assert users == profile()


def test_a_profile_cached_by_another_version_still_loads():
    older = profile().to_dict()
    for key in ("user_names", "admin_user_ids"):
        older.pop(key)
    older["pipelines"] = {"missed": "Missed Call"}  # what profiles held before pipelines moved out
    loaded = LocationProfile.from_dict(older)
    assert (dict(loaded.user_names), loaded.admin_user_ids, loaded.name) == ({}, (), "Acme")
