"""Which sub-account a page request is about: only the location in the SSO session (DESIGN invariant 5).

The activity and report pages call `signed_in_location()` first. Nothing in the URL or the query string can
name a location: a request without a session gets HighLevel's sign-in handshake, an agency user (no active
location) goes back to the agency page, and a location no longer installed for the session's company is a 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import abort, make_response, redirect, render_template

from integration.app_page import current_context
from integration.extensions import db, get_settings
from integration.models import Company, Location, LocationSettings
from integration.textback.guards import FALLBACK_ZONES
from integration.textback.settings import DEFAULT_SETTINGS, SettingsError, TextBackSettings, effective_settings

__all__ = ["SignedInLocation", "location_settings", "signed_in_location"]


@dataclass(frozen=True)
class SignedInLocation:
    """The session's sub-account, with what its pages need to show times and money."""

    id: str
    name: str
    company_id: str | None
    settings: TextBackSettings
    zone: ZoneInfo

    @property
    def average_job_value(self) -> float:
        return self.settings.crm.average_job_value


def location_settings(values: dict | None, company_defaults: dict | None) -> TextBackSettings:
    """The effective settings; the built-in defaults when the stored document no longer validates (a page must
    still show the activity of a sub-account whose settings are broken: that is where the contractor looks)."""
    try:
        return effective_settings(company_defaults=company_defaults, location_values=values)
    except SettingsError:
        return effective_settings(location_values=DEFAULT_SETTINGS)


def _profile_timezone(location_id: str) -> str | None:
    """The zone HighLevel gave for the location, as the send path cached it (one Redis read, no HighLevel call):
    the same zone the outcomes' clock times ("texted at 14:02") were written in."""
    from redis.exceptions import RedisError

    from integration.extensions import get_redis
    from integration.textback.profiles import LocationProfiles

    try:
        profile = LocationProfiles(client=None, redis=get_redis()).lookup(location_id).profile
    except (RedisError, OSError):
        return None
    return profile.timezone if profile is not None else None


def _zone(settings: TextBackSettings, location_id: str, location_timezone: str | None) -> ZoneInfo:
    for candidate in (settings.timezone, _profile_timezone(location_id), location_timezone):
        if not candidate:
            continue
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo(FALLBACK_ZONES[0])


def signed_in_location() -> SignedInLocation:
    """The location of this browser's SSO session, or the response that stands in for the page (via abort)."""
    context = current_context()
    if context is None:
        abort(make_response(render_template("app/sso_bootstrap.html", installed_notice=None,
                                            sandbox_mode=get_settings().sandbox_mode), 401))
    if not context.get("location_id"):
        abort(redirect("/app"))
    with db.session() as session:
        location = session.get(Location, context["location_id"])
        if location is None or (location.company_id and location.company_id != context["company_id"]):
            abort(make_response(render_template("app/not_installed.html", location_id=context["location_id"]), 404))
        row = session.get(LocationSettings, location.id)
        company = session.get(Company, location.company_id) if location.company_id else None
        settings = location_settings(row.values if row is not None else None,
                                     company.default_settings if company is not None else None)
        zone = _zone(settings, location.id, location.timezone)
        return SignedInLocation(id=location.id, name=location.name or location.id, company_id=location.company_id,
                                settings=settings, zone=zone)
