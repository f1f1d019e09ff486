"""The admitter: the receiver's announcements (one RPUSH per new event) become process_event jobs.

Nothing is lost on the way: an announcement for an event that already has a job adds nothing, a garbled
one is dropped with a log line, and a worker admits what is waiting before every dequeue (so a busy or
burst worker never waits for the maintenance process's thread).
"""

from __future__ import annotations

import logging
import threading
import time

from rq.job import Job

from integration.extensions import get_redis
from tests.workers.fixture_handlers import runs
from tests.workers.helpers import load_event
from workers.admitter import Admitter, admit_new_events
from workers.queues import (
    DEFAULT_QUEUE,
    LATER_EVENTS_KEY,
    NEW_EVENTS_KEY,
    SERIALIZER,
    WEBHOOKS_QUEUE,
    announce_events,
    event_job_id,
    get_queue,
)
from workers.worker import TextbackSimpleWorker


def admit_all_waiting(connection, *, config) -> int:
    """Admit until no announcement is waiting or every queue is full; returns how many ids were taken."""
    total = 0
    while admitted := admit_new_events(connection, config=config):
        total += admitted
    return total


def queued(name: str = WEBHOOKS_QUEUE) -> list[str]:
    return get_queue(name, get_redis()).get_job_ids()


def test_announced_events_become_jobs_under_their_deterministic_ids(make_event, worker_config):
    first, second = make_event(), make_event()
    announce_events(get_redis(), [first])
    announce_events(get_redis(), [second])
    assert queued() == []
    assert admit_new_events(get_redis(), config=worker_config) == 2
    assert queued() == [event_job_id(first, 0), event_job_id(second, 0)]
    job = Job.fetch(event_job_id(first, 0), connection=get_redis(), serializer=SERIALIZER)
    assert (job.func_name, list(job.args), job.timeout) == ("workers.jobs.process_event", [first],
                                                            worker_config.event_job_timeout)
    assert get_redis().llen(NEW_EVENTS_KEY) == 0


def test_events_that_may_wait_become_default_queue_jobs_and_urgent_ones_are_popped_first(make_event, worker_config):
    echo, call = make_event(), make_event()
    announce_events(get_redis(), [], [echo])  # announced first...
    announce_events(get_redis(), [call])
    # ...but a blocking pop takes the urgent list first.
    assert get_redis().blpop([NEW_EVENTS_KEY, LATER_EVENTS_KEY], timeout=1)[1] == str(call).encode()
    announce_events(get_redis(), [call], [])
    assert admit_new_events(get_redis(), config=worker_config, block_seconds=1) == 2
    assert queued(WEBHOOKS_QUEUE) == [event_job_id(call, 0)]
    assert queued(DEFAULT_QUEUE) == [event_job_id(echo, 0)]
    assert get_redis().llen(NEW_EVENTS_KEY) == get_redis().llen(LATER_EVENTS_KEY) == 0


def test_a_blocking_admit_wakes_for_an_event_that_may_wait(make_event, worker_config):
    echo = make_event()
    client = get_redis()
    threading.Timer(0.3, lambda: announce_events(client, [], [echo])).start()
    assert admit_new_events(client, config=worker_config, block_seconds=3) == 1
    assert queued(DEFAULT_QUEUE) == [event_job_id(echo, 0)]


def test_an_event_announced_twice_or_already_swept_gets_one_job(make_event, worker_config):
    from workers.queues import enqueue_event

    event_id = make_event()
    enqueue_event(get_redis(), event_id, attempt=0, config=worker_config)  # the sweeper got there first
    announce_events(get_redis(), [event_id])
    announce_events(get_redis(), [event_id])
    assert admit_all_waiting(get_redis(), config=worker_config) == 2
    assert queued() == [event_job_id(event_id, 0)]


def test_a_garbled_announcement_is_dropped_with_a_log_line(make_event, worker_config, caplog):
    event_id = make_event()
    get_redis().rpush(NEW_EVENTS_KEY, "not-an-id")
    announce_events(get_redis(), [event_id])
    with caplog.at_level(logging.WARNING, logger="workers.admitter"):
        assert admit_all_waiting(get_redis(), config=worker_config) == 2
    assert queued() == [event_job_id(event_id, 0)]
    assert any("not an event id" in r.getMessage() for r in caplog.records)


def test_batches_are_bounded_and_admit_all_waiting_drains_them(make_event, worker_config):
    ids = [make_event() for _ in range(5)]
    for event_id in ids:
        announce_events(get_redis(), [event_id])
    assert admit_new_events(get_redis(), config=worker_config, batch_size=2) == 2
    assert admit_all_waiting(get_redis(), config=worker_config) == 3
    assert queued() == [event_job_id(event_id, 0) for event_id in ids]


def test_a_blocking_admit_waits_for_the_next_announcement(make_event, worker_config):
    assert admit_new_events(get_redis(), config=worker_config, block_seconds=0.2) == 0
    event_id = make_event()
    client = get_redis()
    threading.Timer(0.3, lambda: announce_events(client, [event_id])).start()
    assert admit_new_events(client, config=worker_config, block_seconds=3) == 1
    assert queued() == [event_job_id(event_id, 0)]


def test_the_admitter_thread_admits_as_events_arrive_and_stops(make_event, worker_config):
    stop = threading.Event()
    admitter = Admitter(get_redis(), config=worker_config, stop=stop).start()
    try:
        event_id = make_event()
        announce_events(get_redis(), [event_id])
        deadline = time.monotonic() + 10
        while queued() != [event_job_id(event_id, 0)] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queued() == [event_job_id(event_id, 0)]
    finally:
        stop.set()
        admitter.thread.join(timeout=5)
    assert not admitter.thread.is_alive()


def test_the_admitter_survives_a_redis_outage(make_event, worker_config, caplog):
    """Redis unreachable: one warning, then it carries on once Redis answers again."""
    import redis

    from integration.embedded_redis import EmbeddedRedis

    server = EmbeddedRedis().start()
    port = server.port
    client = redis.Redis.from_url(server.url, socket_timeout=5, socket_connect_timeout=1)
    stop = threading.Event()
    admitter = Admitter(client, config=worker_config, stop=stop)
    try:
        server.stop()
        with caplog.at_level(logging.INFO, logger="workers.admitter"):
            admitter.start()
            time.sleep(2.5)
            server.port = port
            server.start()
            event_id = make_event()
            announce_events(client, [event_id])
            deadline = time.monotonic() + 15
            # Admitted = popped *and* enqueued (the pop comes first: waiting for an empty list alone was racy).
            def admitted() -> bool:
                return bool(get_queue(WEBHOOKS_QUEUE, client).get_job_ids()) and any(
                    "Redis is back" in r.getMessage() for r in caplog.records)

            while not admitted() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.llen(NEW_EVENTS_KEY) == 0
        warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
        assert len(warnings) == 1
        assert any("Redis is back" in r.getMessage() for r in caplog.records)
        assert get_queue(WEBHOOKS_QUEUE, client).get_job_ids() == [event_job_id(event_id, 0)]
    finally:
        stop.set()
        admitter.thread.join(timeout=10)
        server.stop()


def test_admission_keeps_only_admit_ahead_jobs_waiting_and_leaves_the_rest_announced(make_event, worker_config):
    """A flood stays as ids in the list (free) and becomes jobs only as fast as the workers take them."""
    ids = [make_event() for _ in range(12)]
    announce_events(get_redis(), ids)
    config = worker_config.override(admit_ahead=5)
    assert admit_new_events(get_redis(), config=config) == 5
    assert admit_new_events(get_redis(), config=config) == 0
    assert admit_all_waiting(get_redis(), config=config) == 0
    assert queued() == [event_job_id(event_id, 0) for event_id in ids[:5]]
    assert [int(raw) for raw in get_redis().lrange(NEW_EVENTS_KEY, 0, -1)] == ids[5:]
    # Two jobs taken by workers: two more admitted, in announcement order.
    queue = get_queue(WEBHOOKS_QUEUE, get_redis())
    for job_id in queued()[:2]:
        queue.remove(job_id)
    assert admit_new_events(get_redis(), config=config) == 2
    assert queued() == [event_job_id(event_id, 0) for event_id in ids[2:7]]


def test_each_queue_has_its_own_room(make_event, worker_config):
    """A full webhooks queue does not hold back events that may wait, nor the reverse."""
    calls, echoes = [make_event() for _ in range(3)], [make_event() for _ in range(3)]
    announce_events(get_redis(), calls, echoes)
    config = worker_config.override(admit_ahead=2)
    assert admit_all_waiting(get_redis(), config=config) == 4
    assert queued(WEBHOOKS_QUEUE) == [event_job_id(event_id, 0) for event_id in calls[:2]]
    assert queued(DEFAULT_QUEUE) == [event_job_id(event_id, 0) for event_id in echoes[:2]]
    get_queue(DEFAULT_QUEUE, get_redis()).empty()
    assert admit_new_events(get_redis(), config=config) == 1
    assert queued(DEFAULT_QUEUE) == [event_job_id(echoes[2], 0)]
    assert get_redis().llen(NEW_EVENTS_KEY) == 1


def test_a_blocking_admit_with_every_queue_full_pops_nothing_and_returns_soon(make_event, worker_config):
    config = worker_config.override(admit_ahead=1)
    first, second, echo, later_echo = make_event(), make_event(), make_event(), make_event()
    announce_events(get_redis(), [first, second], [echo, later_echo])
    assert admit_new_events(get_redis(), config=config) == 2
    started = time.monotonic()
    assert admit_new_events(get_redis(), config=config, block_seconds=5) == 0
    assert time.monotonic() - started < 2
    assert get_redis().lrange(NEW_EVENTS_KEY, 0, -1) == [str(second).encode()]
    assert get_redis().lrange(LATER_EVENTS_KEY, 0, -1) == [str(later_echo).encode()]


def test_a_blocking_admit_waits_only_on_lists_whose_queue_has_room(make_event, worker_config):
    """Webhooks queue full: a new urgent id stays announced, a new echo for the empty default queue is admitted."""
    config = worker_config.override(admit_ahead=1)
    first, second, echo = make_event(), make_event(), make_event()
    announce_events(get_redis(), [first])
    assert admit_new_events(get_redis(), config=config) == 1
    client = get_redis()
    threading.Timer(0.3, lambda: announce_events(client, [second], [echo])).start()
    assert admit_new_events(client, config=config, block_seconds=3) == 1
    assert queued(DEFAULT_QUEUE) == [event_job_id(echo, 0)]
    assert queued(WEBHOOKS_QUEUE) == [event_job_id(first, 0)]
    assert client.lrange(NEW_EVENTS_KEY, 0, -1) == [str(second).encode()]


def test_a_worker_in_a_flood_tops_its_queue_up_and_runs_every_event(make_event, worker_config, app, evidence_dir):
    from workers.config import set_worker_config

    ids = [make_event() for _ in range(25)]
    announce_events(get_redis(), ids)
    set_worker_config(app, worker_config.override(admit_ahead=3))
    TextbackSimpleWorker([get_queue(WEBHOOKS_QUEUE, get_redis())], connection=get_redis(),
                         serializer=SERIALIZER).work(burst=True)
    assert [r[0] for r in runs(evidence_dir)] == ids
    assert {load_event(event_id).status for event_id in ids} == {"done"}
    assert get_redis().llen(NEW_EVENTS_KEY) == 0


def test_a_burst_worker_admits_and_runs_announced_events(make_event, evidence_dir):
    event_id = make_event("TestRecord")
    announce_events(get_redis(), [event_id])
    TextbackSimpleWorker([get_queue(WEBHOOKS_QUEUE, get_redis())], connection=get_redis(),
                         serializer=SERIALIZER).work(burst=True)
    assert load_event(event_id).status == "done"
    assert [r[0] for r in runs(evidence_dir)] == [event_id]
