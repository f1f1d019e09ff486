"""What the webhook handlers tell the agent: a caller's text to answer, a person writing in, a STOP.

Each is a write in the handler's own transaction, no API call. A text is stored once per HighLevel messageId
(the same webhook twice is one row) and is due at its own time plus the grace period while the agent has not
spoken yet, so a person who answers within the grace period answers alone; once the agent is in the
conversation it answers at once. A person's text silences the agent at once: its unsent texts are dropped in
the same transaction that records the takeover.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from integration.agent.models import AgentConversation, AgentInbound, AgentOutbound
from integration.agent.outbox import drop_pending
from integration.agent.policy import FINAL_STATES, SILENCED, STOPPED
from integration.agent.settings import AgentSettings
from integration.crm.models import CrmLead
from integration.textback.intents import insert_ignore

__all__ = ["conversation_for", "record_text", "silence", "stop"]


def conversation_for(session: Session, lead: CrmLead, *, now: datetime) -> AgentConversation:
    """The lead's agent conversation (one per lead), created on its first text."""
    insert_ignore(session, AgentConversation, lead_id=lead.id, location_id=lead.location_id,
                  contact_id=lead.contact_id, state="new", memory={}, created_at=now, updated_at=now)
    return session.scalar(select(AgentConversation).where(AgentConversation.lead_id == lead.id))


def record_text(session: Session, lead: CrmLead, *, message_id: str | None, body: str, occurred_at: datetime,
                settings: AgentSettings, now: datetime) -> tuple[int, datetime] | None:
    """Store a caller's text for the agent; (conversation id, when it is due), or None when it has nothing to do."""
    if not settings.active:
        return None
    conversation = conversation_for(session, lead, now=now)
    if conversation.state in FINAL_STATES:
        return None
    spoke = session.scalar(select(AgentOutbound.id).where(AgentOutbound.conversation_id == conversation.id)
                           .limit(1)) is not None
    # The grace period runs from when the reply reached us (HighLevel's dateAdded is a moment earlier; its clock
    # is not ours), so a person always gets the whole of it.
    due = now if spoke else now + timedelta(minutes=settings.grace_minutes)
    # A text without a messageId (not seen from HighLevel) is keyed by its content and time.
    key = message_id or "h-" + hashlib.sha256(f"{lead.id}|{occurred_at.isoformat()}|{body}".encode()).hexdigest()[:40]
    insert_ignore(session, AgentInbound, conversation_id=conversation.id, message_id=key[:64], body=body[:2000],
                  occurred_at=occurred_at, due_at=due, status=AgentInbound.PENDING, attempts=0, created_at=now)
    return conversation.id, due


def _close_open(session: Session, *, location_id: str, contact_id: str, state: str, reason: str,
                now: datetime, since: datetime | None = None) -> list[int]:
    query = select(AgentConversation.id).join(CrmLead, CrmLead.id == AgentConversation.lead_id).where(
        AgentConversation.location_id == location_id, AgentConversation.contact_id == contact_id,
        AgentConversation.state.not_in(FINAL_STATES))
    if since is not None:
        # A person's text from before this lead's call is an old conversation, not a takeover of this one.
        query = query.where(CrmLead.called_at <= since)
    ids = list(session.scalars(query))
    for conversation_id in ids:
        session.execute(update(AgentConversation).where(AgentConversation.id == conversation_id).values(
            state=state, reason=reason, updated_at=now))
        drop_pending(session, conversation_id, reason=reason)
        session.execute(update(AgentInbound).where(AgentInbound.conversation_id == conversation_id,
                                                   AgentInbound.status == AgentInbound.PENDING)
                        .values(status=AgentInbound.IGNORED, outcome=f"ignored: {reason}", processed_at=now))
    return ids


def silence(session: Session, *, location_id: str, contact_id: str, user_id: str, at: datetime,
            now: datetime) -> list[int]:
    """A person texted the caller at `at`: the agent says nothing more in their open conversations; their ids."""
    return _close_open(session, location_id=location_id, contact_id=contact_id, state=SILENCED,
                       reason=f"a person (user {user_id}) is handling the conversation", now=now, since=at)


def stop(session: Session, *, location_id: str, contact_id: str, now: datetime) -> list[int]:
    """The caller replied STOP: the agent stops at once (the opt-out path turns SMS DND on)."""
    return _close_open(session, location_id=location_id, contact_id=contact_id, state=STOPPED,
                       reason="the caller replied STOP", now=now)
