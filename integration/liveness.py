"""Which worker process holds a piece of work, and whether it is still alive: heartbeats in the database.

A worker killed while it holds an inbox event or a text in flight (`kill -9`, OOM, a host lost) used to be
noticed only when its lease ran out (15 s), and its send then waited for a grace period on top. Instead, each
worker process writes a heartbeat row every second (`Heartbeat`), and names itself on what it claims
(`webhook_events.claimed_by`, `textback_send_intents.holder`). A holder whose heartbeat is older than
`dead_after` seconds (5 by default, WORKER_DEAD_AFTER_SECONDS) is dead: its event may be claimed again and its
send settled at once. Work with no holder recorded (written before this existed, or by an in-process test
worker) falls back to its lease.

Why it is safe to act on: a live worker beats every second, so five missed beats mean it is gone or frozen. A
frozen worker that wakes up cannot do harm: every write of its event is fenced by the attempt count
(workers.inbox), and its send's outcome is recorded only through compare-and-sets on the intent.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, not_, select
from sqlalchemy.exc import SQLAlchemyError

from integration.db import Database, dialect_insert, utcnow
from integration.models import WorkerHeartbeat

__all__ = ["Heartbeat", "current_holder", "holder_is_dead", "holder_silent_since", "last_beat", "set_current_holder"]

log = logging.getLogger(__name__)

_BEATS = WorkerHeartbeat.__table__
_BEAT = _BEATS.c
# Rows of processes that stopped without removing theirs (killed) are deleted once they are this old.
_FORGET_AFTER = timedelta(hours=1)

_current_holder: str | None = None


def set_current_holder(name: str | None) -> None:
    """Name this process as the holder of what it claims from now on (the worker's start-up does this)."""
    global _current_holder
    _current_holder = name


def current_holder() -> str | None:
    """This process's holder name, or None when it runs no heartbeat (then leases alone protect its work)."""
    return _current_holder


def holder_is_dead(holder_column, *, now: datetime, dead_after: float):
    """SQL: a holder is named and has no heartbeat newer than `dead_after` seconds."""
    return holder_silent_since(holder_column, now - timedelta(seconds=dead_after))


def holder_silent_since(holder_column, cutoff):
    """SQL: a holder is named and has not beaten since `cutoff` (a datetime, or a bound parameter of a statement
    built once)."""
    fresh = exists().where(_BEAT.name == holder_column, _BEAT.beat_at >= cutoff)
    return and_(holder_column.is_not(None), not_(fresh))


def last_beat(database: Database, holder: str | None) -> datetime | None:
    """When `holder` last beat, None when it has no row (never started here, stopped, or forgotten)."""
    if not holder:
        return None
    with database.session() as session:
        return session.scalar(select(WorkerHeartbeat.beat_at).where(WorkerHeartbeat.name == holder))


class Heartbeat:
    """Writes this process's heartbeat row every `interval` seconds from a daemon thread.

    Start it before taking work and after any fork (a thread does not survive one); `stop()` removes the row, so
    a worker that exits cleanly is not mistaken for a dead one holding work (it holds none by then).
    """

    def __init__(self, database: Database, name: str, *, interval: float = 1.0) -> None:
        self.database = database
        self.name = name
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._failing = False

    def start(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
        try:
            with self.database.autocommit() as connection:
                connection.execute(delete(_BEATS).where(_BEAT.name == self.name))
        except SQLAlchemyError as exc:
            log.warning("heartbeat %s: could not remove its row (%s)", self.name, type(exc).__name__)

    def beat(self) -> None:
        """One heartbeat: one upsert, one round trip."""
        now = utcnow()
        with self.database.autocommit() as connection:
            statement = dialect_insert(connection)(_BEATS).values(
                name=self.name, pid=os.getpid(), host=socket.gethostname()[:255], started_at=now, beat_at=now)
            connection.execute(statement.on_conflict_do_update(index_elements=[_BEAT.name], set_={"beat_at": now}))
            if not self._thread.is_alive():
                # At start: forget the rows of workers killed long ago.
                connection.execute(delete(_BEATS).where(_BEAT.beat_at < now - _FORGET_AFTER))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:
                # The database is away: the worker's work fails over the same outage; say so once.
                if not self._failing:
                    log.warning("heartbeat %s: could not be written (%s); retrying every %.0f s", self.name,
                                type(exc).__name__, self.interval)
                    self._failing = True
            else:
                if self._failing:
                    log.info("heartbeat %s: written again", self.name)
                    self._failing = False
