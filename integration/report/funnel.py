"""The funnel of missed calls: missed -> eligible -> texted -> replied -> booked -> won, counted in the database.

What each step counts (a sent text is never a job):
- missed: every missed call we recorded (test texts are not missed calls: they live in textback_test_texts);
- eligible: the rules allowed a text (every missed call not skipped: texted, failed, deferred or in progress);
- texted: HighLevel took our text;
- replied, booked, won: the lead the texted call became (crm_leads): the caller texted back, an appointment was
  booked, the opportunity was marked won. A won lead counts as booked too.
Money: won value is HighLevel's monetaryValue on the won opportunities; a booked job still open, or won without
a value, counts at the average job value (the value the opportunity was opened with).

`funnel_for_locations` is the agency page's 30-day funnel per sub-account as well as the report's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import case, func, literal_column, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import Session

from integration.crm.models import CrmLead
from integration.db import UTCDateTime
from integration.textback.models import MissedCall

__all__ = ["STEPS", "Funnel", "funnel_for_locations", "weekly_funnels"]

_CALLS = MissedCall.__table__.c
_LEADS = CrmLead.__table__.c
# (field, label) in funnel order.
STEPS = (("missed", "Missed calls"), ("eligible", "Could be texted"), ("texted", "Texted"),
         ("replied", "Replied"), ("booked", "Booked"), ("won", "Won"))


@dataclass(frozen=True)
class Funnel:
    missed: int = 0
    eligible: int = 0
    texted: int = 0
    replied: int = 0
    booked: int = 0
    won: int = 0
    won_value: float = 0.0  # sum of the won opportunities' values, where HighLevel gave one
    won_unvalued: int = 0  # won without a value
    booked_open: int = 0  # booked, opportunity not closed yet

    def __add__(self, other: Funnel) -> Funnel:
        return Funnel(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def recovered_value(self, average_job_value: float) -> float:
        """Booked and won value: won at its value (or the job value), booked-but-open at the job value."""
        return self.won_value + (self.won_unvalued + self.booked_open) * average_job_value

    def rate(self, step: str, *, of: str = "missed") -> float | None:
        """`step` as a share of `of` (None when `of` is zero)."""
        base = getattr(self, of)
        return getattr(self, step) / base if base else None

    def steps(self) -> list[tuple[str, str, int, float | None, float | None]]:
        """(field, label, count, share of missed, share of the previous step) per step."""
        rows, previous = [], None
        for name, label in STEPS:
            rows.append((name, label, getattr(self, name), self.rate(name),
                         self.rate(name, of=previous) if previous else None))
            previous = name
        return rows


def _counts() -> list:
    """The aggregate columns, in Funnel's field order."""
    booked = (_LEADS.booked_at.is_not(None)) | (_LEADS.outcome == CrmLead.WON)
    won = _LEADS.outcome == CrmLead.WON

    def count(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    return [
        func.count(_CALLS.id),
        count(_CALLS.status != MissedCall.SKIPPED),
        count(_CALLS.status == MissedCall.SENT),
        count(_LEADS.replied_at.is_not(None)),
        count(booked),
        count(won),
        func.coalesce(func.sum(case((won, _LEADS.outcome_value), else_=0)), 0),
        count(won & _LEADS.outcome_value.is_(None)),
        count(_LEADS.booked_at.is_not(None) & _LEADS.outcome.is_(None)),
    ]


def _funnel(values: Sequence) -> Funnel:
    *counts, won_value, won_unvalued, booked_open = values
    return Funnel(*(int(c) for c in counts), won_value=float(won_value or 0), won_unvalued=int(won_unvalued),
                  booked_open=int(booked_open))


def _calls_with_leads():
    return MissedCall.__table__.outerjoin(CrmLead.__table__, _LEADS.missed_call_id == _CALLS.id)


def funnel_for_locations(session: Session, location_ids: Iterable[str], since: datetime,
                         until: datetime | None = None) -> dict[str, Funnel]:
    """Each location's funnel for the missed calls recorded in [since, until); locations without any get Funnel().

    One grouped query over ix_textback_missed_calls_location_created_id. Callers pass only the ids their session
    may see (the agency page: its own company's sub-accounts).
    """
    ids = sorted(set(location_ids))
    result = {location_id: Funnel() for location_id in ids}
    if not ids:
        return result
    statement = (select(_CALLS.location_id, *_counts()).select_from(_calls_with_leads())
                 .where(_CALLS.location_id.in_(ids), _CALLS.created_at >= since).group_by(_CALLS.location_id))
    if until is not None:
        statement = statement.where(_CALLS.created_at < until)
    for location_id, *values in session.execute(statement):
        result[location_id] = _funnel(values)
    return result


def weekly_funnels(session: Session, location_id: str, week_starts: Sequence[datetime], until: datetime
                   ) -> list[Funnel]:
    """One funnel per week: week i holds the calls in [week_starts[i], week_starts[i+1]) (the last ends at `until`).

    The week is picked from the boundaries (computed in the location's zone by the caller, so a week is Monday to
    Sunday there, across daylight-saving changes): width_bucket on PostgreSQL, a CASE on SQLite.
    """
    bounds = list(week_starts[1:])
    if not bounds:
        week = literal_column("0")
    elif session.get_bind().dialect.name == "postgresql":
        # A binary search over the sorted boundaries (a CASE tests them one by one: a third of the report's time
        # over a year of calls).
        week = func.width_bucket(_CALLS.created_at, array(bounds, type_=UTCDateTime()))
    else:
        week = case(*((_CALLS.created_at < bound, index) for index, bound in enumerate(bounds)), else_=len(bounds))
    statement = (select(week.label("week"), *_counts())
                 .select_from(_calls_with_leads())
                 .where(_CALLS.location_id == location_id, _CALLS.created_at >= week_starts[0],
                        _CALLS.created_at < until)
                 .group_by("week"))
    weeks = [Funnel() for _ in week_starts]
    for index, *values in session.execute(statement):
        weeks[int(index)] = _funnel(values)
    return weeks
