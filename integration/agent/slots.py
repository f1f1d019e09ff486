"""Free slots of the booking calendar, in the caller's time zone: what to offer, and whether one is still free.

HighLevel computes availability (open hours, slot length, buffers, existing appointments) and answers
`GET /calendars/{id}/free-slots` keyed by day in the zone asked for; we ask in the caller's zone, so the times
offered are the caller's own wall-clock times across midnight and DST. A slot is offered only if HighLevel
lists it, and re-checked with the same call right before it is booked.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from integration.agent.understanding import When

__all__ = ["HORIZON_DAYS", "SlotFinder"]

# How far ahead the agent looks for a visit (HighLevel allows 31 days per free-slots call).
HORIZON_DAYS = 14


class SlotFinder:
    """Reads free slots through the GHLClient (its errors propagate: the engine retries or hands over)."""

    def __init__(self, client, *, horizon_days: int = HORIZON_DAYS) -> None:
        self.client = client
        self.horizon = timedelta(days=horizon_days)

    def free(self, location_id: str, calendar_id: str, *, zone: ZoneInfo, start: datetime, end: datetime
             ) -> list[datetime]:
        """Every free slot start in [start, end), as aware datetimes in `zone`, earliest first."""
        answer = self.client.free_slots(location_id, calendar_id, start=start, end=end, timezone=zone.key)
        found = set()
        for values in answer.values():
            for raw in values:
                try:
                    moment = datetime.fromisoformat(str(raw))
                except ValueError:
                    continue  # an entry we cannot read is never offered
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=zone)
                moment = moment.astimezone(zone)
                if start <= moment < end:
                    found.add(moment)
        return sorted(found)

    def offer(self, location_id: str, calendar_id: str, *, zone: ZoneInfo, now: datetime, when: When | None = None,
              after: datetime | None = None, exclude: Iterable[str] = (), count: int = 3) -> list[datetime]:
        """The next `count` free slots that fit `when` (all days when None), after `after`, none of `exclude`."""
        start = now
        if when is not None and when.first_day is not None:
            start = max(start, datetime.combine(when.first_day, time(0), tzinfo=zone))
        if after is not None:
            start = max(start, after + timedelta(minutes=1))
        end = now + self.horizon
        if when is not None and when.last_day is not None:
            end = min(end, datetime.combine(when.last_day + timedelta(days=1), time(0), tzinfo=zone))
        if end <= start:
            return []
        skipped = {datetime.fromisoformat(value) for value in exclude}
        slots = [slot for slot in self.free(location_id, calendar_id, zone=zone, start=start, end=end)
                 if slot not in skipped and (when is None or when.later or when.matches(slot))]
        return slots[:count]

    def is_free(self, location_id: str, calendar_id: str, *, slot: datetime) -> bool:
        """Is `slot` still listed as free (asked in the slot's own zone, for its day)?"""
        zone = slot.tzinfo if isinstance(slot.tzinfo, ZoneInfo) else None
        zone = zone or ZoneInfo("UTC")
        start = slot - timedelta(hours=1)
        free = self.free(location_id, calendar_id, zone=zone, start=start, end=slot + timedelta(hours=1))
        return any(candidate == slot for candidate in free)
