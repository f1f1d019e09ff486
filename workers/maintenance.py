"""The maintenance process: the sweeper, RQ's scheduled jobs and the periodic jobs on one ~2 s timer, and the
admitter.

The admitter (workers.admitter) is a thread of this process that turns the receiver's announcements of new
webhook events into jobs as they arrive.

`python -m workers` runs it in a child process forked before the RQ worker starts, rather than in a
thread of the worker: RQ forks a work horse for every job, and forking a process that has other
threads running can copy a lock held mid-operation into the child (a logging or connection-pool lock),
which then deadlocks. A separate process also cannot be starved or crashed by a job, and it dies with
its worker: it exits on SIGTERM, and on its own when the worker that started it disappears (`kill -9`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time

from flask import Flask

from integration.db import utcnow
from integration.extensions import db, get_redis
from workers.config import get_worker_config
from workers.schedule import enqueue_due_jobs
from workers.scheduled import enqueue_due_scheduled_jobs
from workers.sweeper import Sweeper

__all__ = ["MaintenanceLoop", "start_maintenance_process"]

log = logging.getLogger(__name__)

# A failing dependency is logged when the error changes, and at most this often while it persists.
_REPEAT_ERROR_LOG_SECONDS = 60.0


class MaintenanceLoop:
    """Runs `tick()` every `sweep_interval_seconds` until `stop` is set (or the parent process is gone)."""

    def __init__(self, app: Flask, *, stop: threading.Event | None = None, parent_pid: int | None = None) -> None:
        self.app = app
        self.stop = stop or threading.Event()
        self.parent_pid = parent_pid
        self._last_errors: dict[str, tuple[str, float]] = {}
        self._sweeper: Sweeper | None = None

    def tick(self) -> None:
        """One sweep, scheduled jobs that are due, and one periodic-job check; errors are logged, never raised (the
        next tick retries)."""
        with self.app.app_context():
            config = get_worker_config(self.app)
            redis = get_redis(self.app)
            if self._sweeper is None:
                self._sweeper = Sweeper(database=db, redis=redis, config=config)
            self._guard("sweep", self._sweeper.sweep_once)
            self._guard("scheduled jobs", lambda: enqueue_due_scheduled_jobs(redis))
            self._guard("periodic jobs", lambda: enqueue_due_jobs(redis, now=utcnow(), config=config))

    def run(self) -> None:
        interval = get_worker_config(self.app).sweep_interval_seconds
        log.info("maintenance loop started (sweep every %.1f s)", interval)
        while not self.stop.is_set():
            started = time.monotonic()
            self.tick()
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                log.warning("maintenance loop: the worker that started it is gone; exiting")
                return
            self.stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def _guard(self, what: str, action) -> None:
        """Run one step; a failure is logged once per kind of error per step (and again every minute it lasts)."""
        try:
            action()
        except Exception as exc:
            signature = type(exc).__name__
            now = time.monotonic()
            last = self._last_errors.get(what)
            if last is None or last[0] != signature or now - last[1] > _REPEAT_ERROR_LOG_SECONDS:
                log.warning("maintenance %s failed (%s); retrying every tick", what, signature)
                self._last_errors[what] = (signature, now)
        else:
            if self._last_errors.pop(what, None) is not None:
                log.info("maintenance %s recovered", what)


def _child_main(app: Flask, parent_pid: int) -> None:
    from workers.admitter import Admitter

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Connections opened before the fork belong to the parent; start clean.
    db.dispose()
    # The admitter's blocking pop (1 s) stays within the app client's socket timeout; its pool is thread-safe.
    Admitter(get_redis(app), config=get_worker_config(app), stop=stop).start()
    MaintenanceLoop(app, stop=stop, parent_pid=parent_pid).run()


def start_maintenance_process(app: Flask) -> multiprocessing.process.BaseProcess:
    """Fork the maintenance loop (call before the RQ worker starts any thread)."""
    context = multiprocessing.get_context("fork")
    process = context.Process(target=_child_main, args=(app, os.getpid()), name="textback-maintenance", daemon=True)
    process.start()
    return process
