"""Webhooks that change what the send knows about a location: INSTALL warms its profile, LocationUpdate and
UserCreate/UserUpdate/UserDelete drop it and fetch it again (integration.textback.profiles).

Dropping is what makes the next call right: the profile holds the business name ({business_name}), the
users' first names ({user_name}) and the staff numbers a call from a team member is skipped by. The fetch
that follows is what keeps the next call fast; when it fails, the next call fetches the profile itself. A
drop that Redis refuses raises, so the event is retried: a stale profile would otherwise stay for its TTL.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from integration.extensions import db
from integration.ghl.errors import GHLError
from integration.models import Location
from integration.textback.facts import location_is_live
from oauth import events as oauth_events
from oauth.errors import TokenUnavailable
from workers.errors import EventIgnored
from workers.profiles import location_profiles, warm_profile

__all__ = ["handle_install", "handle_location_update", "handle_user_change"]

log = logging.getLogger(__name__)

# A change to an agency user may touch every sub-account of the agency: all are dropped, this many refetched.
_REFETCH_LIMIT = 10


def handle_install(payload: dict, *, event_id: int) -> str | None:
    """INSTALL: provision as oauth.events does, then warm the location's profile so its first call waits on
    nothing but the contact."""
    note = oauth_events.handle_install(payload, event_id=event_id)
    location_id = _text(payload.get("locationId"))
    if location_id is None:
        return note
    warmed = warm_profile(location_id)
    return f"{note}; {warmed}" if warmed and note else (note or warmed)


def handle_location_update(payload: dict, *, event_id: int) -> str:
    """LocationUpdate (the location's id is `id`): its name, phone or time zone may have changed."""
    location_id = _text(payload.get("id")) or _text(payload.get("locationId"))
    if location_id is None:
        raise EventIgnored("LocationUpdate without the location's id")
    live = _live([location_id])
    if not live:
        raise EventIgnored(f"location {location_id} does not have the app installed")
    return _drop_and_refetch(live, reason="the location changed")


def handle_user_change(payload: dict, *, event_id: int) -> str:
    """UserCreate, UserUpdate, UserDelete: a name, a phone number, a line or a role may have changed.

    The locations are the payload's `locationId` and `locations`; an agency user naming neither may be on any
    sub-account of its agency (`companyId`).
    """
    named = [_text(payload.get("locationId"))]
    if isinstance(payload.get("locations"), list):
        named += [_text(item) for item in payload["locations"]]
    location_ids = list(dict.fromkeys(item for item in named if item))
    company_id = _text(payload.get("companyId"))
    if not location_ids and company_id:
        with db.session() as session:
            location_ids = list(session.scalars(select(Location.id).where(
                Location.company_id == company_id, Location.status == "installed").order_by(Location.id)))
    live = _live(location_ids)
    if not live:
        raise EventIgnored("not a user of a sub-account with the app installed")
    return _drop_and_refetch(live, reason=f"a user changed ({payload.get('type') or 'User*'})")


def _drop_and_refetch(location_ids: list[str], *, reason: str) -> str:
    profiles = location_profiles()
    for location_id in location_ids:
        profiles.invalidate(location_id)  # RedisError: retried by the inbox
    refetched, failed = [], []
    for location_id in location_ids[:_REFETCH_LIMIT]:
        try:
            profiles.fetch(location_id)
        except (GHLError, TokenUnavailable) as exc:
            log.warning("location %s: profile dropped but not fetched again (%s); the next call fetches it",
                        location_id, type(exc).__name__)
            failed.append(location_id)
        else:
            refetched.append(location_id)
    note = f"{reason}: profile of {_count(location_ids)} dropped, {len(refetched)} fetched again"
    if failed:
        note += f" ({len(failed)} left for the next call)"
    return note


def _live(location_ids: list[str]) -> list[str]:
    with db.session() as session:
        return [location_id for location_id in location_ids if location_is_live(session, location_id)]


def _count(location_ids: list[str]) -> str:
    return f"location {location_ids[0]}" if len(location_ids) == 1 else f"{len(location_ids)} locations"


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
