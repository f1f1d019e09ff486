"""Booking-agent tables: one conversation per lead, the caller's texts it answers (once each), and what it owes.

The database is the record of truth, as for the text back: a caller's text is an AgentInbound row, unique on
HighLevel's messageId, so a webhook delivered twice is answered once. What the agent decides to say is written
as AgentOutbound rows in the same transaction as the new dialogue state, before anything is sent; the outbox
sends them in order and records HighLevel's messageId. One worker at a time holds a conversation (a lease taken
by a conditional UPDATE), so two replies racing are answered one after the other, in the order they were sent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from integration.db import Base, JSONType, UTCDateTime, utcnow

__all__ = ["AgentConversation", "AgentInbound", "AgentOutbound"]

BigId = BigInteger().with_variant(Integer(), "sqlite")


class AgentConversation(Base):
    """The agent's dialogue with one lead's caller: its state, memory, lease and booking."""

    __tablename__ = "agent_conversations"
    __table_args__ = (Index("ix_agent_conversations_contact", "location_id", "contact_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("crm_leads.id"), unique=True)
    location_id: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[str] = mapped_column(String(64))
    # integration.agent.policy states: new, asked_job, offered, confirming, booked, handed_over, closed, silenced,
    # stopped. The last five are final: the agent says nothing more.
    state: Mapped[str] = mapped_column(String(16), default="new")
    # The policy's memory (offered slots, misunderstandings in a row, the job, the caller's zone): JSON.
    memory: Mapped[dict] = mapped_column(JSONType, default=dict)
    # Why it stopped or handed over, in words ("the caller asked for a person").
    reason: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # requesting -> booked | unknown (an ambiguous failure: a person checks the calendar); None: not booking.
    booking_status: Mapped[str | None] = mapped_column(String(16))
    booking_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    appointment_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AgentInbound(Base):
    """A caller's text the agent answers: once per HighLevel message, in the order the caller sent them."""

    __tablename__ = "agent_inbound"
    __table_args__ = (Index("ix_agent_inbound_status_due", "status", "due_at"),)

    PENDING, DONE, IGNORED = "pending", "done", "ignored"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("agent_conversations.id"), index=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the agent may answer it: the caller's text plus the grace period (a person may answer first).
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # What the agent made of it ("offered 3 slots", "ignored: a person is handling the conversation").
    outcome: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AgentOutbound(Base):
    """A text the agent owes the caller, written before it is sent (unique per inbound text and position)."""

    __tablename__ = "agent_outbound"
    __table_args__ = (Index("ix_agent_outbound_status_not_before", "status", "not_before"),)

    # pending -> sending -> sent | unknown (ambiguous: the conversation is read before any retry) | dropped.
    PENDING, SENDING, UNKNOWN, SENT, DROPPED = "pending", "sending", "unknown", "sent", "dropped"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("agent_conversations.id"), index=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    # Quiet hours in the caller's zone: not sent before this.
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[str | None] = mapped_column(String(64), index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
