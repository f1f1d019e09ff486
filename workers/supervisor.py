"""`python -m workers` with WORKER_PROCESSES > 1: a small supervisor forking that many worker processes.

Why processes on top of threads: a worker process runs its jobs' Python under one GIL, so it uses at most one core,
and a texted missed call costs it about 50 ms of CPU (the call, our echo, the lead and its three HighLevel
changes). Measured on 2 cores at 20 missed calls/s, one process sat at 0.85 cores and texts queued behind each
other; two share the load. RQ's WorkerPool does the same but builds its workers itself, without our app, slots and
heartbeat.

The supervisor forks each worker after the app is built and checked (nothing is connected then), forwards SIGTERM
and SIGINT to them and waits for their warm shutdown, and starts a worker again when one dies on its own (its
events are taken over meanwhile through its stopped heartbeat). A worker that exits with a configuration error (2)
stops them all. The workers die with the supervisor (Linux's parent-death signal), so a `kill -9` of the
supervisor leaves no worker behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Callable

__all__ = ["die_with_parent", "queues_of_process", "supervise"]

log = logging.getLogger(__name__)

_RESTART_DELAY_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


def queues_of_process(queues: tuple[str, ...], index: int, processes: int) -> tuple[str, ...]:
    """The queues worker process `index` of `processes` takes: with two or more, the last takes everything but
    webhook events and the others webhook events only, so a caller's text never shares a GIL with CRM follow-ups
    and echoes (in one process they slowed every text's round trips: each waits for the GIL behind the busy
    threads), and with three or more the texts have several GILs (one was the ceiling: ~11 texts/s on the
    benchmark machine, with half a core idle). With one process, or a list without webhook events, every process
    takes all of `queues`."""
    from workers.queues import WEBHOOKS_QUEUE

    others = tuple(q for q in queues if q != WEBHOOKS_QUEUE)
    if processes < 2 or WEBHOOKS_QUEUE not in queues or not others:
        return queues
    return others if index == processes - 1 else (WEBHOOKS_QUEUE,)


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when the supervisor dies (no-op elsewhere)."""
    # Not Linux: an orphaned worker finishes its jobs and is stopped by hand.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _child(run: Callable[[int], int], index: int) -> None:
    die_with_parent()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(run(index))


def supervise(run: Callable[[int], int], *, processes: int) -> int:
    """Run `run(index)` in `processes` forked processes until told to stop; returns the exit code."""
    context = multiprocessing.get_context("fork")
    # What the supervisor has loaded (the app, every job's code) is shared with the forks page for page until
    # something writes to it: the garbage start-up left behind is collected once here, before the forks, rather
    # than in each child (writing to pages they would otherwise keep sharing). Not gc.freeze(): with nothing left
    # in the long-lived generation the children then ran full collections so often that a text's p50 went from
    # 0.3 s to 2.8 s at 20 missed calls/s.
    gc.collect()
    children: dict[int, multiprocessing.process.BaseProcess] = {}
    stopping = False
    exit_code = 0

    def start(index: int) -> None:
        process = context.Process(target=_child, args=(run, index), name=f"textback-worker-{index}")
        process.start()
        children[index] = process

    def forward(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for process in children.values():
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # it died meanwhile
                    os.kill(process.pid, signum)

    for index in range(processes):
        start(index)
    log.info("supervisor: %d worker processes started (WORKER_PROCESSES)", processes)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while children:
        multiprocessing.connection.wait([p.sentinel for p in children.values()], timeout=1.0)
        for index, process in list(children.items()):
            if process.is_alive():
                continue
            del children[index]
            code = process.exitcode
            if stopping:
                exit_code = exit_code or (code if code and code > 0 else 0)
                continue
            if code == 2:
                log.error("supervisor: worker process %d stopped on a configuration error; stopping the others",
                          index)
                exit_code, stopping = 2, True
                forward(signal.SIGTERM, None)
                continue
            log.error("supervisor: worker process %d (pid %s) exited with %s; starting it again in %.0f s",
                      index, process.pid, code, _RESTART_DELAY_SECONDS)
            time.sleep(_RESTART_DELAY_SECONDS)
            if not stopping:
                start(index)
    return exit_code
