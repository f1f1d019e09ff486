"""Shortcuts for text-back tests: place a call in the sandbox and get the webhook it delivered, run a worker."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from integration.extensions import db, get_redis
from integration.textback.missed_call import Missed, classify_call
from integration.textback.models import MissedCall, SendIntent
from workers.queues import SERIALIZER, WEBHOOKS_QUEUE, get_queue
from workers.worker import TextbackSimpleWorker


def call_webhook(sandbox, clock, location_id: str, number: str, outcome: str = "no-answer", *,
                 duration: int = 0, seconds_ago: float = 3) -> dict:
    """A caller rings `location_id`; returns the InboundMessage payload the sandbox signed and sent,
    dated `seconds_ago` before the test clock."""
    placed = sandbox.place_call(location_id, number, outcome, duration)
    payload = sandbox.deliveries(webhookId=placed["webhookId"])[0]["payload"]
    payload["dateAdded"] = (clock.now - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")
    return payload


def missed(payload: dict) -> Missed:
    result = classify_call(payload, short_call_seconds=10)
    assert isinstance(result, Missed), result
    return result


def texts_to(sandbox, location_id: str, contact_id: str | None = None) -> list[dict]:
    """What the sandbox says the app sent (the ground truth for "exactly one text")."""
    filters = {"locationId": location_id}
    if contact_id:
        filters["contactId"] = contact_id
    return sandbox.sent_messages(**filters)


def row_of(missed_call_id: int) -> MissedCall:
    with db.session() as session:
        return session.get(MissedCall, missed_call_id)


def intent_of(missed_call_id: int) -> SendIntent | None:
    with db.session() as session:
        return session.scalar(select(SendIntent).where(SendIntent.missed_call_id == missed_call_id))


def run_worker(*queue_names: str) -> None:
    """One RQ worker in burst mode on these queues (default: webhooks) until they are empty."""
    queues = [get_queue(name, get_redis()) for name in queue_names or (WEBHOOKS_QUEUE,)]
    TextbackSimpleWorker(queues, connection=get_redis(), serializer=SERIALIZER).work(burst=True)
