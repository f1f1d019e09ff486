"""The sweeper: every couple of seconds, make sure every event that should be running has a job.

Redis is only the dispatch channel (reliability-catalogue §0.9); the inbox table is the record. Three
things leave a stored event without a live job, and the sweeper repairs all of them (an event still
waiting in an announcement list, workers.admitter, is not one of them: it is left to the admitter):
- the receiver's enqueue failed (Redis down or stalled at ack time), or Redis lost its data;
- a retry's scheduled job was lost;
- the worker processing it died (`kill -9`, OOM, a host going away): its lease stops being renewed.

Safe with many workers: a Redis lock lets one sweeper run per tick, and even without it the unique
job ids and the atomic claim keep a doubly swept event from running twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import LockError
from rq.registry import StartedJobRegistry

from integration.db import Database, utcnow
from workers.config import WorkerConfig
from workers.inbox import sweepable_events
from workers.queues import QUEUE_NAMES, SERIALIZER, announced_from, enqueue_event, live_event_jobs

__all__ = ["SweepReport", "Sweeper"]

log = logging.getLogger(__name__)

LOCK_NAME = "textback:sweeper:lock"
# Where the last sweep stopped: after an outage the backlog can exceed one batch, and rows that already
# have a queued job must not hide the ones behind them, so successive sweeps page through by id.
CURSOR_KEY = "textback:sweeper:cursor"
# Let RQ move jobs of dead workers out of its started registry about every 30 s (tidiness only:
# our own lease, not RQ's registry, decides when an event is re-run).
_REGISTRY_CLEANUP_EVERY = 15


@dataclass
class SweepReport:
    """What one sweep did; `skipped` names why it did nothing (another sweeper held the lock)."""

    counts: Counter = field(default_factory=Counter)
    skipped: str | None = None

    @property
    def enqueued(self) -> int:
        return self.counts["enqueued"] + self.counts["replaced"]


class Sweeper:
    """Re-enqueues stray inbox events. Call `sweep_once()` on a timer (see workers.maintenance)."""

    def __init__(self, *, database: Database, redis: Redis, config: WorkerConfig) -> None:
        self.database = database
        self.redis = redis
        self.config = config
        self._sweeps = 0

    def sweep_once(self) -> SweepReport:
        """One pass under the cluster-wide lock. Raises on database/Redis errors (the loop logs and goes on)."""
        report = SweepReport()
        lock = self.redis.lock(LOCK_NAME, timeout=max(10.0, self.config.sweep_interval_seconds * 5),
                               blocking=False)
        if not lock.acquire(blocking=False):
            report.skipped = "another sweeper holds the lock"
            return report
        try:
            self._sweep(report)
        finally:
            try:
                lock.release()
            except LockError:
                # Our lock expired mid-sweep (a very slow database); harmless, see the module docstring.
                log.warning("sweeper lock expired before release")
        return report

    def _sweep(self, report: SweepReport) -> None:
        config = self.config
        cursor = int(self.redis.get(CURSOR_KEY) or 0)
        # Read before the database: an id popped in between still counts as announced, so it is left for the
        # next sweep (its admitter enqueues it, or died and the list has moved past it) rather than doubled.
        announced = announced_from(self.redis)
        strays = sweepable_events(
            self.database, now=utcnow(), min_age_seconds=config.sweep_min_age_seconds,
            lease_seconds=config.event_lease_seconds, retry_delays=config.event_retry_delays,
            limit=config.sweep_batch_size, after_id=cursor, announced=announced,
            dead_after=config.dead_after_seconds,
        )
        # A short page means we reached the end: start from the beginning next time.
        next_cursor = strays[-1][0] if len(strays) == config.sweep_batch_size else 0
        self.redis.set(CURSOR_KEY, next_cursor, ex=3600)
        live = live_event_jobs(self.redis, strays, lease_seconds=config.event_lease_seconds) if strays else set()
        if live:
            report.counts["already-queued"] += len(live)
        for event_id, attempts in strays:
            if event_id in live:
                continue
            outcome = enqueue_event(self.redis, event_id, attempt=attempts, config=config, replace_stale=True)
            report.counts[outcome.result] += 1
            if outcome.result != "already-queued":
                log.info("sweeper: event %s %s as job %s", event_id, outcome.result, outcome.job_id)
        self._sweeps += 1
        if self._sweeps % _REGISTRY_CLEANUP_EVERY == 1:
            for name in QUEUE_NAMES:
                StartedJobRegistry(name, connection=self.redis, serializer=SERIALIZER).cleanup()
