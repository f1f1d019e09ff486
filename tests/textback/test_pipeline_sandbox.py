"""Text back through the whole pipeline: a call in the sandbox, its signed webhook over HTTP to our
receiver, the inbox, an RQ worker, the handler, the sender, and one text back in the sandbox."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select

from integration.db import utcnow
from integration.extensions import db, get_redis
from integration.models import WebhookEvent
from integration.textback.models import MissedCall
from tests.textback.conftest import ACME, AUSTIN
from tests.textback.helpers import call_webhook, missed, run_worker, texts_to
from workers.queues import DEFAULT_QUEUE, LATER_EVENTS_KEY, SERIALIZER, WEBHOOKS_QUEUE, event_job_id, get_queue
from workers.textback import enqueue_due_texts, schedule_missed_call
from workers.worker import TextbackSimpleWorker

CALLER = "+15125550177"


def test_a_missed_call_in_the_sandbox_gets_one_text_through_the_whole_pipeline(
        served_app, sandbox, install, live_sender, set_location_settings):
    install(ACME)
    # The test clock may be up to a weekend ahead of the call (see live_sender): do not call it stale.
    set_location_settings(max_call_age_minutes=7 * 24 * 60)
    run_worker()  # the INSTALL webhook

    placed = sandbox.place_call(ACME, CALLER, "no-answer")
    assert sandbox.wait_for_delivery(placed["webhookId"])["state"] == "delivered"
    run_worker()

    texts = texts_to(sandbox, ACME, placed["contactId"])
    assert len(texts) == 1
    assert texts[0]["body"].startswith("Hi there, this is Mike at Acme Plumbing. Sorry we missed your call!")
    with db.session() as session:
        event = session.scalar(select(WebhookEvent).where(WebhookEvent.dedupe_key == placed["webhookId"]))
        assert event.status == "done"
        assert event.status_reason.startswith("missed call 1: texted at")

    # Our own text comes back as an OutboundMessage webhook: recognised, not mistaken for a person. It may wait
    # behind missed calls, so it is a `default`-queue job: the webhooks queue alone leaves it alone.
    echo = sandbox.deliveries(type="OutboundMessage")[0]
    assert sandbox.wait_for_delivery(echo["webhookId"])["state"] == "delivered"
    with db.session() as session:
        echo_id = session.scalar(select(WebhookEvent.id).where(WebhookEvent.dedupe_key == echo["webhookId"]))
    deadline = time.monotonic() + 5
    while get_redis().lrange(LATER_EVENTS_KEY, 0, -1) != [str(echo_id).encode()] and time.monotonic() < deadline:
        time.sleep(0.01)
    run_worker()
    # (Behind the lead's job, which the texted call queued there too.)
    assert get_queue(DEFAULT_QUEUE, get_redis()).get_job_ids() == ["crm-lead-1", event_job_id(echo_id, 0)]
    with db.session() as session:
        assert session.get(WebhookEvent, echo_id).status == "pending"
    run_worker(DEFAULT_QUEUE)
    with db.session() as session:
        event = session.get(WebhookEvent, echo_id)
        assert (event.status, event.status_reason) == ("done", "our own text for missed call 1")

    # An answered call is recorded as ignored, with the reason.
    answered = sandbox.place_call(ACME, "+15125550178", "answered", duration=95)
    sandbox.wait_for_delivery(answered["webhookId"])
    run_worker()
    with db.session() as session:
        event = session.scalar(select(WebhookEvent).where(WebhookEvent.dedupe_key == answered["webhookId"]))
        assert (event.status, event.status_reason) == ("ignored", "not a missed call: answered for 95 s")
    assert len(texts_to(sandbox, ACME)) == 1


def test_rate_limited_send_is_retried_by_the_inbox_and_texts_once(served_app, sandbox, install, live_sender,
                                                                  set_location_settings):
    install(ACME)
    set_location_settings(max_call_age_minutes=7 * 24 * 60)
    run_worker()
    sandbox.fault("429", "^/conversations/messages$", method="POST", times=3, delay=0.05)

    placed = sandbox.place_call(ACME, CALLER, "busy")
    sandbox.wait_for_delivery(placed["webhookId"])
    run_worker()

    with db.session() as session:
        event = session.scalar(select(WebhookEvent).where(WebhookEvent.dedupe_key == placed["webhookId"]))
    assert event.status == "pending"
    assert "HighLevel rate limit" in event.status_reason
    assert texts_to(sandbox, ACME) == []

    # The retry was scheduled in RQ after HighLevel's Retry-After; a worker with its scheduler runs it when due.
    deadline = time.monotonic() + 10
    while not texts_to(sandbox, ACME) and time.monotonic() < deadline:
        time.sleep(0.2)
        TextbackSimpleWorker([get_queue(WEBHOOKS_QUEUE, get_redis())], connection=get_redis(), serializer=SERIALIZER
                     ).work(burst=True, with_scheduler=True)
    assert len(texts_to(sandbox, ACME)) == 1
    with db.session() as session:
        event = session.scalar(select(WebhookEvent).where(WebhookEvent.dedupe_key == placed["webhookId"]))
    assert event.status == "done"


def test_a_deferred_text_runs_as_a_scheduled_job(acme, sandbox, clock, tb_app, make_sender):
    tb_app.extensions["textback.sender"] = sender = make_sender()
    clock.now = clock.now.astimezone(AUSTIN).replace(hour=22, minute=30)
    payload = call_webhook(sandbox, clock, ACME, CALLER)
    missed_call_id, _ = sender.record(missed(payload), event_id=None)
    assert sender.process(missed_call_id).startswith("deferred to 09:00")
    with db.session() as session:
        due = session.get(MissedCall, missed_call_id).next_attempt_at

    # Morning: the job (scheduled through RQ for its time) runs.
    clock.now = due
    schedule_missed_call(missed_call_id, utcnow())
    run_worker(DEFAULT_QUEUE)

    assert len(texts_to(sandbox, ACME)) == 1
    with db.session() as session:
        assert session.get(MissedCall, missed_call_id).status == "sent"
    tb_app.extensions.pop("textback.sender", None)


def test_the_sweep_enqueues_a_due_deferred_text_whose_job_was_lost(acme, sandbox, clock, tb_app, make_sender):
    tb_app.extensions["textback.sender"] = sender = make_sender()
    clock.now = clock.now.astimezone(AUSTIN).replace(hour=22, minute=30)
    payload = call_webhook(sandbox, clock, ACME, CALLER)
    missed_call_id, _ = sender.record(missed(payload), event_id=None)
    sender.process(missed_call_id)
    get_redis().flushdb()  # Redis lost every scheduled job
    with db.transaction() as session:
        row = session.get(MissedCall, missed_call_id)
        clock.now = row.next_attempt_at  # the sender's morning
        row.next_attempt_at = utcnow() - timedelta(minutes=1)  # due by the real clock the sweep reads

    assert enqueue_due_texts() == 1
    assert enqueue_due_texts() == 1  # enqueued again under the same id: no duplicate job
    assert len(get_queue(DEFAULT_QUEUE, get_redis()).job_ids) == 1
    run_worker(DEFAULT_QUEUE)

    assert len(texts_to(sandbox, ACME)) == 1
    assert enqueue_due_texts() == 0
    tb_app.extensions.pop("textback.sender", None)

