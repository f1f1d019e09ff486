"""Worker plumbing: configuration parsing, job ids, the job-id log stamp, the maintenance loop."""

from __future__ import annotations

import logging

import pytest

from integration.config import ConfigError
from integration.extensions import get_redis
from tests.workers.helpers import load_event
from workers.concurrent import ConcurrentWorker
from workers.config import WorkerConfig, load_worker_config
from workers.job_logging import CurrentJobFilter
from workers.maintenance import MaintenanceLoop
from workers.queues import (
    SERIALIZER,
    WEBHOOKS_QUEUE,
    default_retry,
    enqueue,
    event_job_id,
    get_queue,
    safe_job_id,
)
from workers.worker import TextbackSimpleWorker, TextbackWorker, worker_class


def test_worker_config_reads_the_environment():
    config = load_worker_config({"WORKER_QUEUES": "webhooks, low", "EVENT_LEASE_SECONDS": "9.5",
                                 "EVENT_RETRY_DELAYS": "1, 2,3", "WORKER_FORK_PER_JOB": "yes",
                                 "WORKER_ADMIT_AHEAD": "50"})
    assert (config.queues, config.event_lease_seconds, config.event_retry_delays, config.fork_per_job,
            config.admit_ahead) == (("webhooks", "low"), 9.5, (1, 2, 3), True, 50)
    assert load_worker_config({}) == WorkerConfig()


@pytest.mark.parametrize(("name", "value"), [
    ("EVENT_RETRY_DELAYS", "5,soon"), ("EVENT_RETRY_DELAYS", "-1"), ("EVENT_LEASE_SECONDS", "0.5"),
    ("EVENT_MAX_ATTEMPTS", "many"), ("WORKER_FORK_PER_JOB", "maybe"), ("WORKER_ADMIT_AHEAD", "0"),
    ("WORKER_ADMIT_AHEAD", "lots"),
])
def test_bad_worker_settings_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_worker_config({name: value})


def test_retry_delay_is_clamped_to_the_list():
    config = WorkerConfig(event_retry_delays=(5, 30))
    assert [config.retry_delay(n) for n in (0, 1, 2, 3, 10)] == [5, 5, 30, 30, 30]


def test_default_retry_comes_from_config():
    retry = default_retry(WorkerConfig(rq_retry_max=2, rq_retry_intervals=(1, 9)))
    assert (retry.max, retry.intervals) == (2, [1, 9])
    assert default_retry(WorkerConfig(rq_retry_max=0)) is None


@pytest.mark.parametrize("text", ["wh 1/2", "ü", "x" * 101, "a:b", ""])
def test_unsafe_job_ids_become_stable_hashes(text):
    job_id = safe_job_id(text)
    assert job_id == safe_job_id(text) and job_id.startswith("h-") and len(job_id) == 42


def test_safe_job_ids_pass_through():
    assert safe_job_id("webhook-event-1_2") == "webhook-event-1_2"
    assert event_job_id(12, 3) == "webhook-event-12-3"


def test_enqueue_refuses_an_id_rq_would_reject(app_context):
    with pytest.raises(ValueError, match="safe_job_id"):
        enqueue(WEBHOOKS_QUEUE, "workers.jobs.process_event", 1, connection=get_redis(), job_timeout=1,
                result_ttl=1, failure_ttl=1, job_id="has space")


def test_unknown_queue_is_refused(app_context):
    with pytest.raises(ValueError, match="unknown queue"):
        get_queue("urgent", get_redis())


def test_worker_class_follows_config():
    assert worker_class(WorkerConfig(fork_per_job=False)) is ConcurrentWorker
    assert worker_class(WorkerConfig(fork_per_job=True)) is TextbackWorker


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(CurrentJobFilter())

    def emit(self, record):
        self.records.append(record)


def test_log_lines_inside_a_job_carry_its_id(make_event):
    event_id = make_event("TestRecord")
    collector = _Collect()
    logger = logging.getLogger("workers.jobs")
    logger.addHandler(collector)
    # Independent of whatever level earlier tests left on the root logger.
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        logging.getLogger("outside").addHandler(collector)
        logging.getLogger("outside").warning("not in a job")
        get_queue(WEBHOOKS_QUEUE, get_redis()).enqueue_call(
            "workers.jobs.process_event", args=(event_id,), job_id="log-stamp-test")
        TextbackSimpleWorker([get_queue(WEBHOOKS_QUEUE, get_redis())], connection=get_redis(),
                     serializer=SERIALIZER).work(burst=True)
    finally:
        logger.setLevel(previous_level)
        logger.removeHandler(collector)
        logging.getLogger("outside").removeHandler(collector)
    outside, *inside = collector.records
    assert (outside.job_id, outside.job_tag) == ("-", "")
    assert inside and {r.job_id for r in inside} == {"log-stamp-test"}
    assert {r.job_func for r in inside} == {"workers.jobs.process_event"}
    assert inside[0].job_tag == " [job log-stamp-test]"


def test_maintenance_tick_sweeps_and_survives_a_dead_database(settings, app, app_context, make_event, caplog):
    event_id = make_event("TestRecord")
    MaintenanceLoop(app).tick()
    assert get_queue(WEBHOOKS_QUEUE, get_redis()).get_job_ids() == [event_job_id(event_id, 0)]
    assert load_event(event_id).status == "pending"

    from integration import create_app
    from integration.embedded_redis import free_port
    from workers.config import set_worker_config

    broken = create_app(settings.override(database_url=f"postgresql+psycopg://x@127.0.0.1:{free_port()}/x"))
    set_worker_config(broken, WorkerConfig())
    loop = MaintenanceLoop(broken)
    with caplog.at_level(logging.WARNING, logger="workers.maintenance"):
        loop.tick()
        loop.tick()
    warnings = [r.getMessage() for r in caplog.records if r.name == "workers.maintenance"]
    assert warnings == ["maintenance sweep failed (OperationalError); retrying every tick"]


def test_the_start_up_token_check_leaves_no_connection_for_the_maintenance_fork_to_inherit(app, settings):
    # The maintenance process disposes the pool it inherits; a pooled connection of the parent's would be closed
    # under the parent (PostgreSQL ends the session), and the worker's first job would fail on it.
    from integration.extensions import db
    from workers.__main__ import _unreadable_tokens

    assert _unreadable_tokens(settings) is None
    assert db.engine.pool.checkedin() == 0
