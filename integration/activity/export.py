"""The activity as CSV (GET /app/activity.csv): every row the filters select, streamed in keyset batches.

Each batch is its own short session and its own two queries (the screen's keyset order, BATCH_SIZE rows after the
last one sent), so 100 000 calls never sit in memory together and no transaction stays open while a slow browser
downloads. The screen's page objects are not built here: a missed call goes from its database row straight to its
CSV cells (integration.activity.wording.missed_cells, the same words the screen shows), the cells a stranger typed
(name, number, reply) are made spreadsheet-safe and the others are ours, and each batch is one writerows call.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from sqlalchemy import Select
from sqlalchemy.orm import Session

from integration.activity.filters import ActivityFilters, Cursor
from integration.activity.query import _contact, _ignored_calls, _known_callers, _missed_calls
from integration.activity.wording import ignored_row, missed_cells
from integration.csv_stream import encode_rows, safe_cell
from integration.extensions import db
from integration.page_tenant import SignedInLocation

__all__ = ["BATCH_SIZE", "HEADER", "activity_csv"]

BATCH_SIZE = 5000
HEADER = ("call time", "caller name", "caller number", "call", "result", "what happened", "reply",
          "replied at", "lead stage")


_FORMULA_STARTS = frozenset("=@\t\r+-")


def _safe(value):
    if not value:
        return ""
    return safe_cell(value) if value[0] in _FORMULA_STARTS else value


def _plain_rows(session: Session, statement: Select) -> list:
    """The statement's rows as the driver gives them: no per-value result processing (a third of the export's time
    was SQLAlchemy's rows and its turning 400 000 timestamps into UTC ones; the driver's are time-zone aware)."""
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        return session.execute(statement).all()
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    # psycopg's own cursor: plain tuples, binary results (timestamps decoded without parsing text). Half the
    # export's time went to SQLAlchemy's rows and dict rows before.
    with session.connection().connection.driver_connection.cursor() as cursor:
        return cursor.execute(compiled.string, compiled.params, binary=True).fetchall()


def activity_csv(location: SignedInLocation, filters: ActivityFilters, *, batch_size: int = BATCH_SIZE
                 ) -> Iterator[bytes]:
    """The CSV's bytes, chunk by chunk; times in the location's zone as ISO 8601 (spreadsheets sort them)."""
    yield "\ufeff".encode() + encode_rows([HEADER])  # the BOM makes Excel read UTF-8 names correctly
    zone = location.zone

    def local(instant) -> str:
        return instant.astimezone(zone).isoformat(timespec="seconds") if instant else ""

    def cells(called_at, name, number, call, badge, outcome, reply, replied_at, stage) -> tuple:
        # Only what a stranger typed can start a formula; the rest are our words.
        return (local(called_at), _safe(name), _safe(number), call, badge, outcome, _safe(reply),
                local(replied_at), stage or "")

    cursor: Cursor | None = None
    while True:
        # (when we heard of it, kind, id, CSV cells) per row, both sources; the newest batch_size are this batch.
        found: list[tuple] = []
        with db.session() as session:
            if filters.includes_missed:
                found += [(r[1], 0, r[0], cells(*missed_cells(r))) for r in _plain_rows(
                    session, _missed_calls(location.id, filters, cursor, batch_size + 1))]
            if filters.includes_ignored:
                ignored = session.execute(_ignored_calls(location.id, filters, cursor, batch_size + 1)
                                          ).mappings().all()
                callers = _known_callers(session, location.id, [r["payload"] for r in ignored])
                for r in ignored:
                    row = ignored_row(r, caller=callers.get(_contact(r["payload"]), (None, None)))
                    found.append((row.at, 1, row.id, cells(row.called_at, row.caller_name, row.caller_number,
                                                           row.call, row.badge, row.outcome, row.reply,
                                                           row.replied_at, row.stage)))
        found.sort(key=lambda item: item[:3], reverse=True)
        batch = found[:batch_size]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerows(item[3] for item in batch)
        yield buffer.getvalue().encode("utf-8")
        if len(found) <= batch_size:
            return
        at, kind, row_id, _ = batch[-1]
        cursor = Cursor(at=at, kind=kind, id=row_id)
