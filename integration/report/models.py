"""The report's per-day rollup tables (migration 0015_report_rollups, which also holds the PostgreSQL triggers and
functions that keep them exactly right; integration.report.rollup reads them)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from integration.db import Base, UTCDateTime

__all__ = ["ReportDailyFunnel", "ReportRollupZone"]


class ReportRollupZone(Base):
    """A location whose missed calls are rolled up per local day, and the zone of those days."""

    __tablename__ = "report_rollup_zones"

    location_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    zone: Mapped[str] = mapped_column(String(64))
    built_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReportDailyFunnel(Base):
    """The funnel of the missed calls a location recorded on one local day (integration.report.funnel's counts)."""

    __tablename__ = "report_daily_funnels"

    location_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    missed: Mapped[int] = mapped_column(Integer)
    eligible: Mapped[int] = mapped_column(Integer)
    texted: Mapped[int] = mapped_column(Integer)
    replied: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer)
    won: Mapped[int] = mapped_column(Integer)
    # numeric: added to and taken from for years, a float would drift from the live sum
    won_value: Mapped[Decimal] = mapped_column(Numeric)
    won_unvalued: Mapped[int] = mapped_column(Integer)
    booked_open: Mapped[int] = mapped_column(Integer)
