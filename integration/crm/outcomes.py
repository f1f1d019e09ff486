"""Outcomes for the report: booked (AppointmentCreate), won or lost (OpportunityStatusUpdate), and the stage.

An appointment is stored even when no lead is known for its contact yet, so a booking whose webhook
is processed before our text's lead exists is applied when the lead is opened (`catch_up`). The
lead a booking belongs to is the contact's latest open lead texted before it was booked.

Opportunity events are matched to a lead by the opportunity id we recorded (other opportunities of
the contact are none of our business). Each carries HighLevel's `timestamp`:
an event older than the one applied last is ignored, so out-of-order deliveries cannot undo a newer
status or stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from integration.crm import actions
from integration.crm.models import CrmAppointment, CrmLead
from integration.crm.stages import STAGE, stage_key
from integration.crm.wording import optional_text
from integration.textback.intents import insert_ignore
from integration.textback.missed_call import parse_timestamp

__all__ = ["catch_up", "record_appointment", "record_opportunity_stage", "record_opportunity_status"]

_CLOSED_STATUSES = {"won": CrmLead.WON, "lost": CrmLead.LOST, "abandoned": CrmLead.ABANDONED}


def record_appointment(session: Session, payload: Mapping, *, now: datetime) -> tuple[str, CrmLead | None]:
    """Store an AppointmentCreate and mark its lead booked; (a note for the inbox row, the lead booked)."""
    appointment = payload.get("appointment") if isinstance(payload.get("appointment"), Mapping) else {}
    appointment_id = optional_text(appointment.get("id"))
    location_id = str(payload.get("locationId") or appointment.get("locationId") or "")
    if appointment_id is None:
        return "an appointment without an id: nothing to record", None
    booked_at = parse_timestamp(appointment.get("dateAdded")) or now
    insert_ignore(session, CrmAppointment, appointment_id=appointment_id[:64], location_id=location_id,
                  contact_id=optional_text(appointment.get("contactId")),
                  calendar_id=optional_text(appointment.get("calendarId")),
                  status=optional_text(appointment.get("appointmentStatus")),
                  starts_at=parse_timestamp(appointment.get("startTime")), booked_at=booked_at, received_at=now)
    row = session.get(CrmAppointment, appointment_id[:64])
    lead = _lead_booked_by(session, row)
    if lead is None:
        return f"appointment {appointment_id} recorded (not for a texted missed call)", None
    _mark_booked(session, lead, row, now=now)
    return f"appointment {appointment_id}: the lead of missed call {lead.missed_call_id} is booked", lead


def catch_up(session: Session, lead: CrmLead, *, now: datetime) -> None:
    """Apply an appointment booked before the lead existed (its webhook came first)."""
    row = session.scalar(select(CrmAppointment).where(
        CrmAppointment.location_id == lead.location_id, CrmAppointment.contact_id == lead.contact_id,
        CrmAppointment.booked_at >= lead.called_at, CrmAppointment.lead_id.is_(None),
    ).order_by(CrmAppointment.booked_at))
    if row is not None:
        _mark_booked(session, lead, row, now=now)


def _lead_booked_by(session: Session, appointment: CrmAppointment) -> CrmLead | None:
    if appointment.lead_id is not None:
        return session.get(CrmLead, appointment.lead_id)
    if not appointment.contact_id:
        return None
    return session.scalar(select(CrmLead).where(
        CrmLead.location_id == appointment.location_id, CrmLead.contact_id == appointment.contact_id,
        CrmLead.called_at <= appointment.booked_at, CrmLead.outcome.is_(None),
    ).order_by(CrmLead.texted_at.desc()))


def _mark_booked(session: Session, lead: CrmLead, appointment: CrmAppointment, *, now: datetime) -> None:
    session.execute(update(CrmAppointment).where(CrmAppointment.appointment_id == appointment.appointment_id)
                    .values(lead_id=lead.id))
    session.execute(update(CrmLead).where(CrmLead.id == lead.id,
                                          or_(CrmLead.booked_at.is_(None), CrmLead.booked_at > appointment.booked_at))
                    .values(booked_at=appointment.booked_at, appointment_id=appointment.appointment_id,
                            updated_at=now))
    actions.plan(session, key=stage_key(lead.id, "booked"), kind=STAGE, location_id=lead.location_id,
                 contact_id=lead.contact_id, lead_id=lead.id, params={"to": "booked"}, now=now)


def _lead_of_opportunity(session: Session, payload: Mapping) -> CrmLead | None:
    opportunity_id = optional_text(payload.get("id"))
    if opportunity_id is None:
        return None
    return session.scalar(select(CrmLead).where(CrmLead.location_id == str(payload.get("locationId") or ""),
                                                CrmLead.opportunity_id == opportunity_id)
                          .order_by(CrmLead.texted_at.desc()))


def _event_time(payload: Mapping, now: datetime) -> datetime:
    return parse_timestamp(payload.get("timestamp")) or now


def record_opportunity_status(session: Session, payload: Mapping, *, now: datetime) -> str | None:
    """OpportunityStatusUpdate: won, lost or abandoned (with the value), or open again. None: not ours."""
    lead = _lead_of_opportunity(session, payload)
    if lead is None:
        return None
    status = str(payload.get("status") or "").lower()
    at = _event_time(payload, now)
    value = payload.get("monetaryValue")
    value = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if lead.outcome_at is not None and at < lead.outcome_at:
        return f"lead {lead.id}: an older status ({status}) than the one recorded; ignored"
    if status in _CLOSED_STATUSES:
        outcome = _CLOSED_STATUSES[status]
        session.execute(update(CrmLead).where(CrmLead.id == lead.id).values(
            outcome=outcome, outcome_value=value, outcome_at=at, updated_at=now))
        shown = f" ({value:,.2f})" if value is not None else ""
        return f"lead {lead.id}: {outcome}{shown}"
    if status == "open":
        session.execute(update(CrmLead).where(CrmLead.id == lead.id).values(
            outcome=None, outcome_value=None, outcome_at=at, updated_at=now))
        return f"lead {lead.id}: opportunity open again"
    return f"lead {lead.id}: status {status or 'missing'} not understood; nothing recorded"


def record_opportunity_stage(session: Session, payload: Mapping, *, now: datetime) -> str | None:
    """OpportunityStageUpdate: keep our view of the stage current (a person may move it). None: not ours."""
    lead = _lead_of_opportunity(session, payload)
    if lead is None:
        return None
    at = _event_time(payload, now)
    stage_id = optional_text(payload.get("pipelineStageId"))
    if stage_id == lead.stage_id:
        return f"lead {lead.id}: stage {stage_id} (as recorded)"
    moved = session.execute(update(CrmLead).where(
        CrmLead.id == lead.id, or_(CrmLead.stage_seen_at.is_(None), CrmLead.stage_seen_at <= at),
    ).values(stage_id=stage_id, pipeline_id=optional_text(payload.get("pipelineId")) or lead.pipeline_id,
             stage_seen_at=at, updated_at=now)).rowcount
    return f"lead {lead.id}: stage {stage_id}" if moved else f"lead {lead.id}: an older stage update; ignored"
