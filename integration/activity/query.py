"""Reading one page of a location's activity: its missed calls and its ignored (answered) calls, newest first.

Two sources, merged:
- kind 0, textback_missed_calls (with its lead): every missed call with the outcome the pipeline recorded;
  index ix_textback_missed_calls_location_created_id (location_id, created_at, id);
- kind 1, webhook_events ignored as "not a missed call" (answered, or a status the location does not count):
  partial index ix_webhook_events_ignored_calls (location_id, received_at, id). The inbox keeps them for
  INBOX_RETENTION_DAYS (30 by default), so answered calls go back that far.

Paging is keyset, never OFFSET: rows sort by (when we heard of the call, kind, id) descending, each source reads
at most `limit + 1` rows after the cursor along its index, and the merge keeps the newest `limit`. A page deep in
two years of calls costs what the first page costs, and rows arriving meanwhile never shift a page (no row is
shown twice or skipped).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, false, func, select, text, tuple_
from sqlalchemy.orm import Session

from integration.activity.filters import ActivityFilters, Cursor
from integration.activity.wording import MISSED_COLUMNS, ActivityRow, ignored_row, missed_row
from integration.crm.models import CrmLead
from integration.models import WebhookEvent
from integration.textback.models import IGNORED_CALLS_SQL, MissedCall

__all__ = ["ActivityPage", "fetch_page"]

_CALLS = MissedCall.__table__.c
_LEADS = CrmLead.__table__.c
_EVENTS = WebhookEvent.__table__.c
# MissedCall.status per outcome filter.
_STATUSES = {"texted": ("sent",), "deferred": ("deferred",), "skipped": ("skipped",), "failed": ("failed",),
             "in_progress": ("pending", "sending")}


@dataclass(frozen=True)
class ActivityPage:
    rows: list[ActivityRow]
    next_cursor: Cursor | None


def fetch_page(session: Session, location_id: str, filters: ActivityFilters, *, cursor: Cursor | None,
               limit: int) -> ActivityPage:
    """Up to `limit` rows after `cursor` for `location_id` (the session's tenant: the only place it comes from)."""
    rows: list[ActivityRow] = []
    if filters.includes_missed:
        rows += [missed_row(r) for r in session.execute(_missed_calls(location_id, filters, cursor, limit + 1))]
    if filters.includes_ignored:
        found = list(session.execute(_ignored_calls(location_id, filters, cursor, limit + 1)).mappings())
        callers = _known_callers(session, location_id, [r["payload"] for r in found])
        rows += [ignored_row(r, caller=callers.get(_contact(r["payload"]), (None, None))) for r in found]
    rows.sort(key=lambda r: (r.at, r.kind, r.id), reverse=True)
    if len(rows) <= limit:
        return ActivityPage(rows=rows, next_cursor=None)
    last = rows[limit - 1]
    return ActivityPage(rows=rows[:limit], next_cursor=Cursor(at=last.at, kind=last.kind, id=last.id))


def _missed_calls(location_id: str, filters: ActivityFilters, cursor: Cursor | None, limit: int) -> Select:
    """The missed calls after `cursor`, newest first: MISSED_COLUMNS in order, as missed_row reads them."""
    statement = (
        select(_CALLS.id, _CALLS.created_at, _CALLS.called_at, _CALLS.caller_number, _CALLS.contact_name,
               _CALLS.call_status, _CALLS.call_duration, _CALLS.status, _CALLS.outcome,
               _LEADS.id.label("lead_id"), _LEADS.replied_at, _LEADS.reply_body, _LEADS.booked_at,
               _LEADS.outcome.label("lead_outcome"))
        .select_from(MissedCall.__table__.outerjoin(CrmLead.__table__, _LEADS.missed_call_id == _CALLS.id))
        .where(_CALLS.location_id == location_id)
        .order_by(_CALLS.created_at.desc(), _CALLS.id.desc())
        .limit(limit)
    )
    if filters.outcome in _STATUSES:
        statement = statement.where(_CALLS.status.in_(_STATUSES[filters.outcome]))
    if filters.since is not None:
        statement = statement.where(_CALLS.created_at >= filters.since)
    if filters.until is not None:
        statement = statement.where(_CALLS.created_at < filters.until)
    if filters.search:
        digits = filters.number_digits
        if digits is not None:
            statement = statement.where(_CALLS.caller_number.like(f"%{digits}%"))
        else:
            statement = statement.where(func.lower(_CALLS.contact_name).like(_contains(filters.search), escape="\\"))
    if cursor is not None:
        if cursor.kind == 0:
            statement = statement.where(tuple_(_CALLS.created_at, _CALLS.id) < tuple_(cursor.at, cursor.id))
        else:  # same instant: a missed call (kind 0) sorts after an ignored call (kind 1)
            statement = statement.where(_CALLS.created_at <= cursor.at)
    return statement


def _ignored_calls(location_id: str, filters: ActivityFilters, cursor: Cursor | None, limit: int) -> Select:
    statement = (
        select(_EVENTS.id, _EVENTS.received_at, _EVENTS.payload, _EVENTS.status_reason)
        # The partial index's predicate, verbatim, so PostgreSQL uses the index.
        .where(_EVENTS.location_id == location_id, text(IGNORED_CALLS_SQL))
        .order_by(_EVENTS.received_at.desc(), _EVENTS.id.desc())
        .limit(limit)
    )
    if filters.since is not None:
        statement = statement.where(_EVENTS.received_at >= filters.since)
    if filters.until is not None:
        statement = statement.where(_EVENTS.received_at < filters.until)
    digits = filters.number_digits
    if filters.search:
        if digits is None:
            return statement.where(false())
        statement = statement.where(_EVENTS.payload["from"].as_string().like(f"%{digits}%"))
    if cursor is not None:
        if cursor.kind == 1:
            statement = statement.where(tuple_(_EVENTS.received_at, _EVENTS.id) < tuple_(cursor.at, cursor.id))
        else:
            statement = statement.where(_EVENTS.received_at < cursor.at)
    return statement


def _contact(payload) -> str | None:
    return payload.get("contactId") if isinstance(payload, dict) else None


def _known_callers(session: Session, location_id: str, payloads: list) -> dict[str, tuple[str | None, str | None]]:
    """(name, number) of the contacts on this page we texted before: call webhooks may carry no number."""
    contact_ids = sorted({c for c in map(_contact, payloads) if c})
    if not contact_ids:
        return {}
    found = session.execute(
        select(_LEADS.contact_id, _CALLS.contact_name, _LEADS.caller_number)
        .join(MissedCall.__table__, _CALLS.id == _LEADS.missed_call_id)
        .where(_LEADS.location_id == location_id, _LEADS.contact_id.in_(contact_ids))
    )
    return {contact_id: (name, number) for contact_id, name, number in found}


def _contains(search: str) -> str:
    escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


assert tuple(c.name for c in _missed_calls("", ActivityFilters(), None, 1).selected_columns) == MISSED_COLUMNS
