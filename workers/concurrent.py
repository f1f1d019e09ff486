"""The worker that runs many jobs at once, in threads of one process (WORKER_CONCURRENCY).

Why threads: a job spends nearly all its time waiting on HighLevel (100-500 ms per API call, about five per
missed call), not on the CPU. One job at a time, a worker managed about 1.5 missed calls a second under that
latency. RQ's WorkerPool or forked work horses would need a process (~100 MB) per job in flight; threads share
one process, one database pool and one HTTP connection pool, and release the GIL while they wait.

What is RQ's and stays so: queues, job ids, registries, results and failures, retries, scheduled jobs. What
this class changes:
- The main thread only dequeues, and only when a slot is free, so the rest of a backlog stays in Redis
  (admission, workers.admitter, and queue order work as before). Each job runs in a pool thread, inside an app
  context of its own.
- `webhook_slots` of the slots take only webhook-event jobs: a burst of CRM follow-ups and echoes never keeps
  the next caller's text waiting for a free slot (the texts-first rule, per slot instead of per queue).
- Job timeouts use RQ's TimerDeathPenalty (SIGALRM reaches only the main thread); RQ's per-job state on the
  worker (`execution`) is per thread.
- Redis going away never ends the process: the dequeue loop logs one line, reconnects with backoff and logs
  one line when Redis is back; heartbeats and maintenance calls in between are skipped; a job whose RQ
  bookkeeping meets the outage is logged and left to the database (its inbox row is the record, and the
  sweeper runs the event again if it did not finish).
- SIGTERM stops the dequeue loop at once and lets the jobs in flight finish (warm shutdown); a second SIGTERM
  exits at once, and the events in flight are taken over by another worker (integration.liveness).
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from flask import Flask
from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.exceptions import DequeueTimeout, StopRequested
from rq.job import Job
from rq.queue import Queue
from rq.timeouts import TimerDeathPenalty
from rq.worker import WorkerStatus
from sqlalchemy.exc import SQLAlchemyError

from integration.extensions import db
from workers.admitter import admit_new_events, admit_stored_events
from workers.config import get_worker_config
from workers.queues import WEBHOOKS_QUEUE
from workers.worker import BoundedUnsubscribe

__all__ = ["ConcurrentWorker"]

log = logging.getLogger(__name__)

# Backoff while Redis is unreachable: first retry after 0.5 s, doubling to at most 5 s, so a Redis that comes
# back is noticed within 5 s (the text for an event stored meanwhile is due within 20 s of that).
_RECONNECT_FIRST_SECONDS = 0.5
_RECONNECT_MAX_SECONDS = 5.0
# While every slot but the webhook ones is busy, the dequeue looks at the webhook queue alone and comes back this
# often to see whether a slot for other work has freed up.
_WEBHOOKS_ONLY_WAIT_SECONDS = 1
_HEARTBEAT_EVERY_SECONDS = 1.0
_GIL_SWITCH_SECONDS = 0.001
_ADMIT_EVERY_SECONDS = 0.05


class ConcurrentWorker(BoundedUnsubscribe, SimpleWorker):
    """An RQ SimpleWorker whose jobs run in `concurrency` threads; see the module docstring."""

    death_penalty_class = TimerDeathPenalty

    def __init__(self, *args, app: Flask, concurrency: int, webhook_slots: int, **kwargs) -> None:
        # Before RQ's __init__, which assigns `execution` through the per-thread property below.
        self._per_thread = threading.local()
        super().__init__(*args, **kwargs)
        self.app = app
        self.concurrency = max(1, int(concurrency))
        # With one slot there is nothing to keep back: the one slot takes whatever comes first; nor is there for a
        # worker that takes no webhook events (workers.supervisor gives them to a process of their own).
        takes_webhooks = WEBHOOKS_QUEUE in self.queue_names()
        self.webhook_slots = min(max(0, int(webhook_slots)), self.concurrency - 1) if takes_webhooks else 0
        self._busy = 0
        self._slots = threading.Condition()
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="job")
        self._waiting_for_work = False
        self._redis_down_since: float | None = None
        self._last_heartbeat_at = 0.0
        self._last_admit_at = 0.0
        # Jobs popped together for free slots, handed out by the next dequeues (see _dequeue_from).
        self._ready: collections.deque[tuple[Job, Queue]] = collections.deque()
        # A thread whose database or HTTP answer has arrived waits for the GIL; Python hands it over every 5 ms
        # by default, so with dozens of threads every round trip of a missed call paid several milliseconds more.
        sys.setswitchinterval(_GIL_SWITCH_SECONDS)
        # One line per job is RQ's "Successfully completed ..."; its two more per job about the result are noise
        # at a hundred jobs a second.
        self.log_result_lifespan = False

    # --- RQ's per-job worker state, per thread ---

    @property
    def execution(self):
        return getattr(self._per_thread, "execution", None)

    @execution.setter
    def execution(self, value) -> None:
        self._per_thread.execution = value

    # --- Dequeue: only with a free slot, through Redis outages ---

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None
                                     ) -> tuple[Job, Queue] | None:
        """The next job for a free slot; None only in burst mode (`timeout` None) once there is nothing left."""
        burst = timeout is None
        looked_in_the_inbox = False
        while True:
            free = self._wait_for_free_slot()
            webhooks_only = free <= self.webhook_slots
            queues = [q for q in self._ordered_queues if q.name == WEBHOOKS_QUEUE] if webhooks_only \
                else self._ordered_queues
            wait = None if burst else (_WEBHOOKS_ONLY_WAIT_SECONDS if webhooks_only else timeout)
            try:
                result = self._dequeue_from(queues, wait, free=free)
            except DequeueTimeout:
                continue
            except RedisError as exc:  # connection refused or reset, a timeout, a Redis still loading its data
                self._wait_for_redis(exc)
                continue
            self._redis_is_back()
            if result is not None:
                return result
            if not burst:
                continue
            # Burst mode with nothing queued for the slots we have: a running job may enqueue more, and an
            # event's announcement may still be on its way; stop only when neither can bring work.
            if self._running():
                self._wait_for_a_job_to_finish()
                looked_in_the_inbox = False
                continue
            if not looked_in_the_inbox:
                self._admit_stored()
                looked_in_the_inbox = True
                continue
            return None

    def _dequeue_from(self, queues: list[Queue], wait: int | None, *, free: int = 1) -> tuple[Job, Queue] | None:
        """One dequeue, with as few Redis round trips as a busy worker can afford: the main thread dequeues for
        its slots (several jobs per missed call: the event, its echo, the CRM follow-ups), and every round trip it
        makes also waits for the GIL behind the job threads. So the worker's heartbeat (a TTL of minutes) goes
        at most once a second, its state only when it has nothing running, and its own top-up of the queues from
        the announcement lists at most every `_ADMIT_EVERY_SECONDS` (the maintenance admitter tops them up too).
        With several slots free, one round trip pops a job for each (`_pop_several`); the next dequeues hand them
        out without asking Redis."""
        if self._ready:
            return self._ready.popleft()
        now = time.monotonic()
        if not self._running():
            self.set_state(WorkerStatus.IDLE)
        if now - self._last_heartbeat_at >= _HEARTBEAT_EVERY_SECONDS:
            self.heartbeat()
            self._last_heartbeat_at = now
        if self.should_run_maintenance_tasks:
            self.run_maintenance_tasks()
        if now - self._last_admit_at >= _ADMIT_EVERY_SECONDS:
            admit_new_events(self.connection, config=get_worker_config(self.app))
            self._last_admit_at = now
        if free > 1:
            popped = self._pop_several(queues, free)
            if popped:
                self._ready.extend(popped[1:])
                return popped[0]
        self._waiting_for_work = True
        try:
            if self._stop_requested:
                raise StopRequested()
            result = self.queue_class.dequeue_any(queues, wait, connection=self.connection, job_class=self.job_class,
                                                   serializer=self.serializer,
                                                   death_penalty_class=self.death_penalty_class)
        finally:
            self._waiting_for_work = False
        if result is None:
            self._last_admit_at = 0.0  # found nothing: look at the announcement lists first next time
            return None
        job, queue = result
        job.redis_server_version = self.get_redis_server_version()
        self.log.debug("Worker %s: %s: %s", self.name, queue.name, job.id)
        return result

    def _pop_several(self, queues: list[Queue], count: int) -> list[tuple[Job, Queue]]:
        """Up to `count` waiting jobs, queues in priority order: one LPOP per queue and one fetch of the lot. Jobs
        other than webhook events never take the slots kept for those."""
        popped: list[tuple[Job, Queue]] = []
        for queue in queues:
            room = count - len(popped) if queue.name == WEBHOOKS_QUEUE else count - self.webhook_slots - len(popped)
            if room <= 0:
                continue
            raw_ids = self.connection.lpop(queue.key, room) or []
            ids = [raw.decode() if isinstance(raw, bytes) else raw for raw in raw_ids]
            if ids:
                jobs = self.job_class.fetch_many(ids, connection=self.connection, serializer=self.serializer)
                # A job deleted meanwhile (its TTL ran out) has nothing to run.
                popped.extend((job, queue) for job in jobs if job is not None)
            if len(popped) >= count:
                break
        version = self.get_redis_server_version() if popped else None
        for job, queue in popped:
            job.redis_server_version = version
            self.log.debug("Worker %s: %s: %s", self.name, queue.name, job.id)
        return popped

    def _wait_for_redis(self, exc: Exception) -> None:
        """One line when Redis goes away, then a quiet wait with backoff until it answers a PING."""
        if self._redis_down_since is None:
            self._redis_down_since = time.monotonic()
            log.error("Redis is unreachable (%s: %s); the worker keeps running and reconnects as soon as it is "
                      "back (jobs in flight finish; stored events are not lost)", type(exc).__name__, exc)
        delay = _RECONNECT_FIRST_SECONDS
        while not self._stop_requested:
            time.sleep(delay)
            try:
                self.connection.ping()
            except RedisError:
                delay = min(delay * 2, _RECONNECT_MAX_SECONDS)
                continue
            # Said now, not after the next dequeue: an idle worker's next dequeue blocks until work arrives.
            self._redis_is_back()
            return

    def _redis_is_back(self) -> None:
        if self._redis_down_since is not None:
            log.warning("Redis is reachable again after %.1f s; the worker goes on",
                        time.monotonic() - self._redis_down_since)
            self._redis_down_since = None
            # A Redis that restarted empty forgot this worker: register it again (best effort).
            with contextlib.suppress(RedisError):
                self.connection.hset(self.key, mapping=self.serialize())

    # --- Slots ---

    def _running(self) -> int:
        with self._slots:
            return self._busy

    def _wait_for_free_slot(self) -> int:
        """Block until a slot is free (heartbeating meanwhile); returns how many are free."""
        with self._slots:
            while self._busy >= self.concurrency:
                if self._stop_requested:
                    raise StopRequested()
                self._slots.wait(timeout=self.job_monitoring_interval)
                if self._busy >= self.concurrency:
                    self._slots.release()
                    try:
                        self.heartbeat()
                    finally:
                        self._slots.acquire()
            return self.concurrency - self._busy

    def _wait_for_a_job_to_finish(self) -> None:
        """Burst mode: a short wait (a job ends, or a new one may have been queued meanwhile: look again soon)."""
        with self._slots:
            if self._busy:
                self._slots.wait(timeout=0.05)

    def _admit_stored(self) -> None:
        """Burst mode: events whose announcement may still be on its way get their jobs (see workers.admitter)."""
        with contextlib.suppress(RedisError, SQLAlchemyError):
            admit_stored_events(db, self.connection, config=get_worker_config(self.app))

    # --- Running jobs ---

    def execute_job(self, job: Job, queue: Queue) -> None:
        with self._slots:
            self._busy += 1
        try:
            # A context of its own per job: the ids a job binds for its log lines (logging_setup) end with it.
            self._executor.submit(contextvars.Context().run, self._run_job, job, queue)
        except RuntimeError:  # the pool is shutting down: the job goes back to RQ's view as abandoned
            with self._slots:
                self._busy -= 1
            raise StopRequested() from None

    def _run_job(self, job: Job, queue: Queue) -> None:
        try:
            with self.app.app_context():
                self.prepare_execution(job)
                self.perform_job(job, queue)
        except RedisError as exc:
            log.warning("job %s: Redis failed during its bookkeeping (%s); the database decides whether its work "
                        "runs again", job.id, type(exc).__name__)
        except Exception:
            log.exception("job %s: the worker could not run it", job.id)
        finally:
            self.execution = None
            with self._slots:
                self._busy -= 1
                self._slots.notify_all()

    # --- What RQ's work loop calls between jobs: never fatal ---

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        if pipeline is not None:
            return super().heartbeat(timeout, pipeline=pipeline)
        with contextlib.suppress(RedisError):
            super().heartbeat(timeout)

    def check_for_suspension(self, burst: bool) -> None:
        with contextlib.suppress(RedisError):
            super().check_for_suspension(burst)

    def run_maintenance_tasks(self) -> None:
        with contextlib.suppress(RedisError):
            super().run_maintenance_tasks()

    def set_state(self, state: str, pipeline=None) -> None:
        if pipeline is not None:
            return super().set_state(state, pipeline=pipeline)
        self._state = state  # kept even when Redis cannot be told
        with contextlib.suppress(RedisError):
            super().set_state(state)

    # --- Stopping ---

    def _shutdown(self) -> None:
        """First SIGTERM: stop taking jobs now; the ones in flight finish in teardown()."""
        self._stop_requested = True
        with contextlib.suppress(RedisError):
            self.set_shutdown_requested_date()
        self.log.info("Worker %s: stopping; %d job(s) in flight finish first", self.name, self._running())
        if self._waiting_for_work:
            # The main thread only dequeues (jobs run in the pool), so interrupting its wait loses nothing.
            raise StopRequested()

    def request_force_stop(self, signum, frame) -> None:
        """Second SIGTERM: exit now. Events in flight are taken over by another worker once this one's heartbeat
        stops (integration.liveness); RQ's other jobs are re-run by their own sweeps."""
        if self._shutdown_requested_date is not None and \
                (time.time() - self._shutdown_requested_date.timestamp()) < 1:
            return
        self.log.warning("Worker %s: cold shut down with %d job(s) in flight", self.name, self._running())
        os._exit(1)

    def teardown(self) -> None:
        # Jobs popped for slots but not started go back to the front of their queues, in order.
        while self._ready:
            job, queue = self._ready.pop()
            with contextlib.suppress(RedisError):
                self.connection.lpush(queue.key, job.id)
        self._executor.shutdown(wait=True)
        try:
            super().teardown()
        except RedisError as exc:
            log.warning("worker %s: could not unregister from Redis (%s)", self.name, type(exc).__name__)
