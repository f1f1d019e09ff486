"""After our text went out: the lead, and the tag, note and opportunity HighLevel should show.

`open_lead` runs once the missed call is `sent` (any number of times: the lead is unique per call and
each action unique per lead). It also applies what the caller did before we got here (a reply or a
booking whose webhook was processed first), so the order of events does not matter. A skipped or
failed call never becomes a lead, so it never gets an opportunity.

The executors below run as jobs (integration.crm.runner). The opportunity is looked for before it is
created: the contact's open opportunity in the pipeline is reused, and a create that failed
ambiguously is found the same way instead of being made twice.
"""

from __future__ import annotations

import functools
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, exists, select, update

from integration.crm import actions, outcomes, replies
from integration.crm.directory import pick_pipeline, pick_stage, pick_user
from integration.crm.execution import CrmContext, Done, Failed
from integration.crm.models import CrmAction, CrmAppointment, CrmLead
from integration.crm.wording import contact_name, optional_text
from integration.db import Database
from integration.ghl.errors import GHLValidationError
from integration.textback.intents import inserted_id
from integration.textback.models import ConversationMessage, MissedCall, SendIntent
from integration.textback.settings import TextBackSettings

__all__ = ["add_note", "add_tags", "note_body", "open_lead", "open_opportunity"]

TAG, NOTE, OPPORTUNITY = "tag", "note", "opportunity"


def open_lead(database: Database, missed_call_id: int, *, settings: TextBackSettings, now: datetime) -> list[int]:
    """Make the texted missed call a lead and plan its HighLevel changes; the ids of its pending actions.

    Nothing happens for a call that was not texted (skipped, failed, still deferred): [] is returned.
    """
    with database.transaction() as session:
        connection = session.connection()
        call = connection.execute(_texted_call_query(), {"id": missed_call_id}).first()
        if call is None or call.status != MissedCall.SENT or not call.contact_id:
            return []
        if call.intent_status != SendIntent.SENT:
            return []
        values = {"missed_call_id": call.id, "location_id": call.location_id, "contact_id": call.contact_id,
                  "conversation_id": call.intent_conversation_id or call.conversation_id,
                  "caller_number": call.to_number, "called_at": call.called_at or call.created_at,
                  "texted_at": call.sent_at or now, "created_at": now, "updated_at": now}
        lead_id = inserted_id(session, CrmLead, **values)
        # A new lead is what was just written (not read back); an existing one is read as it is.
        lead = CrmLead(id=lead_id, **values) if lead_id is not None else \
            session.scalar(select(CrmLead).where(CrmLead.missed_call_id == call.id))
        common = {"location_id": lead.location_id, "contact_id": lead.contact_id, "lead_id": lead.id, "now": now}
        actions.plan(session, key=f"lead:{lead.id}:tag", kind=TAG,
                     params={"tags": [settings.crm.missed_call_tag]}, **common)
        actions.plan(session, key=f"lead:{lead.id}:note", kind=NOTE, **common)
        actions.plan(session, key=f"lead:{lead.id}:opportunity", kind=OPPORTUNITY, **common)
        # What the caller did before the text's webhook was done: a reply, a booking. Usually nothing, asked in one
        # statement before either catch-up reads it in full.
        earlier = connection.execute(_earlier_activity_query(), {"location_id": lead.location_id,
                                                                 "contact_id": lead.contact_id,
                                                                 "called_at": lead.called_at}).one()
        if earlier.texted_back:
            replies.catch_up(session, lead, settings=settings, now=now)
        if earlier.booked:
            outcomes.catch_up(session, lead, now=now)
        return list(connection.scalars(_pending_actions_query(), {"lead_id": lead.id}))


# open_lead's statements, built once with bound parameters (it runs for every texted call).


@functools.cache
def _texted_call_query():
    calls, sends = MissedCall.__table__.c, SendIntent.__table__.c
    return (select(calls.id, calls.status, calls.location_id, calls.contact_id, calls.conversation_id,
                   calls.called_at, calls.created_at, sends.status.label("intent_status"),
                   sends.conversation_id.label("intent_conversation_id"), sends.to_number, sends.sent_at)
            .select_from(MissedCall.__table__)
            .outerjoin(SendIntent.__table__, sends.call_key == calls.call_key)
            .where(calls.id == bindparam("id")))


@functools.cache
def _earlier_activity_query():
    texts, bookings = ConversationMessage.__table__.c, CrmAppointment.__table__.c
    texted_back = exists().where(texts.location_id == bindparam("location_id"),
                                 texts.contact_id == bindparam("contact_id"),
                                 texts.author == ConversationMessage.CALLER,
                                 texts.occurred_at >= bindparam("called_at"))
    booked = exists().where(bookings.location_id == bindparam("location_id"),
                            bookings.contact_id == bindparam("contact_id"),
                            bookings.booked_at >= bindparam("called_at"), bookings.lead_id.is_(None))
    return select(texted_back.label("texted_back"), booked.label("booked"))


@functools.cache
def _pending_actions_query():
    c = CrmAction.__table__.c
    return select(c.id).where(c.lead_id == bindparam("lead_id"), c.status == CrmAction.PENDING)


# --- Executors ---


def add_tags(ctx: CrmContext, action: CrmAction) -> Done:
    """Tag the contact (adding a tag twice is harmless at HighLevel; the action row keeps it to one call)."""
    tags = [str(t) for t in action.params.get("tags") or []]
    ctx.client.add_tags(action.location_id, action.contact_id, tags)
    return Done(f"tagged {', '.join(tags)}")


def note_body(lead: CrmLead, *, timezone: str | None) -> str:
    """ "Missed call at 14:02, texted at 14:02 (Tue Nov 24, TextBack)" in the business's time zone."""
    zone = _zone(timezone)
    called, texted = lead.called_at.astimezone(zone), lead.texted_at.astimezone(zone)
    return f"Missed call at {called:%H:%M}, texted at {texted:%H:%M} ({called:%a %b} {called.day}, TextBack)"


def add_note(ctx: CrmContext, action: CrmAction) -> Done:
    """The note on the contact; after an ambiguous failure, the contact's notes are read before adding again."""
    lead = ctx.lead(action.lead_id)
    body = note_body(lead, timezone=ctx.timezone(lead.location_id))
    if action.maybe_done:
        for note in ctx.client.list_notes(lead.location_id, lead.contact_id):
            if str(note.get("body") or "").strip() == body:
                return Done(f"the note {body!r} was already there", optional_text(note.get("id")))
    note = ctx.client.add_note(lead.location_id, lead.contact_id, body)
    return Done(f"added the note {body!r}", optional_text(note.get("id")))


def open_opportunity(ctx: CrmContext, action: CrmAction) -> Done:
    """Reuse the contact's open opportunity in the pipeline, else open one named after the contact."""
    lead = ctx.lead(action.lead_id)
    location_id, contact_id = lead.location_id, lead.contact_id
    settings, pipelines = ctx.settings(location_id).crm, ctx.pipelines(location_id)
    pipeline = pick_pipeline(settings, pipelines)
    if pipeline.id is None:
        raise Failed(f"no opportunity opened: {pipeline.problem}")
    existing = _open_in_pipeline(ctx, location_id, contact_id, pipeline.id)
    if existing is not None:
        return _link(ctx, lead, existing, f"reused the open opportunity {existing.get('name')!r} in {pipeline.name}")

    stage = pick_stage(settings, pipelines, pipeline_id=pipeline.id, step="new")
    if stage.id is None:
        raise Failed(f"no opportunity opened: {stage.problem}")
    user = pick_user(settings, ctx.profile(location_id))
    name = f"{contact_name(ctx.client.get_contact(location_id, contact_id))} (missed call)"
    try:
        created = ctx.client.create_opportunity(
            location_id, pipeline_id=pipeline.id, pipeline_stage_id=stage.id, name=name, contact_id=contact_id,
            monetary_value=settings.average_job_value or None, assigned_to=user.id)
    except GHLValidationError as exc:
        # HighLevel refuses a second open opportunity per contact and pipeline: ours may be it (an
        # earlier ambiguous create), or a person opened one meanwhile. Either way, use it.
        found = _open_in_pipeline(ctx, location_id, contact_id, pipeline.id) if "duplicate" in exc.message.lower() \
            else None
        if found is None:
            raise
        return _link(ctx, lead, found, f"reused the open opportunity {found.get('name')!r} in {pipeline.name}")
    value = f", value {settings.average_job_value:,.0f}" if settings.average_job_value else ""
    who = f", assigned to {user.name}" if user.id else f" ({user.problem}; unassigned)"
    return _link(ctx, lead, created, f"opened opportunity {name!r} in {pipeline.name} / {stage.name}{value}{who}")


def _open_in_pipeline(ctx: CrmContext, location_id: str, contact_id: str, pipeline_id: str) -> dict | None:
    found = ctx.client.search_opportunities(location_id, contact_id=contact_id, pipeline_id=pipeline_id,
                                            status="open")
    return next((o for o in found if o.get("id") and o.get("contactId") in (None, contact_id)
                 and o.get("pipelineId") in (None, pipeline_id)
                 and str(o.get("status") or "open").lower() == "open"), None)


def _link(ctx: CrmContext, lead: CrmLead, opportunity: dict, outcome: str) -> Done:
    """Remember the opportunity on the lead; the stage moves that were waiting for it become due."""
    now = ctx.clock()
    with ctx.database.transaction() as session:
        session.execute(update(CrmLead).where(CrmLead.id == lead.id).values(
            opportunity_id=str(opportunity["id"]), pipeline_id=optional_text(opportunity.get("pipelineId")),
            stage_id=optional_text(opportunity.get("pipelineStageId")), updated_at=now))
        woken = actions.wake_lead_actions(session, lead.id, kinds=("stage",), now=now)
    return Done(outcome, str(opportunity["id"]), wake=tuple(woken))


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")

