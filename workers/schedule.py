"""Periodic jobs: a registry other capabilities add to, run by every `python -m workers` without duplicates.

Register a job by appending to PERIODIC_JOBS (at import of this module, i.e. here, so the worker sees it):

    PeriodicJob("refresh-idle-installations", "oauth.jobs:refresh_idle_installations", interval_seconds=3600)

Each interval is a numbered slot (`epoch seconds // interval`). Whichever worker first claims a slot
(`SET NX` on a key named after job and slot) enqueues the job with the deterministic id
`periodic-<name>-<slot>`; every other worker sees the key and does nothing, so N workers run it once.
Jobs run on the `low` queue by default and take no arguments: they load what they need themselves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from redis import Redis

from workers.config import WorkerConfig
from workers.queues import LOW_QUEUE, QUEUE_NAMES, default_retry, enqueue

__all__ = ["PERIODIC_JOBS", "PeriodicJob", "enqueue_due_jobs"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,60}$")


@dataclass(frozen=True)
class PeriodicJob:
    """A job run every `interval_seconds`; `func` is "module:function" (as in workers.handlers)."""

    name: str
    func: str
    interval_seconds: int
    queue: str = LOW_QUEUE
    job_timeout: int = 300

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"periodic job name {self.name!r} may use only letters, digits, '_' and '-'")
        if ":" not in self.func:
            raise ValueError(f"periodic job {self.name}: func must be 'module:function', got {self.func!r}")
        if self.interval_seconds < 1:
            raise ValueError(f"periodic job {self.name}: interval must be at least 1 s")
        if self.queue not in QUEUE_NAMES:
            raise ValueError(f"periodic job {self.name}: unknown queue {self.queue!r}")

    @property
    def dotted_path(self) -> str:
        module, _, function = self.func.partition(":")
        return f"{module}.{function}"

    def slot(self, now: datetime) -> int:
        return int(now.timestamp() // self.interval_seconds)


# Capabilities add their jobs here (name, "module:function", interval in seconds).
PERIODIC_JOBS: list[PeriodicJob] = [
    # OAuth: refresh tokens die after a year unused; retry sub-accounts whose Location token failed to mint.
    PeriodicJob("refresh-idle-installations", "oauth.jobs:refresh_idle_installations", interval_seconds=6 * 3600),
    PeriodicJob("retry-failed-provisioning", "oauth.jobs:retry_failed_provisioning", interval_seconds=60),
    # Text back: deferred texts (quiet hours, delays, retries) that are due but whose scheduled job Redis lost.
    PeriodicJob("textback-due-texts", "workers.textback:enqueue_due_texts", interval_seconds=10, queue="default"),
    # CRM follow-up: leads for texted calls a hook missed, and due tag/note/opportunity/task retries.
    PeriodicJob("crm-due-work", "workers.crm:enqueue_due_crm_work", interval_seconds=15, queue="default"),
    # Booking agent: turns due (a caller's text past its grace period, a text owed) whose job Redis lost.
    PeriodicJob("agent-due-turns", "workers.agent:enqueue_due_agent_turns", interval_seconds=15, queue="default"),
    # Location profiles: warm every live location's (missing, or 12 h old) so no missed call waits on them.
    PeriodicJob("warm-location-profiles", "workers.profiles:warm_location_profiles", interval_seconds=300),
    # Inbox retention: finished webhook events older than INBOX_RETENTION_DAYS (a run stops after 2 minutes).
    PeriodicJob("prune-inbox", "workers.inbox_retention:prune_inbox", interval_seconds=3600),
]


def enqueue_due_jobs(redis: Redis, *, now: datetime, config: WorkerConfig,
                     jobs: Iterable[PeriodicJob] | None = None) -> list[str]:
    """Enqueue each job whose current slot nobody has claimed yet; returns the job ids this call enqueued."""
    enqueued = []
    for job in PERIODIC_JOBS if jobs is None else jobs:
        slot = job.slot(now)
        marker = f"textback:periodic:{job.name}:{slot}"
        # Keep the marker two intervals so a slow clock on another worker cannot re-claim the slot.
        if not redis.set(marker, "1", nx=True, ex=max(2 * job.interval_seconds, 60)):
            continue
        job_id = f"periodic-{job.name}-{slot}"
        enqueue(job.queue, job.dotted_path, connection=redis, job_timeout=job.job_timeout,
                result_ttl=config.result_ttl, failure_ttl=config.failure_ttl, job_id=job_id,
                retry=default_retry(config))
        log.info("periodic job %s enqueued as %s", job.name, job_id)
        enqueued.append(job_id)
    return enqueued
