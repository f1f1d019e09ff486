"""The admitter: turns the receiver's announcements of new inbox events into `process_event` jobs.

The receiver stores each new event and hands its id to an announcer thread of the web process, which
RPUSHes ids in groups (integration.inbox_writer, workers.queues.announce_events): building an RQ job on
the ack path cost more CPU than storing the event, and the ack path is what must keep up with HighLevel.
The maintenance process (workers.maintenance) runs an Admitter thread that blocks on
that list and enqueues each id under its deterministic job id, so the delay it adds is one Redis round
trip. Every worker also admits what is waiting before each dequeue, and a burst worker (`--burst`,
tests) that finds its queues empty admits new events straight from the inbox before it stops.

Nothing is lost if an announcement is: the inbox row is the record, and the sweeper enqueues any
pending event older than a few seconds (announcement lost, popped by an admitter that then died, or
never made because Redis was down). An id announced twice, or admitted and swept, runs once: the job
id is unique per (event, attempt) and the worker's claim is atomic.
"""

from __future__ import annotations

import logging
import threading

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import select

from integration.db import Database
from integration.models import WebhookEvent
from workers.config import WorkerConfig
from workers.queues import DEFAULT_QUEUE, LATER_EVENTS_KEY, NEW_EVENTS_KEY, WEBHOOKS_QUEUE, enqueue_event

__all__ = ["Admitter", "admit_all_waiting", "admit_new_events", "admit_stored_events"]

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


def admit_new_events(connection: Redis, *, config: WorkerConfig, block_seconds: float = 0.0,
                     batch_size: int = BATCH_SIZE) -> int:
    """Enqueue up to `batch_size` announced events; waits up to `block_seconds` for the first. Returns how many.

    Raises:
        redis.RedisError: Redis is unreachable (ids already popped are left to the sweeper).
    """
    announced: list[tuple[bytes, str]] = []  # (raw id, queue)
    if block_seconds > 0:
        first = connection.blpop([key for key, _ in _ANNOUNCED], timeout=block_seconds)
        if first is None:
            return 0
        key = first[0] if isinstance(first[0], bytes) else str(first[0]).encode()
        announced.append((first[1], _QUEUE_OF[key]))
    # Both lists in one round trip (this runs before every dequeue of every worker).
    pipeline = connection.pipeline(transaction=False)
    for key, _ in _ANNOUNCED:
        pipeline.lpop(key, batch_size)
    for (_, queue), raw_ids in zip(_ANNOUNCED, pipeline.execute(), strict=True):
        announced += [(raw, queue) for raw in raw_ids or []]
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


def admit_all_waiting(connection: Redis, *, config: WorkerConfig) -> int:
    """Admit every announcement waiting now (burst mode, tests); returns how many."""
    total = 0
    while True:
        admitted = admit_new_events(connection, config=config)
        total += admitted
        if admitted == 0:
            return total


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
