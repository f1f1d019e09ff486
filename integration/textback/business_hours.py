"""Business hours: is the business open now, is today a holiday, and when does it open next.

The answer picks the template (business hours, after hours, holiday) and fills {next_open_time}.
Hours are wall-clock spans in the location's time zone, several per day allowed (a lunch break).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from integration.textback.quiet_hours import WEEKDAYS, Window, parse_window

__all__ = ["AFTER_HOURS", "BUSINESS_HOURS", "HOLIDAY", "BusinessHours", "describe_moment"]

BUSINESS_HOURS = "business_hours"
AFTER_HOURS = "after_hours"
HOLIDAY = "holiday"


@dataclass(frozen=True)
class BusinessHours:
    """Weekly opening spans in one time zone, plus closed dates."""

    timezone: str
    by_weekday: tuple[tuple[Window, ...], ...]
    holidays: frozenset[date] = frozenset()

    @classmethod
    def from_settings(cls, *, timezone: str, weekly: Mapping[str, Iterable[str]],
                      holidays: Iterable[str | date] = ()) -> BusinessHours:
        """Build from the settings shape: {"mon": ["08:00-12:00", "13:00-17:00"], ..., "sun": []}."""
        days = tuple(tuple(sorted((parse_window(w) for w in weekly.get(day, ())), key=lambda w: w.start))
                     for day in WEEKDAYS)
        closed = frozenset(d if isinstance(d, date) else date.fromisoformat(d) for d in holidays)
        ZoneInfo(timezone)  # fail early on a bad zone name
        return cls(timezone=timezone, by_weekday=days, holidays=closed)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def period(self, now: datetime) -> str:
        """BUSINESS_HOURS, AFTER_HOURS or HOLIDAY at the instant `now`."""
        local = now.astimezone(self.tz)
        if local.date() in self.holidays:
            return HOLIDAY
        if any(span.contains(local.time()) for span in self.by_weekday[local.weekday()]):
            return BUSINESS_HOURS
        return AFTER_HOURS

    def next_open(self, now: datetime) -> datetime | None:
        """The next instant after `now` when a span starts on a non-holiday, or None if never open."""
        local_now = now.astimezone(self.tz)
        for offset in range(0, 370):
            day = local_now.date() + timedelta(days=offset)
            if day in self.holidays:
                continue
            for span in self.by_weekday[day.weekday()]:
                start = datetime.combine(day, span.start, tzinfo=self.tz)
                if start.astimezone(UTC) > now.astimezone(UTC):
                    return start
        return None


def describe_moment(moment: datetime, *, now: datetime, timezone: str) -> str:
    """A short phrase for a text message: "today at 1 PM", "tomorrow at 8:30 AM", "Monday at 8 AM"."""
    tz = ZoneInfo(timezone)
    local, today = moment.astimezone(tz), now.astimezone(tz).date()
    clock = _clock(local)
    days_ahead = (local.date() - today).days
    if days_ahead == 0:
        return f"today at {clock}"
    if days_ahead == 1:
        return f"tomorrow at {clock}"
    if 1 < days_ahead < 7:
        return f"{local:%A} at {clock}"
    return f"{local:%b} {local.day} at {clock}"


def _clock(local: datetime) -> str:
    hour = local.hour % 12 or 12
    suffix = "AM" if local.hour < 12 else "PM"
    return f"{hour} {suffix}" if local.minute == 0 else f"{hour}:{local.minute:02d} {suffix}"
