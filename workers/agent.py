"""The booking agent in the worker: the engine wired to the app's services, its turn job, the hooks the message
handlers call, and the sweep.

A caller's text to a lead is stored for the agent by the InboundMessage handler (integration.agent.intake) and
a turn is scheduled for when it is due (the grace period after it, while the agent has not spoken yet). The
job re-checks everything when it runs; the periodic sweep re-enqueues due turns whose job Redis lost.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import update

from integration.agent import intake, outbox
from integration.agent.engine import BookingAgent, due_conversations
from integration.agent.llm import LlmUnderstander
from integration.crm.models import CrmLead
from integration.db import utcnow
from integration.extensions import db, get_redis, get_settings
from integration.textback.missed_call import parse_timestamp
from integration.textback.models import ConversationMessage
from integration.textback.opt_out import is_opt_out
from integration.textback.settings import TextBackSettings
from workers.config import get_worker_config
from workers.queues import DEFAULT_QUEUE, enqueue_run_at, safe_job_id

__all__ = ["enqueue_due_agent_turns", "get_agent", "is_agent_text", "on_caller_text", "run_agent_turn",
           "schedule_turn"]

log = logging.getLogger(__name__)

_EXTENSION_KEY = "agent.engine"
TURN_JOB = "workers.agent.run_agent_turn"
_TURN_JOB_TIMEOUT = 300
_SWEEP_SLACK = timedelta(seconds=10)


def get_agent(app: Flask | None = None) -> BookingAgent:
    """The app's BookingAgent, on the text back's API client and fact gatherer (and the model if configured)."""
    app = app or current_app._get_current_object()
    agent = app.extensions.get(_EXTENSION_KEY)
    if agent is None:
        from workers.crm import schedule_now
        from workers.textback import get_sender

        sender = get_sender(app)
        settings = get_settings(app)
        understander = None
        if settings.llm_api_base and settings.llm_model:
            understander = LlmUnderstander(api_base=settings.llm_api_base, api_key=settings.llm_api_key,
                                           model=settings.llm_model, timeout=settings.llm_timeout)
        agent = BookingAgent(database=db, client=sender.client, gatherer=sender.gatherer, schedule=schedule_turn,
                             wake=schedule_now, understander=understander)
        app.extensions[_EXTENSION_KEY] = agent
    return agent


def schedule_turn(conversation_id: int, when: datetime) -> None:
    """Run `run_agent_turn(conversation_id)` at `when`; one job per (conversation, time)."""
    config = get_worker_config()
    job_id = safe_job_id(f"agent-{int(conversation_id)}-{int(when.timestamp() * 1000)}")
    enqueue_run_at(DEFAULT_QUEUE, TURN_JOB, int(conversation_id), connection=get_redis(), job_id=job_id, when=when,
                   job_timeout=_TURN_JOB_TIMEOUT, result_ttl=config.result_ttl, failure_ttl=config.failure_ttl,
                   replace_finished=True)


def run_agent_turn(conversation_id: int) -> str:
    """Job: answer what is due in one agent conversation."""
    return get_agent().run(conversation_id)


def on_caller_text(payload: Mapping, *, lead: CrmLead | None, settings: TextBackSettings) -> str | None:
    """A caller's SMS (already logged and applied as a reply): STOP stops the agent; a reply is queued for it."""
    location_id = str(payload.get("locationId") or "")
    contact_id = str(payload.get("contactId") or "") or None
    body = str(payload.get("body") or "")
    now = get_agent().clock()
    if contact_id and is_opt_out(body):
        with db.transaction() as session:
            stopped = intake.stop(session, location_id=location_id, contact_id=contact_id, now=now)
        return "the booking agent stopped (STOP)" if stopped else None
    if lead is None or not settings.agent.active:
        return None
    with db.transaction() as session:
        recorded = intake.record_text(session, lead, message_id=str(payload.get("messageId") or "") or None,
                                      body=body, occurred_at=parse_timestamp(payload.get("dateAdded")) or now,
                                      settings=settings.agent, now=now)
    if recorded is None:
        return None
    conversation_id, due = recorded
    # Through the agent: `due` is on its clock (the sweep schedules what this cannot).
    get_agent().schedule_run(conversation_id, due)
    return f"the booking agent answers at {due:%H:%M:%S} UTC"


def is_agent_text(payload: Mapping) -> bool:
    """Is this OutboundMessage the agent's own text? Then it is logged as ours (not a person's) and is no takeover."""
    location_id = str(payload.get("locationId") or "")
    contact_id = str(payload.get("contactId") or "") or None
    message_id = str(payload.get("messageId") or "") or None
    with db.transaction() as session:
        if not outbox.is_ours(session, location_id=location_id, contact_id=contact_id, message_id=message_id,
                              body=str(payload.get("body") or "")):
            return False
        if message_id:
            session.execute(update(ConversationMessage).where(ConversationMessage.message_id == message_id)
                            .values(author=ConversationMessage.TEXTBACK))
    return True


def enqueue_due_agent_turns(*, now: datetime | None = None) -> int:
    """Periodic job: schedule turns that are due but whose job may be lost (texts due, texts owed)."""
    now = now or utcnow()
    ids = due_conversations(db, now=now, slack=_SWEEP_SLACK)
    for conversation_id in ids:
        schedule_turn(conversation_id, now)
    if ids:
        log.info("agent sweep: %d conversation(s) scheduled", len(ids))
    return len(ids)
