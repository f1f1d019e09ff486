"""Run a few blocking HighLevel reads at the same time, so a missed call waits on the slowest, not on their sum.

Each HighLevel answer takes 100-500 ms; the contact and, on a cold cache, the location and its users do not
depend on each other, so they are asked for together.

The first call runs in the calling thread, the others on a small shared pool. A call the pool has not started
by the time the caller is ready for it is taken back and run by the caller itself, so a saturated pool (or a
call made from a pool thread) degrades to one-after-another instead of deadlocking. Each pooled call runs in a
copy of the caller's contextvars (Flask's app context, the job's log fields).

`hedged` cuts the tail of one read instead: HighLevel's answers are long-tailed (p50 ~150 ms, p99 ~1 s), and a
text waits on the contact read, so a read that has not answered by about the p90 is asked once more and the
first answer wins ("The Tail at Scale", Dean & Barroso 2013). Only for reads that are safe to repeat.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

__all__ = ["hedged", "run_together"]

# Enough for the worker's job slots' reads at 20+ missed calls/s (each holds at most two for ~150 ms), and the
# losing copies of hedged reads, which run on until HighLevel answers them.
_POOL_THREADS = 32
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


def hedged(call: Callable[[], Any], *, after: float) -> Callable[[], Any]:
    """`call` made hedged: when it has not answered after `after` seconds it is made once more, and the first
    success wins (the other is left to finish on the pool). Both failing raises the first one's error. A pool
    too busy to start the first copy runs it in the caller, unhedged. `after` <= 0: `call` itself."""
    if after <= 0:
        return call

    def first_answer() -> Any:
        pool = _executor()
        first = pool.submit(contextvars.copy_context().run, _outcome, call)
        done, _ = wait([first], timeout=after)
        if done:
            value, error = first.result()
        elif first.cancel():
            value, error = _outcome(call)
        else:
            second = pool.submit(contextvars.copy_context().run, _outcome, call)
            value, error = _first_success(first, second)
        if error is not None:
            raise error
        return value

    return first_answer


def _first_success(first: Future, second: Future) -> tuple[Any, BaseException | None]:
    """The first of the two answers that is not an error; the first copy's error when both fail."""
    pending = {first, second}
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in (first, second):
            if future in done and future.result()[1] is None:
                return future.result()
    return first.result()


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
