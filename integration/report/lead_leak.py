"""The Lead Leak report for one location and period: what missed calls cost, and what the text back recovered.

- missed calls per week, as measured: missed calls in the period / the weeks it covers (since the install when
  that is later, and never less than one week, so three days of data are not multiplied into a year);
- leak per year = average job value x missed calls per week x 52 (product-research §5);
- recovered = booked and won value from the opportunities (integration.report.funnel), never a sent text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from integration.models import Location
from integration.report.funnel import Funnel, weekly_funnels
from integration.report.rollup import rollup_zone, weekly_funnels_from_rollup
from integration.report.timing import ResponseTimes, response_times

__all__ = ["PERIODS", "LeadLeak", "Week", "build_report", "week_starts"]

# Weeks the report may cover (the period select); 12 by default.
PERIODS = (4, 12, 26, 52, 104)
DEFAULT_WEEKS = 12


@dataclass(frozen=True)
class Week:
    starts: date  # the Monday, in the location's zone
    funnel: Funnel


@dataclass(frozen=True)
class LeadLeak:
    weeks: list[Week]
    total: Funnel
    measured_since: datetime
    until: datetime
    average_job_value: float
    times: ResponseTimes
    from_rollup: bool = False  # the weeks were read from the per-day rollup (integration.report.rollup)

    @property
    def weeks_measured(self) -> float:
        return max(1.0, (self.until - self.measured_since).total_seconds() / (7 * 86400))

    @property
    def missed_per_week(self) -> float:
        return self.total.missed / self.weeks_measured

    @property
    def leak_per_year(self) -> float:
        return self.average_job_value * self.missed_per_week * 52

    @property
    def recovered(self) -> float:
        return self.total.recovered_value(self.average_job_value)


def week_starts(now: datetime, zone: ZoneInfo, weeks: int) -> list[datetime]:
    """The UTC instants of the last `weeks` local Mondays 00:00, oldest first (the current week is the last)."""
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    return [datetime.combine(monday - timedelta(weeks=back), time(0), tzinfo=zone).astimezone(now.tzinfo)
            for back in range(weeks - 1, -1, -1)]


def build_report(session: Session, location_id: str, *, zone: ZoneInfo, weeks: int, average_job_value: float,
                 now: datetime) -> LeadLeak:
    """The report; its weeks come from the per-day rollup when it is in `zone` (see `ensure_rollup`), else from
    the calls themselves (the same numbers: tests/activity/test_report_rollup.py)."""
    starts = week_starts(now, zone, weeks)
    from_rollup = bool(zone.key) and rollup_zone(session, location_id) == zone.key
    if from_rollup:
        per_week = weekly_funnels_from_rollup(session, location_id, [s.astimezone(zone).date() for s in starts])
    else:
        per_week = weekly_funnels(session, location_id, starts, now)
    total = sum(per_week, Funnel())
    installed_at = session.get(Location, location_id).installed_at
    measured_since = max(starts[0], installed_at) if installed_at else starts[0]
    return LeadLeak(
        weeks=[Week(starts=start.astimezone(zone).date(), funnel=funnel)
               for start, funnel in zip(starts, per_week, strict=True)],
        total=total, measured_since=min(measured_since, now), until=now, average_job_value=average_job_value,
        times=response_times(session, location_id, starts[0], now), from_rollup=from_rollup,
    )
