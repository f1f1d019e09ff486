"""The sweeper gives every stray event a job exactly once: never lost, never doubled."""

from __future__ import annotations

from rq.job import Job

from integration.extensions import db, get_redis
from tests.workers.fixture_handlers import runs
from tests.workers.helpers import load_event, seconds_ago, set_event
from workers.queues import (
    NEW_EVENTS_KEY,
    SERIALIZER,
    WEBHOOKS_QUEUE,
    announce_events,
    announced_from,
    enqueue_event,
    event_job_id,
    get_queue,
    live_event_jobs,
)
from workers.sweeper import LOCK_NAME, Sweeper
from workers.worker import TextbackSimpleWorker


def sweeper(config) -> Sweeper:
    return Sweeper(database=db, redis=get_redis(), config=config)


def queued() -> list[str]:
    return get_queue(WEBHOOKS_QUEUE, get_redis()).get_job_ids()


def work() -> None:
    TextbackSimpleWorker([get_queue(WEBHOOKS_QUEUE, get_redis())], connection=get_redis(), serializer=SERIALIZER).work(
        burst=True)


def test_pending_event_without_a_job_is_enqueued_once(make_event, worker_config):
    event_id = make_event()
    first = sweeper(worker_config).sweep_once()
    second = sweeper(worker_config).sweep_once()
    assert (first.counts["enqueued"], second.counts["already-queued"], second.enqueued) == (1, 1, 0)
    assert queued() == [event_job_id(event_id, 0)]


def test_young_pending_event_is_left_to_the_receivers_enqueue(make_event, worker_config):
    make_event()
    report = sweeper(worker_config.override(sweep_min_age_seconds=60)).sweep_once()
    assert report.enqueued == 0 and queued() == []


def test_finished_and_ignored_events_are_not_swept(make_event, worker_config):
    make_event(status="ignored")
    done = make_event()
    set_event(done, status="done")
    assert sweeper(worker_config).sweep_once().counts == {}


def test_failed_attempt_waits_for_its_backoff(make_event, worker_config):
    event_id = make_event()
    set_event(event_id, attempts=1, claimed_at=seconds_ago(10))
    waiting = worker_config.override(event_retry_delays=(30, 60))
    assert sweeper(waiting).sweep_once().enqueued == 0
    due = worker_config.override(event_retry_delays=(5, 60))
    assert sweeper(due).sweep_once().enqueued == 1
    assert queued() == [event_job_id(event_id, 1)]


def test_backoff_uses_the_last_delay_beyond_the_list(make_event, worker_config):
    event_id = make_event()
    set_event(event_id, attempts=5, claimed_at=seconds_ago(100))
    assert sweeper(worker_config.override(event_retry_delays=(1, 200))).sweep_once().enqueued == 0
    assert sweeper(worker_config.override(event_retry_delays=(1, 50))).sweep_once().enqueued == 1


def test_expired_lease_of_a_dead_worker_is_rescued(make_event, worker_config, evidence_dir):
    event_id = make_event()
    set_event(event_id, status="processing", attempts=1, claimed_at=seconds_ago(worker_config.event_lease_seconds + 1))
    assert sweeper(worker_config).sweep_once().enqueued == 1
    assert queued() == [event_job_id(event_id, 1)]
    work()
    row = load_event(event_id)
    assert (row.status, row.attempts) == ("done", 2)
    assert len(runs(evidence_dir)) == 1


def test_live_lease_is_left_alone(make_event, worker_config):
    event_id = make_event()
    set_event(event_id, status="processing", attempts=1, claimed_at=seconds_ago(1))
    assert sweeper(worker_config).sweep_once().enqueued == 0


def test_a_job_that_failed_without_claiming_is_replaced(make_event, worker_config):
    """E.g. the database was down when the job ran: RQ marked it failed, the row is still pending."""
    event_id = make_event()
    job_id = event_job_id(event_id, 0)
    enqueue_event(get_redis(), event_id, attempt=0, config=worker_config)
    job = Job.fetch(job_id, connection=get_redis(), serializer=SERIALIZER)
    get_queue(WEBHOOKS_QUEUE, get_redis()).remove(job)
    job.set_status("failed")
    report = sweeper(worker_config).sweep_once()
    assert report.counts["replaced"] == 1
    assert queued() == [job_id]


def test_only_one_sweeper_runs_at_a_time(make_event, worker_config):
    make_event()
    held = get_redis().lock(LOCK_NAME, timeout=30)
    assert held.acquire(blocking=False)
    try:
        report = sweeper(worker_config).sweep_once()
    finally:
        held.release()
    assert report.skipped == "another sweeper holds the lock" and queued() == []


def test_a_backlog_larger_than_a_batch_is_paged_through(make_event, worker_config):
    """Rows that already have a queued job must not hide the rows behind them."""
    events = [make_event() for _ in range(5)]
    small = sweeper(worker_config.override(sweep_batch_size=2))
    assert [small.sweep_once().counts["enqueued"] for _ in range(3)] == [2, 2, 1]
    assert small.sweep_once().counts == {"already-queued": 2}
    assert sorted(queued()) == sorted(event_job_id(e, 0) for e in events)


def test_live_jobs_are_recognised_without_fetching_each(make_event, worker_config):
    """live_event_jobs vouches only for a waiting job or one started within the lease; the rest go to
    enqueue_event, which decides (a missing, finished or long-started job is replaced)."""
    from datetime import UTC, datetime, timedelta

    redis = get_redis()
    waiting, fresh, old, finished, missing = (make_event() for _ in range(5))
    for event_id in (waiting, fresh, old, finished):
        enqueue_event(redis, event_id, attempt=0, config=worker_config)
    now = datetime.now(UTC)
    for event_id, status, started in ((fresh, "started", now - timedelta(seconds=1)),
                                      (old, "started", now - timedelta(seconds=worker_config.event_lease_seconds + 5)),
                                      (finished, "finished", None)):
        job = Job.fetch(event_job_id(event_id, 0), connection=redis, serializer=SERIALIZER)
        job.started_at = started
        job.save()
        job.set_status(status)
    events = [(e, 0) for e in (waiting, fresh, old, finished, missing)]
    assert live_event_jobs(redis, events, lease_seconds=worker_config.event_lease_seconds) == {waiting, fresh}
    assert live_event_jobs(redis, [], lease_seconds=1) == set()


def test_an_event_still_in_its_announcement_list_is_left_to_the_admitter(make_event, worker_config):
    """A flood waits as ids (workers.admitter): the sweeper must not turn the backlog into jobs itself."""
    lost, waiting, also_waiting = make_event(), make_event(), make_event()
    # Two web processes push interleaved: the list's start is the lowest of its first ids, not its head.
    announce_events(get_redis(), [also_waiting, waiting])
    report = sweeper(worker_config).sweep_once()
    assert report.counts == {"enqueued": 1}
    assert queued() == [event_job_id(lost, 0)]
    get_redis().delete(NEW_EVENTS_KEY)  # popped by an admitter that died before enqueueing them
    assert sweeper(worker_config).sweep_once().counts["enqueued"] == 2
    assert queued() == [event_job_id(event_id, 0) for event_id in (lost, waiting, also_waiting)]


def test_an_echo_waiting_in_the_later_list_does_not_shield_a_lost_call(make_event, worker_config):
    echo = make_event("OutboundMessage")
    call = make_event("InboundMessage")  # its announcement was lost; only the later list holds anything
    announce_events(get_redis(), [], [echo])
    assert sweeper(worker_config).sweep_once().counts == {"enqueued": 1}
    assert queued() == [event_job_id(call, 0)]


def test_an_outbound_message_counts_as_announced_from_the_start_of_either_list(make_event, worker_config):
    """HighLevel labels some inbound calls OutboundMessage: those are announced as urgent (integration.inbox)."""
    labelled_call = make_event("OutboundMessage")
    announce_events(get_redis(), [labelled_call])
    assert sweeper(worker_config).sweep_once().counts == {}
    announced = announced_from(get_redis())
    assert (announced.urgent, announced.later, announced.either) == (labelled_call, None, labelled_call)


def test_a_retry_is_swept_even_while_the_lists_hold_later_ids(make_event, worker_config):
    announce_events(get_redis(), [make_event()])
    retried = make_event()  # past the list's start, but a retry is never announced
    set_event(retried, attempts=1, claimed_at=seconds_ago(100))
    assert sweeper(worker_config.override(event_retry_delays=(5,))).sweep_once().counts == {"enqueued": 1}
    assert queued() == [event_job_id(retried, 1)]
