"""The receiver's side of the webhook inbox: parse a verified body, decide whether it is ours, store it once.

DESIGN §4.1 and §4.5: a valid signature only proves HighLevel sent the event, not that it is for us.
Events for another app, or for a location that is not a live installation, are still stored (status
`ignored`, with the reason) so an operator can see what arrived; they are never processed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.db import utcnow
from integration.models import Location, WebhookEvent

__all__ = ["PayloadError", "Receipt", "StoredEvent", "classify_event", "dedupe_key_for", "parse_payload", "store_event"]

# Lifecycle events are about the installation itself: never ignored for "location not installed".
LIFECYCLE_EVENTS = frozenset({"INSTALL", "UNINSTALL"})
_ID_LIMIT = 64
_TYPE_LIMIT = 64
_DEDUPE_LIMIT = 100


class PayloadError(ValueError):
    """The body is signed but not a JSON object we can store; the message says why (safe to return)."""


def _reject_constant(name: str) -> None:
    raise PayloadError(f"body is not valid JSON: {name} is not a JSON value")


def _strip_nul(value):
    """Replace NUL characters, which PostgreSQL cannot store in JSONB, so the event is kept anyway."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_strip_nul(item) for item in value]
    if isinstance(value, dict):
        return {_strip_nul(key): _strip_nul(item) for key, item in value.items()}
    return value


def parse_payload(raw_body: bytes) -> dict:
    """Decode a webhook body into a dict.

    Raises:
        PayloadError: not UTF-8, not JSON, NaN/Infinity, absurdly nested or large numbers, or not an object.
    """
    try:
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8 (bad byte at offset {exc.start})") from None
    if not text.strip():
        raise PayloadError("body is empty")
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise PayloadError("body is not acceptable JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python will convert
        if isinstance(exc, PayloadError):
            raise
        raise PayloadError("body is not acceptable JSON: a number is too large") from None
    if not isinstance(payload, dict):
        raise PayloadError(f"body must be a JSON object, got {type(payload).__name__}")
    if "\\u0000" in text:
        payload = _strip_nul(payload)
    return payload


def dedupe_key_for(payload: dict, raw_body: bytes) -> str:
    """`webhookId` when HighLevel sends one (stable across its retries), else a hash of the exact body."""
    webhook_id = payload.get("webhookId")
    if isinstance(webhook_id, str) and webhook_id.strip():
        webhook_id = webhook_id.strip()
        if len(webhook_id) <= _DEDUPE_LIMIT and not webhook_id.startswith("sha256:"):
            return webhook_id
        return "webhookId-sha256:" + hashlib.sha256(webhook_id.encode()).hexdigest()
    return "sha256:" + hashlib.sha256(raw_body).hexdigest()


def _short_id(value: object) -> str | None:
    """A HighLevel id as we store it, or None when absent or not a plausible id."""
    if isinstance(value, str) and 0 < len(value.strip()) <= _ID_LIMIT:
        return value.strip()
    return None


@dataclass(frozen=True)
class StoredEvent:
    """What the receiver will insert: the row's fields and its initial status (pending or ignored)."""

    dedupe_key: str
    event_type: str
    company_id: str | None
    location_id: str | None
    payload: dict
    status: str
    status_reason: str | None


def classify_event(session: Session, payload: dict, *, raw_body: bytes, app_id: str) -> StoredEvent:
    """Decide the row for `payload`: pending when it is ours to process, ignored (with a reason) otherwise."""
    raw_type = payload.get("type")
    event_type = raw_type.strip()[:_TYPE_LIMIT] if isinstance(raw_type, str) and raw_type.strip() else ""
    company_id = _short_id(payload.get("companyId"))
    location_id = _short_id(payload.get("locationId"))
    reason = _ignore_reason(session, payload, event_type=event_type, location_id=location_id, app_id=app_id)
    return StoredEvent(
        dedupe_key=dedupe_key_for(payload, raw_body),
        event_type=event_type or "(none)",
        company_id=company_id,
        location_id=location_id,
        payload=payload,
        status="ignored" if reason else "pending",
        status_reason=reason,
    )


def _ignore_reason(session: Session, payload: dict, *, event_type: str, location_id: str | None,
                   app_id: str) -> str | None:
    if not event_type:
        return "payload has no event type"
    if "appId" in payload:
        sent = payload.get("appId")
        if not isinstance(sent, str) or sent.strip().lower() != app_id.lower():
            return "foreign app"
    if "locationId" in payload and location_id is None:
        return "malformed locationId"
    if location_id is None or event_type in LIFECYCLE_EVENTS:
        return None
    status = session.execute(select(Location.status).where(Location.id == location_id)).scalar_one_or_none()
    if status is None:
        return "unknown location"
    if status != "installed":
        return f"location not installed (status {status})"
    return None


@dataclass(frozen=True)
class Receipt:
    """The receiver's answer: the row id and whether this delivery created it."""

    event_id: int | None
    created: bool
    status: str

    @property
    def should_enqueue(self) -> bool:
        return self.created and self.status == "pending"


def _insert_ignoring_duplicates(session: Session):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - DESIGN §2 allows PostgreSQL and SQLite only
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    return insert(WebhookEvent)


def store_event(session: Session, event: StoredEvent) -> Receipt:
    """INSERT ... ON CONFLICT (dedupe_key) DO NOTHING; a duplicate delivery creates nothing."""
    statement = (
        _insert_ignoring_duplicates(session)
        .values(
            dedupe_key=event.dedupe_key, event_type=event.event_type, company_id=event.company_id,
            location_id=event.location_id, payload=event.payload, status=event.status,
            status_reason=event.status_reason, attempts=0, received_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(WebhookEvent.id)
    )
    new_id = session.execute(statement).scalar_one_or_none()
    if new_id is not None:
        return Receipt(event_id=new_id, created=True, status=event.status)
    existing = session.execute(
        select(WebhookEvent.id, WebhookEvent.status).where(WebhookEvent.dedupe_key == event.dedupe_key)
    ).one_or_none()
    return Receipt(event_id=existing.id if existing else None, created=False, status="duplicate")
