"""The RQ worker classes: in-process or forking, each handling database connections correctly.

`python -m workers` runs workers.concurrent.ConcurrentWorker (jobs in threads of the worker process, the
connection pool warm between jobs: on a busy 2-core host a forked horse spent 50-300 ms opening its first
PostgreSQL connection). TextbackSimpleWorker runs jobs in the process one at a time (the tests' burst worker).
A crashed or killed worker loses nothing either way: its heartbeat stops (or its lease expires) and the sweeper
hands the event to another worker.

TextbackWorker (WORKER_FORK_PER_JOB=true) is RQ's forking Worker, with connections owned by each horse.

RQ forks a work horse per job. A connection inherited across fork() would be shared by two processes
and corrupt both sessions, so the horse first forgets whatever the parent's pool holds (without closing
it: the sockets are the parent's), then uses a pool of its own for the job's several transactions
(claim, lease renewals, the handler's reads and writes, the outcome), and closes it cleanly at the end
instead of leaving the database to notice dropped sockets. Cheaper per job than a NullPool, which
would open and close a connection for every transaction.
"""

from __future__ import annotations

import contextlib

from redis.exceptions import RedisError
from rq import SimpleWorker, Worker
from rq.job import Job
from rq.queue import Queue
from sqlalchemy.exc import SQLAlchemyError

from integration.extensions import db
from workers.admitter import admit_new_events, admit_stored_events
from workers.config import get_worker_config

__all__ = ["BoundedUnsubscribe", "TextbackSimpleWorker", "TextbackWorker", "preload_job_code", "worker_class"]


class BoundedUnsubscribe:
    """RQ's unsubscribe, with every wait bounded (every worker class here, the tests' burst worker too).

    redis-py 8's PubSubWorkerThread.stop() joins the pubsub thread with no timeout, and measured here a stopping
    worker then hung in it: a SIGTERMed `python -m workers` for good (the Procfile's stop ended in a SIGKILL), a
    burst worker for up to a minute. A pubsub thread that has not ended within a second is a daemon thread and
    dies with the process.
    """

    def unsubscribe(self) -> None:
        thread = self.pubsub_thread
        if not thread:
            return
        self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
        with contextlib.suppress(RedisError, OSError):
            self.pubsub.unsubscribe()
        try:
            thread.stop(timeout=1)
        except TypeError:  # a redis-py whose stop() only clears the flag
            thread.stop()
        thread.join(timeout=1)
        if not thread.is_alive():
            with contextlib.suppress(RedisError, OSError):
                self.pubsub.close()


class _AdmitsNewEvents:
    """Before each dequeue, top the queues up with webhook events the receiver announced (one round trip).

    The maintenance process's admitter does this as events arrive; doing it here too means a busy worker
    never waits on the admitter. Each admits only up to WorkerConfig.admit_ahead jobs per queue, so a
    worker in a flood of webhooks runs jobs instead of building them for the whole flood. A burst worker
    (`--burst`, tests) with empty queues also admits new events from the inbox itself, so it does not stop
    before an announcement still on its way (the echo of a text it just sent, say) arrives.
    Runs in the app context the worker runs in.
    """

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        config = get_worker_config()
        # On a Redis error the dequeue below meets the same outage and RQ handles it; the sweeper covers events.
        with contextlib.suppress(RedisError):
            admit_new_events(self.connection, config=config)
        if timeout is None and not any(queue.count for queue in self.queues):
            # Burst mode is about to stop: admit events whose announcement may still be on its way.
            with contextlib.suppress(RedisError, SQLAlchemyError):
                admit_stored_events(db, self.connection, config=config)
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)


class TextbackWorker(BoundedUnsubscribe, _AdmitsNewEvents, Worker):
    """`rq.Worker` whose work horses start and end with their own database pool."""

    def perform_job(self, job: Job, queue: Queue) -> bool:
        if not self._is_horse:
            return super().perform_job(job, queue)
        if db.engine is not None:
            db.engine.dispose(close=False)
        try:
            return super().perform_job(job, queue)
        finally:
            db.dispose()


class TextbackSimpleWorker(BoundedUnsubscribe, _AdmitsNewEvents, SimpleWorker):
    """`rq.SimpleWorker`: jobs run in this process, one after another, sharing its connection pool (the tests'
    in-process burst worker; `python -m workers` runs workers.concurrent.ConcurrentWorker)."""


def worker_class(config) -> type[Worker] | type[SimpleWorker]:
    """The worker class WorkerConfig asks for: jobs in threads (workers.concurrent), or a forked horse per job."""
    from workers.concurrent import ConcurrentWorker

    return TextbackWorker if config.fork_per_job else ConcurrentWorker


def preload_job_code() -> list[str]:
    """Import every job and handler module once in the parent, before any fork.

    Otherwise each work horse imports them afresh (RQ resolves the job function inside the horse),
    which costs 100 ms or more per job for modules like phonenumbers. Returns the modules that failed to
    import, already logged: a broken handler fails its own events, it must not stop the worker.
    """
    import importlib
    import logging

    from workers import handlers, jobs  # noqa: F401 - the import is the point
    from workers.schedule import PERIODIC_JOBS

    modules = {target.partition(":")[0] for target in handlers.HANDLERS.values()}
    modules |= {job.func.partition(":")[0] for job in PERIODIC_JOBS}
    failed = []
    for name in sorted(modules):
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(name)
            logging.getLogger(__name__).error("cannot import job module %s: %s: %s", name, type(exc).__name__, exc)
    return failed
