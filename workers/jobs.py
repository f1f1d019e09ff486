"""Job entry points. Jobs are module-level functions that take ids and load fresh state (habit 10).

`process_event(event_id)` runs one stored webhook through its handler. The database row, not RQ,
is the record of truth: a job that finds the row already taken or finished does nothing, so a
duplicate job, a retry or a sweeper rescue can never run a handler twice at the same time.

An event whose location's install has not settled yet (we have never seen the location, or its token is
still being minted) is not handed to its handler: it waits for the install (oauth.install_wait), and the
claims spent waiting are not attempts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from integration.db import utcnow
from integration.extensions import db, get_redis
from integration.inbox import LIFECYCLE_EVENTS
from integration.logging_setup import add_log_context, bind_log_context, redact
from oauth.install_wait import InstallState, gave_up_reason, install_state, wait_delay, waiting_reason
from workers.config import get_worker_config
from workers.errors import EventIgnored, PermanentEventError, RetryLater
from workers.handlers import IGNORED_EVENTS, resolve_handler
from workers.inbox import DONE, FAILED, IGNORED, ClaimedEvent, LeaseKeeper, claim_event, finish_event, release_for_retry
from workers.queues import enqueue_event

__all__ = ["process_event"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Outcome:
    status: str  # done | ignored | failed | retry
    reason: str | None
    retry_delay: float | None = None
    error: BaseException | None = None


def _describe(exc: BaseException) -> str:
    """A one-line, secret-free account of an exception for the inbox row."""
    message = redact(str(exc)).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _run_handler(event: ClaimedEvent, config, *, attempt: int) -> _Outcome:
    if event.event_type in IGNORED_EVENTS:
        return _Outcome(IGNORED, f"{event.event_type} events are recorded, not acted on")
    try:
        handler = resolve_handler(event.event_type)
        if handler is None:
            return _Outcome(IGNORED, f"no handler for event type {event.event_type!r}")
        note = handler(event.payload, event_id=event.id)
    except EventIgnored as exc:
        return _Outcome(IGNORED, exc.reason)
    except PermanentEventError as exc:
        return _Outcome(FAILED, exc.reason, error=exc)
    except RetryLater as exc:
        return _Outcome("retry", exc.reason, retry_delay=exc.delay_seconds)
    except Exception as exc:
        return _Outcome("retry", _describe(exc), retry_delay=config.retry_delay(attempt), error=exc)
    return _Outcome(DONE, None if note is None else str(note))


def process_event(event_id: int) -> str:
    """Claim inbox event `event_id`, run its handler, and record the outcome on the row.

    Outcomes: `done` (the handler's note kept as the reason), `ignored` (no handler, or the handler said
    so), back to `pending` with a scheduled retry after a failure, `failed` once EVENT_MAX_ATTEMPTS are
    used up or the handler says retrying cannot help. An event whose location's install has not settled goes
    back to `pending` without spending an attempt, and is `ignored` when none settles within
    INSTALL_WAIT_SECONDS of its arrival (oauth.install_wait).

    Returns:
        A short summary (kept by RQ as the job result).

    Raises:
        The handler's exception after the last attempt (after recording it), so RQ's failed registry
        shows the traceback too; database errors while claiming, so the sweeper re-runs the event.
    """
    config = get_worker_config()
    bind_log_context(event_id=event_id)
    event = claim_event(db, event_id, lease_seconds=config.event_lease_seconds, dead_after=config.dead_after_seconds)
    if event is None:
        log.info("event %s: not claimable (finished, or held by a live worker)", event_id)
        return "skipped: not claimable"

    add_log_context(location_id=event.location_id)
    install = _install_of(event)
    # The claims that only waited for the install are not attempts: EVENT_MAX_ATTEMPTS and the backoff count the
    # rest. (`event.attempt`, every claim, stays the fencing token.)
    attempt = event.attempt - (install.waits if install is not None else 0)
    context = f"event {event.id} ({event.event_type}, location {event.location_id or '-'}, attempt {attempt})"
    if attempt > config.event_max_attempts:
        reason = f"gave up: {config.event_max_attempts} attempts used; the last one never finished (worker killed?)"
        finish_event(db, event, status=FAILED, reason=reason)
        log.error("%s: %s", context, reason)
        return reason

    if install is not None and not install.settled:
        return _wait_for_install(event, install, context=context, config=config)

    log.info("%s: processing", context)
    with LeaseKeeper(db, event, interval_seconds=max(config.event_lease_seconds / 3, 0.5)):
        outcome = _run_handler(event, config, attempt=attempt)

    if outcome.status == "retry" and attempt >= config.event_max_attempts:
        reason = f"gave up after {attempt} attempts: {outcome.reason}"
        outcome = _Outcome(FAILED, reason, error=outcome.error)

    if outcome.status == "retry":
        return _schedule_retry(event, outcome, attempt=attempt, context=context, config=config)

    recorded = finish_event(db, event, status=outcome.status, reason=outcome.reason)
    if not recorded:
        log.warning("%s: finished as %s but another worker holds it now; its outcome stands", context, outcome.status)
        return f"lease lost; {outcome.status} not recorded"
    if outcome.status == FAILED:
        log.error("%s: failed: %s", context, outcome.reason, exc_info=outcome.error)
        if outcome.error is not None and not isinstance(outcome.error, PermanentEventError):
            raise outcome.error
    else:
        log.info("%s: %s%s", context, outcome.status, f" ({outcome.reason})" if outcome.reason else "")
    return f"{outcome.status}: {outcome.reason or ''}".rstrip(": ")


def _install_of(event: ClaimedEvent) -> InstallState | None:
    """The install state of the event's location; None for events that never wait (no location, INSTALL and
    UNINSTALL themselves). One indexed read."""
    if event.location_id is None or event.event_type in LIFECYCLE_EVENTS:
        return None
    return install_state(db, event.id)


def _wait_for_install(event: ClaimedEvent, install: InstallState, *, context: str, config) -> str:
    """Give the event back to wait for its location's install, without spending an attempt; or, once it has
    waited INSTALL_WAIT_SECONDS since it arrived, ignore it with the reason."""
    now = utcnow()
    deadline = install.deadline(config.install_wait_seconds)
    if now >= deadline:
        reason = gave_up_reason(install.location_id, config.install_wait_seconds)
        if not finish_event(db, event, status=IGNORED, reason=reason):
            return "lease lost; ignored not recorded"
        log.warning("%s: ignored: %s", context, reason)
        return f"ignored: {reason}"
    # Never look later than the deadline: the decision is due then.
    delay = min(wait_delay(install.waits), (deadline - now).total_seconds())
    if not release_for_retry(db, event, reason=waiting_reason(install, delay=delay), counts=False):
        log.warning("%s: waited for the install but another worker holds it now", context)
        return "lease lost; the wait is left to the current holder"
    # Looked at again now that the event is pending: a token stored while we were deciding woke nobody (its wake
    # found this event still processing), so then the event runs at once instead of after the delay.
    if (install_state(db, event.id) or install).settled:
        delay = 0.0
        log.info("%s: the install of location %s settled while we looked; running again", context,
                 install.location_id)
    else:
        log.info("%s: the install of location %s has not settled (%s); looking again in %.1f s", context,
                 install.location_id, install.describe(), delay)
    try:
        enqueue_event(get_redis(), event.id, attempt=event.attempt, config=config, delay_seconds=delay)
    except Exception as exc:
        # The row is pending with its wait recorded: the wake-up when the install settles, or the sweeper, runs it.
        log.warning("%s: could not schedule the next look (%s); the sweeper will", context, type(exc).__name__)
    return f"waiting for the install of location {install.location_id}"


def _schedule_retry(event: ClaimedEvent, outcome: _Outcome, *, attempt: int, context: str, config) -> str:
    delay = outcome.retry_delay or 0.0
    if not release_for_retry(db, event, reason=f"attempt {attempt} failed: {outcome.reason}"):
        log.warning("%s: attempt failed but another worker holds it now", context)
        return "lease lost; retry left to the current holder"
    log.warning("%s: attempt failed (%s); retrying in %.0f s", context, outcome.reason, delay,
                exc_info=outcome.error)
    try:
        enqueue_event(get_redis(), event.id, attempt=event.attempt, config=config, delay_seconds=delay)
    except Exception as exc:
        # The row is pending with its backoff recorded: the sweeper enqueues it when due.
        log.warning("%s: could not schedule the retry (%s); the sweeper will", context, type(exc).__name__)
    return f"retry in {delay:.0f} s: {outcome.reason}"
