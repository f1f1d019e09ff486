"""Run a few blocking HighLevel reads at the same time, so a missed call waits on the slowest, not on their sum.

Each HighLevel answer takes 100-500 ms; the contact and, on a cold cache, the location and its users do not
depend on each other, so they are asked for together.

The first call runs in the calling thread, the others on a small shared pool. A call the pool has not started
by the time the caller is ready for it is taken back and run by the caller itself, so a saturated pool (or a
call made from a pool thread) degrades to one-after-another instead of deadlocking. Each pooled call runs in a
copy of the caller's contextvars (Flask's app context, the job's log fields).
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["run_together"]

# Enough for the worker's job slots' reads at 20+ missed calls/s (each holds at most two for ~150 ms).
_POOL_THREADS = 16
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def run_together(*calls: Callable[[], Any]) -> list[Any]:
    """The results of `calls`, in order. Every call finishes before this returns; then the first exception (in
    the order of `calls`) is raised, so no request is left running behind the caller's back."""
    if not calls:
        return []
    futures: list[Future] = [_executor().submit(contextvars.copy_context().run, call) for call in calls[1:]]
    outcomes = [_outcome(calls[0])]
    for call, future in zip(calls[1:], futures, strict=True):
        outcomes.append(_outcome(call) if future.cancel() else _outcome(future.result))
    for _, error in outcomes:
        if error is not None:
            raise error
    return [value for value, _ in outcomes]


def _outcome(call: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    try:
        return call(), None
    except Exception as exc:  # re-raised by run_together once every call is done
        return None, exc


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_POOL_THREADS, thread_name_prefix="highlevel-read")
        return _pool


def _forget_pool_after_fork() -> None:
    # A forked child inherits the pool object but not its threads: it starts its own on first use.
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)
