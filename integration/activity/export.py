"""The activity as CSV (GET /app/activity.csv): every row the filters select, streamed in keyset batches.

Each batch is its own short session and query (the same keyset page the screen shows, BATCH_SIZE rows long),
so 100 000 calls never sit in memory together and no transaction stays open while the browser downloads.
"""

from __future__ import annotations

from collections.abc import Iterator

from integration.activity.filters import ActivityFilters
from integration.activity.query import fetch_page
from integration.csv_stream import encode_rows
from integration.extensions import db
from integration.page_tenant import SignedInLocation

__all__ = ["BATCH_SIZE", "HEADER", "activity_csv"]

BATCH_SIZE = 1000
HEADER = ("call time", "caller name", "caller number", "call", "result", "what happened", "reply",
          "replied at", "lead stage")


def activity_csv(location: SignedInLocation, filters: ActivityFilters, *, batch_size: int = BATCH_SIZE
                 ) -> Iterator[bytes]:
    """The CSV's bytes, chunk by chunk; times in the location's zone as ISO 8601 (spreadsheets sort them)."""
    yield "\ufeff".encode() + encode_rows([HEADER])  # the BOM makes Excel read UTF-8 names correctly
    cursor = None
    while True:
        with db.session() as session:
            page = fetch_page(session, location.id, filters, cursor=cursor, limit=batch_size)
        yield encode_rows(
            (_local(row.called_at, location), row.caller_name, row.caller_number, row.call, row.badge, row.outcome,
             row.reply, _local(row.replied_at, location), row.stage)
            for row in page.rows)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _local(instant, location: SignedInLocation) -> str:
    return instant.astimezone(location.zone).isoformat(timespec="seconds") if instant else ""
