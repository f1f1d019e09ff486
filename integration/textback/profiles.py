"""The location's profile: what the send needs to know about a sub-account, from `GET /locations/{id}` and
`GET /users/`, kept warm in Redis so a missed call does not wait on either.

What is in it: the name, time zone and country; the location's own numbers and its users' lines (never texted);
staff numbers (a team member calling is skipped); first names and line owners (for {user_name}); and, from
the same users answer, full names and admins (whom the CRM follow-up assigns). Pipelines are not in it: only
the follow-up needs them (integration.crm.pipelines).

How it stays warm (a location we already know costs the send no HighLevel call for its profile):

- warmed when the location's INSTALL webhook is handled (workers.handlers.locations), and by a periodic job
  for any live location whose entry is missing or older than `refresh_after` (workers.profiles): Redis
  flushed, a token minted on a later retry, an idle location;
- served to the send at any age up to the hard TTL (`hard_ttl`, 24 h): stale-while-revalidate;
- refreshed after the soft TTL (`soft_ttl`, 5 min) by the CRM follow-up of a texted call, after the text
  (workers.crm.open_lead), one refresher per location at a time;
- dropped and fetched again when HighLevel says it changed: LocationUpdate, UserCreate/UserUpdate/UserDelete
  (workers.handlers.locations). The soft TTL only bounds how long a change whose webhook never came lasts.

A cold entry (Redis flushed, never warmed) is fetched on the spot, the location and users together, alongside
the contact (integration.textback.facts): one round trip, not three.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial

from redis import Redis

from integration.textback.cache import CacheRead, RevalidatingCache
from integration.textback.phone import normalize_number, normalize_numbers
from integration.textback.together import run_together

__all__ = ["HARD_TTL_SECONDS", "SOFT_TTL_SECONDS", "LocationProfile", "LocationProfiles", "ProfileLookup"]

log = logging.getLogger(__name__)

SOFT_TTL_SECONDS = 300
HARD_TTL_SECONDS = 24 * 3600
# The periodic warm-up refetches an entry this old: an idle location's entry never reaches the hard TTL.
REFRESH_AFTER_SECONDS = 12 * 3600
# A refresh is two HighLevel reads; another worker waits this long before it tries the same location.
_REFRESH_CLAIM_SECONDS = 30.0


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
    # user id -> full name (in HighLevel's order), and the admins among them: who gets the task.
    user_names: Mapping[str, str] = field(default_factory=dict)
    admin_user_ids: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, location_id: str, *, location: Mapping, users: list[Mapping]) -> LocationProfile:
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
            user_names=user_names,
            admin_user_ids=tuple(admins),
        )

    def to_dict(self) -> dict:
        return {key: dict(value) if isinstance(value, Mapping) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping) -> LocationProfile:
        """Tolerates entries written by another version: unknown keys are dropped, missing ones default."""
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        known["own_numbers"] = tuple(known.get("own_numbers", ()))
        known["admin_user_ids"] = tuple(known.get("admin_user_ids", ()))
        return cls(**known)


@dataclass(frozen=True)
class ProfileLookup:
    """A cache read: the profile if one is cached (`stale` past the soft TTL), and the read a fetch stores after."""

    profile: LocationProfile | None
    stale: bool
    age: float | None
    read: CacheRead


class LocationProfiles:
    """Location profiles from Redis, else from HighLevel.

    Args:
        client: the GHLClient (get_location, list_users).
        redis: where profiles are cached; None disables the cache.
        soft_ttl: after this many seconds a profile is refreshed by the next follow-up (still served meanwhile).
        hard_ttl: Redis drops a profile after this many seconds; the next call then fetches it.
        clock: wall-clock seconds (not the sender's clock: tests move that one by days).
    """

    def __init__(self, *, client, redis: Redis | None, soft_ttl: int = SOFT_TTL_SECONDS,
                 hard_ttl: int = HARD_TTL_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.soft_ttl = soft_ttl
        self.clock = clock
        self.cache = RevalidatingCache(redis, prefix="textback:location-profile", hard_ttl=hard_ttl, clock=clock)

    def lookup(self, location_id: str) -> ProfileLookup:
        """What Redis holds for the location (one round trip, no HighLevel call)."""
        read = self.cache.read(location_id)
        if read.entry is not None:
            try:
                profile = LocationProfile.from_dict(read.entry.value)
            except (TypeError, ValueError):
                log.warning("location %s: unreadable cached profile, fetching again", location_id)
            else:
                age = read.entry.age(self.clock())
                return ProfileLookup(profile, stale=age >= self.soft_ttl, age=age, read=read)
        return ProfileLookup(None, stale=True, age=None, read=read)

    def get(self, location_id: str) -> LocationProfile:
        """The cached profile at any age (stale is refreshed by the follow-up), else fetched now."""
        found = self.lookup(location_id)
        return found.profile or self.fetch(location_id, after=found.read)

    def fetch(self, location_id: str, *, after: CacheRead | None = None) -> LocationProfile:
        """Ask HighLevel (the location and its users at once) and cache the answer.

        `after`: the cache read this fetch follows (its generation guards the write); read now when omitted.

        Raises:
            GHLError, TokenUnavailable: HighLevel could not be asked.
        """
        after = after if after is not None else self.cache.read(location_id)
        started = self.clock()
        location, users = run_together(partial(self.client.get_location, location_id),
                                       partial(self.client.list_users, location_id))
        profile = LocationProfile.from_api(location_id, location=location, users=users)
        self.cache.put(location_id, profile.to_dict(), after=after, fetched_at=started)
        return profile

    def refresh_if_older(self, location_id: str, *, max_age: float | None = None) -> bool:
        """Fetch the profile again when it is missing or older than `max_age` (default: the soft TTL), unless
        another worker is already at it. True when this call fetched it.

        Raises:
            GHLError, TokenUnavailable: HighLevel could not be asked.
        """
        found = self.lookup(location_id)
        limit = self.soft_ttl if max_age is None else max_age
        if found.profile is not None and found.age is not None and found.age < limit:
            return False
        if not self.cache.claim(location_id, seconds=_REFRESH_CLAIM_SECONDS):
            return False
        try:
            self.fetch(location_id, after=found.read)
        finally:
            self.cache.release(location_id)
        return True

    def invalidate(self, location_id: str) -> None:
        """HighLevel says the location or its users changed: drop the profile, and refuse any fetch already in
        flight. Raises RedisError (the webhook is then retried)."""
        self.cache.invalidate(location_id)
