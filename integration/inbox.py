"""The receiver's side of the webhook inbox: parse a verified body, decide whether it is ours, store it once.

DESIGN §4.1 and §4.5: a valid signature only proves HighLevel sent the event, not that it is for us.
Events for another app, or for a location that is not a live installation, are still stored (status
`ignored`, with the reason) so an operator can see what arrived; they are never processed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, case, literal, not_, null, select
from sqlalchemy.orm import Session

from integration.db import utcnow
from integration.models import Location, WebhookEvent

__all__ = [
    "PayloadError", "Receipt", "StoredEvent", "classify_event", "dedupe_key_for", "insert_statement", "parse_payload",
    "store_event", "write_events",
]

# Lifecycle events are about the installation itself: never ignored for "location not installed".
LIFECYCLE_EVENTS = frozenset({"INSTALL", "UNINSTALL"})
_ID_LIMIT = 64
_TYPE_LIMIT = 64
_DEDUPE_LIMIT = 100
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class PayloadError(ValueError):
    """The body is signed but not a JSON object we can store; the message says why (safe to return)."""


def _reject_constant(name: str) -> None:
    raise PayloadError(f"body is not valid JSON: {name} is not a JSON value")


def _storable(text: str) -> str:
    """`text` as PostgreSQL's jsonb accepts it: NUL and lone UTF-16 surrogates (legal JSON escapes that
    Python decodes) become U+FFFD, so the event is kept rather than refused on every retry."""
    text = text.replace("\x00", "\ufffd")
    if _SURROGATE.search(text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _make_storable(value):
    if isinstance(value, str):
        return _storable(value)
    if isinstance(value, list):
        return [_make_storable(item) for item in value]
    if isinstance(value, dict):
        return {_make_storable(key): _make_storable(item) for key, item in value.items()}
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
    # Only an escape can produce either character: UTF-8 input cannot hold a surrogate, and a raw NUL is not JSON.
    if "\\u0000" in text or _SURROGATE_ESCAPE.search(text):
        payload = _make_storable(payload)
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
    """What the receiver will insert: the row's fields and its initial status (pending or ignored).

    `check_location`: the event is about a location, so the INSERT itself decides pending or ignored by
    that location's status (one statement, no separate read on the ack path).
    """

    dedupe_key: str
    event_type: str
    company_id: str | None
    location_id: str | None
    payload: dict
    status: str
    status_reason: str | None
    check_location: bool = False


def classify_event(payload: dict, *, raw_body: bytes, app_id: str) -> StoredEvent:
    """Decide the row for `payload` from the payload alone; the location's status is checked by store_event."""
    raw_type = payload.get("type")
    event_type = raw_type.strip()[:_TYPE_LIMIT] if isinstance(raw_type, str) and raw_type.strip() else ""
    company_id = _short_id(payload.get("companyId"))
    location_id = _short_id(payload.get("locationId"))
    reason = _ignore_reason(payload, event_type=event_type, location_id=location_id, app_id=app_id)
    return StoredEvent(
        dedupe_key=dedupe_key_for(payload, raw_body),
        event_type=event_type or "(none)",
        company_id=company_id,
        location_id=location_id,
        payload=payload,
        status="ignored" if reason else "pending",
        status_reason=reason,
        check_location=reason is None and location_id is not None and event_type not in LIFECYCLE_EVENTS,
    )


def _ignore_reason(payload: dict, *, event_type: str, location_id: str | None, app_id: str) -> str | None:
    if not event_type:
        return "payload has no event type"
    if "appId" in payload:
        sent = payload.get("appId")
        if not isinstance(sent, str) or sent.strip().lower() != app_id.lower():
            return "foreign app"
    if "locationId" in payload and location_id is None:
        return "malformed locationId"
    return None


@dataclass(frozen=True)
class Receipt:
    """The receiver's answer: the row id, whether this delivery created it, and the row's status."""

    event_id: int | None
    created: bool
    status: str
    status_reason: str | None = None

    @property
    def should_enqueue(self) -> bool:
        return self.created and self.status == "pending"


@functools.cache
def insert_statement(dialect: str):
    """INSERT ... ON CONFLICT (dedupe_key) DO NOTHING RETURNING, built once per dialect.

    Executed with a list of parameter sets, SQLAlchemy sends it as one multi-row INSERT. For an event
    with `check_location`, the status comes from the location's row, read inside the INSERT (no extra
    round trip, and as of the insert): pending when installed, else ignored with the reason.
    """
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - DESIGN §2 allows PostgreSQL and SQLite only
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    columns = WebhookEvent.__table__.c
    check = bindparam("check_location", type_=columns.attempts.type)  # 1 or 0: booleans differ by dialect
    checking = check == 1
    location_status = select(Location.status).where(Location.id == bindparam("location_id")).scalar_subquery()
    status = case(
        (and_(checking, location_status == "installed"), literal("pending")),
        (checking, literal("ignored")),
        else_=bindparam("status", type_=columns.status.type),
    )
    reason = case(
        (not_(checking), bindparam("status_reason", type_=columns.status_reason.type)),
        (location_status.is_(None), literal("unknown location")),
        (location_status != "installed",
         literal("location not installed (status ") + location_status + literal(")")),
        else_=null(),
    )
    return (
        insert(WebhookEvent)
        .values(
            dedupe_key=bindparam("dedupe_key", type_=columns.dedupe_key.type),
            event_type=bindparam("event_type", type_=columns.event_type.type),
            company_id=bindparam("company_id", type_=columns.company_id.type),
            location_id=bindparam("location_id", type_=columns.location_id.type),
            payload=bindparam("payload", type_=columns.payload.type),
            status=status, status_reason=reason, attempts=0,
            received_at=bindparam("received_at", type_=columns.received_at.type),
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(WebhookEvent.id, WebhookEvent.dedupe_key, WebhookEvent.status, WebhookEvent.status_reason)
    )


def _parameters(event: StoredEvent, received_at) -> dict:
    return {
        "dedupe_key": event.dedupe_key, "event_type": event.event_type, "company_id": event.company_id,
        "location_id": event.location_id, "payload": event.payload, "received_at": received_at,
        "check_location": 1 if event.check_location else 0, "status": event.status,
        "status_reason": event.status_reason,
    }


def write_events(executor: Connection | Session, events: list[StoredEvent]) -> list[Receipt]:
    """Insert `events` in one statement; one receipt per event, in order.

    A duplicate delivery (of a stored event, or a second copy in `events`) creates nothing. The caller
    commits when `executor` is a Session or a connection in a transaction; on an autocommit connection
    the statement commits itself (one round trip for a new event).
    """
    # A Session's own connection: Core semantics (one multi-row INSERT), not ORM bulk-insert mode.
    connection = executor.connection() if isinstance(executor, Session) else executor
    now = utcnow()
    rows = connection.execute(insert_statement(connection.dialect.name),
                              [_parameters(event, now) for event in events]).all()
    created = {row.dedupe_key: row for row in rows}
    missing = {event.dedupe_key for event in events} - created.keys()
    existing = dict(connection.execute(
        select(WebhookEvent.dedupe_key, WebhookEvent.id).where(WebhookEvent.dedupe_key.in_(sorted(missing)))
    ).all()) if missing else {}
    receipts = []
    for event in events:
        row = created.pop(event.dedupe_key, None)  # pop: a second copy in the same batch is a duplicate
        if row is not None:
            receipts.append(Receipt(event_id=row.id, created=True, status=row.status,
                                    status_reason=row.status_reason))
        else:
            receipts.append(Receipt(event_id=existing.get(event.dedupe_key) or _id_in(rows, event.dedupe_key),
                                    created=False, status="duplicate"))
    return receipts


def _id_in(rows, dedupe_key: str) -> int | None:
    return next((row.id for row in rows if row.dedupe_key == dedupe_key), None)


def store_event(executor: Connection | Session, event: StoredEvent) -> Receipt:
    """Insert one event unless its dedupe key is stored already (see write_events)."""
    return write_events(executor, [event])[0]
