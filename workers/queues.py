"""Queue names and the one way jobs are enqueued (style-anchors habit 10 and 11).

Every enqueue goes through `enqueue()` here so each job gets an explicit timeout, result and failure
TTLs, the JSON serializer (pickle would let anyone who can write to Redis run code in our workers,
reliability-catalogue #46) and, where asked, a deterministic, RQ-safe job id.

This module imports only RQ and Redis, so the web process can use it without pulling in workers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import utcparse

__all__ = [
    "DEFAULT_QUEUE",
    "LATER_EVENTS_KEY",
    "LOW_QUEUE",
    "NEW_EVENTS_KEY",
    "QUEUE_NAMES",
    "SERIALIZER",
    "WEBHOOKS_QUEUE",
    "AnnouncedFrom",
    "EnqueueOutcome",
    "announce_events",
    "announced_from",
    "default_retry",
    "enqueue",
    "enqueue_event",
    "enqueue_run_at",
    "event_job_id",
    "get_queue",
    "live_event_jobs",
    "live_jobs",
    "safe_job_id",
]

# Webhook events first: a missed call waiting behind a nightly sync is exactly what we must avoid.
WEBHOOKS_QUEUE = "webhooks"
DEFAULT_QUEUE = "default"
LOW_QUEUE = "low"
QUEUE_NAMES = (WEBHOOKS_QUEUE, DEFAULT_QUEUE, LOW_QUEUE)

SERIALIZER = JSONSerializer
PROCESS_EVENT = "workers.jobs.process_event"
# New inbox events are announced here (their ids, RPUSHed by the web process's announcer thread) instead of
# an RQ job being built on the ack path, which cost more CPU than storing the event; workers.admitter turns
# announcements into jobs.
NEW_EVENTS_KEY = "textback:inbox:new"
# Events that may wait behind missed calls (integration.inbox.can_wait) are announced here, for `default`.
LATER_EVENTS_KEY = "textback:inbox:new:later"

# RQ 2.8+ accepts only these characters in a custom job id.
_SAFE_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_TERMINAL = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
_WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def get_queue(name: str, connection: Redis) -> Queue:
    """The named queue on `connection`, always with our serializer."""
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}; known: {', '.join(QUEUE_NAMES)}")
    return Queue(name, connection=connection, serializer=SERIALIZER)


def safe_job_id(text: str) -> str:
    """`text` when RQ accepts it as a job id, else a stable hash of it (same input, same id)."""
    if _SAFE_JOB_ID.match(text):
        return text
    return "h-" + hashlib.sha256(text.encode()).hexdigest()[:40]


def event_job_id(event_id: int, attempt: int) -> str:
    """The job id for the run of inbox event `event_id` that follows `attempt` earlier claims.

    One id per (event, attempt): a job that is already queued for that step is never duplicated,
    and the next step (a retry, or a rescue after a dead worker) gets a fresh id.
    """
    return f"webhook-event-{int(event_id)}-{int(attempt)}"


def default_retry(config) -> Retry | None:
    """RQ retry policy for ordinary jobs, from WorkerConfig (RQ_RETRY_MAX / RQ_RETRY_INTERVALS)."""
    if config.rq_retry_max <= 0:
        return None
    return Retry(max=config.rq_retry_max, interval=list(config.rq_retry_intervals))


def enqueue(
    queue_name: str,
    func: str,
    *args: object,
    connection: Redis,
    job_timeout: int,
    result_ttl: int,
    failure_ttl: int,
    job_id: str | None = None,
    unique: bool = False,
    retry: Retry | None = None,
    delay_seconds: float = 0,
    kwargs: dict | None = None,
) -> Job:
    """Enqueue `func` ("module.function" dotted path) with every lifetime stated explicitly.

    `delay_seconds > 0` schedules it (needs a worker started with the scheduler, as `python -m workers` is).

    Raises:
        DuplicateJobError: `unique=True` and a job with `job_id` still exists.
        redis.RedisError: Redis is unreachable.
    """
    if job_id is not None and not _SAFE_JOB_ID.match(job_id):
        raise ValueError(f"job id {job_id!r} has characters RQ rejects; pass it through safe_job_id()")
    queue = get_queue(queue_name, connection)
    if delay_seconds <= 0:
        return queue.enqueue_call(
            func, args=args, kwargs=kwargs, timeout=job_timeout, result_ttl=result_ttl, failure_ttl=failure_ttl,
            job_id=job_id, unique=unique, retry=retry,
        )
    # Queue.enqueue_in ignores `unique`; schedule_job honours it.
    job = queue.create_job(
        func, args=args, kwargs=kwargs, timeout=job_timeout, result_ttl=result_ttl, failure_ttl=failure_ttl,
        job_id=job_id, retry=retry, status=JobStatus.SCHEDULED,
    )
    return queue.schedule_job(job, datetime.now(UTC) + timedelta(seconds=delay_seconds), unique=unique)


def enqueue_run_at(queue_name: str, func: str, *args: object, connection: Redis, job_id: str, when: datetime,
                   job_timeout: int, result_ttl: int, failure_ttl: int, replace_finished: bool = False) -> bool:
    """Run `func(*args)` at `when` (now if it is past) under `job_id`, unless that run is already queued.

    One job id per (thing, time): scheduling the same run twice is a no-op (False). `replace_finished`
    replaces a job under that id that already ran or failed (a sweep does, when the database says the
    run is still due). `job_id` must be RQ-safe (see safe_job_id).
    """
    if replace_finished:
        try:
            existing = Job.fetch(job_id, connection=connection, serializer=SERIALIZER)
        except NoSuchJobError:
            existing = None
        if existing is not None and existing.get_status(refresh=False) in _TERMINAL:
            existing.delete()
    delay = max(0.0, (when - datetime.now(UTC)).total_seconds())
    try:
        enqueue(queue_name, func, *args, connection=connection, job_timeout=job_timeout, result_ttl=result_ttl,
                failure_ttl=failure_ttl, job_id=job_id, unique=True, delay_seconds=delay)
    except DuplicateJobError:
        return False
    return True


@dataclass(frozen=True)
class EnqueueOutcome:
    """What `enqueue_event` did: "enqueued", "already-queued" (a live job exists) or "replaced" (a dead one did)."""

    result: str
    job_id: str


def enqueue_event(
    connection: Redis,
    event_id: int,
    *,
    attempt: int,
    config,
    delay_seconds: float = 0,
    replace_stale: bool = False,
    queue: str = WEBHOOKS_QUEUE,
) -> EnqueueOutcome:
    """Enqueue `process_event(event_id)` on `queue` (webhooks unless it may wait) under its deterministic job id.

    With `replace_stale` (the sweeper), a job that exists under that id but can no longer run the
    event (finished, failed, stopped, or started longer ago than the lease by a worker that died
    before claiming) is deleted and enqueued afresh; a queued or scheduled job is left alone.
    """
    job_id = event_job_id(event_id, attempt)
    options = dict(
        connection=connection, job_timeout=config.event_job_timeout, result_ttl=config.result_ttl,
        failure_ttl=config.failure_ttl, job_id=job_id, unique=True, delay_seconds=delay_seconds,
    )
    try:
        enqueue(queue, PROCESS_EVENT, int(event_id), **options)
        return EnqueueOutcome("enqueued", job_id)
    except DuplicateJobError:
        if not replace_stale or not _job_is_stale(connection, job_id, lease_seconds=config.event_lease_seconds):
            return EnqueueOutcome("already-queued", job_id)
    Job(job_id, connection=connection, serializer=SERIALIZER).delete()
    try:
        enqueue(queue, PROCESS_EVENT, int(event_id), **options)
    except DuplicateJobError:
        # Another sweeper replaced it between our delete and enqueue: that job will run the event.
        return EnqueueOutcome("already-queued", job_id)
    return EnqueueOutcome("replaced", job_id)


def announce_events(connection: Redis, event_ids: list[int], later_ids: list[int] = ()) -> None:
    """Tell the admitter these new events are stored, in order, in one round trip; `later_ids` may wait behind
    missed calls (integration.inbox.can_wait).

    Raises:
        redis.RedisError: Redis is unreachable.
    """
    pushes = [(key, ids) for key, ids in ((NEW_EVENTS_KEY, event_ids), (LATER_EVENTS_KEY, later_ids)) if ids]
    if len(pushes) == 1:
        connection.rpush(pushes[0][0], *(int(event_id) for event_id in pushes[0][1]))
        return
    pipeline = connection.pipeline(transaction=False)
    for key, ids in pushes:
        pipeline.rpush(key, *(int(event_id) for event_id in ids))
    pipeline.execute()


@dataclass(frozen=True)
class AnnouncedFrom:
    """Where each announcement list starts: the lowest event id among its first few ids, None when it is empty.

    Ids are pushed in the order they were stored, give or take the interleaving of a few web processes, so
    an event at or above that id that has never run is, as far as the sweeper can tell, still waiting its
    turn in the list (workers.admitter keeps a burst there). One that really lost its announcement is swept
    once the list has moved past it: no later than it would have run anyway.
    """

    urgent: int | None
    later: int | None

    @property
    def either(self) -> int | None:
        """For an event that may be in either list."""
        present = [first for first in (self.urgent, self.later) if first is not None]
        return min(present) if present else None


# Enough to see past the interleaving of the web processes' announcer threads.
_ANNOUNCED_PEEK = 100


def announced_from(connection: Redis) -> AnnouncedFrom:
    """The start of each announcement list (see AnnouncedFrom); one round trip.

    Raises:
        redis.RedisError: Redis is unreachable.
    """
    pipeline = connection.pipeline(transaction=False)
    for key in (NEW_EVENTS_KEY, LATER_EVENTS_KEY):
        pipeline.lrange(key, 0, _ANNOUNCED_PEEK - 1)
    firsts = []
    for raw_ids in pipeline.execute():
        ids = [int(raw) for raw in raw_ids if raw.isdigit()]
        firsts.append(min(ids) if ids else None)
    return AnnouncedFrom(urgent=firsts[0], later=firsts[1])


def live_event_jobs(connection: Redis, events: list[tuple[int, int]], *, lease_seconds: float) -> set[int]:
    """Ids of those (event id, attempt) whose job is plainly alive: waiting, or started within the lease.

    One pipelined round trip for the lot. During a backlog every pending event looks like a stray to the
    sweeper; checking them one `enqueue_event` at a time (a job built, a duplicate refused, the job fetched)
    cost the maintenance process half a core while the workers were trying to catch up. What this cannot
    vouch for still goes through `enqueue_event`, which decides.
    """
    return live_jobs(connection, {event_id: event_job_id(event_id, attempt) for event_id, attempt in events},
                     lease_seconds=lease_seconds)


def live_jobs(connection: Redis, job_ids: dict, *, lease_seconds: float) -> set:
    """The keys of `job_ids` ({key: job id}) whose job is waiting, or started within `lease_seconds`; one
    pipelined round trip (see live_event_jobs)."""
    pipeline = connection.pipeline(transaction=False)
    for job_id in job_ids.values():
        pipeline.hmget(Job.key_for(job_id), "status", "started_at")
    oldest_live_start = datetime.now(UTC) - timedelta(seconds=lease_seconds)
    live = set()
    for key, (status, started_at) in zip(job_ids, pipeline.execute(), strict=True):
        status = status.decode() if status is not None else None
        started_recently = (status == JobStatus.STARTED and bool(started_at)
                            and utcparse(started_at.decode()) >= oldest_live_start)
        if status in _WAITING or started_recently:
            live.add(key)
    return live


def _job_is_stale(connection: Redis, job_id: str, *, lease_seconds: float) -> bool:
    try:
        job = Job.fetch(job_id, connection=connection, serializer=SERIALIZER)
    except NoSuchJobError:
        return True
    status = job.get_status(refresh=False)
    if status in _TERMINAL:
        return True
    if status == JobStatus.STARTED and job.started_at is not None:
        started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=UTC)
        return datetime.now(UTC) - started > timedelta(seconds=lease_seconds)
    return False
