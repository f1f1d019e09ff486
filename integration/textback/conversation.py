"""SMS around a missed call: recognising our own text's echo, and a minimal log of replies.

HighLevel sends an OutboundMessage webhook for every outbound text, ours included. Ours is known by
its messageId (stored when the send returned) or, when the webhook wins the race against that
answer, by contact and body while our intent is still in flight. Anything else outbound is a person
(or a workflow) writing to the caller: recorded for the human-takeover capability that comes next.
Inbound SMS are recorded minimally; a reply that is only an opt-out phrase suppresses further texts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import func, select, update

from integration import metrics
from integration.db import Database
from integration.textback.intents import insert_ignore
from integration.textback.missed_call import parse_timestamp
from integration.textback.models import Caller, ConversationMessage, MissedCall, SendIntent
from integration.textback.opt_out import is_opt_in, is_opt_out
from integration.textback.phone import normalize_number

__all__ = ["describe_sent", "latest_opt_keyword", "record_inbound_sms", "record_outbound_message"]

_MAX_BODY = 2000


def describe_sent(intent: SendIntent, *, when: datetime, timezone: str | None = None) -> str:
    """ "texted at 10:00 (business-hours message, 1 segment)"."""
    from zoneinfo import ZoneInfo

    clock = f"{when.astimezone(ZoneInfo(timezone)):%H:%M}" if timezone else f"{when:%H:%M} UTC"
    parts = "1 segment" if intent.segments == 1 else f"{intent.segments} segments"
    return f"texted at {clock} ({intent.template_key.replace('_', '-')} message, {parts})"


def record_outbound_message(database: Database, payload: Mapping, *, now: datetime) -> str:
    """Record an OutboundMessage SMS; returns a note for the inbox row."""
    message_id = _text(payload.get("messageId"))
    location_id = str(payload.get("locationId") or "")
    contact_id = _text(payload.get("contactId"))
    body = str(payload.get("body") or "")
    with database.transaction() as session:
        intent = _our_intent(session, message_id=message_id, location_id=location_id, contact_id=contact_id,
                             body=body)
        author = ConversationMessage.TEXTBACK if intent is not None else ConversationMessage.PERSON
        _log_message(session, payload, author=author, direction="outbound")
        if intent is None:
            who = f"user {payload['userId']}" if payload.get("userId") else (payload.get("source") or "someone")
            return f"recorded: a text to the caller from {who}"
        intent.echo_received_at = intent.echo_received_at or now
        intent.message_id = intent.message_id or message_id
        intent.conversation_id = intent.conversation_id or _text(payload.get("conversationId"))
        settled = None
        if intent.status == SendIntent.UNKNOWN:
            # The send failed ambiguously but HighLevel has the text: this echo settles it.
            intent.status = SendIntent.SENT
            intent.sent_at = sent_at = intent.sent_at or now
            settled = session.execute(update(MissedCall).where(MissedCall.id == intent.missed_call_id).values(
                status=MissedCall.SENT, outcome=describe_sent(intent, when=intent.sent_at), next_attempt_at=None
            ).returning(func.coalesce(MissedCall.called_at, MissedCall.created_at))).all()
        note = f"our own text for missed call {intent.missed_call_id}"
    if settled:
        metrics.text_sent(now=sent_at, called_at=settled[0][0])
    return note


def record_inbound_sms(database: Database, payload: Mapping, *, now: datetime,
                       lookup_phone: Callable[[str, str], str | None] | None = None) -> str:
    """Record a caller's SMS; an opt-out reply marks the caller opted out. Returns a note."""
    location_id = str(payload.get("locationId") or "")
    contact_id = _text(payload.get("contactId"))
    body = str(payload.get("body") or "")
    opting_in = is_opt_in(body)
    with database.transaction() as session:
        _log_message(session, payload, author=ConversationMessage.CALLER, direction="inbound")
        latest = latest_opt_keyword(session, location_id, contact_id) if opting_in or is_opt_out(body) else None
        if latest is not None and latest.message_id != _text(payload.get("messageId")):
            # Webhooks can come in any order: only the caller's latest STOP or START decides.
            # Not the message itself: this note is logged at info, and message bodies are not (only the keyword).
            return f"recorded: the caller's later {_keyword(latest.body)} stands over this earlier message"
        if opting_in:
            # Every number known for this contact is opted back in.
            numbers = [n for n in (_known_phone(session, location_id, contact_id),) if n]
            session.execute(update(Caller).where(Caller.location_id == location_id, Caller.phone.in_(numbers))
                            .values(opted_out_at=None, opt_out_source=None, updated_at=now))
            return "recorded: the caller opted back in to texts"
        if not is_opt_out(body):
            return "recorded: a text from the caller"
        phone = _known_phone(session, location_id, contact_id)
    if phone is None and lookup_phone is not None and contact_id:
        phone = normalize_number(lookup_phone(location_id, contact_id))
    if phone is None:
        return "recorded: an opt-out reply from a caller whose number we do not know (HighLevel DND applies)"
    with database.transaction() as session:
        insert_ignore(session, Caller, location_id=location_id, phone=phone, updated_at=now)
        session.execute(update(Caller)
                        .where(Caller.location_id == location_id, Caller.phone == phone,
                               Caller.opted_out_at.is_(None))
                        .values(opted_out_at=now, opt_out_source=f"replied {body.strip()[:150]!r}", updated_at=now))
    return "recorded: the caller opted out of texts"


def latest_opt_keyword(session, location_id: str, contact_id: str | None) -> ConversationMessage | None:
    """The caller's most recent STOP-like or START-like text (by the time HighLevel gave it), or None."""
    if not contact_id:
        return None
    texts = session.scalars(select(ConversationMessage).where(
        ConversationMessage.location_id == location_id, ConversationMessage.contact_id == contact_id,
        ConversationMessage.author == ConversationMessage.CALLER,
    ).order_by(ConversationMessage.occurred_at.desc().nulls_last(), ConversationMessage.id.desc()).limit(200))
    return next((t for t in texts if is_opt_out(t.body) or is_opt_in(t.body)), None)


def _keyword(body: str | None) -> str:
    return "START" if is_opt_in(body) else "STOP"


def _our_intent(session, *, message_id: str | None, location_id: str, contact_id: str | None,
                body: str) -> SendIntent | None:
    if message_id:
        intent = session.scalar(select(SendIntent).where(SendIntent.message_id == message_id))
        if intent is not None:
            return intent
    if not contact_id or not body:
        return None
    in_flight = session.scalars(select(SendIntent).where(
        SendIntent.location_id == location_id, SendIntent.contact_id == contact_id,
        SendIntent.message_id.is_(None), SendIntent.status.in_([SendIntent.SENDING, SendIntent.UNKNOWN]),
    ).order_by(SendIntent.id.desc()))
    wanted = " ".join(body.split())
    return next((i for i in in_flight if " ".join(i.body.split()) == wanted), None)


def _known_phone(session, location_id: str, contact_id: str | None) -> str | None:
    if not contact_id:
        return None
    phone = session.scalar(select(SendIntent.to_number).where(
        SendIntent.location_id == location_id, SendIntent.contact_id == contact_id).order_by(SendIntent.id.desc()))
    if phone:
        return phone
    return session.scalar(select(MissedCall.caller_number).where(
        MissedCall.location_id == location_id, MissedCall.contact_id == contact_id,
        MissedCall.caller_number.is_not(None)).order_by(MissedCall.id.desc()))


def _log_message(session, payload: Mapping, *, author: str, direction: str) -> None:
    insert_ignore(
        session, ConversationMessage,
        message_id=_text(payload.get("messageId")), location_id=str(payload.get("locationId") or ""),
        contact_id=_text(payload.get("contactId")), conversation_id=_text(payload.get("conversationId")),
        direction=direction, author=author, message_type=_text(payload.get("messageType")),
        source=_text(payload.get("source")), user_id=_text(payload.get("userId")),
        body=str(payload.get("body") or "")[:_MAX_BODY], occurred_at=parse_timestamp(payload.get("dateAdded")),
    )


def _text(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None
