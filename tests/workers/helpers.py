"""Small helpers for worker tests: read and force inbox rows."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from integration.db import utcnow
from integration.extensions import db
from integration.models import WebhookEvent


def load_event(event_id: int) -> WebhookEvent:
    with db.transaction() as session:
        return session.scalars(select(WebhookEvent).where(WebhookEvent.id == event_id)).one()


def set_event(event_id: int, **values) -> None:
    """Force a row into a state (e.g. an old claim) that the test wants to start from."""
    with db.transaction() as session:
        row = session.get(WebhookEvent, event_id)
        for name, value in values.items():
            setattr(row, name, value)


def seconds_ago(seconds: float):
    return utcnow() - timedelta(seconds=seconds)
