"""Quiet hours: when an automated text may reach a caller, and the next minute it may if not now.

Federal rule: 8:00-21:00 in the called party's local time (47 CFR 64.1200(c)(1)). Several states are
stricter (product-research §3.7); a location can add its own stricter window and override the state
table. A text that falls in quiet hours is deferred, never dropped.

Windows are half-open: at 20:59:59 a text goes, at 21:00:00 it waits for 8:00.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_STATE_RULES",
    "FEDERAL_WINDOW",
    "WEEKDAYS",
    "SendingWindows",
    "Window",
    "next_allowed_time",
    "parse_day_rules",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Window:
    """An allowed span of local wall-clock time on one day, [start, end)."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        return self.start <= moment < self.end

    def intersect(self, other: Window | None) -> Window | None:
        if other is None:
            return None
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Window(start, end) if start < end else None

    def __str__(self) -> str:
        end = "24:00" if self.end == time.max else f"{self.end:%H:%M}"
        return f"{self.start:%H:%M}-{end}"


FEDERAL_WINDOW = Window(time(8, 0), time(21, 0))

# Stricter state windows as commonly summarised for text campaigns (product-research §3.7). Keys are
# day specs: "mon-sun", "mon-fri", "sat", ... Confirm with counsel; a location may override any state.
DEFAULT_STATE_RULES: dict[str, dict[str, str]] = {
    "FL": {"mon-sun": "08:00-20:00"},
    "MD": {"mon-sun": "08:00-20:00"},
    "MS": {"mon-sun": "08:00-20:00"},
    "NJ": {"mon-sun": "08:00-20:00"},
    "OK": {"mon-sun": "08:00-20:00"},
    "CT": {"mon-sun": "09:00-20:00"},
    "RI": {"mon-fri": "09:00-18:00", "sat-sun": "10:00-17:00"},
    "TX": {"mon-sat": "09:00-21:00", "sun": "12:00-21:00"},
}


def parse_window(text: str) -> Window:
    """Parse "HH:MM-HH:MM" (24-hour clock; "24:00" as an end means midnight)."""
    try:
        start_text, end_text = (part.strip() for part in text.split("-"))
        start = time.fromisoformat(start_text)
        # "24:00" closes a day that runs to midnight (business hours); time() cannot say 24:00.
        end = time.max if end_text == "24:00" else time.fromisoformat(end_text)
    except ValueError:
        raise ValueError(f"{text!r} is not a window like 08:00-20:00") from None
    if start >= end:
        raise ValueError(f"window {text!r} must start before it ends")
    return Window(start, end)


def expand_days(spec: str) -> list[int]:
    """Weekday indexes (Monday 0) for "mon", "mon-fri", "sat-sun" or "mon-sun"."""
    spec = spec.strip().lower()
    first, _, last = spec.partition("-")
    if first not in WEEKDAYS or (last and last not in WEEKDAYS):
        raise ValueError(f"{spec!r} is not a day or day range like mon-fri")
    begin, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
    if end < begin:
        raise ValueError(f"day range {spec!r} runs backwards")
    return list(range(begin, end + 1))


def parse_day_rules(rules: Mapping[str, str]) -> dict[int, Window]:
    """Turn {"mon-fri": "09:00-18:00", ...} into {weekday: Window}."""
    parsed: dict[int, Window] = {}
    for days, window_text in rules.items():
        window = parse_window(window_text)
        for day in expand_days(days):
            parsed[day] = window
    return parsed


@dataclass(frozen=True)
class SendingWindows:
    """The allowed window for each weekday (None: no automated texts that day)."""

    by_weekday: tuple[Window | None, ...]

    @classmethod
    def build(cls, *, location_window: Window | None = None, state_rules: Iterable[Mapping[int, Window]] = ()
              ) -> SendingWindows:
        """Federal window, narrowed by the location's own window and each applicable state's rules."""
        days: list[Window | None] = [FEDERAL_WINDOW] * 7
        if location_window is not None:
            days = [d.intersect(location_window) if d else None for d in days]
        for rules in state_rules:
            days = [d.intersect(rules[i]) if d and i in rules else d for i, d in enumerate(days)]
        return cls(tuple(days))

    def allows(self, local: datetime) -> bool:
        window = self.by_weekday[local.weekday()]
        return window is not None and window.contains(local.time())

    def window_on(self, day: date) -> Window | None:
        return self.by_weekday[day.weekday()]


def next_allowed_time(now: datetime, *, zones: Sequence[str], windows: SendingWindows) -> datetime:
    """`now` if every zone is inside its window, else the earliest later instant when all are.

    With several candidate zones (a number whose area spans two), the text waits until it is
    allowed in all of them: the most restrictive reading. The answer is a window start, so it
    falls on a whole minute.

    Raises:
        ValueError: no zones given, or no allowed instant within two weeks (an all-closed table).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not zones:
        raise ValueError("at least one time zone is needed")
    tzs = [ZoneInfo(z) for z in zones]
    now = now.astimezone(UTC)
    if _allowed_everywhere(now, tzs, windows):
        return now
    # The earliest allowed instant after `now` is the start of some zone's window (the allowed set
    # is an intersection of unions of intervals), so checking those starts in order is enough.
    candidates: set[datetime] = set()
    for tz in tzs:
        today = now.astimezone(tz).date()
        for offset in range(15):
            day = today + timedelta(days=offset)
            window = windows.window_on(day)
            if window is None:
                continue
            start = _local_instant(day, window.start, tz)
            if start > now:
                candidates.add(start)
    for candidate in sorted(candidates):
        if _allowed_everywhere(candidate, tzs, windows):
            return candidate
    raise ValueError("no allowed sending time in the next two weeks; check the quiet-hours table")


def _allowed_everywhere(instant: datetime, tzs: list[ZoneInfo], windows: SendingWindows) -> bool:
    return all(windows.allows(instant.astimezone(tz)) for tz in tzs)


def _local_instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time on `day` in `tz`.

    A wall time skipped by a spring-forward jump resolves (fold=0) to the same distance after the
    jump: later than the ideal first minute, never earlier, so a deferral can only err on the quiet
    side. (Windows start at 08:00 or later, where no US transition falls.)
    """
    return datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)
