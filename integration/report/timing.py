"""How fast callers heard back: call -> our text, and call -> the first text a person sent them.

Medians and 90th percentiles over the missed calls recorded in a period. On PostgreSQL both come from one
index-only scan of the period's leads (ix_crm_leads_location_called): each lead keeps when our text went out
(texted_at) and when a person first texted the caller (first_human_reply_at, kept from the conversation log by
the triggers of migration 0017), and PostgreSQL computes the percentiles itself (percentile_cont). SQLite, the
embedded default for a single contractor's install, has no triggers: it joins the log (`live_human_delays`, the
same definition, which the tests compare with the stored column) and Python computes the percentiles.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Interval, Select, and_, func, literal, literal_column, select
from sqlalchemy.orm import Session

from integration.crm.models import CrmLead
from integration.textback.models import ConversationMessage

__all__ = ["HUMAN_REPLY_WINDOW", "ResponseTimes", "Spread", "live_human_delays", "live_response_times",
           "response_times"]

_LEADS, _MESSAGES = CrmLead.__table__.c, ConversationMessage.__table__.c
PERSON = ConversationMessage.PERSON
assert PERSON.isalpha()  # written into SQL as is
# A person's text this long after the call still counts as their answer to it.
HUMAN_REPLY_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Spread:
    """Seconds: the median and the 90th percentile, over `count` calls (None when there are none)."""

    count: int = 0
    median: float | None = None
    p90: float | None = None


@dataclass(frozen=True)
class ResponseTimes:
    to_text: Spread
    to_human: Spread


def _seconds(later, earlier, dialect: str):
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _bounds(since: datetime, until: datetime, dialect: str) -> tuple:
    """The period's instants as SQL. On PostgreSQL written into the statement: with parameters, the driver
    prepares a statement it has run five times and PostgreSQL may switch to a generic plan that ignores the
    period's size and the partial index (the human-reply join went from 40 to 120 ms over two years)."""
    if dialect != "postgresql":
        return since, until
    return tuple(literal_column(f"TIMESTAMPTZ '{moment.astimezone(UTC).isoformat()}'") for moment in (since, until))


def _text_delays(location_id: str, since: datetime, until: datetime, dialect: str) -> Select:
    # The lead of a texted call keeps when the call came and when HighLevel took our text (its send intent's
    # sent_at): one table, no join; an index-only scan of ix_crm_leads_location_called.
    since, until = _bounds(since, until, dialect)
    return (select(_seconds(_LEADS.texted_at, _LEADS.called_at, dialect).label("seconds"))
            .where(_LEADS.location_id == location_id, _LEADS.called_at >= since, _LEADS.called_at < until))


def live_human_delays(location_id: str, since: datetime, until: datetime, dialect: str) -> Select:
    """The first text a person (not us, not the caller) sent the caller after the call, per texted call, from the
    conversation log: a join from the leads of the period to the people's texts to the same contacts (one hash
    join; the partial ix_textback_conversation_messages_person, its predicate written as is). What the triggers
    of migration 0017 store on each lead; SQLite's report reads it here."""
    since, until = _bounds(since, until, dialect)
    joined = [_MESSAGES.location_id == _LEADS.location_id, _MESSAGES.contact_id == _LEADS.contact_id,
              _MESSAGES.occurred_at >= _LEADS.called_at, _MESSAGES.author == literal_column(f"'{PERSON}'")]
    if dialect == "postgresql":  # (SQLite stores timestamps as text: no interval arithmetic there)
        joined.append(_MESSAGES.occurred_at < _LEADS.called_at + literal(HUMAN_REPLY_WINDOW, Interval()))
    first = (select(_seconds(func.min(_MESSAGES.occurred_at), _LEADS.called_at, dialect).label("seconds"))
             .select_from(CrmLead.__table__.join(ConversationMessage.__table__, and_(*joined)))
             .where(_LEADS.location_id == location_id, _MESSAGES.location_id == location_id,
                    _LEADS.called_at >= since, _LEADS.called_at < until)
             .group_by(_LEADS.id, _LEADS.called_at))
    return select(first.subquery().c.seconds)


def _spreads_from_leads(session: Session, location_id: str, since: datetime, until: datetime) -> ResponseTimes:
    # PostgreSQL: one index-only scan of ix_crm_leads_location_called, both delays per lead, each sorted once
    # (percentile_cont over an array of fractions); count() and the percentiles skip the NULLs (no text, no reply).
    since, until = _bounds(since, until, "postgresql")
    fractions = literal_column("ARRAY[0.5, 0.9]::float8[]")
    delays = [_seconds(_LEADS.texted_at, _LEADS.called_at, "postgresql"),
              _seconds(_LEADS.first_human_reply_at, _LEADS.called_at, "postgresql")]
    to_text, text_deciles, to_human, human_deciles = session.execute(
        select(*(part for delay in delays
                 for part in (func.count(delay), func.percentile_cont(fractions).within_group(delay))))
        .where(_LEADS.location_id == location_id, _LEADS.called_at >= since, _LEADS.called_at < until)).one()
    return ResponseTimes(to_text=_from_postgres(to_text, text_deciles),
                         to_human=_from_postgres(to_human, human_deciles))


def _from_postgres(count, deciles) -> Spread:
    median, p90 = deciles or (None, None)
    return Spread(int(count), _rounded(median), _rounded(p90))


def _spread(session: Session, delays: Select) -> Spread:
    rows = delays.subquery()
    seconds = rows.c.seconds
    if session.get_bind().dialect.name == "postgresql":
        count, median, p90 = session.execute(select(
            func.count(seconds), func.percentile_cont(0.5).within_group(seconds),
            func.percentile_cont(0.9).within_group(seconds))).one()
        return Spread(int(count), _rounded(median), _rounded(p90))
    values = sorted(v for (v,) in session.execute(select(seconds).where(seconds.is_not(None))))
    if not values:
        return Spread()
    if len(values) == 1:
        return Spread(1, values[0], values[0])
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return Spread(len(values), statistics.median(values), deciles[8])


def _rounded(value) -> float | None:
    return None if value is None else round(max(0.0, float(value)), 1)


def response_times(session: Session, location_id: str, since: datetime, until: datetime) -> ResponseTimes:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return _spreads_from_leads(session, location_id, since, until)
    return ResponseTimes(to_text=_spread(session, _text_delays(location_id, since, until, dialect)),
                         to_human=_spread(session, live_human_delays(location_id, since, until, dialect)))


def live_response_times(session: Session, location_id: str, since: datetime, until: datetime) -> ResponseTimes:
    """The response times computed from the conversation log on any database (what `response_times` reads from
    the leads on PostgreSQL): for the tests that hold the stored column to it."""
    dialect = session.get_bind().dialect.name
    return ResponseTimes(to_text=_spread(session, _text_delays(location_id, since, until, dialect)),
                         to_human=_spread(session, live_human_delays(location_id, since, until, dialect)))
