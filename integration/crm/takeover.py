"""Human takeover: once a person texts the caller, automation stays quiet in that conversation.

A person's text is an OutboundMessage SMS with a `userId` that is not our own (our texts are known by
their messageId, integration.textback.conversation); a workflow's text has no userId and is not a
takeover. The takeover time is the message's own time, so it holds whatever order the webhooks come
in: a text back for a call the person already answered by text is not sent, and a reply that a
person is already handling gets no task and no on-call alert.

Later capabilities (the AI agent) ask `human_handling(...)` before they speak.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from integration.crm.models import CrmContact
from integration.textback.intents import insert_ignore

__all__ = ["human_handling", "record_takeover"]


def record_takeover(session: Session, *, location_id: str, contact_id: str, conversation_id: str | None,
                    user_id: str, at: datetime, now: datetime) -> None:
    """Mark the contact's conversation as handled by person `user_id` from `at` (their text's time) on.

    The latest such text is kept, so "has a person texted since the call?" is one comparison,
    whatever order the webhooks came in.
    """
    insert_ignore(session, CrmContact, location_id=location_id, contact_id=contact_id, updated_at=now)
    session.execute(
        update(CrmContact)
        .where(CrmContact.location_id == location_id, CrmContact.contact_id == contact_id,
               or_(CrmContact.human_takeover_at.is_(None), CrmContact.human_takeover_at < at))
        .values(human_takeover_at=at, human_user_id=user_id, conversation_id=conversation_id, updated_at=now)
    )


def human_handling(session: Session, location_id: str, contact_id: str | None, *,
                   since: datetime | None = None) -> CrmContact | None:
    """The contact's takeover record when a person has texted them (at or after `since`), else None."""
    if not contact_id:
        return None
    row = session.scalar(select(CrmContact).where(CrmContact.location_id == location_id,
                                                  CrmContact.contact_id == contact_id,
                                                  CrmContact.human_takeover_at.is_not(None)))
    if row is None or (since is not None and row.human_takeover_at < since):
        return None
    return row
