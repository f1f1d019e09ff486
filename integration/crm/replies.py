"""The caller's reply: the lead is marked replied, tagged, its opportunity moved, and the team gets a task.

A reply is an inbound SMS from the lead's contact between the call and the end of the reply window
after our text (settings crm.reply_window_hours); STOP and START are opt-outs, not replies. The
earliest reply is the one kept, whatever order the webhooks came in, and a lead gets one task and
one on-call alert however many texts the caller sends. A reply recorded before our text's lead
existed is applied by `catch_up` when the lead is opened.

The reply itself already shows in HighLevel's conversation view: nothing is echoed back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from integration.crm import actions
from integration.crm.directory import pick_user
from integration.crm.execution import CrmContext, Done, Failed, Skipped
from integration.crm.models import CrmAction, CrmLead
from integration.crm.stages import STAGE, stage_key
from integration.crm.takeover import human_handling
from integration.crm.wording import excerpt, first_name, optional_text
from integration.textback.missed_call import parse_timestamp
from integration.textback.models import ConversationMessage
from integration.textback.opt_out import is_opt_in, is_opt_out
from integration.textback.settings import TextBackSettings

__all__ = ["ALERT", "TASK", "alert_on_call", "apply_reply", "catch_up", "create_task"]

TASK, ALERT = "task", "alert"


def apply_reply(session: Session, *, location_id: str, contact_id: str | None, message_id: str | None,
                body: str, occurred_at: datetime, settings: TextBackSettings, now: datetime) -> CrmLead | None:
    """Record a caller's SMS as the reply to their missed-call text; the lead it answers, or None.

    With the booking agent on (settings.agent.active) the caller is answered by it: no task or on-call alert is
    planned here, the agent plans them when it hands over or hears an emergency (integration.agent.handover).
    """
    if not contact_id or is_opt_out(body) or is_opt_in(body):
        return None
    window = timedelta(hours=settings.crm.reply_window_hours)
    leads = session.scalars(select(CrmLead).where(
        CrmLead.location_id == location_id, CrmLead.contact_id == contact_id, CrmLead.called_at <= occurred_at,
    ).order_by(CrmLead.texted_at.desc()))
    lead = next((candidate for candidate in leads if occurred_at <= candidate.texted_at + window), None)
    if lead is None:
        return None
    _mark_replied(session, lead, message_id=message_id, body=body, at=occurred_at, now=now)
    _plan(session, lead, settings=settings, now=now)
    return lead


def catch_up(session: Session, lead: CrmLead, *, settings: TextBackSettings, now: datetime) -> None:
    """Apply the caller's texts that were recorded before the lead existed (their webhook came first)."""
    window_end = lead.texted_at + timedelta(hours=settings.crm.reply_window_hours)
    texts = session.scalars(select(ConversationMessage).where(
        ConversationMessage.location_id == lead.location_id, ConversationMessage.contact_id == lead.contact_id,
        ConversationMessage.author == ConversationMessage.CALLER, ConversationMessage.occurred_at >= lead.called_at,
        ConversationMessage.occurred_at <= window_end,
    ).order_by(ConversationMessage.occurred_at))
    for text in texts:
        if not (is_opt_out(text.body) or is_opt_in(text.body)):
            _mark_replied(session, lead, message_id=text.message_id, body=text.body or "", at=text.occurred_at,
                          now=now)
            _plan(session, lead, settings=settings, now=now)
            return


def _mark_replied(session: Session, lead: CrmLead, *, message_id: str | None, body: str, at: datetime,
                  now: datetime) -> None:
    session.execute(update(CrmLead).where(CrmLead.id == lead.id,
                                          or_(CrmLead.replied_at.is_(None), CrmLead.replied_at > at))
                    .values(replied_at=at, reply_message_id=message_id, reply_body=body[:1000], updated_at=now))


def _plan(session: Session, lead: CrmLead, *, settings: TextBackSettings, now: datetime) -> None:
    common = {"location_id": lead.location_id, "contact_id": lead.contact_id, "lead_id": lead.id, "now": now}
    actions.plan(session, key=f"lead:{lead.id}:tag:replied", kind="tag",
                 params={"tags": [settings.crm.replied_tag]}, **common)
    actions.plan(session, key=stage_key(lead.id, "replied"), kind=STAGE, params={"to": "replied"}, **common)
    if settings.agent.active:
        return
    actions.plan(session, key=f"lead:{lead.id}:task", kind=TASK, **common)
    if settings.crm.on_call_number:
        actions.plan(session, key=f"lead:{lead.id}:alert", kind=ALERT, **common)


# --- Executors ---


def _not_while_a_person_handles_it(ctx: CrmContext, lead: CrmLead) -> None:
    with ctx.database.session() as session:
        person = human_handling(session, lead.location_id, lead.contact_id, since=lead.called_at)
    if person is not None:
        raise Skipped(f"a person (user {person.human_user_id}) is already handling the conversation")


def create_task(ctx: CrmContext, action: CrmAction) -> Done:
    """ "Call back John — replied to missed-call text: '…'" for the chosen user, due in the configured minutes."""
    lead = ctx.lead(action.lead_id)
    _not_while_a_person_handles_it(ctx, lead)
    settings, profile = ctx.settings(lead.location_id).crm, ctx.profile(lead.location_id)
    contact = ctx.client.get_contact(lead.location_id, lead.contact_id)
    title = f"Call back {first_name(contact)} — replied to missed-call text: '{excerpt(lead.reply_body, 60)}'"
    due = (lead.replied_at or ctx.clock()) + timedelta(minutes=settings.task_due_minutes)
    user = pick_user(settings, profile)
    if action.maybe_done:
        for task in ctx.client.list_tasks(lead.location_id, lead.contact_id):
            if str(task.get("title") or "") == title:
                return Done(f"the task {title!r} was already there", optional_text(task.get("id")))
    body = (f"{contact.get('phone') or lead.caller_number or ''} called at {lead.called_at:%Y-%m-%d %H:%M} UTC, "
            f"got our text and replied: {lead.reply_body or ''}").strip()
    task = ctx.client.create_task(lead.location_id, lead.contact_id, title=title, body=body, due_date=due,
                                  assigned_to=user.id)
    who = f"for {user.name}" if user.id else f"unassigned ({user.problem})"
    return Done(f"task {who}, due {due:%H:%M} UTC: {title!r}", optional_text(task.get("id")))


def alert_on_call(ctx: CrmContext, action: CrmAction) -> Done:
    """Text the on-call number that the caller replied (it must be a contact: HighLevel texts contacts only)."""
    lead = ctx.lead(action.lead_id)
    number = ctx.settings(lead.location_id).crm.on_call_number
    if not number:
        raise Skipped("no on-call number is set any more")
    _not_while_a_person_handles_it(ctx, lead)
    recipient = ctx.client.find_contact_by_phone(lead.location_id, number)
    if recipient is None or not recipient.get("id"):
        raise Failed(f"no contact in HighLevel has the on-call number {number}; add one so TextBack can text it")
    caller = ctx.client.get_contact(lead.location_id, lead.contact_id)
    name, phone = first_name(caller), str(caller.get("phone") or lead.caller_number or "")
    who = name if name == phone or not phone else f"{name} ({phone})"
    if action.params.get("emergency"):
        # From the booking agent: an emergency said in any of the caller's texts, not only the first reply.
        body = (f"TextBack EMERGENCY ({action.params['emergency']}): {who} texted: "
                f"\"{excerpt(action.params.get('text') or lead.reply_body, 120)}\". Please call them now.")
    else:
        body = (f"TextBack: {who} replied to the missed-call text: \"{excerpt(lead.reply_body, 120)}\". "
                "Please call them back.")
    if action.maybe_done:
        sent = _already_sent(ctx, lead.location_id, recipient_id=str(recipient["id"]), body=body,
                             after=action.created_at)
        if sent is not None:
            return Done(f"the on-call number {number} was already texted", sent)
    answer = ctx.client.send_message(lead.location_id, contact_id=str(recipient["id"]), message=body,
                                     to_number=number)
    return Done(f"texted the on-call number {number}", optional_text(answer.get("messageId")))


def _already_sent(ctx: CrmContext, location_id: str, *, recipient_id: str, body: str, after: datetime) -> str | None:
    """The id of our alert if an earlier, ambiguous attempt did reach the recipient's conversation."""
    wanted = " ".join(body.split())
    for conversation in ctx.client.search_conversations(location_id, contact_id=recipient_id, limit=5):
        for message in ctx.client.list_messages(location_id, str(conversation.get("id")), limit=50):
            added = parse_timestamp(message.get("dateAdded"))
            if (str(message.get("direction") or "").lower() == "outbound"
                    and " ".join(str(message.get("body") or "").split()) == wanted
                    and (added is None or added >= after - timedelta(minutes=2))):
                return optional_text(message.get("id"))
    return None

