"""process_event: claim atomically, run the handler, record every outcome on the row (never swallow)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from integration.extensions import db, get_redis
from tests.workers.fixture_handlers import runs
from tests.workers.helpers import load_event, seconds_ago, set_event
from workers.inbox import ClaimedEvent, LeaseKeeper, claim_event, finish_event
from workers.jobs import process_event
from workers.queues import NEW_EVENTS_KEY, SERIALIZER, WEBHOOKS_QUEUE, event_job_id, get_queue
from workers.worker import TextbackSimpleWorker


def scheduled_job_ids() -> list[str]:
    return ScheduledJobRegistry(WEBHOOKS_QUEUE, connection=get_redis(), serializer=SERIALIZER).get_job_ids()


def test_handler_success_marks_done_with_its_note(make_event, evidence_dir):
    event_id = make_event("TestRecord")
    assert process_event(event_id).startswith("done: recorded by pid")
    row = load_event(event_id)
    assert (row.status, row.attempts) == ("done", 1)
    assert row.status_reason.startswith("recorded by pid") and row.processed_at is not None
    assert [r[0] for r in runs(evidence_dir)] == [event_id]


def test_event_type_without_handler_is_ignored(make_event):
    event_id = make_event("BrandNewEventType")
    process_event(event_id)
    row = load_event(event_id)
    assert (row.status, row.status_reason) == ("ignored", "no handler for event type 'BrandNewEventType'")


def test_handler_saying_ignore_is_recorded(make_event):
    event_id = make_event("TestIgnore")
    process_event(event_id)
    assert (load_event(event_id).status, load_event(event_id).status_reason) == (
        "ignored", "outbound call: never a missed call")


def test_permanent_error_fails_at_once_without_retry(make_event, evidence_dir):
    event_id = make_event("TestPermanent")
    process_event(event_id)
    row = load_event(event_id)
    assert (row.status, row.status_reason, row.attempts) == ("failed", "contact has no phone number", 1)
    assert scheduled_job_ids() == []


def test_failure_goes_back_to_pending_with_a_scheduled_retry(make_event, worker_config):
    event_id = make_event("TestFail")
    summary = process_event(event_id)
    row = load_event(event_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.status_reason == "attempt 1 failed: RuntimeError: boom: the CRM said no"
    assert summary == f"retry in {worker_config.retry_delay(1)} s: RuntimeError: boom: the CRM said no"
    assert scheduled_job_ids() == [event_job_id(event_id, 1)]


def test_retry_later_uses_the_handlers_delay(make_event):
    event_id = make_event("TestRetryLater", delay=42)
    assert process_event(event_id) == "retry in 42 s: HighLevel answered 429"
    assert load_event(event_id).status == "pending"
    registry = ScheduledJobRegistry(WEBHOOKS_QUEUE, connection=get_redis(), serializer=SERIALIZER)
    [job_id] = registry.get_job_ids()
    scheduled_at = registry.get_scheduled_time(job_id)
    assert timedelta(seconds=30) < scheduled_at - seconds_ago(0) <= timedelta(seconds=42)


def test_gives_up_after_max_attempts_and_reraises(app, make_event, worker_config, evidence_dir):
    from workers.config import set_worker_config

    set_worker_config(app, worker_config.override(event_max_attempts=3))
    event_id = make_event("TestFail")
    process_event(event_id)
    process_event(event_id)
    with pytest.raises(RuntimeError, match="boom"):
        process_event(event_id)
    row = load_event(event_id)
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.status_reason == "gave up after 3 attempts: RuntimeError: boom: the CRM said no"
    assert len(runs(evidence_dir)) == 3
    assert process_event(event_id) == "skipped: not claimable"
    assert len(runs(evidence_dir)) == 3


def test_transient_failures_then_success(make_event, evidence_dir):
    event_id = make_event("TestFailTwice")
    for _ in range(3):
        process_event(event_id)
    row = load_event(event_id)
    assert (row.status, row.status_reason, row.attempts) == ("done", "third time lucky", 3)


def test_finished_event_is_never_processed_again(make_event, evidence_dir):
    event_id = make_event("TestRecord")
    process_event(event_id)
    assert process_event(event_id) == "skipped: not claimable"
    assert len(runs(evidence_dir)) == 1


def test_event_held_by_a_live_worker_is_not_claimable(make_event, worker_config):
    event_id = make_event("TestRecord")
    first = claim_event(db, event_id, lease_seconds=worker_config.event_lease_seconds)
    assert first is not None and first.attempt == 1
    assert claim_event(db, event_id, lease_seconds=worker_config.event_lease_seconds) is None


def test_expired_lease_is_taken_over_and_the_old_holder_is_fenced_off(make_event, worker_config):
    lease = worker_config.event_lease_seconds
    event_id = make_event("TestRecord")
    old_holder = claim_event(db, event_id, lease_seconds=lease)
    set_event(event_id, claimed_at=seconds_ago(lease + 1))
    new_holder = claim_event(db, event_id, lease_seconds=lease)
    assert new_holder is not None and new_holder.attempt == 2
    assert finish_event(db, old_holder, status="done", reason="stale") is False
    assert finish_event(db, new_holder, status="done", reason="fresh") is True
    assert load_event(event_id).status_reason == "fresh"


def test_worker_that_died_on_the_last_attempt_fails_the_event(app, make_event, worker_config, evidence_dir):
    from workers.config import set_worker_config

    set_worker_config(app, worker_config.override(event_max_attempts=2))
    event_id = make_event("TestRecord")
    set_event(event_id, status="processing", attempts=2, claimed_at=seconds_ago(3600))
    process_event(event_id)
    row = load_event(event_id)
    assert row.status == "failed" and "never finished" in row.status_reason
    assert runs(evidence_dir) == []


def test_lease_keeper_renews_the_claim_while_the_handler_runs(make_event):
    event_id = make_event("TestRecord")
    event = claim_event(db, event_id, lease_seconds=60)
    first_claim = load_event(event_id).claimed_at
    with LeaseKeeper(db, event, interval_seconds=0.2) as keeper:
        deadline = threading.Event()
        for _ in range(50):
            if load_event(event_id).claimed_at > first_claim:
                break
            deadline.wait(0.1)
    assert load_event(event_id).claimed_at > first_claim
    assert keeper.lost is False


def test_lease_keeper_notices_a_lost_lease(make_event):
    event_id = make_event("TestRecord")
    event = claim_event(db, event_id, lease_seconds=60)
    stolen = ClaimedEvent(**{**event.__dict__, "attempt": event.attempt})
    set_event(event_id, attempts=event.attempt + 1)  # another worker claimed it since
    with LeaseKeeper(db, stolen, interval_seconds=0.1) as keeper:
        for _ in range(50):
            if keeper.lost:
                break
            threading.Event().wait(0.1)
    assert keeper.lost is True


@pytest.mark.parametrize("round_", range(10))
def test_two_workers_racing_for_one_event_claim_it_once(make_event, worker_config, round_):
    """Catalogue D: two claims released by one barrier; exactly one wins, every round."""
    event_id = make_event("TestRecord")
    barrier = threading.Barrier(2)
    results: list[ClaimedEvent | None] = []
    lock = threading.Lock()

    def racer():
        barrier.wait()
        claimed = claim_event(db, event_id, lease_seconds=worker_config.event_lease_seconds)
        with lock:
            results.append(claimed)

    threads = [threading.Thread(target=racer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(r is not None for r in results) == [False, True]
    assert load_event(event_id).attempts == 1


def test_two_jobs_for_the_same_event_run_the_handler_once(make_event, evidence_dir):
    """A duplicate job (a sweeper rescue racing the original) finds the row done and does nothing."""
    event_id = make_event("TestRecord")
    queue = get_queue(WEBHOOKS_QUEUE, get_redis())
    for suffix in ("a", "b"):
        queue.enqueue_call("workers.jobs.process_event", args=(event_id,), job_id=f"dup-{event_id}-{suffix}")
    TextbackSimpleWorker([queue], connection=get_redis(), serializer=SERIALIZER).work(burst=True)
    assert len(runs(evidence_dir)) == 1
    assert load_event(event_id).status == "done"


def test_webhook_to_done_through_a_real_rq_worker(app_context, client, signed_webhook, evidence_dir, redis_client):
    """The receiver announces the event, the worker admits it as a job (JSON serializer, deterministic id) and
    runs it."""
    body, headers = signed_webhook({"type": "TestRecord", "evidence_dir": str(evidence_dir), "webhookId": "e2e-1"})
    response = client.post("/webhooks/ghl", data=body, headers=headers)
    assert response.status_code == 200
    event_id = response.json["id"]
    queue = get_queue(WEBHOOKS_QUEUE, get_redis())
    assert queue.get_job_ids() == []
    deadline = time.monotonic() + 5  # announced by the web process's announcer thread, after the answer
    while not get_redis().llen(NEW_EVENTS_KEY) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert get_redis().lrange(NEW_EVENTS_KEY, 0, -1) == [str(event_id).encode()]
    worker = TextbackSimpleWorker([queue], connection=get_redis(), serializer=SERIALIZER)
    worker.work(burst=True)
    assert get_redis().llen(NEW_EVENTS_KEY) == 0
    assert Job.fetch(event_job_id(event_id, 0), connection=get_redis(), serializer=SERIALIZER).is_finished
    assert load_event(event_id).status == "done"
    assert [r[0] for r in runs(evidence_dir)] == [event_id]


def test_event_type_listed_as_ignored_is_not_handled(make_event, monkeypatch):
    from workers import jobs

    monkeypatch.setattr(jobs, "IGNORED_EVENTS", frozenset({"TestRecord"}))
    event_id = make_event("TestRecord")
    process_event(event_id)
    assert (load_event(event_id).status, load_event(event_id).status_reason) == (
        "ignored", "TestRecord events are recorded, not acted on")
