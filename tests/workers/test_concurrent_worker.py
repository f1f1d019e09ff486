"""The worker that runs jobs in threads (workers.concurrent): jobs overlap, webhook slots are kept for webhook
events, a burst stops only when nothing is left, and job timeouts work off the main thread (issue 13)."""

from __future__ import annotations

import itertools
import threading
import time

from integration.extensions import get_redis
from tests.workers.fixture_handlers import runs, windows
from tests.workers.helpers import load_event
from workers.concurrent import ConcurrentWorker
from workers.queues import DEFAULT_QUEUE, SERIALIZER, WEBHOOKS_QUEUE, enqueue, enqueue_event, get_queue


def _worker(app, *, concurrency: int, webhook_slots: int = 0, queues=(WEBHOOKS_QUEUE, DEFAULT_QUEUE)):
    return ConcurrentWorker([get_queue(name, get_redis()) for name in queues], connection=get_redis(),
                            serializer=SERIALIZER, app=app, concurrency=concurrency, webhook_slots=webhook_slots)


def test_jobs_run_at_the_same_time_and_all_finish(app_context, make_event, worker_config, evidence_dir):
    events = [make_event("TestWindow", sleep=1.0) for _ in range(6)]
    for event_id in events:
        enqueue_event(get_redis(), event_id, attempt=0, config=worker_config)
    _worker(app_context, concurrency=6).work(burst=True)

    ran = windows(evidence_dir)
    assert sorted(ran) == sorted(f"event-{event_id}" for event_id in events)
    # Every job started before any of them ended: they ran side by side (one at a time, each would start
    # after the previous one's end).
    assert max(start for start, _ in ran.values()) < min(end for _, end in ran.values())
    assert {load_event(event_id).status for event_id in events} == {"done"}
    assert len(runs(evidence_dir)) == 6


def test_one_slot_runs_one_job_at_a_time(app_context, make_event, worker_config, evidence_dir):
    events = [make_event("TestWindow", sleep=0.3) for _ in range(3)]
    for event_id in events:
        enqueue_event(get_redis(), event_id, attempt=0, config=worker_config)
    _worker(app_context, concurrency=1).work(burst=True)

    spans = sorted(windows(evidence_dir).values())
    assert len(spans) == 3
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))


def test_a_webhook_event_takes_a_kept_slot_while_crm_work_fills_the_others(app_context, make_event, worker_config,
                                                                         evidence_dir):
    """Three slots, one kept for webhook events: five slow CRM-queue jobs take two slots at a time, and the
    missed call that arrives meanwhile starts at once instead of after one of them."""
    for index in range(5):
        enqueue(DEFAULT_QUEUE, "tests.workers.fixture_handlers.windowed_job", str(evidence_dir), f"crm-{index}", 1.5,
                connection=get_redis(), job_timeout=60, result_ttl=60, failure_ttl=60)
    event_id = make_event("TestWindow", sleep=0.1)
    # The call arrives once the CRM jobs have started (the worker runs in this, the main, thread: RQ installs
    # signal handlers).
    redis = get_redis()
    arrival = threading.Timer(0.5, lambda: enqueue_event(redis, event_id, attempt=0, config=worker_config))
    arrival.start()
    _worker(app_context, concurrency=3, webhook_slots=1).work(burst=True)
    arrival.join()

    ran = windows(evidence_dir)
    crm = sorted(span for name, span in ran.items() if name.startswith("crm-"))
    assert len(crm) == 5
    # Two at a time: the third CRM job starts only when one of the first two has ended.
    assert crm[2][0] >= min(crm[0][1], crm[1][1]) - 0.05
    call_start = ran[f"event-{event_id}"][0]
    assert call_start < min(crm[0][1], crm[1][1])
    assert load_event(event_id).status == "done"


def test_a_job_past_its_timeout_is_stopped_in_its_thread_and_the_worker_goes_on(app_context, make_event,
                                                                                worker_config, evidence_dir):
    """RQ's SIGALRM timeout reaches only the main thread; jobs in pool threads are stopped by a timer (which
    takes effect when the thread next runs Python: a blocking call returns first, and ours all have timeouts)."""
    enqueue(DEFAULT_QUEUE, "tests.workers.fixture_handlers.python_busy_job", 30,
            connection=get_redis(), job_timeout=1, result_ttl=60, failure_ttl=60, job_id="too-slow")
    after = make_event("TestRecord")
    enqueue_event(get_redis(), after, attempt=0, config=worker_config)
    started = time.monotonic()
    _worker(app_context, concurrency=2).work(burst=True)

    assert time.monotonic() - started < 20  # not the job's 30 s
    from rq.job import Job

    job = Job.fetch("too-slow", connection=get_redis(), serializer=SERIALIZER)
    assert job.get_status() == "failed"
    assert "JobTimeoutException" in (job.latest_result().exc_string or "")
    assert load_event(after).status == "done"


def test_a_worker_without_the_webhook_queue_keeps_no_slots_for_it(app_context):
    worker = _worker(app_context, concurrency=4, webhook_slots=2, queues=(DEFAULT_QUEUE,))
    assert worker.webhook_slots == 0


def test_with_two_processes_the_first_takes_webhook_events_alone():
    from workers.supervisor import queues_of_process

    queues = (WEBHOOKS_QUEUE, DEFAULT_QUEUE, "low")
    assert queues_of_process(queues, 0, 1) == queues
    assert queues_of_process(queues, 0, 2) == (WEBHOOKS_QUEUE,)
    assert queues_of_process(queues, 1, 2) == queues_of_process(queues, 2, 3) == (DEFAULT_QUEUE, "low")
    assert queues_of_process(queues, 0, 3) == queues_of_process(queues, 1, 3) == (WEBHOOKS_QUEUE,)
    assert queues_of_process((DEFAULT_QUEUE,), 0, 2) == (DEFAULT_QUEUE,)
