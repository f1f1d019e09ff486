"""CSV for spreadsheets, written as it is read: one encoded chunk per batch of rows, never the whole file.

Cells that a spreadsheet would run as a formula (=, @, a tab, or + and - not followed by a digit) get a leading
apostrophe: a caller's name or a reply is typed by strangers. Phone numbers such as +15125550177 stay as they are.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence

from flask import Response, stream_with_context

__all__ = ["csv_response", "encode_rows", "safe_cell"]

_FORMULA = re.compile(r"^(?:[=@\t\r]|[+\-](?![\d\s(]))")


def safe_cell(value: object) -> object:
    if isinstance(value, str) and _FORMULA.match(value):
        return "'" + value
    return "" if value is None else value


def encode_rows(rows: Iterable[Sequence[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return buffer.getvalue().encode("utf-8")


def csv_response(chunks: Iterator[bytes], *, filename: str) -> Response:
    """A streamed download; `chunks` is consumed while the response is sent (request context kept)."""
    response = Response(stream_with_context(chunks), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response
