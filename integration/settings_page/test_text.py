""""Send me a test text": a text to the signed-in user's own number through the real send path.

A test text is its own row here, never a MissedCall or SendIntent, so Activity and the Lead Leak report
(which read those) never count it. The worker job (workers.test_text) sends it with the same API client,
token, rate limit and template rendering as a real text back, and writes the outcome on the row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from integration.db import Base, UTCDateTime, utcnow

__all__ = ["TestText"]


class TestText(Base):
    """One test text a user asked for from the settings page."""

    __tablename__ = "textback_test_texts"
    __table_args__ = (Index("ix_textback_test_texts_location_created", "location_id", "created_at"),)
    __test__ = False  # not a pytest test class, despite the name

    QUEUED, SENT, FAILED = "queued", "sent", "failed"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    location_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    # Filled by the job from HighLevel's user record (the number is the user's own, never typed in).
    to_number: Mapped[str | None] = mapped_column(String(32))
    template_key: Mapped[str] = mapped_column(String(32))
    body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    # Readable: "sent to +1 555 ...", "failed: your HighLevel user has no phone number".
    outcome: Mapped[str | None] = mapped_column(Text)
    contact_id: Mapped[str | None] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
