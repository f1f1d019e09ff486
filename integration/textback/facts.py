"""Gathering what the guard chain needs: from our database and from HighLevel.

Nothing on the way to the send that the send does not need. For a location we already know, the contact
(`GET /contacts/{id}`, for DND, tags and the first name) is the one HighLevel call before the send:

- the location's profile (name, time zone, own and staff numbers, users) comes from Redis, warm and
  served while a little stale (integration.textback.profiles). Cold (Redis flushed, never warmed), it is
  fetched together with the contact: one round trip, not three;
- pipelines are the CRM follow-up's, after the text (integration.crm.pipelines);
- the open-opportunity search of the existing-customer check runs only when it can change the text, and
  alongside the contact read for a caller we texted before (integration.textback.customers).

The contact itself is never cached: DND must be current at send time, and HighLevel does not order its
webhooks (a ContactDndUpdate can arrive after the call, or minutes later on a retry), so no webhook can
prove a cached copy current. A second read of the same contact soon after is rare anyway: the caller is
then inside the cooldown.

No API call is made for a location that is not live: the database answers that first.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from redis import Redis
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from integration.crm.pipelines import Pipelines
from integration.db import Database, utcnow
from integration.ghl.errors import GHLNotFound
from integration.models import Company, Installation, Location, LocationSettings
from integration.textback.customers import customer_opportunity, search_can_matter, search_needed, texted_before
from integration.textback.guards import FALLBACK_ZONES, CallFacts, ContactFacts
from integration.textback.missed_call import Missed
from integration.textback.models import Caller, DailySendCount, SendIntent
from integration.textback.phone import normalize_number
from integration.textback.profiles import SOFT_TTL_SECONDS, LocationProfile, LocationProfiles
from integration.textback.settings import TextBackSettings, effective_settings
from integration.textback.together import hedged, run_together
from oauth.store import NEEDS_RECONNECT, is_location_active

__all__ = ["FactGatherer", "Gathered", "LocationProfile", "business_day", "location_is_live", "why_not_live"]

log = logging.getLogger(__name__)

PROFILE_TTL_SECONDS = SOFT_TTL_SECONDS


def location_is_live(session: Session, location_id: str) -> bool:
    """Installed with an active token and no UNINSTALL waiting (oauth.store decides)."""
    return is_location_active(session, location_id)


def why_not_live(session: Session, location_id: str) -> str:
    """A contractor's reading of why no text can go for this location."""
    location = session.get(Location, location_id)
    if location is None or location.status != "installed":
        return "the app is not installed on this sub-account"
    status = session.scalar(select(Installation.status).where(Installation.user_type == "Location",
                                                              Installation.resource_id == location_id))
    if status == NEEDS_RECONNECT:
        return "the app must be reconnected to HighLevel for this sub-account"
    if status is None:
        return "the app is still being set up on this sub-account"
    return "the app is being uninstalled from this sub-account"


def business_day(now: datetime, timezone: str | None) -> date:
    """The location-local date a text counts against for the daily cap."""
    zone = timezone or FALLBACK_ZONES[0]
    try:
        return now.astimezone(ZoneInfo(zone)).date()
    except (KeyError, ValueError):
        return now.astimezone(ZoneInfo(FALLBACK_ZONES[0])).date()


@dataclass(frozen=True)
class Gathered:
    """The facts for one evaluation, the settings they were judged by, and the profile (None if not looked up)."""

    facts: CallFacts
    settings: TextBackSettings
    profile: LocationProfile | None


class FactGatherer:
    """Builds CallFacts for one missed call.

    Args:
        database: the configured Database (short read-only sessions, never held across an API call).
        client: the GHLClient (get_contact, search_opportunities; the profiles' and pipelines' reads).
        redis: where location profiles and pipelines are cached; None disables the cache.
        clock: returns the current UTC time (the guards' clock; cache ages use wall-clock time).
        profile_ttl: the profile's soft TTL, after which the follow-up refreshes it.
        profiles, pipelines: the caches, when the caller builds its own.
        hedge_after: seconds after which an unanswered contact read is asked once more (0: never).
    """

    def __init__(self, *, database: Database, client, redis: Redis | None = None,
                 clock: Callable[[], datetime] = utcnow, profile_ttl: int = PROFILE_TTL_SECONDS,
                 profiles: LocationProfiles | None = None, pipelines: Pipelines | None = None,
                 hedge_after: float = 0) -> None:
        self.database = database
        self.hedge_after = hedge_after
        self.client = client
        self.redis = redis
        self.clock = clock
        self.profiles = profiles or LocationProfiles(client=client, redis=redis, soft_ttl=profile_ttl)
        self.pipelines = pipelines or Pipelines(client=client, redis=redis)

    # --- From our database ---

    def settings_for(self, session: Session, location_id: str) -> tuple[bool, TextBackSettings]:
        """(enabled, effective settings) of a location: built-in, then agency, then location values.

        Raises:
            SettingsError: the stored document does not validate.
        """
        # One statement (it is read for every call event): the location's own row and its agency's defaults.
        found = session.connection().execute(_settings_query(), {"location_id": location_id}).first()
        enabled, values, company_defaults = found if found is not None else (None, None, None)
        settings = effective_settings(company_defaults=company_defaults, location_values=values)
        return (enabled if enabled is not None else True), settings

    # --- From HighLevel ---

    def profile(self, location_id: str) -> LocationProfile:
        """The location's profile: cached (even a little stale), else fetched now."""
        return self.profiles.get(location_id)

    def contact(self, location_id: str, contact_id: str | None, *, settings: TextBackSettings,
                called_at: datetime | None = None) -> ContactFacts | None:
        """The caller's contact read now (None when the call names none or it was deleted), with the open
        opportunity that makes them a customer when that can matter (integration.textback.customers)."""
        raw = self._read_contact(location_id, contact_id)
        if raw is None:
            return None
        return self._contact_facts(location_id, raw, settings=settings, called_at=called_at)

    def _read_contact(self, location_id: str, contact_id: str | None) -> dict | None:
        if not contact_id:
            return None
        try:
            return self.client.get_contact(location_id, contact_id)
        except GHLNotFound:
            return None

    def _open_opportunities(self, location_id: str, contact_id: str) -> list[dict]:
        return self.client.search_opportunities(location_id, contact_id=contact_id, status="open")

    def _contact_facts(self, location_id: str, raw: Mapping, *, settings: TextBackSettings,
                       called_at: datetime | None, skipped_anyway: bool = False,
                       searched: _Attempt | None = None) -> ContactFacts:
        """ContactFacts of `raw`, searching its open opportunities only when that can change the text.

        `searched`: the search already started alongside the contact read (used unless it failed).
        """
        facts = ContactFacts.from_api(raw)
        if not facts.contact_id or not search_needed(raw, facts, settings=settings, called_at=called_at,
                                                     skipped_anyway=skipped_anyway):
            return facts
        if searched is not None and searched.error is None:
            opportunities = searched.value
        else:
            opportunities = self._open_opportunities(location_id, facts.contact_id)
        name = customer_opportunity(opportunities, settings=settings,
                                    pipeline_names=partial(self.pipelines.names, location_id))
        return dataclasses.replace(facts, open_opportunity=name)

    # --- Everything, for one call ---

    def gather(self, *, call: Missed, first_seen_at: datetime, reserved_day: date | None = None) -> Gathered:
        """Facts for `call`. API calls happen only for a live, enabled location.

        `reserved_day`: this call already reserved the caller's cooldown and a daily slot on that day
        (a retry of its own send), so neither may count against it.

        Raises:
            SettingsError: the location's stored settings do not validate.
            GHLError, TokenUnavailable: HighLevel could not be asked.
        """
        now = self.clock()
        with self.database.session() as session:
            live = location_is_live(session, call.location_id)
            problem = None if live else why_not_live(session, call.location_id)
            enabled, settings = self.settings_for(session, call.location_id)
            early_search = live and enabled and self._texted_before(session, call, settings=settings, now=now)
        if not (live and enabled):
            facts = CallFacts(now=now, call=call, first_seen_at=first_seen_at, location_live=live,
                              location_enabled=enabled, location_problem=problem)
            return Gathered(facts, settings, None)

        lookup = self.profiles.lookup(call.location_id)
        # What does not depend on each other is asked for together: the contact, a cold profile, an early search.
        # The text waits on the contact read: its tail is cut by asking again (together.hedged).
        reads: list[Callable] = [hedged(partial(self._read_contact, call.location_id, call.contact_id),
                                        after=self.hedge_after)]
        if lookup.profile is None:
            reads.append(partial(self.profiles.fetch, call.location_id, after=lookup.read))
        if early_search:
            reads.append(partial(_attempt, partial(self._open_opportunities, call.location_id, call.contact_id)))
        answers = run_together(*reads)
        raw_contact = answers[0]
        profile = lookup.profile or answers[1]
        searched = answers[-1] if early_search else None

        region = profile.country or "US"
        own = set(profile.own_numbers)
        called = normalize_number(call.called_number, default_region=region)
        if called:
            own.add(called)
        caller_phone = normalize_number((raw_contact.get("phone") if raw_contact else None) or call.caller_number,
                                        default_region=region)
        today = business_day(now, settings.timezone or profile.timezone)
        with self.database.autocommit() as connection:
            caller = connection.execute(_caller_query(), {"location_id": call.location_id, "phone": caller_phone}
                                        ).first() if caller_phone else None
            sent_today = connection.scalar(_sent_today_query(), {"location_id": call.location_id, "day": today}) or 0
        last_texted_at = caller.last_texted_at if caller else None
        if caller is not None and caller.last_call_key == call.call_key:
            last_texted_at = None
        if reserved_day == today:
            sent_today = max(0, sent_today - 1)
        opted_out_at = caller.opted_out_at if caller else None
        contact = None
        if raw_contact is not None:
            skipped_anyway = (opted_out_at is not None or sent_today >= settings.daily_cap
                              or _in_cooldown(last_texted_at, settings=settings, now=now))
            contact = self._contact_facts(call.location_id, raw_contact, settings=settings,
                                          called_at=call.called_at or first_seen_at, skipped_anyway=skipped_anyway,
                                          searched=searched)
        facts = CallFacts(
            now=now, call=call, first_seen_at=first_seen_at, location_live=True, location_enabled=True,
            location_timezone=profile.timezone, location_country=profile.country,
            own_numbers=frozenset(own), staff_numbers=dict(profile.staff_numbers), contact=contact,
            opted_out_at=opted_out_at, last_texted_at=last_texted_at, sent_today=sent_today,
        )
        return Gathered(facts, settings, profile)

    def _texted_before(self, session: Session, call: Missed, *, settings: TextBackSettings, now: datetime) -> bool:
        """Whether to start the open-opportunity search with the contact read: a contact we texted for an earlier
        call (integration.textback.customers.texted_before)."""
        if not call.contact_id or not search_can_matter(settings):
            return False
        earlier = session.connection().execute(_last_text_to_contact_query(), {
            "location_id": call.location_id, "contact_id": call.contact_id, "call_key": call.call_key}).first()
        if earlier is None:
            return False
        caller = session.connection().execute(_caller_query(), {"location_id": call.location_id,
                                                                "phone": earlier.to_number}).first()
        return texted_before(earlier.sent_at, opted_out=caller is not None and caller.opted_out_at is not None,
                             settings=settings, now=now)


# The reads every missed call makes, built once with bound parameters: composing a statement (and its cache key)
# each time cost more CPU than running it.


@functools.cache
def _settings_query():
    return (select(LocationSettings.enabled, LocationSettings.values, Company.default_settings)
            .select_from(Location)
            .outerjoin(LocationSettings, LocationSettings.location_id == Location.id)
            .outerjoin(Company, Company.id == Location.company_id)
            .where(Location.id == bindparam("location_id")))


@functools.cache
def _caller_query():
    callers = Caller.__table__.c
    return (select(callers.last_texted_at, callers.last_call_key, callers.opted_out_at)
            .where(callers.location_id == bindparam("location_id"), callers.phone == bindparam("phone")))


@functools.cache
def _sent_today_query():
    counts = DailySendCount.__table__.c
    return select(counts.count).where(counts.location_id == bindparam("location_id"), counts.day == bindparam("day"))


@functools.cache
def _last_text_to_contact_query():
    sends = SendIntent.__table__.c
    return (select(sends.to_number, sends.sent_at)
            .where(sends.location_id == bindparam("location_id"), sends.contact_id == bindparam("contact_id"),
                   sends.status == SendIntent.SENT, sends.sent_at.is_not(None), sends.call_key != bindparam("call_key"))
            .order_by(sends.sent_at.desc()).limit(1))


@dataclass(frozen=True)
class _Attempt:
    """A read that may fail without failing the call (the early search: needed only if the contact says so)."""

    value: object = None
    error: Exception | None = None


def _attempt(read: Callable[[], object]) -> _Attempt:
    try:
        return _Attempt(value=read())
    except Exception as exc:  # judged later: re-asked if the search turns out to be needed
        return _Attempt(error=exc)


def _in_cooldown(last_texted_at: datetime | None, *, settings: TextBackSettings, now: datetime) -> bool:
    return (last_texted_at is not None and settings.cooldown_hours > 0
            and now - last_texted_at < timedelta(hours=settings.cooldown_hours))
