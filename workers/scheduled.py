"""RQ's scheduled jobs (an event's retry after a delay, a deferred text, CRM retries) moved to their queues when
due, from the maintenance loop instead of RQ's scheduler process.

RQ's scheduler is a child process of the worker that exits on its first Redis error, and its locks last a
minute, so after a Redis blip or a killed worker nothing scheduled ran until a worker noticed (RQ checks every
ten minutes) and the old lock had expired. Here the move is one step of the maintenance tick (every
SWEEP_INTERVAL_SECONDS): a Redis outage only fails that tick, and the next one after Redis is back moves what is
due. A short lock keeps two maintenance processes from moving the same job twice.
"""

from __future__ import annotations

import contextlib

from redis import Redis
from redis.exceptions import LockError
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.utils import current_timestamp

from workers.queues import QUEUE_NAMES, SERIALIZER, get_queue

__all__ = ["enqueue_due_scheduled_jobs"]

LOCK_NAME = "textback:scheduler:lock"
_LOCK_SECONDS = 10


def enqueue_due_scheduled_jobs(redis: Redis, *, queue_names=QUEUE_NAMES) -> int | None:
    """Move every scheduled job that is due to its queue; how many were moved, None if another process is at it.

    Raises:
        redis.RedisError: Redis is unreachable (the maintenance loop logs it and tries again next tick).
    """
    lock = redis.lock(LOCK_NAME, timeout=_LOCK_SECONDS, blocking=False)
    if not lock.acquire(blocking=False):
        return None
    try:
        moved = 0
        for name in queue_names:
            registry = ScheduledJobRegistry(name, connection=redis, serializer=SERIALIZER)
            job_ids = registry.get_jobs_to_schedule(current_timestamp())
            if not job_ids:
                continue
            queue = get_queue(name, redis)
            with redis.pipeline() as pipeline:
                for job in Job.fetch_many(job_ids, connection=redis, serializer=SERIALIZER):
                    if job is not None:  # deleted meanwhile (its TTL ran out): nothing to run
                        queue.enqueue_job(job, pipeline=pipeline, at_front=job.should_enqueue_at_front())
                for job_id in job_ids:
                    registry.remove(job_id, pipeline=pipeline)
                pipeline.execute()
            moved += len(job_ids)
        return moved
    finally:
        with contextlib.suppress(LockError):
            lock.release()
