"""The receiver's side of the webhook inbox: parse a verified body, decide whether it is ours, store it once.

DESIGN §4.1 and §4.5: a valid signature only proves HighLevel sent the event, not that it is for us.
Events for another app, or for a location we know is not installed (uninstalled), are still stored (status
`ignored`, with the reason) so an operator can see what arrived; they are never processed.

An event for a location we have never seen is not decided here: HighLevel does not order its webhooks, so a
missed call for a sub-account an agency has just approved can arrive before its INSTALL has been processed
(issue 13, defect 1). It is stored pending, and the worker decides once the install has settled
(oauth.install_wait): processed when the location is provisioned, ignored when no install came in time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    Connection,
    Engine,
    PoolProxiedConnection,
    and_,
    bindparam,
    case,
    func,
    literal,
    not_,
    null,
    select,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from integration.db import utcnow
from integration.models import Location, WebhookEvent
from integration.textback.missed_call import is_call, never_missed

__all__ = [
    "UNKNOWN_LOCATION_REASON", "PayloadError", "Receipt", "StoredEvent", "classify_event", "dedupe_key_for",
    "insert_statement", "parse_payload", "store_event", "store_event_autocommit",
]

# Lifecycle events are about the installation itself: never ignored for "location not installed".
LIFECYCLE_EVENTS = frozenset({"INSTALL", "UNINSTALL"})
# The reason a pending event carries while its location is unknown; the worker replaces it (oauth.install_wait).
UNKNOWN_LOCATION_REASON = "unknown location: waiting for its install"
_ID_LIMIT = 64
# The event types whose calls the workers classify (workers.handlers.messages).
_CALL_EVENT_TYPES = frozenset({"InboundMessage", "OutboundMessage"})
_TYPE_LIMIT = 64
_DEDUPE_LIMIT = 100
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


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
    if not _storable_as_sent(raw_body):
        payload = _make_storable(payload)
    return payload


def _storable_as_sent(raw_body: bytes) -> bool:
    """Whether the parsed body can be stored as it is: no NUL and no lone surrogate (neither fits a text column).
    Only an escape can produce either character: UTF-8 input cannot hold a surrogate, and a raw NUL is not JSON."""
    return b"\\u0000" not in raw_body and _SURROGATE_ESCAPE.search(raw_body) is None


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
    # False for events that may wait behind missed calls (see can_wait): announced for the `default` queue.
    urgent: bool = True
    # The verified body, when it is `payload` exactly as stored: written as it came, not serialised again.
    payload_json: bytes | None = None
    # Ignored as everyday traffic (a call that is no missed call), not as something an operator should see.
    routine: bool = False


# The only event type that can_wait may say yes to (the sweeper relies on it: workers.inbox.sweepable_events).
MAY_WAIT_EVENT_TYPE = "OutboundMessage"


def can_wait(event_type: str, payload: dict) -> bool:
    """May this event's handling wait behind missed calls? Texts going out: our own text's echo (one per missed
    call, so during a burst it would double the work ahead of the next caller's text) and a person's text.
    Never a call, whatever its event type says: HighLevel's own example labels an inbound call OutboundMessage."""
    return event_type == MAY_WAIT_EVENT_TYPE and not is_call(payload)


def classify_event(payload: dict, *, raw_body: bytes, app_id: str) -> StoredEvent:
    """Decide the row for `payload` from the payload alone; the location's status is checked by store_event."""
    raw_type = payload.get("type")
    event_type = raw_type.strip()[:_TYPE_LIMIT] if isinstance(raw_type, str) and raw_type.strip() else ""
    company_id = _short_id(payload.get("companyId"))
    location_id = _short_id(payload.get("locationId"))
    reason = _ignore_reason(payload, event_type=event_type, location_id=location_id, app_id=app_id)
    routine = False
    if reason is None:
        reason = _routine_reason(payload, event_type=event_type)
        routine = reason is not None
    return StoredEvent(
        dedupe_key=dedupe_key_for(payload, raw_body),
        event_type=event_type or "(none)",
        company_id=company_id,
        location_id=location_id,
        payload=payload,
        status="ignored" if reason else "pending",
        status_reason=reason,
        check_location=reason is None and location_id is not None and event_type not in LIFECYCLE_EVENTS,
        urgent=not can_wait(event_type, payload),
        payload_json=raw_body if _storable_as_sent(raw_body) else None,
        routine=routine,
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


def _routine_reason(payload: dict, *, event_type: str) -> str | None:
    """Why this event needs no job, when it is everyday traffic: a call that no location could count as missed, or
    a type no handler acts on (HighLevel sends only what the app subscribes to, but a job per such event cost a
    worker as much as a missed call's echo: the sandbox sends every type by default)."""
    from workers import handlers  # the registry only: it imports no handler module

    if event_type not in handlers.HANDLERS:
        return f"{event_type} events are recorded, not acted on"
    if event_type in _CALL_EVENT_TYPES and is_call(payload):
        not_missed = never_missed(payload)
        if not_missed is not None:
            return f"not a missed call: {not_missed.reason}"
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
    """INSERT ... ON CONFLICT (dedupe_key) DO NOTHING RETURNING, for one event.

    For an event with `check_location`, the status comes from the location's row, read inside the INSERT
    (no extra round trip, and as of the insert): pending when installed; pending too when there is no row (a
    location we have never seen may be one whose install is still on its way: the worker decides, see the
    module docstring); ignored with the reason when the row says it is not installed.
    """
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - DESIGN §2 allows PostgreSQL and SQLite only
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    columns = WebhookEvent.__table__.c

    def param(name: str):
        return bindparam(name, type_=columns[name].type)

    checking = bindparam("check_location", type_=columns.attempts.type) == 1  # 1/0: booleans differ by dialect
    location_status = select(Location.status).where(Location.id == param("location_id")).scalar_subquery()
    # No row reads as "installed" here: pending, for the worker to decide once the install settles.
    status = case(
        (and_(checking, func.coalesce(location_status, literal("installed")) == "installed"), literal("pending")),
        (checking, literal("ignored")),
        else_=param("status"),
    )
    reason = case(
        (not_(checking), param("status_reason")),
        (location_status.is_(None), literal(UNKNOWN_LOCATION_REASON)),
        (location_status != "installed", literal("location not installed (status ") + location_status + literal(")")),
        else_=null(),
    )
    return (
        insert(WebhookEvent)
        .values(dedupe_key=param("dedupe_key"), event_type=param("event_type"), company_id=param("company_id"),
                location_id=param("location_id"), payload=param("payload"), status=status, status_reason=reason,
                attempts=literal(0), received_at=param("received_at"))
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(WebhookEvent.id, WebhookEvent.status, WebhookEvent.status_reason)
    )


@dataclass(frozen=True)
class _DriverInsert:
    """insert_statement compiled once for a dialect, run on the driver's cursor.

    Going through SQLAlchemy's execution machinery for every webhook cost about as much CPU as the rest
    of the ack path; here only the parameters are processed per call, by the same bind processors
    SQLAlchemy would apply (JSON for the payload, UTC for the timestamp).
    """

    sql: str
    constants: dict
    positions: tuple[str, ...] | None  # parameter order for positional drivers (sqlite), else None
    processors: dict
    # Turns a JSON document (bytes) into the payload parameter as the driver takes it, unserialised.
    as_json: Callable[[bytes], object] | None = None

    @classmethod
    def build(cls, dialect) -> _DriverInsert:
        compiled = insert_statement(dialect.name).compile(dialect=dialect)
        processors, constants = {}, {}
        for bind, name in compiled.bind_names.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
            if not bind.required and bind.value is not None:  # the statement's own literals ('installed', 0)
                constants[name] = bind.value
        return cls(sql=compiled.string, constants=constants, positions=compiled.positiontup,
                   processors=processors, as_json=_json_passthrough(dialect))

    def parameters(self, values: dict, *, payload_json: bytes | None = None):
        params = {**self.constants, **values}
        as_sent = payload_json is not None and self.as_json is not None
        for name, processor in self.processors.items():
            if name in params and not (as_sent and name == "payload"):
                params[name] = processor(params[name])
        if as_sent:
            params["payload"] = self.as_json(payload_json)
        if self.positions is not None:
            return tuple(params.get(name) for name in self.positions)
        return params


def _json_passthrough(dialect) -> Callable[[bytes], object] | None:
    """How to hand the driver a JSON document as it is (re-serialising the payload cost ~3% of the ack path)."""
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        from psycopg.types.json import Jsonb

        return lambda document: Jsonb(document, dumps=_unchanged)
    if dialect.name == "sqlite":
        return lambda document: document.decode("utf-8")
    return None


def _unchanged(document: bytes) -> bytes:
    return document


_DRIVER_INSERTS: dict[str, _DriverInsert] = {}


def _insert_row(dialect, pooled: PoolProxiedConnection, event: StoredEvent, *,
                invalidate: Callable[[BaseException], None]):
    """Run the INSERT on the driver cursor of `pooled`: (id, status, status_reason) if new, else None.

    Raises the SQLAlchemy exception for a driver error (DataError, OperationalError, ...), after calling
    `invalidate` when the error means the connection is dead, so the pool discards it.
    """
    statement = _DRIVER_INSERTS.get(dialect.name)
    if statement is None:
        statement = _DRIVER_INSERTS[dialect.name] = _DriverInsert.build(dialect)
    parameters = statement.parameters({
        "dedupe_key": event.dedupe_key, "event_type": event.event_type, "company_id": event.company_id,
        "location_id": event.location_id, "payload": event.payload, "received_at": utcnow(),
        "check_location": 1 if event.check_location else 0, "status": event.status,
        "status_reason": event.status_reason,
    }, payload_json=event.payload_json)
    dbapi_connection = pooled.dbapi_connection
    cursor = None
    try:
        # Inside the try: a connection closed under the pool fails already here, and must be discarded too.
        cursor = dbapi_connection.cursor()
        cursor.execute(statement.sql, parameters)
        return cursor.fetchone()
    except dialect.loaded_dbapi.Error as exc:
        if dialect.is_disconnect(exc, dbapi_connection, cursor):
            invalidate(exc)
        raise DBAPIError.instance(statement.sql, parameters, exc, dialect.loaded_dbapi.Error,
                                  dialect=dialect) from exc
    finally:
        if cursor is not None:
            cursor.close()


def _created(row) -> Receipt:
    return Receipt(event_id=row[0], created=True, status=row[1], status_reason=row[2])


def _duplicate(connection: Connection, event: StoredEvent) -> Receipt:
    """The receipt of a delivery whose dedupe key is stored already: the stored row's id, nothing created."""
    existing = connection.execute(
        select(WebhookEvent.id).where(WebhookEvent.dedupe_key == event.dedupe_key)
    ).scalar_one_or_none()
    return Receipt(event_id=existing, created=False, status="duplicate")


def store_event(executor: Connection | Session, event: StoredEvent) -> Receipt:
    """Insert the event unless its dedupe key is stored already; a duplicate delivery creates nothing.

    One statement for a new event (on an autocommit connection, one round trip); the caller commits when
    `executor` is a Session or a connection in a transaction.
    """
    connection = executor.connection() if isinstance(executor, Session) else executor
    new = _insert_row(connection.dialect, connection.connection, event, invalidate=connection.invalidate)
    return _created(new) if new is not None else _duplicate(connection, event)


def store_event_autocommit(engine: Engine, event: StoredEvent) -> Receipt:
    """store_event for the ack path: committed when it returns. `engine` must be an autocommit engine.

    Runs on a pooled driver connection without SQLAlchemy's Connection around it: checking a Connection out
    and closing it cost about a tenth of the receiver's CPU per webhook.
    """
    pooled = engine.raw_connection()
    try:
        new = _insert_row(engine.dialect, pooled, event, invalidate=pooled.invalidate)
    finally:
        pooled.close()
    if new is not None:
        return _created(new)
    with engine.connect() as connection:
        return _duplicate(connection, event)
