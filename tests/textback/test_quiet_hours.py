"""Quiet hours: federal window edges, DST days, state rules, several zones, and the next allowed minute."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from integration.textback.quiet_hours import (
    DEFAULT_STATE_RULES,
    SendingWindows,
    Window,
    next_allowed_time,
    parse_day_rules,
    parse_window,
)

NY = ZoneInfo("America/New_York")
FEDERAL = SendingWindows.build()


def at(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)


@pytest.mark.parametrize(("local", "expected"), [
    ((2026, 3, 2, 20, 59, 59), (2026, 3, 2, 20, 59, 59)),   # allowed: unchanged
    ((2026, 3, 2, 21, 0, 0), (2026, 3, 3, 8, 0, 0)),        # quiet: next morning
    ((2026, 3, 2, 7, 59, 59), (2026, 3, 2, 8, 0, 0)),       # quiet: this morning
    ((2026, 3, 2, 8, 0, 0), (2026, 3, 2, 8, 0, 0)),         # allowed from the first second
    ((2026, 3, 2, 0, 30, 0), (2026, 3, 2, 8, 0, 0)),
])
def test_federal_window_edges(local, expected):
    result = next_allowed_time(at(NY, *local), zones=["America/New_York"], windows=FEDERAL)
    assert result.astimezone(NY).replace(tzinfo=None) == datetime(*expected)
    assert result.tzinfo is not None


def test_spring_forward_night_defers_to_eight_local():
    # 2026-03-08 02:00 EST jumps to 03:00 EDT; 23:00 the night before -> 08:00 EDT (12:00 UTC).
    result = next_allowed_time(at(NY, 2026, 3, 7, 23, 0), zones=["America/New_York"], windows=FEDERAL)
    assert result == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def test_fall_back_night_defers_to_eight_local():
    # 2026-11-01 02:00 EDT falls back to 01:00 EST; 08:00 EST is 13:00 UTC.
    result = next_allowed_time(at(NY, 2026, 10, 31, 22, 0), zones=["America/New_York"], windows=FEDERAL)
    assert result == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)


def test_ambiguous_fall_back_hour_is_quiet():
    first_one_thirty = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)   # 01:30 EDT
    second_one_thirty = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST
    for instant in (first_one_thirty, second_one_thirty):
        assert next_allowed_time(instant, zones=["America/New_York"], windows=FEDERAL) == datetime(
            2026, 11, 1, 13, 0, tzinfo=UTC)


def test_florida_rule_ends_at_eight_pm():
    florida = SendingWindows.build(state_rules=[parse_day_rules(DEFAULT_STATE_RULES["FL"])])
    evening = at(NY, 2026, 3, 2, 20, 15)
    assert next_allowed_time(evening, zones=["America/New_York"], windows=FEDERAL) == evening
    result = next_allowed_time(evening, zones=["America/New_York"], windows=florida)
    assert result.astimezone(NY).replace(tzinfo=None) == datetime(2026, 3, 3, 8, 0)


def test_texas_sunday_starts_at_noon():
    chicago = ZoneInfo("America/Chicago")
    texas = SendingWindows.build(state_rules=[parse_day_rules(DEFAULT_STATE_RULES["TX"])])
    sunday_morning = at(chicago, 2026, 3, 1, 9, 30)  # 2026-03-01 is a Sunday
    result = next_allowed_time(sunday_morning, zones=["America/Chicago"], windows=texas)
    assert result.astimezone(chicago).replace(tzinfo=None) == datetime(2026, 3, 1, 12, 0)
    monday_morning = at(chicago, 2026, 3, 2, 9, 30)
    assert next_allowed_time(monday_morning, zones=["America/Chicago"], windows=texas) == monday_morning


def test_rhode_island_weekday_and_weekend_windows():
    rules = parse_day_rules(DEFAULT_STATE_RULES["RI"])
    assert rules[0] == Window(time(9), time(18))
    assert rules[5] == rules[6] == Window(time(10), time(17))


def test_several_zones_wait_for_the_latest_morning():
    # A number spanning Eastern and Central: 08:30 Eastern is 07:30 Central -> wait for 08:00 Central.
    instant = at(NY, 2026, 3, 2, 8, 30)
    result = next_allowed_time(instant, zones=["America/New_York", "America/Chicago"], windows=FEDERAL)
    assert result.astimezone(ZoneInfo("America/Chicago")).replace(tzinfo=None) == datetime(2026, 3, 2, 8, 0)


def test_location_window_can_only_narrow():
    stricter = SendingWindows.build(location_window=parse_window("09:30-18:00"))
    assert stricter.by_weekday[0] == Window(time(9, 30), time(18))
    wider = SendingWindows.build(location_window=parse_window("06:00-23:00"))
    assert wider.by_weekday[0] == Window(time(8), time(21))


def test_a_day_with_no_window_is_skipped():
    no_sundays = SendingWindows((*FEDERAL.by_weekday[:6], None))
    saturday_night = at(NY, 2026, 2, 28, 22, 0)
    result = next_allowed_time(saturday_night, zones=["America/New_York"], windows=no_sundays)
    assert result.astimezone(NY).replace(tzinfo=None) == datetime(2026, 3, 2, 8, 0)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="timezone-aware"):
        next_allowed_time(datetime(2026, 3, 2, 12), zones=["UTC"], windows=FEDERAL)
    with pytest.raises(ValueError, match="at least one time zone"):
        next_allowed_time(datetime(2026, 3, 2, 12, tzinfo=UTC), zones=[], windows=FEDERAL)
    with pytest.raises(ValueError, match="not a window"):
        parse_window("8am-9pm")
    with pytest.raises(ValueError, match="must start before"):
        parse_window("21:00-08:00")
    with pytest.raises(ValueError, match="day or day range"):
        parse_day_rules({"weekdays": "09:00-17:00"})


def test_all_closed_table_is_an_error_not_a_hang():
    closed = SendingWindows((None,) * 7)
    with pytest.raises(ValueError, match="no allowed sending time"):
        next_allowed_time(datetime(2026, 3, 2, 12, tzinfo=UTC), zones=["UTC"], windows=closed)
