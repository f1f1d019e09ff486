"""The activity's query string, checked: outcome, date range, search, page size and the keyset cursor.

Every bad value is a FilterError whose message is safe to show (it never echoes more than the field's name and
what is allowed), so a junk link is a clear 400, never a 500. The cursor is opaque to the browser: the position
of the last row shown (when we heard of the call, which source, its id), nothing that selects a tenant.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "OUTCOMES", "ActivityFilters", "Cursor", "FilterError", "parse_cursor",
           "parse_limit"]

# What the outcome filter offers, in the order the page lists them.
OUTCOMES = {
    "all": "All calls",
    "missed": "Missed calls",
    "texted": "Texted",
    "deferred": "Deferred (will text later)",
    "skipped": "Skipped",
    "failed": "Failed",
    "in_progress": "In progress",
    "ignored": "Not missed (answered)",
}
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_SEARCH = 80
# The first and last day a date filter may name: far outside any call, inside what datetime and the database hold.
_FIRST_DAY, _LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)
_PHONE_LIKE = re.compile(r"^[\d\s()+.\-]+$")


class FilterError(ValueError):
    """A query parameter is not acceptable; the message says which and what is allowed."""


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: rows sort newest first by (at, kind, id)."""

    at: datetime
    kind: int  # 0: a missed call row, 1: an ignored call (inbox row); see integration.activity.query
    id: int

    def encode(self) -> str:
        raw = f"{self.at.astimezone(UTC).isoformat()}|{self.kind}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        problem = FilterError("this page link is not valid (its position is unreadable); start from the first page")
        if len(token) > 120:
            raise problem
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            at_text, kind_text, id_text = raw.split("|")
            at, kind, row_id = datetime.fromisoformat(at_text), int(kind_text), int(id_text)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise problem from None
        if at.tzinfo is None or kind not in (0, 1) or not 0 < row_id < 2**63:
            raise problem
        return cls(at=at.astimezone(UTC), kind=kind, id=row_id)


@dataclass(frozen=True)
class ActivityFilters:
    """What to list. `since`/`until` are UTC instants (until exclusive) from local dates in the location's zone."""

    outcome: str = "all"
    day_from: date | None = None
    day_to: date | None = None
    search: str = ""
    since: datetime | None = None
    until: datetime | None = None

    @property
    def number_digits(self) -> str | None:
        """The digits to look for when the search is a phone number (3 digits or more), else None."""
        digits = re.sub(r"\D", "", self.search)
        return digits if len(digits) >= 3 and _PHONE_LIKE.match(self.search) else None

    @property
    def includes_missed(self) -> bool:
        return self.outcome != "ignored"

    @property
    def includes_ignored(self) -> bool:
        # Ignored calls have no name to search; only a number search can find them.
        return self.outcome in ("all", "ignored") and (not self.search or self.number_digits is not None)

    def as_query(self) -> dict[str, str]:
        """The filters as query parameters, for the next-page, CSV and "clear" links."""
        query = {}
        if self.outcome != "all":
            query["outcome"] = self.outcome
        if self.day_from:
            query["from"] = self.day_from.isoformat()
        if self.day_to:
            query["to"] = self.day_to.isoformat()
        if self.search:
            query["q"] = self.search
        return query

    @classmethod
    def from_args(cls, args: Mapping[str, str], *, zone: ZoneInfo) -> ActivityFilters:
        outcome = (args.get("outcome") or "all").strip().lower()
        if outcome not in OUTCOMES:
            raise FilterError(f"outcome must be one of: {', '.join(OUTCOMES)}")
        day_from, day_to = _day(args.get("from"), "from"), _day(args.get("to"), "to")
        if day_from and day_to and day_from > day_to:
            raise FilterError("the 'from' date is after the 'to' date")
        search = " ".join((args.get("q") or "").split())
        if len(search) > MAX_SEARCH:
            raise FilterError(f"search for at most {MAX_SEARCH} characters")
        since = _local_midnight(day_from, zone) if day_from else None
        until = _local_midnight(day_to + timedelta(days=1), zone) if day_to else None
        return cls(outcome=outcome, day_from=day_from, day_to=day_to, search=search, since=since, until=until)


def parse_limit(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise FilterError(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def parse_cursor(raw: str | None) -> Cursor | None:
    return Cursor.decode(raw) if raw else None


def _day(raw: str | None, name: str) -> date | None:
    if raw in (None, ""):
        return None
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        raise FilterError(f"'{name}' must be a date like 2026-03-31") from None
    if not _FIRST_DAY <= day <= _LAST_DAY:
        raise FilterError(f"'{name}' must be between {_FIRST_DAY} and {_LAST_DAY}")
    return day


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
