"""The database, not Redis, is the record: the sweep opens leads a lost hook missed and re-runs actions whose
job was lost or whose worker died mid-call; an uninstalled sub-account gets no API call at all."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select

from integration.crm import actions
from integration.crm.followup import note_body
from integration.crm.models import CrmAction, CrmLead
from integration.db import utcnow
from integration.extensions import db, get_redis
from integration.textback.models import MissedCall
from oauth.services import get_oauth
from tests.textback.conftest import ACME
from tests.textback.crm.conftest import actions_of, lead_of
from tests.textback.helpers import run_worker, texts_to
from workers.crm import enqueue_due_crm_work, open_lead
from workers.queues import DEFAULT_QUEUE, get_queue

CALLER = "+15125550177"
LATER = timedelta(seconds=30)  # past the sweep's slack: what it finds is due


def texted_with_its_lead_open(story) -> dict:
    """A texted missed call whose lead job has run: its lead is open and its action jobs are queued, not run."""
    placed = story.held("place_call", CALLER, "no-answer")
    story.process(placed["webhookId"])
    with db.session() as session:
        missed_call_id = session.scalar(select(MissedCall.id).where(MissedCall.contact_id == placed["contactId"]))
    open_lead(missed_call_id, run_actions=False)
    return placed


def test_the_sweep_opens_the_lead_of_a_texted_call_whose_follow_up_was_lost(story, sandbox):
    placed = story.held("place_call", CALLER, "no-answer")
    story.process(placed["webhookId"])
    # As if the worker died between the text and its follow-up: no lead, no actions, no jobs.
    with db.transaction() as session:
        session.execute(delete(CrmAction))
        session.execute(delete(CrmLead))
    get_redis().flushdb()
    assert lead_of(placed["contactId"]) is None
    assert len(texts_to(sandbox, ACME, placed["contactId"])) == 1

    assert enqueue_due_crm_work(now=utcnow() + LATER) == 1 + 3  # one lead opened, its three actions enqueued
    run_worker(DEFAULT_QUEUE)

    assert {key: a.status for key, a in actions_of(placed["contactId"]).items()} == {
        "tag": "done", "note": "done", "opportunity": "done"}
    assert enqueue_due_crm_work(now=utcnow() + LATER) == 0


def test_the_sweep_leaves_a_lead_whose_own_job_is_still_queued_to_that_job(story, sandbox):
    """During a backlog every recent texted call has no lead yet: the sweep opens only those whose job is gone."""
    placed = story.held("place_call", CALLER, "no-answer")
    story.process(placed["webhookId"])  # texted; its lead job waits on `default`
    assert get_queue(DEFAULT_QUEUE, get_redis()).count == 1

    assert enqueue_due_crm_work(now=utcnow() + LATER) == 0
    assert lead_of(placed["contactId"]) is None
    run_worker(DEFAULT_QUEUE)  # the lead's own job opens it and makes its changes
    assert {key: a.status for key, a in actions_of(placed["contactId"]).items()} == {
        "tag": "done", "note": "done", "opportunity": "done"}


def test_the_sweep_enqueues_actions_whose_job_redis_lost(story, sandbox):
    placed = texted_with_its_lead_open(story)
    get_redis().flushdb()  # every queued CRM job is gone

    assert enqueue_due_crm_work(now=utcnow()) == 0  # younger than the slack: left to their own jobs
    assert enqueue_due_crm_work(now=utcnow() + LATER) == 3
    run_worker(DEFAULT_QUEUE)

    assert all(a.status == "done" for a in actions_of(placed["contactId"]).values())
    assert len(story.highlevel(placed["contactId"]).notes) == 1


def test_a_worker_that_died_mid_call_is_taken_over_and_its_note_not_added_twice(story, sandbox):
    placed = texted_with_its_lead_open(story)
    get_redis().flushdb()
    note = actions_of(placed["contactId"])["note"]
    # A worker claims the note, HighLevel takes the POST, and the worker dies before recording it.
    assert actions.claim(db, note.id, now=utcnow() - timedelta(minutes=5), lease=timedelta(seconds=1)) is not None
    lead = lead_of(placed["contactId"])
    get_oauth().client.add_note(ACME, placed["contactId"], note_body(lead, timezone="America/Chicago"))

    assert enqueue_due_crm_work(now=utcnow() + LATER) == 3
    run_worker(DEFAULT_QUEUE)

    note = actions_of(placed["contactId"])["note"]
    assert (note.status, note.maybe_done, note.attempts) == ("done", True, 2)
    assert note.outcome.startswith("the note 'Missed call at ") and note.outcome.endswith("' was already there")
    assert len(story.highlevel(placed["contactId"]).notes) == 1


def test_an_uninstalled_sub_account_gets_no_api_call(story, sandbox):
    placed = story.held("place_call", CALLER, "no-answer")
    story.process(placed["webhookId"])
    [uninstall] = sandbox.control("POST", "uninstall", {"locationId": ACME})["webhookIds"]
    sandbox.wait_for_delivery(uninstall)
    story.process(uninstall)
    calls_before = len(sandbox.requests_log(path="^/(contacts|opportunities)"))

    run_worker(DEFAULT_QUEUE)

    steps = actions_of(placed["contactId"])
    assert {a.status for a in steps.values()} == {"skipped"}
    assert steps["tag"].outcome == "not done: the app is not installed on this sub-account"
    assert len(sandbox.requests_log(path="^/(contacts|opportunities)")) == calls_before


def test_the_lead_job_makes_its_changes_itself_instead_of_queueing_three_more_jobs(story, sandbox):
    placed = story.held("place_call", CALLER, "no-answer")
    story.process(placed["webhookId"])
    get_redis().flushdb()
    with db.session() as session:
        missed_call_id = session.scalar(select(MissedCall.id).where(MissedCall.contact_id == placed["contactId"]))

    note = open_lead(missed_call_id)

    assert {key: a.status for key, a in actions_of(placed["contactId"]).items()} == {
        "tag": "done", "note": "done", "opportunity": "done"}
    assert note.startswith("CRM follow-up: 3 change(s) for HighLevel: ")
    assert get_queue(DEFAULT_QUEUE, get_redis()).count == 0
    assert len(story.highlevel(placed["contactId"]).notes) == 1
