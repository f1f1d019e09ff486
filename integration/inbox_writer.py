"""Storing a webhook on the ack path, and announcing it to the workers without making the request wait.

The event is committed by one INSERT on the ack pool (an autocommit connection: one round trip), which
also decides from the location's row whether it is pending or ignored
(integration.inbox.store_event_autocommit).
Its id is then announced to the workers (workers.admitter) by a thread of this process, many ids per
RPUSH: a Redis round trip per webhook on the request thread cost the ack path a fifth of its CPU.

Measured and left out: group commit (requests arriving together written by one INSERT). It cut
PostgreSQL's CPU per webhook by a third but added a thread hand-off per request, and on the benchmark
machine the ceiling did not move (benchmarks/webhook_pipeline.py; figures in issue 4's note).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from integration.db import Database
from integration.inbox import Receipt, StoredEvent, store_event_autocommit

__all__ = ["InboxWriter"]

log = logging.getLogger(__name__)

# Under load, at most one RPUSH per interval per process, carrying every id that arrived meanwhile. An id that
# arrives after a quiet interval goes at once, so the delay is only paid when webhooks come faster than this.
ANNOUNCE_INTERVAL_SECONDS = 0.01


class InboxWriter:
    """Stores events; `store()` returns once the event is committed (or raises what the write raised).

    Args:
        database: an autocommit Database (integration.extensions.ack_db): each INSERT commits itself.
        announce: `announce(urgent_ids, later_ids)`, called from the announcer thread with the ids of newly
            stored pending events after their commit (later: events that may wait behind missed calls,
            integration.inbox.can_wait); errors are logged and left to the sweeper.
    """

    def __init__(self, database: Database, *, announce: Callable[[list[int], list[int]], None] | None = None
                 ) -> None:
        self.database = database
        self._announcer = _Announcer(announce) if announce is not None else None

    def store(self, event: StoredEvent) -> Receipt:
        receipt = store_event_autocommit(self.database.engine, event)
        if receipt.should_enqueue and self._announcer is not None:
            self._announcer.add(receipt.event_id, urgent=event.urgent)
        return receipt


class _Announcer:
    """Announces committed events from a thread of its own, many ids per RPUSH.

    The request only appends its id (no wait); the thread wakes and sends what is waiting, at most once per
    ANNOUNCE_INTERVAL_SECONDS. With a fixed 2 ms gather, a flood of 700 webhooks/s per process still sent
    one RPUSH per one or two ids; the interval cut the receiver's CPU per webhook by about 15% (in-process,
    ~370 -> ~320 us). The sweeper still covers ids lost with the process (killed between its commit and the
    RPUSH) or with Redis.
    """

    def __init__(self, announce: Callable[[list[int], list[int]], None]) -> None:
        self.announce = announce
        self._ids: list[int] = []
        self._later: list[int] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, event_id: int, *, urgent: bool = True) -> None:
        with self._wake:
            (self._ids if urgent else self._later).append(event_id)
            if self._thread is None or not self._thread.is_alive():  # first use, or a forked child
                self._thread = threading.Thread(target=self._run, name="textback-announcer", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        last_sent = -ANNOUNCE_INTERVAL_SECONDS
        while True:
            with self._wake:
                while not (self._ids or self._later):
                    self._wake.wait()
            pause = last_sent + ANNOUNCE_INTERVAL_SECONDS - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            last_sent = time.monotonic()
            with self._wake:
                (ids, self._ids), (later, self._later) = (self._ids, []), (self._later, [])
            try:
                self.announce(ids, later)
            except Exception as exc:
                log.warning("events %s stored but not enqueued (%s); the sweeper will enqueue them",
                            ", ".join(map(str, ids + later)), type(exc).__name__)
