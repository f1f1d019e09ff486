"""The admitter: turns the receiver's announcements of new inbox events into `process_event` jobs.

The receiver stores each new event and hands its id to an announcer thread of the web process, which
RPUSHes ids in groups (integration.inbox_writer, workers.queues.announce_events): building an RQ job on
the ack path cost more CPU than storing the event, and the ack path is what must keep up with HighLevel.
The maintenance process (workers.maintenance) runs an Admitter thread that blocks on
that list and enqueues each id under its deterministic job id, so the delay it adds is one Redis round
trip. Every worker also admits what is waiting before each dequeue, and a burst worker (`--burst`,
tests) that finds its queues empty admits new events straight from the inbox before it stops.

Admission keeps only `admit_ahead` jobs waiting on a queue and leaves the rest of a burst as ids in the
lists. Building an RQ job costs about 0.4 ms of CPU (a Lua script and a MULTI/EXEC packing a ~47-field
hash); admitting at the arrival rate, 1000+ webhooks/s in a flood, kept every worker busy building jobs
in front of its next dequeue instead of running them, and took that CPU from the receiver. Now jobs are
built at the rate workers take them, and an id waiting in a list costs nothing.

Nothing is lost if an announcement is: the inbox row is the record, and the sweeper enqueues any
pending event older than a few seconds that no list still holds (announcement lost, popped by an
admitter that then died, or never made because Redis was down). An id announced twice, or admitted and
swept, runs once: the job id is unique per (event, attempt) and the worker's claim is atomic.
"""

from __future__ import annotations

import logging
import threading
import time

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import select

from integration.db import Database
from integration.models import WebhookEvent
from workers.config import WorkerConfig
from workers.queues import DEFAULT_QUEUE, LATER_EVENTS_KEY, NEW_EVENTS_KEY, WEBHOOKS_QUEUE, enqueue_event

__all__ = ["Admitter", "admit_new_events", "admit_stored_events"]

log = logging.getLogger(__name__)

# Ids taken per round trip; one blocking pop, then the rest of what is waiting.
BATCH_SIZE = 100
# How long one blocking pop waits: also how soon the thread notices it should stop.
BLOCK_SECONDS = 1.0
_BACKOFF_SECONDS = 1.0
# Each announcement list and the queue its events go to, most urgent first (a blocking pop takes the first
# list that has ids): our own text's echo never waits in front of the next missed call.
_ANNOUNCED = ((NEW_EVENTS_KEY, WEBHOOKS_QUEUE), (LATER_EVENTS_KEY, DEFAULT_QUEUE))
_QUEUE_OF = {key.encode(): queue for key, queue in _ANNOUNCED}
_LUA_KEYS = [key for list_key, queue in _ANNOUNCED for key in (list_key, Queue.redis_queue_namespace_prefix + queue)]
# How often a blocking admit looks again while every queue is full.
_FULL_QUEUES_POLL_SECONDS = 0.1
# KEYS: (announcement list, its RQ queue) pairs. ARGV: jobs to keep waiting per queue, most ids per list.
# Returns, per pair, the ids popped and the room the queue had.
_TAKE_WITHIN_ROOM = """
local taken = {}
for i = 1, #KEYS, 2 do
    local room = tonumber(ARGV[1]) - redis.call('LLEN', KEYS[i + 1])
    local ids = false
    if room > 0 then
        ids = redis.call('LPOP', KEYS[i], math.min(room, tonumber(ARGV[2])))
    end
    taken[#taken + 1] = {ids or {}, room}
end
return taken
"""


def admit_new_events(connection: Redis, *, config: WorkerConfig, block_seconds: float = 0.0,
                     batch_size: int = BATCH_SIZE) -> int:
    """Enqueue announced events while their queue has fewer than `config.admit_ahead` jobs waiting, at most
    `batch_size` per list; returns how many ids were taken.

    With `block_seconds`, waits up to that long: for the first announcement when the lists are empty, or,
    when every queue is full, a short while (the workers top their queues up as they dequeue).

    Raises:
        redis.RedisError: Redis is unreachable (ids already popped are left to the sweeper).
    """
    # One round trip, atomic: how much room each queue has, and that many ids from its list.
    taken_and_room = connection.eval(_TAKE_WITHIN_ROOM, len(_LUA_KEYS), *_LUA_KEYS, config.admit_ahead, batch_size)
    announced = [(raw, queue) for (_, queue), (taken, _) in zip(_ANNOUNCED, taken_and_room, strict=True)
                 for raw in taken]
    if not announced and block_seconds > 0:
        with_room = [key for (key, _), (_, room) in zip(_ANNOUNCED, taken_and_room, strict=True) if room > 0]
        if not with_room:
            time.sleep(min(block_seconds, _FULL_QUEUES_POLL_SECONDS))
            return 0
        first = connection.blpop(with_room, timeout=block_seconds)
        if first is None:
            return 0
        key = first[0] if isinstance(first[0], bytes) else str(first[0]).encode()
        announced.append((first[1], _QUEUE_OF[key]))
    for raw, queue in announced:
        try:
            event_id = int(raw)
        except ValueError:
            log.warning("admitter: ignored an announcement that is not an event id (%r)", raw[:40])
            continue
        enqueue_event(connection, event_id, attempt=0, config=config, queue=queue)
    return len(announced)


def admit_stored_events(database: Database, connection: Redis, *, config: WorkerConfig, limit: int = 500) -> int:
    """Enqueue new events (pending, never attempted) straight from the inbox; those with a job already keep it.

    For burst workers (`--burst`, tests): an announcement is sent after the receiver has answered, so one
    may still be on its way when a burst worker finds the queues empty and would stop.
    """
    with database.session() as session:
        event_ids = list(session.scalars(
            select(WebhookEvent.id).where(WebhookEvent.status == "pending", WebhookEvent.attempts == 0)
            .order_by(WebhookEvent.id).limit(limit)))
    for event_id in event_ids:
        enqueue_event(connection, event_id, attempt=0, config=config)
    return len(event_ids)


class Admitter:
    """A daemon thread running admit_new_events until `stop` is set; Redis errors are logged once per outage."""

    def __init__(self, connection: Redis, *, config: WorkerConfig, stop: threading.Event) -> None:
        self.connection = connection
        self.config = config
        self.stop = stop
        self.thread = threading.Thread(target=self._run, name="textback-admitter", daemon=True)

    def start(self) -> Admitter:
        self.thread.start()
        return self

    def _run(self) -> None:
        failing = False
        while not self.stop.is_set():
            try:
                admit_new_events(self.connection, config=self.config, block_seconds=BLOCK_SECONDS)
            except RedisError as exc:
                if not failing:
                    log.warning("admitter: Redis unavailable (%s); the sweeper covers new events meanwhile",
                                type(exc).__name__)
                failing = True
                self.stop.wait(_BACKOFF_SECONDS)
            except Exception:
                log.exception("admitter: unexpected error; retrying")
                self.stop.wait(_BACKOFF_SECONDS)
            else:
                if failing:
                    log.info("admitter: Redis is back")
                failing = False
