"""Sending what the agent owes the caller: in order, exactly once, and only while it still may.

Right before each text (the state may have changed since it was decided): no person has texted the caller
since the call (integration.crm.takeover), the caller has not opted out, it is not quiet hours in the caller's
zone (the text waits for the morning; integration.textback.quiet_hours), and the conversation is under its
hourly cap (then the team takes over). Each text goes through `POST /conversations/messages`, so it shows in
HighLevel's conversation; a timeout or 5xx leaves it `unknown` and the conversation is read before it is sent
again, as the text back does. A 429 leaves it pending for after Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from integration.agent.models import AgentConversation, AgentOutbound
from integration.crm.takeover import human_handling
from integration.ghl.errors import GHLError, GHLRateLimited
from integration.textback.conversation import latest_opt_keyword
from integration.textback.missed_call import parse_timestamp
from integration.textback.models import Caller
from integration.textback.opt_out import is_opt_out
from integration.textback.quiet_hours import SendingWindows, next_allowed_time
from oauth.errors import TokenUnavailable

__all__ = ["Blocked", "SendPlan", "is_ours", "send_pending"]

log = logging.getLogger(__name__)

# After an ambiguous failure, how long our text may take to show in the conversation before it is sent again.
RECONCILE_AFTER = timedelta(seconds=10)


@dataclass(frozen=True)
class SendPlan:
    """Who the texts go to and the rules they go under (from the lead's text-back and the settings)."""

    location_id: str
    contact_id: str
    from_number: str | None
    to_number: str | None
    called_at: datetime
    zones: tuple[str, ...]
    windows: SendingWindows
    max_per_hour: int


@dataclass(frozen=True)
class Blocked:
    """Why nothing more may be sent: the new state ("silenced", "stopped", "handed_over") and the reason."""

    state: str
    reason: str


def _pending(session: Session, conversation_id: int) -> list[AgentOutbound]:
    return list(session.scalars(select(AgentOutbound).where(
        AgentOutbound.conversation_id == conversation_id,
        AgentOutbound.status.in_([AgentOutbound.PENDING, AgentOutbound.SENDING, AgentOutbound.UNKNOWN]),
    ).order_by(AgentOutbound.id)))


def drop_pending(session: Session, conversation_id: int, *, reason: str) -> int:
    """Drop every text not sent yet (a person took over, STOP, a hand-over); how many."""
    return session.execute(update(AgentOutbound).where(
        AgentOutbound.conversation_id == conversation_id,
        AgentOutbound.status.in_([AgentOutbound.PENDING, AgentOutbound.UNKNOWN]),
    ).values(status=AgentOutbound.DROPPED, last_error=reason[:2000])).rowcount


def _blocked(session: Session, plan: SendPlan) -> Blocked | None:
    person = human_handling(session, plan.location_id, plan.contact_id, since=plan.called_at)
    if person is not None:
        return Blocked("silenced", f"a person (user {person.human_user_id}) texted the caller")
    latest = latest_opt_keyword(session, plan.location_id, plan.contact_id)
    if latest is not None and is_opt_out(latest.body):
        return Blocked("stopped", "the caller opted out")
    if plan.to_number:
        caller = session.get(Caller, (plan.location_id, plan.to_number))
        if caller is not None and caller.opted_out_at is not None:
            return Blocked("stopped", "the caller opted out")
    return None


def send_pending(database, client, conversation_id: int, plan: SendPlan, *, now: Callable[[], datetime]
                 ) -> tuple[list[str], Blocked | None, datetime | None]:
    """Send the conversation's pending texts; (what happened, why it must stop if so, when to try again)."""
    outcomes: list[str] = []
    while True:
        with database.transaction() as session:
            pending = _pending(session, conversation_id)
            if not pending:
                return outcomes, None, None
            row = pending[0]
            blocked = _blocked(session, plan)
            if blocked is not None:
                drop_pending(session, conversation_id, reason=blocked.reason)
                return [*outcomes, f"not sent: {blocked.reason}"], blocked, None
            moment = now()
            allowed = next_allowed_time(moment, zones=plan.zones, windows=plan.windows)
            if allowed > moment:
                row.not_before = allowed
                return [*outcomes, f"waiting for {allowed:%Y-%m-%d %H:%M} UTC (quiet hours)"], None, allowed
            sent_last_hour = session.scalar(select(func.count()).select_from(AgentOutbound).where(
                AgentOutbound.conversation_id == conversation_id, AgentOutbound.status == AgentOutbound.SENT,
                AgentOutbound.sent_at > moment - timedelta(hours=1)))
            if sent_last_hour >= plan.max_per_hour:
                blocked = Blocked("handed_over", f"the limit of {plan.max_per_hour} agent texts an hour is reached")
                drop_pending(session, conversation_id, reason=blocked.reason)
                return [*outcomes, f"not sent: {blocked.reason}"], blocked, None
            status, row_id, body, created_at = row.status, row.id, row.body, row.created_at
            if status == AgentOutbound.SENDING:
                # Another attempt died mid-send: as ambiguous as a timeout.
                status = AgentOutbound.UNKNOWN
        if status == AgentOutbound.UNKNOWN:
            found = _find_sent(client, plan, body=body, after=created_at)
            if found is not None:
                _mark_sent(database, row_id, found, at=now())
                outcomes.append("found our text in the conversation")
                continue
            with database.session() as session:
                waited = now() - (session.get(AgentOutbound, row_id).sent_at or created_at)
            if waited < RECONCILE_AFTER:
                return [*outcomes, "waiting to see whether HighLevel took the text"], None, now() + RECONCILE_AFTER
        with database.transaction() as session:
            claimed = session.execute(update(AgentOutbound).where(
                AgentOutbound.id == row_id, AgentOutbound.status.in_([AgentOutbound.PENDING, AgentOutbound.UNKNOWN,
                                                                      AgentOutbound.SENDING]),
            ).values(status=AgentOutbound.SENDING, attempts=AgentOutbound.attempts + 1)).rowcount
        if not claimed:
            continue
        try:
            answer = client.send_message(plan.location_id, contact_id=plan.contact_id, message=body,
                                         from_number=plan.from_number, to_number=plan.to_number)
        except TokenUnavailable as exc:
            _set_status(database, row_id, AgentOutbound.PENDING, error=str(exc))
            return [*outcomes, f"no HighLevel token right now ({exc})"], None, now() + timedelta(seconds=30)
        except GHLRateLimited as exc:
            _set_status(database, row_id, AgentOutbound.PENDING, error=str(exc))
            return [*outcomes, "HighLevel rate limit"], None, now() + timedelta(seconds=exc.retry_after or 10)
        except GHLError as exc:
            if exc.is_ambiguous:
                # sent_at holds the failure's time while unknown: the grace before sending again runs from it.
                _set_status(database, row_id, AgentOutbound.UNKNOWN, error=str(exc), sent_at=now())
                return [*outcomes, f"maybe sent ({exc.message})"], None, now() + RECONCILE_AFTER
            _set_status(database, row_id, AgentOutbound.DROPPED, error=str(exc))
            log.warning("agent conversation %s: HighLevel refused a text (%s)", conversation_id, exc)
            blocked = Blocked("handed_over", f"HighLevel refused the agent's text: {exc.message}")
            with database.transaction() as session:
                drop_pending(session, conversation_id, reason=blocked.reason)
            return [*outcomes, f"not sent: {blocked.reason}"], blocked, None
        _mark_sent(database, row_id, str(answer.get("messageId") or ""), at=now())
        outcomes.append("texted the caller")


def _set_status(database, row_id: int, status: str, *, error: str, sent_at: datetime | None = None) -> None:
    values: dict = {"status": status, "last_error": error[:2000]}
    if sent_at is not None:
        values["sent_at"] = sent_at
    with database.transaction() as session:
        session.execute(update(AgentOutbound).where(AgentOutbound.id == row_id).values(**values))


def _mark_sent(database, row_id: int, message_id: str, *, at: datetime) -> None:
    with database.transaction() as session:
        session.execute(update(AgentOutbound).where(AgentOutbound.id == row_id).values(
            status=AgentOutbound.SENT, message_id=message_id or None, sent_at=at))


def _find_sent(client, plan: SendPlan, *, body: str, after: datetime) -> str | None:
    """The messageId of our text if HighLevel's conversation has it (an ambiguous attempt went through)."""
    wanted = " ".join(body.split())
    for conversation in client.search_conversations(plan.location_id, contact_id=plan.contact_id, limit=5):
        for message in client.list_messages(plan.location_id, str(conversation.get("id")), limit=50):
            added = parse_timestamp(message.get("dateAdded"))
            if (str(message.get("direction") or "").lower() == "outbound"
                    and " ".join(str(message.get("body") or "").split()) == wanted
                    and (added is None or added >= after - timedelta(minutes=2))):
                return str(message.get("id") or "") or None
    return None


def is_ours(session: Session, *, location_id: str, contact_id: str | None, message_id: str | None,
            body: str) -> bool:
    """Is this OutboundMessage one of the agent's own texts (by messageId, or by body while it is in flight)?"""
    if message_id and session.scalar(select(AgentOutbound.id).where(AgentOutbound.message_id == message_id)):
        return True
    if not contact_id or not body:
        return False
    wanted = " ".join(body.split())
    in_flight = session.scalars(select(AgentOutbound.body).join(
        AgentConversation, AgentConversation.id == AgentOutbound.conversation_id).where(
        AgentConversation.location_id == location_id, AgentConversation.contact_id == contact_id,
        AgentOutbound.status.in_([AgentOutbound.SENDING, AgentOutbound.UNKNOWN, AgentOutbound.SENT]),
        AgentOutbound.message_id.is_(None) | (AgentOutbound.status != AgentOutbound.SENT)))
    return any(" ".join(text.split()) == wanted for text in in_flight)
