"""Contact, opportunity and appointment webhooks: our view of DND, and the outcomes for the report.

Each handler is one transaction on our own tables (no API call): the same webhook twice finds what the
first one wrote, and an older event arriving late is ignored by its timestamp (integration.crm.outcomes,
integration.crm.opt_outs). A stage move a booking asks for runs as a CRM action job.
"""

from __future__ import annotations

from sqlalchemy import select

from integration.crm import opt_outs, outcomes
from integration.crm.models import CrmAction
from integration.db import utcnow
from integration.extensions import db
from workers.crm import schedule_now
from workers.errors import EventIgnored

__all__ = [
    "handle_appointment_create",
    "handle_contact_dnd_update",
    "handle_opportunity_stage_update",
    "handle_opportunity_status_update",
]


def handle_contact_dnd_update(payload: dict, *, event_id: int) -> str:
    """ContactDndUpdate: record the contact's SMS DND; on, their number gets no automated text at once."""
    with db.transaction() as session:
        return opt_outs.mirror_dnd(session, payload, now=utcnow())


def handle_appointment_create(payload: dict, *, event_id: int) -> str:
    """AppointmentCreate: the lead is booked, and its opportunity moves to the booked stage."""
    now = utcnow()
    with db.transaction() as session:
        note, lead = outcomes.record_appointment(session, payload, now=now)
        pending = [] if lead is None else list(session.scalars(select(CrmAction.id).where(
            CrmAction.lead_id == lead.id, CrmAction.status == CrmAction.PENDING)))
    schedule_now(pending)
    return note


def handle_opportunity_status_update(payload: dict, *, event_id: int) -> str:
    """OpportunityStatusUpdate: won or lost (with the value) for the missed-call report."""
    with db.transaction() as session:
        note = outcomes.record_opportunity_status(session, payload, now=utcnow())
    if note is None:
        raise EventIgnored("not the opportunity of a texted missed call")
    return note


def handle_opportunity_stage_update(payload: dict, *, event_id: int) -> str:
    """OpportunityStageUpdate: keep our view of the stage (a person may move it) current."""
    with db.transaction() as session:
        note = outcomes.record_opportunity_stage(session, payload, now=utcnow())
    if note is None:
        raise EventIgnored("not the opportunity of a texted missed call")
    return note
