"""Text back in the worker: the sender wired to the app's services, the deferred-send job, and its sweep.

A deferred text (quiet hours, the location's delay, a retry) is an RQ job scheduled for its time. The
database is the record of truth: the missed call row is `deferred` with `next_attempt_at`, and the
periodic sweep here re-enqueues any that are due but whose job Redis lost.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import select

from integration.db import utcnow
from integration.extensions import db, get_redis, get_settings
from integration.logging_setup import bind_log_context, redact
from integration.textback import intents
from integration.textback.facts import FactGatherer
from integration.textback.models import MissedCall
from integration.textback.sender import TextBackSender, TryAgainLater
from workers.config import get_worker_config
from workers.queues import DEFAULT_QUEUE, enqueue_run_at, safe_job_id

__all__ = ["enqueue_due_texts", "get_sender", "schedule_missed_call", "send_missed_call_text"]

log = logging.getLogger(__name__)

_EXTENSION_KEY = "textback.sender"
SEND_JOB = "workers.textback.send_missed_call_text"
# A due row younger than this is left to the job scheduled for it.
_SWEEP_SLACK = timedelta(seconds=5)
_GIVE_UP_AFTER = timedelta(days=1)


def get_sender(app: Flask | None = None) -> TextBackSender:
    """The app's TextBackSender, built once per app on the OAuth services' API client."""
    from oauth.services import get_oauth

    app = app or current_app._get_current_object()
    sender = app.extensions.get(_EXTENSION_KEY)
    if sender is None:
        client = get_oauth(app).client
        gatherer = FactGatherer(database=db, client=client, redis=get_redis(app),
                                hedge_after=get_settings(app).ghl_hedge_after)
        config = get_worker_config(app)
        sender = TextBackSender(database=db, client=client, gatherer=gatherer, schedule=schedule_missed_call,
                                dead_after=timedelta(seconds=config.dead_after_seconds),
                                send_settle=timedelta(seconds=config.send_settle_seconds))
        app.extensions[_EXTENSION_KEY] = sender
    return sender


def schedule_missed_call(missed_call_id: int, when: datetime, *, replace_finished: bool = False) -> None:
    """Run `send_missed_call_text(missed_call_id)` at `when` (now if it is past).

    One job id per (call, time): scheduling the same run twice is a no-op. `replace_finished` (the
    sweep) replaces a job under that id that already ran or failed, since the row says it is still due.
    """
    config = get_worker_config()
    job_id = safe_job_id(f"textback-call-{int(missed_call_id)}-{int(when.timestamp())}")
    enqueue_run_at(DEFAULT_QUEUE, SEND_JOB, int(missed_call_id), connection=get_redis(), job_id=job_id, when=when,
                   job_timeout=120, result_ttl=config.result_ttl, failure_ttl=config.failure_ttl,
                   replace_finished=replace_finished)


def send_missed_call_text(missed_call_id: int) -> str:
    """Job: take a missed call as far as it can go now (send, skip, defer again, or retry later).

    Any failure becomes a retry a minute later, recorded on the row, until the call is a day old.
    """
    sender = get_sender()
    bind_log_context(missed_call_id=missed_call_id)
    try:
        outcome = sender.process(missed_call_id)
    except TryAgainLater as exc:
        delay, reason = exc.delay_seconds, exc.reason
    except Exception as exc:
        log.warning("missed call %s: attempt failed (%s)", missed_call_id, redact(str(exc)), exc_info=True)
        delay, reason = 60.0, f"{type(exc).__name__}: {redact(str(exc))}"
    else:
        from workers.crm import follow_up_missed_call  # workers.crm builds on this module

        follow_up_missed_call(missed_call_id)
        return outcome
    with db.session() as session:
        row = session.get(MissedCall, missed_call_id)
    if row is not None and utcnow() - row.created_at > _GIVE_UP_AFTER:
        outcome = f"failed: still not possible a day after the call ({reason})"
        intents.finish_call(db, missed_call_id, status=MissedCall.FAILED, outcome=outcome)
        return outcome
    until = utcnow() + timedelta(seconds=delay)
    intents.defer_call(db, missed_call_id, until=until, outcome=f"retrying: {reason}")
    schedule_missed_call(missed_call_id, until)
    return f"retry in {delay:.0f} s: {reason}"


def enqueue_due_texts(*, now: datetime | None = None, limit: int = 200) -> int:
    """Periodic job: enqueue deferred missed calls that are due and whose scheduled job is missing."""
    now = now or utcnow()
    with db.session() as session:
        due = session.execute(
            select(MissedCall.id, MissedCall.next_attempt_at)
            .where(MissedCall.status == MissedCall.DEFERRED, MissedCall.next_attempt_at <= now - _SWEEP_SLACK)
            .order_by(MissedCall.next_attempt_at).limit(limit)
        ).all()
    for missed_call_id, when in due:
        schedule_missed_call(missed_call_id, when, replace_finished=True)
    if due:
        log.info("textback sweep: %d due missed call(s) enqueued", len(due))
    return len(due)
