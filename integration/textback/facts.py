"""Gathering what the guard chain needs: from our database and from HighLevel.

The location's profile (name, phone, time zone, users and their numbers, pipelines) changes rarely
and is asked for on every missed call, so it is cached in Redis for a few minutes: at 100 requests
per 10 s per location, a busy sub-account cannot afford two extra lookups per call. The contact is
always read fresh (DND and tags must be current at send time).

No API call is made for a location that is not live: the database answers that first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.db import Database, utcnow
from integration.ghl.errors import GHLNotFound
from integration.models import Company, Installation, Location, LocationSettings
from integration.textback.guards import FALLBACK_ZONES, CallFacts, ContactFacts
from integration.textback.missed_call import Missed, parse_timestamp
from integration.textback.models import Caller, DailySendCount
from integration.textback.phone import normalize_number, normalize_numbers
from integration.textback.settings import TextBackSettings, effective_settings
from oauth.store import NEEDS_RECONNECT, is_location_active

__all__ = ["FactGatherer", "Gathered", "LocationProfile", "business_day", "location_is_live", "why_not_live"]

log = logging.getLogger(__name__)

PROFILE_TTL_SECONDS = 300
# A contact created this shortly before the call was created by it (a first-time caller).
NEW_CONTACT_WINDOW = timedelta(minutes=2)


@dataclass(frozen=True)
class LocationProfile:
    """What HighLevel says about a sub-account, reduced to what text back uses (cacheable as JSON)."""

    location_id: str
    name: str | None = None
    timezone: str | None = None
    country: str | None = None
    own_numbers: tuple[str, ...] = ()
    # E.164 -> the person's name, for "the caller is a team member (Mike Alvarez)".
    staff_numbers: Mapping[str, str] = field(default_factory=dict)
    # user id -> first name (for {user_name}); LC phone number -> user id.
    user_first_names: Mapping[str, str] = field(default_factory=dict)
    line_owners: Mapping[str, str] = field(default_factory=dict)
    # pipeline id -> name, for ignoring our own missed-call pipeline when looking for customers.
    pipelines: Mapping[str, str] = field(default_factory=dict)
    # pipeline id -> [(stage id, stage name), ...] by position, for the CRM follow-up's opportunity.
    pipeline_stages: Mapping[str, Sequence[Sequence[str]]] = field(default_factory=dict)
    # user id -> full name (in HighLevel's order), and the admins among them: who gets the task.
    user_names: Mapping[str, str] = field(default_factory=dict)
    admin_user_ids: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, location_id: str, *, location: Mapping, users: list[Mapping],
                 pipelines: list[Mapping]) -> LocationProfile:
        business = location.get("business") if isinstance(location.get("business"), Mapping) else {}
        country = (location.get("country") or business.get("country") or "US").upper()
        own = [location.get("phone"), business.get("phone")]
        staff: dict[str, str] = {}
        first_names: dict[str, str] = {}
        line_owners: dict[str, str] = {}
        user_names: dict[str, str] = {}
        admins: list[str] = []
        for user in users:
            if user.get("deleted"):
                continue
            name = (user.get("name") or " ".join(filter(None, [user.get("firstName"), user.get("lastName")]))
                    or "a team member")
            if user.get("id"):
                user_names[str(user["id"])] = str(name)
                roles = user.get("roles") if isinstance(user.get("roles"), Mapping) else {}
                if str(roles.get("role") or "").lower() == "admin":
                    admins.append(str(user["id"]))
            if user.get("id") and user.get("firstName"):
                first_names[str(user["id"])] = str(user["firstName"])
            personal = normalize_number(user.get("phone"), default_region=country)
            if personal:
                staff[personal] = name
            lc_phones = user.get("lcPhone") if isinstance(user.get("lcPhone"), Mapping) else {}
            for loc, line in lc_phones.items():
                line_number = normalize_number(line, default_region=country)
                if line_number:
                    own.append(line_number)
                    if loc == location_id and user.get("id"):
                        line_owners[line_number] = str(user["id"])
        return cls(
            location_id=location_id,
            name=location.get("name") or business.get("name"),
            timezone=location.get("timezone") or business.get("timezone"),
            country=country,
            own_numbers=tuple(sorted(normalize_numbers(own, default_region=country))),
            staff_numbers=staff,
            user_first_names=first_names,
            line_owners=line_owners,
            pipelines={str(p["id"]): str(p.get("name") or "") for p in pipelines if p.get("id")},
            pipeline_stages={str(p["id"]): _stages(p) for p in pipelines if p.get("id")},
            user_names=user_names,
            admin_user_ids=tuple(admins),
        )

    def to_json(self) -> str:
        return json.dumps(self.__dict__, default=dict)

    @classmethod
    def from_json(cls, text: str) -> LocationProfile:
        data = json.loads(text)
        data["own_numbers"] = tuple(data["own_numbers"])
        data["admin_user_ids"] = tuple(data.get("admin_user_ids", ()))
        return cls(**data)


def _stages(pipeline: Mapping) -> list[tuple[str, str]]:
    """A pipeline's stages as (id, name), by position (HighLevel leaves the order of the list open)."""
    stages = [s for s in pipeline.get("stages") or [] if isinstance(s, Mapping) and s.get("id")]
    def position(pair: tuple[int, Mapping]) -> tuple[float, int]:
        index, stage = pair
        value = stage.get("position")
        return (value if isinstance(value, int | float) and not isinstance(value, bool) else index), index

    ordered = sorted(enumerate(stages), key=position)
    return [(str(stage["id"]), str(stage.get("name") or "")) for _, stage in ordered]


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
        client: the GHLClient (get_location, list_users, get_pipelines, get_contact, search_opportunities).
        redis: where location profiles are cached; None disables the cache.
        clock: returns the current UTC time.
    """

    def __init__(self, *, database: Database, client, redis: Redis | None = None,
                 clock: Callable[[], datetime] = utcnow, profile_ttl: int = PROFILE_TTL_SECONDS) -> None:
        self.database = database
        self.client = client
        self.redis = redis
        self.clock = clock
        self.profile_ttl = profile_ttl

    # --- From our database ---

    def settings_for(self, session: Session, location_id: str) -> tuple[bool, TextBackSettings]:
        """(enabled, effective settings) of a location: built-in, then agency, then location values.

        Raises:
            SettingsError: the stored document does not validate.
        """
        # One statement (it is read for every call event): the location's own row and its agency's defaults.
        found = session.execute(
            select(LocationSettings.enabled, LocationSettings.values, Company.default_settings)
            .select_from(Location)
            .outerjoin(LocationSettings, LocationSettings.location_id == Location.id)
            .outerjoin(Company, Company.id == Location.company_id)
            .where(Location.id == location_id)
        ).first()
        enabled, values, company_defaults = found if found is not None else (None, None, None)
        settings = effective_settings(company_defaults=company_defaults, location_values=values)
        return (enabled if enabled is not None else True), settings

    # --- From HighLevel ---

    def profile(self, location_id: str) -> LocationProfile:
        """The location's profile, from the cache when fresh."""
        key = f"textback:profile:{location_id}"
        cached = self._cache_get(key)
        if cached is not None:
            try:
                return LocationProfile.from_json(cached)
            except (ValueError, TypeError, KeyError):
                log.warning("location %s: unreadable cached profile, fetching again", location_id)
        profile = LocationProfile.from_api(
            location_id,
            location=self.client.get_location(location_id),
            users=self.client.list_users(location_id),
            pipelines=self.client.get_pipelines(location_id),
        )
        self._cache_set(key, profile.to_json())
        return profile

    def contact(self, location_id: str, contact_id: str | None, *, settings: TextBackSettings,
                profile: LocationProfile, called_at: datetime | None = None) -> ContactFacts | None:
        """The caller's contact, or None when the call names none or it was deleted.

        Open opportunities are looked up only for a contact that existed before the call: HighLevel
        creates the contact of a first-time caller with the call, and it cannot have any yet (one API
        request saved per new caller, under a 100-per-10-s budget).
        """
        if not contact_id:
            return None
        try:
            contact = self.client.get_contact(location_id, contact_id)
        except GHLNotFound:
            return None
        opportunity = None
        created = parse_timestamp(contact.get("dateAdded"))
        new_with_the_call = created is not None and called_at is not None and created >= called_at - NEW_CONTACT_WINDOW
        if settings.existing_open_opportunity and settings.existing_action != "same" and not new_with_the_call:
            opportunity = self._open_opportunity(location_id, contact_id, settings=settings, profile=profile)
        return ContactFacts.from_api(contact, open_opportunity=opportunity)

    def _open_opportunity(self, location_id: str, contact_id: str, *, settings: TextBackSettings,
                          profile: LocationProfile) -> str | None:
        for opportunity in self.client.search_opportunities(location_id, contact_id=contact_id, status="open"):
            if str(opportunity.get("status") or "open").lower() != "open":
                continue
            pipeline = profile.pipelines.get(str(opportunity.get("pipelineId")), "").strip().lower()
            if pipeline in settings.existing_ignore_pipelines:
                continue
            return str(opportunity.get("name") or "an opportunity")
        return None

    # --- Everything, for one call ---

    def gather(self, *, call: Missed, first_seen_at: datetime, reserved_day: date | None = None) -> Gathered:
        """Facts for `call`. API calls happen only for a live, enabled location.

        `reserved_day`: this call already reserved the caller's cooldown and a daily slot on that day
        (a retry of its own send), so neither may count against it.

        Raises:
            SettingsError: the location's stored settings do not validate.
            GHLError, TokenUnavailable: HighLevel could not be asked.
        """
        with self.database.session() as session:
            live = location_is_live(session, call.location_id)
            problem = None if live else why_not_live(session, call.location_id)
            enabled, settings = self.settings_for(session, call.location_id)
        now = self.clock()
        if not (live and enabled):
            facts = CallFacts(now=now, call=call, first_seen_at=first_seen_at, location_live=live,
                              location_enabled=enabled, location_problem=problem)
            return Gathered(facts, settings, None)

        profile = self.profile(call.location_id)
        contact = self.contact(call.location_id, call.contact_id, settings=settings, profile=profile,
                               called_at=call.called_at or first_seen_at)
        region = profile.country or "US"
        own = set(profile.own_numbers)
        called = normalize_number(call.called_number, default_region=region)
        if called:
            own.add(called)
        caller_phone = normalize_number((contact.phone if contact else None) or call.caller_number,
                                        default_region=region)
        today = business_day(now, settings.timezone or profile.timezone)
        with self.database.session() as session:
            caller = session.get(Caller, (call.location_id, caller_phone)) if caller_phone else None
            sent_today = session.scalar(select(DailySendCount.count).where(
                DailySendCount.location_id == call.location_id, DailySendCount.day == today)) or 0
        last_texted_at = caller.last_texted_at if caller else None
        if caller is not None and caller.last_call_key == call.call_key:
            last_texted_at = None
        if reserved_day == today:
            sent_today = max(0, sent_today - 1)
        facts = CallFacts(
            now=now, call=call, first_seen_at=first_seen_at, location_live=True, location_enabled=True,
            location_timezone=profile.timezone, location_country=profile.country,
            own_numbers=frozenset(own), staff_numbers=dict(profile.staff_numbers), contact=contact,
            opted_out_at=caller.opted_out_at if caller else None, last_texted_at=last_texted_at,
            sent_today=sent_today,
        )
        return Gathered(facts, settings, profile)

    # --- Cache ---

    def _cache_get(self, key: str) -> str | None:
        if self.redis is None:
            return None
        try:
            value = self.redis.get(key)
        except RedisError as exc:
            log.warning("profile cache unavailable (%s); asking HighLevel", type(exc).__name__)
            return None
        return value.decode() if isinstance(value, bytes) else value

    def _cache_set(self, key: str, value: str) -> None:
        if self.redis is None:
            return
        try:
            self.redis.set(key, value, ex=self.profile_ttl)
        except RedisError as exc:
            log.warning("profile cache unavailable (%s); not cached", type(exc).__name__)
