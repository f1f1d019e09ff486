"""Runs one CRM action: claim it, check the location, call its executor, record what happened.

What a failure becomes:

- HighLevel busy or unreachable (429, 5xx, timeout, dropped connection, unreadable answer) or no
  token right now: retried with backoff (`backoff`, one delay per attempt); after `max_attempts`
  the action is `failed` with the last reason. A create that may have taken effect is marked
  `maybe_done` so the next attempt looks for it first.
- HighLevel refusing the request (400/422, 404, 403, 401 after the client's one refresh): `failed`
  at once with HighLevel's reason; retrying cannot change the answer.
- The location uninstalled: `skipped` with the reason, and no API call. Waiting for a reconnect:
  retried like an outage.

Executors are looked up by the action's kind in EXECUTORS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select

from integration import metrics
from integration.agent import handover
from integration.crm import actions, followup, opt_outs, replies, stages
from integration.crm.execution import CrmContext, Done, Failed, Skipped, Waiting
from integration.crm.models import CrmAction
from integration.db import Database, utcnow
from integration.ghl.errors import (
    GHLBadResponse,
    GHLConnectionError,
    GHLError,
    GHLRateLimited,
    GHLServerError,
    GHLTimeout,
)
from integration.logging_setup import add_log_context, redact
from integration.models import Installation
from integration.textback.facts import FactGatherer, location_is_live, why_not_live
from integration.textback.settings import SettingsError
from oauth.errors import TokenUnavailable
from oauth.store import NEEDS_RECONNECT

__all__ = ["DEFAULT_BACKOFF", "EXECUTORS", "CrmActionRunner"]

log = logging.getLogger(__name__)

EXECUTORS: dict[str, Callable[[CrmContext, CrmAction], Done]] = {
    followup.TAG: followup.add_tags,
    followup.NOTE: followup.add_note,
    followup.OPPORTUNITY: followup.open_opportunity,
    stages.STAGE: stages.move_stage,
    replies.TASK: replies.create_task,
    replies.ALERT: replies.alert_on_call,
    opt_outs.DND: opt_outs.set_sms_dnd,
    handover.NOTE_KIND: handover.add_agent_note,
}

# Seconds before attempt 2, 3, ...: HighLevel outages are usually short, and a contractor should see
# the tag and the opportunity within minutes, not hours.
DEFAULT_BACKOFF: tuple[float, ...] = (5, 30, 120, 600, 1800)
_TRANSIENT = (GHLRateLimited, GHLServerError, GHLTimeout, GHLConnectionError, GHLBadResponse)


class CrmActionRunner:
    """Runs CrmActions exactly as far as they can go now.

    Args:
        database: the configured Database.
        client: the GHLClient.
        gatherer: the text back's FactGatherer (settings, and the location's cached profile).
        schedule: `schedule(action_id, when)` arranges for `run(action_id)` to run at `when`
            (an RQ job in production); the row's next_attempt_at is the durable copy the sweep reads.
        backoff: delays before each retry (the last one repeats); max_attempts: then it fails.
        lease: how long a running action stays owned before another worker may take it over; longer than
            an executor's few API calls can take with the client's own retries and rate-limit waits.
        clock: returns the current UTC time.
    """

    def __init__(self, *, database: Database, client, gatherer: FactGatherer,
                 schedule: Callable[[int, datetime], None] | None = None,
                 backoff: Sequence[float] = DEFAULT_BACKOFF, max_attempts: int = 6,
                 lease: timedelta = timedelta(seconds=300), clock: Callable[[], datetime] = utcnow) -> None:
        self.database = database
        self.schedule = schedule
        self.backoff = tuple(backoff) or (0.0,)
        self.max_attempts = max_attempts
        self.lease = lease
        self.clock = clock
        self.context = CrmContext(database=database, client=client, gatherer=gatherer, clock=clock)

    def run(self, action_id: int, *, live: set[str] | None = None) -> str:
        """Attempt one action now; returns its readable outcome (or why it did not run).

        `live`: locations this job found live a moment ago (a lead's actions run back to back), not asked again;
        the location of this action joins it once found live. The token provider still refuses a call for a
        location uninstalled meanwhile.
        """
        action = actions.claim(self.database, action_id, now=self.clock(), lease=self.lease)
        if action is None:
            return f"crm action {action_id}: not due, finished, or held by another worker"
        add_log_context(crm_action_id=action.id, location_id=action.location_id)
        label = f"crm action {action.id} ({action.kind}, {action.key})"
        blocked = None if live is not None and action.location_id in live else self._location_blocked(action)
        if blocked is not None:
            reason, reconnectable = blocked
            if reconnectable:  # retried like an outage: a person may reconnect the app meanwhile
                return self._retry(action, reason, label=label)
            return self._finish(action, CrmAction.SKIPPED, f"not done: {reason}", label=label)
        if live is not None:
            live.add(action.location_id)
        executor = EXECUTORS.get(action.kind)
        if executor is None:
            return self._finish(action, CrmAction.FAILED, f"failed: no executor for {action.kind!r}", label=label)
        try:
            done = executor(self.context, action)
        except Skipped as exc:
            return self._finish(action, CrmAction.SKIPPED, f"skipped: {exc.reason}", label=label)
        except Failed as exc:
            return self._finish(action, CrmAction.FAILED, f"failed: {exc.reason}", label=label, error=exc.reason)
        except Waiting as exc:
            return self._retry(action, exc.reason, delay=exc.delay_seconds, counts=False, label=label)
        except TokenUnavailable as exc:
            if exc.retryable:
                return self._retry(action, f"no HighLevel token right now ({exc})", label=label)
            return self._finish(action, CrmAction.FAILED, f"failed: the HighLevel connection cannot be used ({exc})",
                                label=label, error=str(exc))
        except SettingsError as exc:
            return self._finish(action, CrmAction.FAILED, f"failed: the sub-account's settings are invalid ({exc})",
                                label=label, error=str(exc))
        except GHLError as exc:
            if isinstance(exc, _TRANSIENT):
                return self._retry(action, str(exc), maybe_done=exc.is_ambiguous, label=label)
            return self._finish(action, CrmAction.FAILED, f"failed: HighLevel refused it: {exc}", label=label,
                                error=str(exc))
        except Exception as exc:  # a bug or an outage we did not foresee: retried, then recorded
            log.warning("%s: unexpected error", label, exc_info=True)
            return self._retry(action, f"{type(exc).__name__}: {redact(str(exc))}", label=label)
        self._finish(action, CrmAction.DONE, done.outcome, label=label, result_id=done.result_id)
        for woken in done.wake:
            self._schedule(woken, self.clock())
        return done.outcome

    # --- outcomes ---

    def _finish(self, action: CrmAction, status: str, outcome: str, *, label: str, result_id: str | None = None,
                error: str | None = None) -> str:
        if not actions.finish(self.database, action.id, status=status, outcome=outcome, now=self.clock(),
                              result_id=result_id, error=error):
            return f"{label}: taken over by another worker; its outcome stands"
        metrics.crm_action(action.kind, status)
        (log.warning if status == CrmAction.FAILED else log.info)("%s: %s", label, outcome)
        return outcome

    def _retry(self, action: CrmAction, reason: str, *, label: str, delay: float | None = None,
               counts: bool = True, maybe_done: bool = False) -> str:
        if counts and action.attempts >= self.max_attempts:
            return self._finish(action, CrmAction.FAILED, f"failed after {action.attempts} attempts: {reason}",
                                label=label, error=reason)
        if delay is None:
            delay = self.backoff[min(action.attempts - 1, len(self.backoff) - 1)]
        now = self.clock()
        until = now + timedelta(seconds=delay)
        if not actions.postpone(self.database, action.id, until=until, reason=reason, now=now,
                                maybe_done=maybe_done, counts=counts):
            return f"{label}: taken over by another worker"
        metrics.crm_action(action.kind, "retry" if counts else "waiting")
        log.info("%s: %s in %.0f s (%s)", label, "retry" if counts else "waiting", delay, reason)
        self._schedule(action.id, until)
        return f"{'retry' if counts else 'waiting'} in {delay:.0f} s: {reason}"

    def _schedule(self, action_id: int, when: datetime) -> None:
        if self.schedule is None:
            return
        try:
            self.schedule(action_id, when)
        except Exception as exc:
            # next_attempt_at is on the row: the sweep enqueues it when due.
            log.warning("crm action %s: could not schedule (%s); the sweep will", action_id, type(exc).__name__)

    # --- checks ---

    def _location_blocked(self, action: CrmAction) -> tuple[str, bool] | None:
        """(why no API call may be made for the action's location now, whether a reconnect may fix it)."""
        with self.database.session() as session:
            if location_is_live(session, action.location_id):
                return None
            status = session.scalar(select(Installation.status).where(
                Installation.user_type == "Location", Installation.resource_id == action.location_id))
            return why_not_live(session, action.location_id), status == NEEDS_RECONNECT
