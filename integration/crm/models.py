"""CRM follow-up tables: the lead a texted missed call became, the HighLevel changes it asks for, what we
know about each contact (DND, human takeover), and the appointments booked for them.

The database is the record of truth, as for the text back: every change at HighLevel is a CrmAction
row, unique per purpose (its `key`), written before the API call and finished with a readable outcome.
The same webhook or job twice finds the row and changes nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from integration.db import Base, JSONType, UTCDateTime, utcnow

__all__ = ["CrmAction", "CrmAppointment", "CrmContact", "CrmLead"]

BigId = BigInteger().with_variant(Integer(), "sqlite")


class CrmLead(Base):
    """A missed call we texted, and how far the caller went: replied, booked, won or lost.

    One per missed call (unique). The stage is derived from the timestamps, never stored, so two jobs
    recording a reply and a booking at the same moment cannot overwrite each other's progress.
    """

    __tablename__ = "crm_leads"
    __table_args__ = (
        Index("ix_crm_leads_contact", "location_id", "contact_id", "texted_at"),
        # The report's response times: an index-only scan of a period's leads (migrations 0015, 0017).
        Index("ix_crm_leads_location_called", "location_id", "called_at",
              postgresql_include=["texted_at", "first_human_reply_at"]),
    )

    TEXTED, REPLIED, BOOKED, WON, LOST, ABANDONED = "texted", "replied", "booked", "won", "lost", "abandoned"
    CLOSED = frozenset({WON, LOST, ABANDONED})

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    missed_call_id: Mapped[int] = mapped_column(ForeignKey("textback_missed_calls.id"), unique=True)
    location_id: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    caller_number: Mapped[str | None] = mapped_column(String(32))
    called_at: Mapped[datetime] = mapped_column(UTCDateTime)
    texted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The caller's first text after the call (the earliest one, whatever order the webhooks came in).
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reply_message_id: Mapped[str | None] = mapped_column(String(64))
    reply_body: Mapped[str | None] = mapped_column(Text)
    # The first text the conversation log marks as a person's (author "person", not our text back) to the contact
    # within seven days of the call: kept by PostgreSQL triggers from the log (migration 0017); never written here.
    # NULL on SQLite, whose report reads the log itself (integration.report.timing).
    first_human_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    booked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    appointment_id: Mapped[str | None] = mapped_column(String(64))
    opportunity_id: Mapped[str | None] = mapped_column(String(64), index=True)
    pipeline_id: Mapped[str | None] = mapped_column(String(64))
    stage_id: Mapped[str | None] = mapped_column(String(64))
    # When HighLevel last told us the stage (webhook timestamp): an older event never overwrites a newer one.
    stage_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # won | lost | abandoned once the opportunity is closed; None while open.
    outcome: Mapped[str | None] = mapped_column(String(16))
    outcome_value: Mapped[float | None] = mapped_column(Float)
    outcome_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def stage(self) -> str:
        """The furthest step: texted, replied, booked, or the outcome (won, lost, abandoned)."""
        if self.outcome:
            return self.outcome
        if self.booked_at:
            return self.BOOKED
        return self.REPLIED if self.replied_at else self.TEXTED


class CrmAction(Base):
    """One change to make at HighLevel (tag, note, opportunity, stage, task, alert, DND), run as a job.

    `key` names its purpose ("lead:12:task"): planning the same change twice finds the row. Creates
    that failed ambiguously set `maybe_done`, so the next attempt looks for the result before creating.
    """

    __tablename__ = "crm_actions"
    __table_args__ = (Index("ix_crm_actions_status_next", "status", "next_attempt_at"),)

    # pending -> running -> done | skipped | failed; back to pending (with next_attempt_at) for a retry.
    PENDING, RUNNING, DONE, SKIPPED, FAILED = "pending", "running", "done", "skipped", "failed"
    FINAL = frozenset({DONE, SKIPPED, FAILED})

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    location_id: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[str | None] = mapped_column(String(64))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("crm_leads.id"), index=True)
    params: Mapped[dict] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    maybe_done: Mapped[bool] = mapped_column(Boolean, default=False)
    # Readable: "opened opportunity 'Dana Whitfield' in Missed Call / New Lead", "failed: ... (500)".
    outcome: Mapped[str | None] = mapped_column(Text)
    # What HighLevel created or found (note, task, opportunity or message id), or a marker like "set".
    result_id: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CrmContact(Base):
    """Our view of one HighLevel contact: SMS DND as HighLevel last told us, and human takeover."""

    __tablename__ = "crm_contacts"

    location_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sms_dnd: Mapped[bool | None] = mapped_column(Boolean)
    # The timestamp of the ContactDndUpdate applied last (an older one arriving late is ignored).
    dnd_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The first text a person (not us, not a workflow) sent in the conversation: automation stays quiet.
    human_takeover_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    human_user_id: Mapped[str | None] = mapped_column(String(64))
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CrmAppointment(Base):
    """An AppointmentCreate we heard of: kept even before its lead exists, so order does not matter."""

    __tablename__ = "crm_appointments"
    __table_args__ = (Index("ix_crm_appointments_contact", "location_id", "contact_id"),)

    appointment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    location_id: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[str | None] = mapped_column(String(64))
    calendar_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str | None] = mapped_column(String(32))
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When it was booked (the appointment's dateAdded, else when we heard of it).
    booked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("crm_leads.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
