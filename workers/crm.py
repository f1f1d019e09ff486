"""CRM follow-up in the worker: the runner wired to the app's services, the lead and action jobs, the hooks
the message handlers call, and the sweep.

The database is the record of truth: a lead exists once its missed call is `sent`, and every change
at HighLevel is a CrmAction row with its due time. Jobs are only the dispatch: the periodic sweep here
opens leads a hook missed and re-enqueues due actions whose job Redis lost.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import bindparam, select

from integration.agent import intake as agent_intake
from integration.crm import actions, followup, opt_outs, replies, takeover
from integration.crm.models import CrmAction, CrmLead
from integration.crm.runner import CrmActionRunner
from integration.db import utcnow
from integration.extensions import db, get_redis
from integration.textback.missed_call import parse_timestamp
from integration.textback.models import ConversationMessage, MissedCall
from integration.textback.settings import SettingsError

# At import, not inside a handler: a first import of the agent (dateparser and its data) inside an RQ job stalled
# the worker's pubsub thread for a minute.
from workers.agent import is_agent_text, on_caller_text
from workers.config import get_worker_config
from workers.profiles import refresh_stale_profile
from workers.queues import DEFAULT_QUEUE, enqueue_run_at, live_jobs, safe_job_id
from workers.textback import get_sender

__all__ = [
    "enqueue_due_crm_work",
    "follow_up_inbound_sms",
    "follow_up_missed_call",
    "follow_up_outbound_message",
    "get_runner",
    "open_lead",
    "run_crm_action",
    "run_now",
    "schedule_action",
    "schedule_now",
]

log = logging.getLogger(__name__)

_EXTENSION_KEY = "crm.runner"
RUN_JOB = "workers.crm.run_crm_action"
OPEN_LEAD_JOB = "workers.crm.open_lead"
# A due action younger than this is left to the job scheduled for it.
_SWEEP_SLACK = timedelta(seconds=5)
# Sent calls older than this are not turned into leads by the sweep (history before the CRM follow-up).
_LEAD_LOOKBACK = timedelta(days=2)
_CRM_JOB_TIMEOUT = 360


def get_runner(app: Flask | None = None) -> CrmActionRunner:
    """The app's CrmActionRunner, on the text back's API client and fact gatherer."""
    app = app or current_app._get_current_object()
    runner = app.extensions.get(_EXTENSION_KEY)
    if runner is None:
        sender = get_sender(app)
        runner = CrmActionRunner(database=db, client=sender.client, gatherer=sender.gatherer, schedule=schedule_action)
        app.extensions[_EXTENSION_KEY] = runner
    return runner


def _enqueue_crm_job(func: str, row_id: int, *, job_id: str, when: datetime, replace_finished: bool) -> None:
    """Run `func(row_id)` at `when` on the default queue (after webhook events), once per job id."""
    config = get_worker_config()
    enqueue_run_at(DEFAULT_QUEUE, func, int(row_id), connection=get_redis(), job_id=safe_job_id(job_id), when=when,
                   job_timeout=_CRM_JOB_TIMEOUT, result_ttl=config.result_ttl, failure_ttl=config.failure_ttl,
                   replace_finished=replace_finished)


def schedule_action(action_id: int, when: datetime, *, replace_finished: bool = True) -> None:
    """Run `run_crm_action(action_id)` at `when`; one job per (action, time)."""
    _enqueue_crm_job(RUN_JOB, action_id, job_id=f"crm-action-{int(action_id)}-{int(when.timestamp() * 1000)}",
                     when=when, replace_finished=replace_finished)


def run_crm_action(action_id: int) -> str:
    """Job: attempt one CRM action (the runner records the outcome, or schedules its retry)."""
    return get_runner().run(action_id)


def schedule_now(action_ids: Iterable[int]) -> None:
    """Enqueue these actions to run now; one that cannot be enqueued is left to the sweep."""
    now = utcnow()
    for action_id in dict.fromkeys(action_ids):
        try:
            schedule_action(action_id, now)
        except Exception as exc:  # the row is pending: the sweep enqueues it
            log.warning("crm action %s: could not enqueue (%s); the sweep will", action_id, type(exc).__name__)


# --- Hooks the message handlers call (each is safe to call again: rows are unique) ---


def follow_up_missed_call(missed_call_id: int) -> str | None:
    """Once a missed call is texted: queue the job that opens its lead. A note, or None when it was not texted.

    Texts first: the lead (and its HighLevel changes) is a `default`-queue job, and workers take the `webhooks`
    queue first, so during a burst of calls no caller's text waits behind another call's CRM bookkeeping.
    Safe to call again (a duplicate webhook repairs a lost job this way): one job id per call, and opening a
    lead that exists changes nothing. An enqueue that fails is left to the CRM sweep.
    """
    with db.autocommit() as connection:
        row = connection.execute(_call_status_query(), {"id": missed_call_id}).first()
    if row is None or row.status != MissedCall.SENT:
        return None
    try:
        _enqueue_crm_job(OPEN_LEAD_JOB, missed_call_id, job_id=_lead_job_id(missed_call_id), when=utcnow(),
                         replace_finished=True)
    except Exception as exc:
        log.warning("missed call %s: could not queue the CRM follow-up (%s); the sweep will", missed_call_id,
                    type(exc).__name__)
        return "CRM follow-up left to the sweep"
    return "CRM follow-up queued"


def open_lead(missed_call_id: int, *, run_actions: bool = True) -> str | None:
    """Job: open the texted call's lead and make its HighLevel changes, here (`run_actions`) or as jobs of their
    own. A note, or None when not texted."""
    with db.session() as session:
        row = session.connection().execute(_call_status_query(), {"id": missed_call_id}).first()
        if row is None or row.status != MissedCall.SENT:
            return None
        try:
            settings = get_sender().gatherer.settings_for(session, row.location_id)[1]
        except SettingsError as exc:
            log.warning("missed call %s: no CRM follow-up, the settings are invalid (%s)", missed_call_id, exc)
            return None
        location_id = row.location_id
    action_ids = followup.open_lead(db, missed_call_id, settings=settings, now=utcnow())
    if not run_actions:
        schedule_now(action_ids)
        return f"CRM follow-up: {len(action_ids)} change(s) for HighLevel queued"
    outcomes = run_now(action_ids)
    # After the text and the lead's own changes: the location's profile, if past its soft TTL, is fetched
    # again here so the next call's send finds it fresh without waiting (stale-while-revalidate).
    refresh_stale_profile(location_id)
    return f"CRM follow-up: {len(action_ids)} change(s) for HighLevel: {'; '.join(outcomes)}"


def run_now(action_ids: Iterable[int]) -> list[str]:
    """Run these actions one after another in this job; an action that cannot run now is retried by its own
    schedule (the runner's), and one that raises is queued as a job of its own.

    A lead's tag, note and opportunity used to be three more jobs per missed call; as RQ jobs each cost a worker
    several Redis round trips and milliseconds of CPU, half of what a texted call cost the worker in all.
    """
    runner = get_runner()
    outcomes = []
    live: set[str] = set()  # the lead's location is checked before its first change, not before each
    for action_id in dict.fromkeys(action_ids):
        try:
            outcomes.append(runner.run(action_id, live=live))
        except Exception as exc:
            log.warning("crm action %s: could not run in the lead's job (%s); queued on its own", action_id,
                        type(exc).__name__, exc_info=True)
            schedule_now([action_id])
    return outcomes


@functools.cache
def _call_status_query():
    # Built once: asked after every missed call's text, and by its lead's job.
    calls = MissedCall.__table__.c
    return select(calls.status, calls.location_id).where(calls.id == bindparam("id"))


def follow_up_inbound_sms(payload: Mapping) -> str | None:
    """A caller's SMS (already logged): the reply to their missed-call text, or a STOP/START for HighLevel's DND."""
    location_id = str(payload.get("locationId") or "")
    contact_id = str(payload.get("contactId") or "") or None
    body = str(payload.get("body") or "")
    message_id = str(payload.get("messageId") or "") or None
    now = utcnow()
    with db.transaction() as session:
        try:
            settings = get_sender().gatherer.settings_for(session, location_id)[1]
        except SettingsError as exc:
            return f"no CRM follow-up: the settings are invalid ({exc})"
        dnd_action = opt_outs.plan_dnd(session, location_id=location_id, contact_id=contact_id,
                                       message_id=message_id, body=body, now=now)
        lead = replies.apply_reply(session, location_id=location_id, contact_id=contact_id, message_id=message_id,
                                   body=body, occurred_at=parse_timestamp(payload.get("dateAdded")) or now,
                                   settings=settings, now=now)
        pending = [] if lead is None else list(session.scalars(select(CrmAction.id).where(
            CrmAction.lead_id == lead.id, CrmAction.status == CrmAction.PENDING)))
    schedule_now([*pending, *([dnd_action] if dnd_action else [])])
    agent = on_caller_text(payload, lead=lead, settings=settings)
    if lead is not None:
        note = f"the reply to missed call {lead.missed_call_id}"
        return f"{note}; {agent}" if agent else note
    return "SMS DND to update at HighLevel" if dnd_action else agent


def follow_up_outbound_message(payload: Mapping) -> str | None:
    """An outbound SMS (already logged): a person's text takes the conversation over (and silences the agent)."""
    if is_agent_text(payload):
        return "the booking agent's own text"
    message_id = str(payload.get("messageId") or "") or None
    user_id = str(payload.get("userId") or "") or None
    contact_id = str(payload.get("contactId") or "") or None
    if not user_id or not contact_id:
        return None
    with db.transaction() as session:
        logged = session.scalar(select(ConversationMessage).where(ConversationMessage.message_id == message_id)) \
            if message_id else None
        if logged is not None and logged.author != ConversationMessage.PERSON:
            return None
        at = parse_timestamp(payload.get("dateAdded")) or utcnow()
        location_id = str(payload.get("locationId") or "")
        takeover.record_takeover(session, location_id=location_id, contact_id=contact_id,
                                 conversation_id=str(payload.get("conversationId") or "") or None, user_id=user_id,
                                 at=at, now=utcnow())
        # The booking agent falls silent in the same transaction: its unsent texts are dropped at once.
        silenced = agent_intake.silence(session, location_id=location_id, contact_id=contact_id, user_id=user_id,
                                        at=at, now=utcnow())
    note = "a person is handling the conversation now: automation stays quiet there"
    return f"{note}; the booking agent fell silent" if silenced else note


# --- The sweep ---


def enqueue_due_crm_work(*, now: datetime | None = None, limit: int = 200) -> int:
    """Periodic job: open leads for texted calls a hook missed; enqueue due actions whose job is missing."""
    now = now or utcnow()
    with db.session() as session:
        texted = list(session.scalars(
            select(MissedCall.id).where(MissedCall.status == MissedCall.SENT, MissedCall.contact_id.is_not(None),
                                        MissedCall.created_at >= now - _LEAD_LOOKBACK,
                                        ~select(CrmLead.id).where(CrmLead.missed_call_id == MissedCall.id).exists())
            .order_by(MissedCall.id).limit(limit)))
    # A lead whose own job is still queued (or running) is not one a hook missed: during a backlog that is every
    # recent call, and opening them here too doubled the follow-up work just when the workers were behind.
    queued = _lead_jobs_alive(texted)
    for missed_call_id in texted:
        if missed_call_id in queued:
            continue
        # Their changes as jobs of their own: this sweep may open up to `limit` leads in one run.
        open_lead(missed_call_id, run_actions=False)
    due = actions.due_actions(db, now=now, slack=_SWEEP_SLACK, limit=limit)
    for action_id, when in due:
        schedule_action(action_id, when)
    opened = len(texted) - len(queued)
    if opened or due:
        log.info("crm sweep: %d lead(s) opened, %d due action(s) enqueued", opened, len(due))
    return opened + len(due)


def _lead_jobs_alive(missed_call_ids: list[int]) -> set[int]:
    """Those of `missed_call_ids` whose lead job is waiting or running; none when Redis cannot say."""
    if not missed_call_ids:
        return set()
    try:
        return live_jobs(get_redis(), {i: _lead_job_id(i) for i in missed_call_ids}, lease_seconds=_CRM_JOB_TIMEOUT)
    except Exception as exc:  # the sweep then opens them itself, as it did before it could ask
        log.warning("crm sweep: could not ask Redis which lead jobs are queued (%s)", type(exc).__name__)
        return set()


def _lead_job_id(missed_call_id: int) -> str:
    return safe_job_id(f"crm-lead-{int(missed_call_id)}")
