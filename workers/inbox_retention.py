"""Inbox retention: finished webhook events older than INBOX_RETENTION_DAYS are deleted, in batches, every hour.

Every webhook HighLevel sends is stored (DESIGN §4.1), most of them routine (answered calls, contact updates),
so without this the table and its indexes grow for ever. What is kept:
- events still to run (pending, processing): retention never takes work away from the workers;
- INSTALL and UNINSTALL: one per install, and their dedupe keys keep a replayed UNINSTALL from stopping a
  sub-account that was installed again since;
- everything received within the retention period, with its dedupe key: HighLevel retries for about 70 minutes.
A replay of a pruned call webhook is stored anew but never texted: the retention outlasts the longest call age a
location may allow (workers.config.MIN_INBOX_RETENTION_DAYS), and the missed call's own row still holds its key.
A missed call keeps the id of the webhook that reported it (`webhook_event_id`) after that row is gone: a pointer
for operators, never a key. SQLite may give a pruned row's id to a new event when it was the newest row (no
AUTOINCREMENT); nothing else holds an event id that long (RQ forgets a job within RQ_RESULT_TTL).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, select

from integration.db import Database, utcnow
from integration.extensions import db
from integration.inbox import LIFECYCLE_EVENTS
from integration.models import WebhookEvent
from workers.config import get_worker_config
from workers.inbox import DONE, FAILED, IGNORED

__all__ = ["PruneReport", "prune_events", "prune_inbox"]

log = logging.getLogger(__name__)

_EVENTS = WebhookEvent.__table__
_EVENT = _EVENTS.c
# Rows per DELETE: each batch is its own short transaction, so the receiver's INSERTs never wait long.
BATCH_SIZE = 5000
# One run stops after this long and the next hour's run goes on: a first run over years of rows stays bounded.
TIME_BUDGET_SECONDS = 120.0


@dataclass(frozen=True)
class PruneReport:
    deleted: int
    finished: bool  # False when the time budget ran out with prunable rows left


def prune_events(database: Database, *, received_before: datetime, batch_size: int = BATCH_SIZE,
                 time_budget_seconds: float = TIME_BUDGET_SECONDS) -> PruneReport:
    """Delete finished, non-lifecycle events received before `received_before`, oldest first."""
    with database.autocommit() as connection:
        # Ids grow with arrival, so the first recent id bounds the scan: each batch walks the primary key from the
        # oldest row and stops there, never reading the recent rows (no index on received_at needed).
        first_recent = connection.execute(
            select(_EVENT.id).where(_EVENT.received_at >= received_before).order_by(_EVENT.id).limit(1)
        ).scalar()
    prunable = and_(_EVENT.received_at < received_before, _EVENT.status.in_((DONE, IGNORED, FAILED)),
                    _EVENT.event_type.not_in(sorted(LIFECYCLE_EVENTS)))
    if first_recent is not None:
        prunable = and_(_EVENT.id < first_recent, prunable)
    oldest_first = select(_EVENT.id).where(prunable).order_by(_EVENT.id).limit(batch_size)
    deadline = time.monotonic() + time_budget_seconds
    deleted = 0
    while True:
        with database.autocommit() as connection:
            count = connection.execute(delete(_EVENTS).where(_EVENT.id.in_(oldest_first.scalar_subquery()))).rowcount
        deleted += count
        if count < batch_size:
            return PruneReport(deleted=deleted, finished=True)
        if time.monotonic() >= deadline:
            return PruneReport(deleted=deleted, finished=False)


def prune_inbox(*, now: datetime | None = None) -> str:
    """Periodic job: apply INBOX_RETENTION_DAYS to the webhook inbox; returns a one-line summary."""
    days = get_worker_config().inbox_retention_days
    received_before = (now or utcnow()) - timedelta(days=days)
    report = prune_events(db, received_before=received_before)
    summary = (f"deleted {report.deleted} finished webhook event(s) received before "
               f"{received_before:%Y-%m-%d %H:%M} UTC ({days}-day retention)")
    if not report.finished:
        summary += "; more remain, the next run goes on"
    if report.deleted:
        log.info("inbox retention: %s", summary)
    return summary
