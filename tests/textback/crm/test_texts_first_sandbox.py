"""Texts first: a texted call's lead is opened by a `default`-queue job, so during a burst of calls no
caller's text waits behind another call's CRM bookkeeping (workers take the `webhooks` queue first)."""

from __future__ import annotations

from rq.job import Job
from sqlalchemy import select

from integration.extensions import db, get_redis
from integration.textback.models import MissedCall
from tests.textback.conftest import ACME
from tests.textback.crm.conftest import actions_of, lead_of
from tests.textback.helpers import run_worker, texts_to
from workers.crm import follow_up_missed_call
from workers.queues import DEFAULT_QUEUE, SERIALIZER, get_queue

CALLER = "+15125550178"


def test_the_text_goes_out_before_the_lead_is_opened(story, sandbox):
    placed = story.held("place_call", CALLER, "no-answer")
    note = story.process(placed["webhookId"])

    assert len(texts_to(sandbox, ACME, placed["contactId"])) == 1
    assert note.endswith("CRM follow-up queued")
    assert lead_of(placed["contactId"]) is None  # not opened inline, after the send
    [job_id] = get_queue(DEFAULT_QUEUE, get_redis()).job_ids
    assert Job.fetch(job_id, connection=get_redis(), serializer=SERIALIZER).func_name == "workers.crm.open_lead"

    run_worker(DEFAULT_QUEUE)
    assert lead_of(placed["contactId"]) is not None
    assert {key: a.status for key, a in actions_of(placed["contactId"]).items()} == {
        "tag": "done", "note": "done", "opportunity": "done"}


def test_asking_again_queues_the_lead_once_and_reopens_nothing(story, sandbox):
    """A duplicate webhook for the call asks again (to repair a lost job): one job per call, one lead."""
    placed = story.held("place_call", CALLER, "no-answer")
    story.process(placed["webhookId"])
    with db.session() as session:
        missed_call_id = session.scalar(select(MissedCall.id).where(MissedCall.contact_id == placed["contactId"]))
    assert follow_up_missed_call(missed_call_id) == "CRM follow-up queued"
    assert len(get_queue(DEFAULT_QUEUE, get_redis()).job_ids) == 1

    run_worker(DEFAULT_QUEUE)
    lead = lead_of(placed["contactId"])
    assert follow_up_missed_call(missed_call_id) == "CRM follow-up queued"  # the finished job is replaced
    run_worker(DEFAULT_QUEUE)
    assert lead_of(placed["contactId"]).id == lead.id
    assert len(story.highlevel(placed["contactId"]).notes) == 1
