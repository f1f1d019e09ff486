"""The report's weeks from the per-day rollup (report_daily_funnels) instead of every call of the period.

The rollup holds, per location and local day, the same counts integration.report.funnel counts from the calls and
their leads; PostgreSQL triggers keep it right as calls are recorded and decided and leads reply, book and close
(migration 0015_report_rollups). A report week is seven local days, so it is the sum of seven rows, whatever the
period: two years are 728 rows.

The days are in one zone per location (report_rollup_zones). `ensure_rollup` (re)builds a location's days from its
calls when there are none yet or they are in another zone than the page's (the contractor changed the time zone
setting); the report reads the rollup only when its zone is the page's zone, and otherwise (SQLite, a rebuild that
could not run) counts the calls themselves, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from integration.report.funnel import Funnel
from integration.report.models import ReportDailyFunnel, ReportRollupZone

__all__ = ["ensure_rollup", "rollup_zone", "weekly_funnels_from_rollup"]

log = logging.getLogger(__name__)
# How long a rebuild waits for the location's open writes (each holds its share of the lock until it commits).
REBUILD_LOCK_TIMEOUT = "3s"
_ROWS = ReportDailyFunnel.__table__.c


def rollup_zone(session: Session, location_id: str) -> str | None:
    """The zone of the location's rolled-up days (None: no rollup, or not on PostgreSQL)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    return session.scalar(select(ReportRollupZone.zone).where(ReportRollupZone.location_id == location_id))


def ensure_rollup(engine: Engine, location_id: str, zone: ZoneInfo) -> bool:
    """True when the location's days are rolled up in `zone` (rebuilt from its calls now if they were not)."""
    if engine.dialect.name != "postgresql" or not zone.key:
        return False
    with Session(engine) as session:
        if rollup_zone(session, location_id) == zone.key:
            return True
    try:
        with engine.begin() as connection:
            connection.execute(text(f"SET LOCAL lock_timeout = '{REBUILD_LOCK_TIMEOUT}'"))
            days = connection.scalar(text("SELECT report_rollup_rebuild(:location, :zone)"),
                                     {"location": location_id, "zone": zone.key})
    except DBAPIError as exc:  # a zone PostgreSQL does not know, a lock not had in time: count the calls instead
        log.warning("report: rollup of %s in %s not rebuilt (%s)", location_id, zone.key, type(exc.orig).__name__)
        return False
    log.info("report: rollup of %s rebuilt in %s (%s days)", location_id, zone.key, days)
    return True


def weekly_funnels_from_rollup(session: Session, location_id: str, week_days: Sequence[date]) -> list[Funnel]:
    """One funnel per week: week i holds the local days [week_days[i], week_days[i] + 7) (the last week up to now:
    the rollup's latest day is today)."""
    weeks = [Funnel() for _ in week_days]
    if not week_days:
        return weeks
    first = week_days[0]
    rows = session.execute(
        select(_ROWS.day, _ROWS.missed, _ROWS.eligible, _ROWS.texted, _ROWS.replied, _ROWS.booked, _ROWS.won,
               _ROWS.won_value, _ROWS.won_unvalued, _ROWS.booked_open)
        .where(_ROWS.location_id == location_id, _ROWS.day >= first, _ROWS.day < week_days[-1] + timedelta(days=7)))
    for day, *counts, won_value, won_unvalued, booked_open in rows:
        weeks[(day - first).days // 7] += Funnel(*counts, won_value=float(won_value), won_unvalued=won_unvalued,
                               booked_open=booked_open)
    return weeks
