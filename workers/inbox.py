"""The worker's side of the webhook inbox: claim an event, keep its lease, record the outcome, find strays.

A claim is one conditional UPDATE (a compare-and-set), so on PostgreSQL and SQLite alike only one
worker can move a row from `pending` (or from `processing` with an expired lease) to `processing`.
The claim also bumps `attempts`, which then serves as a fencing token: a worker that lost its lease
(paused, partitioned) cannot overwrite the outcome recorded by the worker that took over, because
every later write is conditioned on `attempts` still being the value its claim produced.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, false, not_, or_, select, update

from integration.db import Database, utcnow
from integration.inbox import MAY_WAIT_EVENT_TYPE
from integration.liveness import current_holder, holder_is_dead, holder_silent_since
from integration.models import WebhookEvent
from workers.queues import AnnouncedFrom

__all__ = [
    "ClaimedEvent",
    "LeaseKeeper",
    "claim_event",
    "finish_event",
    "release_for_retry",
    "renew_lease",
    "sweepable_events",
]

log = logging.getLogger(__name__)

PENDING, PROCESSING, DONE, IGNORED, FAILED = "pending", "processing", "done", "ignored", "failed"
# Claims and outcomes are Core statements on the table, not ORM updates: two per event on every worker job,
# and the ORM's bulk-update machinery cost more CPU than the rest of a no-op event's handling.
_EVENTS = WebhookEvent.__table__
_EVENT = _EVENTS.c
_REASON_LIMIT = 1000


@dataclass(frozen=True)
class ClaimedEvent:
    """An inbox row this worker now holds; `attempt` is the fencing token for every later write."""

    id: int
    attempt: int
    event_type: str
    location_id: str | None
    company_id: str | None
    payload: dict


def _held_by_the_dead(*, now: datetime, lease_seconds: float, dead_after: float | None):
    """SQL: a `processing` event whose lease ran out, or whose holder's heartbeat stopped (integration.liveness)."""
    expired = _EVENT.claimed_at < now - timedelta(seconds=lease_seconds)
    if dead_after is not None:
        expired = or_(expired, holder_is_dead(_EVENT.claimed_by, now=now, dead_after=dead_after))
    return and_(_EVENT.status == PROCESSING, expired)


def claim_event(database: Database, event_id: int, *, lease_seconds: float, dead_after: float | None = None,
                now: datetime | None = None) -> ClaimedEvent | None:
    """Atomically take `event_id` if it is pending or its holder is gone (lease expired, or with `dead_after`, no
    heartbeat for that long); None if someone else has it. The claim names this process as the holder."""
    now = now or utcnow()
    params = {"p_id": event_id, "p_now": now, "p_lease_cutoff": now - timedelta(seconds=lease_seconds),
              "p_holder": current_holder()}
    if dead_after is not None:
        params["p_beat_cutoff"] = now - timedelta(seconds=dead_after)
    with database.autocommit() as connection:
        # One statement, one round trip: the compare-and-set returns what the handler needs (PostgreSQL, SQLite
        # >= 3.35), and being one statement it needs no transaction around it.
        row = connection.execute(_claim_statement(dead_after is not None), params).one_or_none()
    if row is None:
        return None
    return ClaimedEvent(id=event_id, attempt=row.attempts, event_type=row.event_type, location_id=row.location_id,
                        company_id=row.company_id, payload=row.payload)


@functools.cache
def _claim_statement(checks_heartbeats: bool):
    """claim_event's compare-and-set, built once (it runs for every event) with bound parameters."""
    expired = _EVENT.claimed_at < bindparam("p_lease_cutoff")
    if checks_heartbeats:
        expired = or_(expired, holder_silent_since(_EVENT.claimed_by, bindparam("p_beat_cutoff")))
    claimable = or_(_EVENT.status == PENDING, and_(_EVENT.status == PROCESSING, expired))
    return (update(_EVENTS)
            .where(_EVENT.id == bindparam("p_id"), claimable)
            .values(status=PROCESSING, claimed_at=bindparam("p_now"), claimed_by=bindparam("p_holder"),
                    attempts=_EVENT.attempts + 1)
            .returning(_EVENT.attempts, _EVENT.event_type, _EVENT.location_id, _EVENT.company_id, _EVENT.payload))


def _update_held(database: Database, event: ClaimedEvent, *, count_install_wait: bool = False, **values) -> bool:
    """Write `values` to the event's row if this worker still holds it (same attempt); False otherwise.
    `count_install_wait` adds one to install_waits in the same statement."""
    params = {"p_id": event.id, "p_attempt": event.attempt, **{f"p_{name}": value for name, value in values.items()}}
    with database.autocommit() as connection:
        statement = _held_update(tuple(sorted(values)), count_install_wait)
        return connection.execute(statement, params).rowcount == 1


@functools.cache
def _held_update(columns: tuple[str, ...], count_install_wait: bool):
    """The fenced UPDATE of `columns` (and install_waits + 1), built once per shape: two run for every event."""
    held = and_(_EVENT.id == bindparam("p_id"), _EVENT.status == PROCESSING, _EVENT.attempts == bindparam("p_attempt"))
    values: dict = {name: bindparam(f"p_{name}") for name in columns}
    if count_install_wait:
        values["install_waits"] = _EVENT.install_waits + 1
    return update(_EVENTS).where(held).values(**values)


def _clip(reason: str | None) -> str | None:
    return None if reason is None else reason[:_REASON_LIMIT]


def finish_event(database: Database, event: ClaimedEvent, *, status: str, reason: str | None) -> bool:
    """Record the final outcome (done / ignored / failed). False when the lease was lost to another worker."""
    if status not in {DONE, IGNORED, FAILED}:
        raise ValueError(f"not a final status: {status!r}")
    return _update_held(database, event, status=status, status_reason=_clip(reason), processed_at=utcnow())


def release_for_retry(database: Database, event: ClaimedEvent, *, reason: str, counts: bool = True) -> bool:
    """Put the event back to pending after a failed attempt; `claimed_at` marks when the attempt ended.

    `counts=False` gives the attempt back: the event waited for its location's install, which is no failure
    (oauth.install_wait). `attempts` still grows, as the fencing token must; `install_waits` records the claim
    so that EVENT_MAX_ATTEMPTS counts only the others.
    """
    return _update_held(database, event, count_install_wait=not counts, status=PENDING, status_reason=_clip(reason),
                        claimed_at=utcnow())


def renew_lease(database: Database, event: ClaimedEvent) -> bool:
    """Push the lease forward; False when the event is no longer ours."""
    return _update_held(database, event, claimed_at=utcnow())


class LeaseKeeper:
    """Renews an event's lease from a background thread while its handler runs.

    A handler may legitimately take longer than the lease (a slow HighLevel answer); only a worker that
    stops renewing (killed, frozen) loses the event. Use as a context manager around the handler call.
    """

    def __init__(self, database: Database, event: ClaimedEvent, *, interval_seconds: float) -> None:
        self.database = database
        self.event = event
        self.interval_seconds = interval_seconds
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{event.id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_seconds + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                if not renew_lease(self.database, self.event):
                    self.lost = True
                    log.warning("event %s: lease lost to another worker (attempt %s)", self.event.id,
                                self.event.attempt)
                    return
            except Exception as exc:
                # The next renewal may succeed; if none does, the lease expires and the event is re-run.
                log.warning("event %s: lease renewal failed: %s", self.event.id, type(exc).__name__)


def _still_announced(announced: AnnouncedFrom | None):
    """SQL: the event is at or past the start of the announcement list it would be in (see AnnouncedFrom).

    Only an OutboundMessage may wait (integration.inbox.can_wait), in the later list; telling which of those
    are calls takes the payload, so one counts as announced from the start of either list.
    """
    clauses = []
    if announced is not None and announced.urgent is not None:
        clauses.append(and_(WebhookEvent.event_type != MAY_WAIT_EVENT_TYPE, WebhookEvent.id >= announced.urgent))
    if announced is not None and announced.either is not None:
        clauses.append(and_(WebhookEvent.event_type == MAY_WAIT_EVENT_TYPE, WebhookEvent.id >= announced.either))
    return or_(*clauses) if clauses else false()


def sweepable_events(database: Database, *, now: datetime, min_age_seconds: float, lease_seconds: float,
                     retry_delays: tuple[int, ...], limit: int, after_id: int = 0,
                     announced: AnnouncedFrom | None = None, dead_after: float | None = None
                     ) -> list[tuple[int, int]]:
    """(event id, attempts) of events that should be running but may have no job: the sweeper's worklist.

    - pending, older than `min_age_seconds`, and past the backoff its attempts call for; an event never
      attempted is left alone while an announcement list still holds it (`announced`: where the lists start);
    - processing with a lease not renewed for `lease_seconds`, or (with `dead_after`) held by a worker whose
      heartbeat stopped that long ago: its worker died.
    Ordered by id from `after_id`, so a caller can page through a large backlog across sweeps.
    """
    young = now - timedelta(seconds=min_age_seconds)
    # Backoff per attempt count, as SQL, so rows still waiting never crowd due ones out of the batch.
    due_retry = [and_(WebhookEvent.attempts == 0, not_(_still_announced(announced)))]
    for attempts, delay in enumerate(retry_delays, start=1):
        op = WebhookEvent.attempts == attempts if attempts < len(retry_delays) else WebhookEvent.attempts >= attempts
        due_retry.append(and_(op, WebhookEvent.claimed_at <= now - timedelta(seconds=delay)))
    stray_pending = and_(WebhookEvent.status == PENDING, WebhookEvent.received_at <= young, or_(*due_retry))
    dead_holder = _held_by_the_dead(now=now, lease_seconds=lease_seconds, dead_after=dead_after)
    with database.session() as session:
        rows = session.execute(
            select(WebhookEvent.id, WebhookEvent.attempts)
            .where(WebhookEvent.id > after_id, or_(stray_pending, dead_holder))
            .order_by(WebhookEvent.id)
            .limit(limit)
        ).all()
    return [(row.id, row.attempts) for row in rows]
