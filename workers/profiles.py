"""Keeping every live location's profile warm, so no missed call waits on `GET /locations` or `GET /users/`.

The profile (integration.textback.profiles) is warmed when the location's INSTALL webhook is handled, refreshed
after its soft TTL by the CRM follow-up of a texted call, and dropped and refetched by LocationUpdate and
User* webhooks (workers.handlers.locations). `warm_location_profiles`, a periodic job, catches the rest:

- a location whose entry is missing: Redis was flushed, its token was minted by a later provisioning retry
  (its INSTALL webhook found no token), or the INSTALL was handled before the OAuth callback stored one;
- an idle location whose entry is `REFRESH_AFTER_SECONDS` (12 h) old: refreshed before Redis drops it at
  24 h, so the next call after a quiet day finds it warm.

Each refresh is two HighLevel reads for that location (100 per 10 s each): cheap, and on the `low` queue,
behind texts and the CRM follow-up.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from sqlalchemy import select

from integration.extensions import db
from integration.ghl.errors import GHLError
from integration.models import Installation, Location
from integration.textback.facts import location_is_live
from integration.textback.profiles import REFRESH_AFTER_SECONDS, LocationProfiles
from oauth.errors import TokenUnavailable
from oauth.installation import LOCATION
from oauth.store import ACTIVE
from workers.textback import get_sender

__all__ = ["location_profiles", "refresh_stale_profile", "warm_location_profiles", "warm_profile"]

log = logging.getLogger(__name__)

# Refreshes per run of the periodic job (each about one HighLevel round trip); the rest wait for the next run.
_WARM_LIMIT = 50
_READ_CHUNK = 500


def location_profiles() -> LocationProfiles:
    """The sender's profile cache (one per app: the send and the refreshers share it)."""
    return get_sender().gatherer.profiles


def warm_profile(location_id: str, *, max_age: float | None = None) -> str | None:
    """Fetch the profile of a live location unless a fresh one is cached; a note, or None when not live.

    Never raises for HighLevel or Redis trouble: a location left cold is fetched by its first call instead.
    """
    with db.session() as session:
        if not location_is_live(session, location_id):
            return None
    try:
        fetched = location_profiles().refresh_if_older(location_id, max_age=max_age)
    except (GHLError, TokenUnavailable, RedisError) as exc:
        log.warning("location %s: profile not warmed (%s); its next call fetches it", location_id,
                    type(exc).__name__)
        return f"profile not warmed ({type(exc).__name__}); the next call fetches it"
    return "profile warmed" if fetched else "profile already warm"


def refresh_stale_profile(location_id: str) -> None:
    """After a texted call's follow-up: refresh the profile if it is past its soft TTL (stale-while-revalidate)."""
    try:
        if location_profiles().refresh_if_older(location_id):
            log.info("location %s: stale profile refreshed after the follow-up", location_id)
    except (GHLError, TokenUnavailable, RedisError) as exc:
        log.info("location %s: stale profile not refreshed (%s); still served", location_id, type(exc).__name__)


def warm_location_profiles(*, limit: int = _WARM_LIMIT) -> dict[str, int]:
    """Periodic job: fetch the profiles that are missing or old, for live locations, oldest first."""
    with db.session() as session:
        location_ids = list(session.scalars(
            select(Location.id)
            .join(Installation, (Installation.resource_id == Location.id) & (Installation.user_type == LOCATION))
            .where(Location.status == "installed", Installation.status == ACTIVE)
            .order_by(Location.id)))
    profiles = location_profiles()
    now = profiles.clock()
    due: list[tuple[float, str]] = []
    try:
        for start in range(0, len(location_ids), _READ_CHUNK):
            chunk = location_ids[start:start + _READ_CHUNK]
            for location_id, entry in profiles.cache.read_many(chunk).items():
                age = float("inf") if entry is None else entry.age(now)
                if age >= REFRESH_AFTER_SECONDS:
                    due.append((age, location_id))
    except RedisError as exc:
        log.warning("profile warm-up: Redis unavailable (%s); next run", type(exc).__name__)
        return {"live": len(location_ids), "due": 0, "warmed": 0, "failed": 0}
    due.sort(reverse=True)
    counts = {"live": len(location_ids), "due": len(due), "warmed": 0, "failed": 0}
    for _, location_id in due[:limit]:
        note = warm_profile(location_id, max_age=REFRESH_AFTER_SECONDS)
        if note == "profile warmed":
            counts["warmed"] += 1
        elif note is not None and note.startswith("profile not warmed"):
            counts["failed"] += 1
    if due:
        log.info("profile warm-up: %s", counts)
    return counts
