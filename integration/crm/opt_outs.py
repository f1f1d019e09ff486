"""Opt-outs at HighLevel: SMS DND after a STOP, lifted after START if we set it, and our mirror of DND.

Our own suppression takes effect the moment the STOP is recorded (integration.textback.conversation
marks the caller opted out; the sender re-checks it right before every send). Here the contact's SMS
DND is also turned on through the API, unless HighLevel already did (it does for carrier keywords;
"revoke" or "opt out" it may not). START lifts our suppression; the DND is lifted only if we were
the ones who set it. Each executor first checks that the caller's latest keyword still says so.

ContactDndUpdate keeps our view current: DND turned on in HighLevel suppresses our texts at once
(the sender's pre-send check reads it), and turning it off lifts only a suppression that came from
DND, never one the caller asked for by replying STOP.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from integration.crm import actions
from integration.crm.execution import CrmContext, Done, Skipped
from integration.crm.models import CrmAction, CrmContact
from integration.textback.conversation import latest_opt_keyword
from integration.textback.guards import ContactFacts
from integration.textback.intents import insert_ignore
from integration.textback.missed_call import parse_timestamp
from integration.textback.models import Caller
from integration.textback.opt_out import is_opt_in, is_opt_out
from integration.textback.phone import normalize_number

__all__ = ["DND", "DND_SOURCE", "mirror_dnd", "plan_dnd", "set_sms_dnd"]

DND = "dnd"
# The opt_out_source of a suppression that mirrors HighLevel's DND (the only kind DND turning off lifts).
DND_SOURCE = "HighLevel SMS DND"
SET_BY_US = "set"


def plan_dnd(session: Session, *, location_id: str, contact_id: str | None, message_id: str | None, body: str,
             now: datetime) -> int | None:
    """After a STOP: turn SMS DND on. After a START: turn it off if we turned it on. The action id, or None."""
    if not contact_id or not message_id:
        return None
    if is_opt_out(body):
        return actions.plan(session, key=f"dnd:{location_id}:{contact_id}:{message_id}", kind=DND,
                            location_id=location_id, contact_id=contact_id, params={"active": True}, now=now)
    if is_opt_in(body) and _we_set_it(session, location_id, contact_id):
        return actions.plan(session, key=f"dnd:{location_id}:{contact_id}:{message_id}", kind=DND,
                            location_id=location_id, contact_id=contact_id, params={"active": False}, now=now)
    return None


def _we_set_it(session: Session, location_id: str, contact_id: str) -> bool:
    latest = session.scalar(select(CrmAction).where(
        CrmAction.location_id == location_id, CrmAction.contact_id == contact_id, CrmAction.kind == DND,
        CrmAction.status == CrmAction.DONE,
    ).order_by(CrmAction.finished_at.desc(), CrmAction.id.desc()))
    return latest is not None and latest.params.get("active") is True and latest.result_id == SET_BY_US


def set_sms_dnd(ctx: CrmContext, action: CrmAction) -> Done:
    """Executor: make HighLevel's SMS DND match the caller's latest STOP (on) or START (off)."""
    active = bool(action.params.get("active"))
    with ctx.database.session() as session:
        latest = latest_opt_keyword(session, action.location_id, action.contact_id)
    if latest is not None and is_opt_out(latest.body) != active:
        raise Skipped(f"the caller's latest reply ({latest.body!r}) says otherwise")
    contact = ContactFacts.from_api(ctx.client.get_contact(action.location_id, action.contact_id))
    if contact.sms_blocked == active:
        return Done(f"HighLevel had SMS DND {'on' if active else 'off'} already", "already")
    ctx.client.set_sms_dnd(action.location_id, action.contact_id, active,
                           message="Replied STOP to a text" if active else None)
    return Done(f"turned SMS DND {'on' if active else 'off'} at HighLevel", SET_BY_US if active else "cleared")


def mirror_dnd(session: Session, payload: Mapping, *, now: datetime) -> str:
    """ContactDndUpdate: record the contact's SMS DND and suppress (or release) their number; a note."""
    location_id = str(payload.get("locationId") or "")
    contact_id = str(payload.get("id") or payload.get("contactId") or "")
    if not contact_id:
        return "a DND update without a contact id: nothing to record"
    active = ContactFacts.from_api(payload).sms_blocked
    at = parse_timestamp(payload.get("timestamp")) or now
    insert_ignore(session, CrmContact, location_id=location_id, contact_id=contact_id, updated_at=now)
    applied = session.execute(update(CrmContact).where(
        CrmContact.location_id == location_id, CrmContact.contact_id == contact_id,
        or_(CrmContact.dnd_seen_at.is_(None), CrmContact.dnd_seen_at <= at),
    ).values(sms_dnd=active, dnd_seen_at=at, updated_at=now)).rowcount
    if not applied:
        return "an older DND update than the one recorded; ignored"
    phone = normalize_number(payload.get("phone"))
    if phone is None:
        return f"SMS DND {'on' if active else 'off'} recorded (the contact has no number to suppress)"
    if active:
        insert_ignore(session, Caller, location_id=location_id, phone=phone, updated_at=now)
        session.execute(update(Caller).where(Caller.location_id == location_id, Caller.phone == phone,
                                             Caller.opted_out_at.is_(None))
                        .values(opted_out_at=now, opt_out_source=DND_SOURCE, updated_at=now))
        return f"SMS DND on: {phone} gets no automated text"
    session.execute(update(Caller).where(Caller.location_id == location_id, Caller.phone == phone,
                                         Caller.opt_out_source == DND_SOURCE)
                    .values(opted_out_at=None, opt_out_source=None, updated_at=now))
    return "SMS DND off recorded (a STOP the caller sent still stands)"
