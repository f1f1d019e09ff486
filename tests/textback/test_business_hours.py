"""Business hours pick the template and fill {next_open_time}."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from integration.textback.business_hours import (
    AFTER_HOURS,
    BUSINESS_HOURS,
    HOLIDAY,
    BusinessHours,
    describe_moment,
)

CHICAGO = ZoneInfo("America/Chicago")
WEEKDAYS_8_TO_5 = {"mon": ["08:00-12:00", "13:00-17:00"], "tue": ["08:00-17:00"], "wed": ["08:00-17:00"],
                   "thu": ["08:00-17:00"], "fri": ["08:00-17:00"], "sat": ["09:00-12:00"], "sun": []}
HOURS = BusinessHours.from_settings(timezone="America/Chicago", weekly=WEEKDAYS_8_TO_5, holidays=["2026-12-25"])


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=CHICAGO)


def test_periods():
    assert HOURS.period(local(2026, 3, 2, 9, 0)) == BUSINESS_HOURS      # Monday morning
    assert HOURS.period(local(2026, 3, 2, 12, 30)) == AFTER_HOURS       # Monday lunch break
    assert HOURS.period(local(2026, 3, 2, 17, 0)) == AFTER_HOURS        # closes at 17:00 sharp
    assert HOURS.period(local(2026, 3, 1, 10, 0)) == AFTER_HOURS        # Sunday
    assert HOURS.period(local(2026, 12, 25, 10, 0)) == HOLIDAY          # a Friday, but a holiday


def test_period_uses_the_business_zone_not_utc():
    # 02:30 UTC Tuesday is 20:30 Monday in Chicago: after hours.
    assert HOURS.period(datetime(2026, 3, 3, 2, 30, tzinfo=ZoneInfo("UTC"))) == AFTER_HOURS


def test_next_open_skips_lunch_nights_weekends_and_holidays():
    assert HOURS.next_open(local(2026, 3, 2, 12, 30)) == local(2026, 3, 2, 13, 0)
    assert HOURS.next_open(local(2026, 3, 6, 18, 0)) == local(2026, 3, 7, 9, 0)     # Friday night -> Saturday
    assert HOURS.next_open(local(2026, 3, 7, 12, 30)) == local(2026, 3, 9, 8, 0)    # Saturday -> Monday
    assert HOURS.next_open(local(2026, 12, 24, 18, 0)) == local(2026, 12, 26, 9, 0)  # over Christmas


def test_never_open_has_no_next_opening():
    closed = BusinessHours.from_settings(timezone="UTC", weekly={})
    assert closed.next_open(local(2026, 3, 2, 9, 0)) is None


def test_describe_moment():
    now = local(2026, 3, 2, 12, 30)
    assert describe_moment(local(2026, 3, 2, 13, 0), now=now, timezone="America/Chicago") == "today at 1 PM"
    assert describe_moment(local(2026, 3, 3, 8, 30), now=now, timezone="America/Chicago") == "tomorrow at 8:30 AM"
    assert describe_moment(local(2026, 3, 6, 8, 0), now=now, timezone="America/Chicago") == "Friday at 8 AM"
    assert describe_moment(local(2026, 3, 20, 8, 0), now=now, timezone="America/Chicago") == "Mar 20 at 8 AM"
