"""Callers whose local time allows a text right now: quiet hours (08:00-21:00 in the caller's zone) cannot be
switched off, so a test that runs real workers on the real clock texts a caller for whom it is daytime."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from integration.textback.phone import parse_caller_number

__all__ = ["CALLERS", "daytime_caller", "daytime_callers"]

# Callers around the world: at any hour one of them is well inside 08:00-21:00 local time, so the
# text goes out now instead of being deferred by quiet hours (deferral has its own tests).
CALLERS = ["+12125550177", "+17205550177", "+14155550177", "+18085550177", "+819012345678", "+447400123456"]


def daytime_caller(now: datetime) -> tuple[str, str]:
    """A caller number whose local time is between 09:00 and 20:00, and its region."""
    for raw in CALLERS:
        number = parse_caller_number(raw)
        if all(9 <= now.astimezone(ZoneInfo(zone)).hour < 20 for zone in number.time_zones):
            return number.e164, number.region
    raise AssertionError(f"no daytime caller at {now:%H:%M} UTC")


def daytime_callers(now: datetime, count: int) -> tuple[list[str], str]:
    """`count` different numbers of the same daytime area (the last digits changed), and their region."""
    first, region = daytime_caller(now)
    numbers = [first[:-2] + f"{(int(first[-2:]) + step) % 100:02d}" for step in range(count)]
    for number in numbers:
        assert parse_caller_number(number).time_zones == parse_caller_number(first).time_zones, number
    return numbers, region
