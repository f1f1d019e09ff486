"""Telling the team: the task and the summary note of a hand-over, the on-call alert, the booking's note.

All of it goes through the CRM outbox (integration.crm.actions), written in the same transaction as the
agent's new state and run by the CRM runner with its retries: the task is the reply path's own
(`lead:<id>:task`, integration.crm.replies.create_task), the alert its on-call text (`lead:<id>:alert`), so a
lead never gets two of either. The note is this module's executor, NOTE_KIND.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.agent.models import AgentConversation, AgentInbound, AgentOutbound
from integration.crm import actions
from integration.crm.execution import CrmContext, Done
from integration.crm.models import CrmAction, CrmLead
from integration.crm.replies import ALERT, TASK
from integration.crm.wording import excerpt, optional_text

__all__ = ["NOTE_KIND", "add_agent_note", "plan_alert", "plan_handover", "plan_note", "transcript"]

NOTE_KIND = "agent_note"
_MAX_NOTE = 3000


def transcript(session: Session, conversation_id: int, *, limit: int = 20) -> list[str]:
    """ "Caller: ..." / "TextBack: ..." lines of the dialogue so far, oldest first."""
    lines: list[tuple[datetime, int, str]] = []
    for row in session.scalars(select(AgentInbound).where(AgentInbound.conversation_id == conversation_id)):
        lines.append((row.occurred_at, 0, f"Caller: {excerpt(row.body, 200)}"))
    for row in session.scalars(select(AgentOutbound).where(AgentOutbound.conversation_id == conversation_id,
                                                           AgentOutbound.status != AgentOutbound.DROPPED)):
        lines.append((row.created_at, 1, f"TextBack: {excerpt(row.body, 200)}"))
    lines.sort(key=lambda item: (item[0], item[1]))
    return [text for _, _, text in lines[-limit:]]


def plan_note(session: Session, conversation: AgentConversation, *, purpose: str, headline: str,
              extra: list[str] = (), now: datetime) -> int:
    """A note on the contact: the headline, then the conversation (one per conversation and purpose)."""
    body = "\n".join([headline, *extra, "", *transcript(session, conversation.id)])[:_MAX_NOTE]
    return actions.plan(session, key=f"agent:{conversation.id}:note:{purpose}", kind=NOTE_KIND,
                        location_id=conversation.location_id, contact_id=conversation.contact_id,
                        lead_id=conversation.lead_id, params={"body": body}, now=now)


def plan_handover(session: Session, conversation: AgentConversation, lead: CrmLead, *, reason: str, job: str | None,
                  now: datetime) -> list[int]:
    """The team's task (call the caller back) and a note saying why the agent stopped, with the conversation."""
    task = actions.plan(session, key=f"lead:{lead.id}:task", kind=TASK, location_id=lead.location_id,
                        contact_id=lead.contact_id, lead_id=lead.id, now=now)
    extra = [f"The job: {excerpt(job, 300)}"] if job else []
    note = plan_note(session, conversation, purpose="handover",
                     headline=f"TextBack agent handed this conversation to the team: {reason}.", extra=extra, now=now)
    return [task, note]


def plan_alert(session: Session, lead: CrmLead, *, kind: str, text: str, now: datetime) -> int:
    """Text the on-call number now (the reply path's alert, with the emergency said plainly)."""
    return actions.plan(session, key=f"lead:{lead.id}:alert", kind=ALERT, location_id=lead.location_id,
                        contact_id=lead.contact_id, lead_id=lead.id,
                        params={"emergency": kind, "text": text[:500]}, now=now)


def add_agent_note(ctx: CrmContext, action: CrmAction) -> Done:
    """Executor: add the note; after an ambiguous failure the contact's notes are read before adding again."""
    body = str(action.params.get("body") or "").strip()
    if action.maybe_done:
        for note in ctx.client.list_notes(action.location_id, action.contact_id):
            if str(note.get("body") or "").strip() == body:
                return Done("the agent's note was already there", optional_text(note.get("id")))
    note = ctx.client.add_note(action.location_id, action.contact_id, body)
    return Done(f"added the agent's note {excerpt(body, 80)!r}", optional_text(note.get("id")))
