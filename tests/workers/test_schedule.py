"""Periodic jobs: one run per interval however many workers tick, and registry entries are validated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integration.extensions import get_redis
from workers.queues import LOW_QUEUE, get_queue
from workers.schedule import PeriodicJob, enqueue_due_jobs

JOB = PeriodicJob("test-tick", "tests.workers.fixture_handlers:record", interval_seconds=60)
START = datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)


def test_many_workers_ticking_in_one_interval_enqueue_once(app_context, worker_config):
    results = [enqueue_due_jobs(get_redis(), now=START + timedelta(seconds=s), config=worker_config, jobs=[JOB])
               for s in (0, 1, 30, 54)]
    assert results == [[f"periodic-test-tick-{JOB.slot(START)}"], [], [], []]
    assert get_queue(LOW_QUEUE, get_redis()).get_job_ids() == results[0]


def test_next_interval_enqueues_again(app_context, worker_config):
    first = enqueue_due_jobs(get_redis(), now=START, config=worker_config, jobs=[JOB])
    second = enqueue_due_jobs(get_redis(), now=START + timedelta(seconds=60), config=worker_config, jobs=[JOB])
    assert len(first) == len(second) == 1 and first != second


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "has space"}, "letters, digits"),
    ({"func": "module.function"}, "module:function"),
    ({"interval_seconds": 0}, "at least 1 s"),
    ({"queue": "urgent"}, "unknown queue"),
])
def test_bad_registry_entries_are_refused(kwargs, message):
    fields = {"name": "ok", "func": "a.b:c", "interval_seconds": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        PeriodicJob(**fields)
