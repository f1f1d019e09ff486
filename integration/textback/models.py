"""Text-back tables: the missed calls, the send intents that make sending exactly-once, per-caller
bookkeeping (cooldown, opt-out), the per-location daily counter, and a minimal message log.

The database is the record of truth, not RQ: a unique send intent per call is written before the
API call, and every missed call carries a reason a contractor can read.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from integration.db import Base, UTCDateTime, utcnow
from integration.models import WebhookEvent

__all__ = ["IGNORED_CALLS_SQL", "Caller", "ConversationMessage", "DailySendCount", "MissedCall", "SendIntent"]

BigId = BigInteger().with_variant(Integer(), "sqlite")


class MissedCall(Base):
    """One missed inbound call (however many webhooks described it) and what became of it."""

    __tablename__ = "textback_missed_calls"
    __table_args__ = (
        Index("ix_textback_missed_calls_status_next", "status", "next_attempt_at"),
        # The activity page's keyset order (newest first, id breaking ties) and the report's period scans.
        Index("ix_textback_missed_calls_location_created_id", "location_id", "created_at", "id"),
    )

    # pending -> (deferred ->)* sending -> sent | skipped | failed
    PENDING, DEFERRED, SENDING, SENT, SKIPPED, FAILED = "pending", "deferred", "sending", "sent", "skipped", "failed"
    FINAL = frozenset({SENT, SKIPPED, FAILED})

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # The call's identity across duplicate webhooks: its messageId, else conversation + dateAdded.
    call_key: Mapped[str] = mapped_column(String(200), unique=True)
    location_id: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[str | None] = mapped_column(String(64))
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    call_message_id: Mapped[str | None] = mapped_column(String(64))
    caller_number: Mapped[str | None] = mapped_column(String(32))
    # The caller's name as their HighLevel contact gave it when the call was decided (the activity's search).
    contact_name: Mapped[str | None] = mapped_column(String(255))
    called_number: Mapped[str | None] = mapped_column(String(32))
    call_status: Mapped[str] = mapped_column(String(32))
    call_duration: Mapped[int | None] = mapped_column(Integer)
    called_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    user_id: Mapped[str | None] = mapped_column(String(64))
    webhook_event_id: Mapped[int | None] = mapped_column(BigId)
    # Further webhooks that described the same call (HighLevel sends some twice, with new ids).
    duplicate_webhooks: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    # Readable: "texted: business-hours message", "skipped: texted this caller 2 h ago", ...
    outcome: Mapped[str | None] = mapped_column(Text)
    template_key: Mapped[str | None] = mapped_column(String(32))
    # When a deferred call should be looked at again (quiet hours, the location's delay).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL


class SendIntent(Base):
    """The promise to send one text for one call, written before the API call (unique per call)."""

    __tablename__ = "textback_send_intents"

    # sending: the API call is (or may be) in flight, owned until lease_until;
    # unknown: an ambiguous failure, the conversation must be checked before any retry;
    # retry: certainly not sent (429, no token right now), safe to send again;
    # sent: HighLevel accepted it (message_id stored); failed: refused, or not sent after a re-check.
    SENDING, UNKNOWN, RETRY, SENT, FAILED = "sending", "unknown", "retry", "sent", "failed"
    # States in which the text may be out there: they hold the caller's cooldown and the daily count.
    LIVE = frozenset({SENDING, UNKNOWN, RETRY, SENT})

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    call_key: Mapped[str] = mapped_column(String(200), unique=True)
    missed_call_id: Mapped[int] = mapped_column(ForeignKey("textback_missed_calls.id"), index=True)
    location_id: Mapped[str] = mapped_column(String(64), index=True)
    contact_id: Mapped[str | None] = mapped_column(String(64), index=True)
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    to_number: Mapped[str] = mapped_column(String(32))
    from_number: Mapped[str | None] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    segments: Mapped[int] = mapped_column(Integer)
    template_key: Mapped[str] = mapped_column(String(32))
    # The location-local day whose DailySendCount this text was counted in (released on failure).
    counted_day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=SENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The worker process sending it (integration.liveness): when its heartbeat stops, the send it had in flight
    # is over and is settled at once instead of when the lease runs out.
    holder: Mapped[str | None] = mapped_column(String(120))
    message_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Our own OutboundMessage webhook came back: proof the text is in the conversation.
    echo_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Caller(Base):
    """Per caller number of a location: when we last texted them (the cooldown) and opt-out."""

    __tablename__ = "textback_callers"

    location_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Set by a compare-and-set when a text is reserved, so two calls racing get one text.
    last_texted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_call_key: Mapped[str | None] = mapped_column(String(200))
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opt_out_source: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DailySendCount(Base):
    """Texts reserved per location per local day; incremented conditionally under the daily cap."""

    __tablename__ = "textback_daily_sends"

    location_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class ConversationMessage(Base):
    """A minimal log of SMS in text-back conversations: caller replies, people's replies, our echoes.

    The full CRM sync is a later capability; this keeps what human takeover will need.
    """

    __tablename__ = "textback_conversation_messages"
    __table_args__ = (
        Index("ix_textback_conversation_messages_contact", "location_id", "contact_id", "occurred_at"),
        # The report's call -> first human reply: people's texts only (migration 0015).
        Index("ix_textback_conversation_messages_person", "location_id", "contact_id", "occurred_at",
              postgresql_where=text("author = 'person'"), sqlite_where=text("author = 'person'")),
    )

    # caller: an inbound SMS; person: an outbound text from a user or workflow; textback: our own echo.
    CALLER, PERSON, TEXTBACK = "caller", "person", "textback"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    location_id: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[str | None] = mapped_column(String(64))
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16))
    author: Mapped[str] = mapped_column(String(16))
    message_type: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Inbound calls that were no missed call (answered, or a status the location does not count), newest first per
# location: the activity page lists them with their reason. They exist only as ignored inbox rows (the receiver
# ignores most of them without a job), so this partial index holds just those rows; a missed call's INSERT
# (pending) never writes to it. The predicate is IGNORED_CALLS_SQL verbatim, as the queries must repeat it.
IGNORED_CALLS_SQL = ("status = 'ignored' AND (status_reason LIKE 'not a missed call: answered%' "
                     "OR status_reason LIKE 'not a missed call: % not counted as missed%')")
Index("ix_webhook_events_ignored_calls", WebhookEvent.location_id, WebhookEvent.received_at, WebhookEvent.id,
      postgresql_where=text(IGNORED_CALLS_SQL), sqlite_where=text(IGNORED_CALLS_SQL))
