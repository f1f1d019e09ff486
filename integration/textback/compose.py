"""Compose the text for one call: pick the values for the placeholders and render the template."""

from __future__ import annotations

from datetime import datetime

from integration.textback.business_hours import BusinessHours, describe_moment
from integration.textback.facts import LocationProfile
from integration.textback.guards import ContactFacts, Proceed
from integration.textback.missed_call import Missed
from integration.textback.phone import normalize_number
from integration.textback.settings import TextBackSettings
from integration.textback.template import fit_to_segments, render

__all__ = ["compose_message", "placeholder_values"]


def placeholder_values(*, call: Missed, contact: ContactFacts | None, profile: LocationProfile,
                       settings: TextBackSettings, business_timezone: str, now: datetime) -> dict[str, str | None]:
    """The five placeholder values; None where unknown (the template's fallback applies)."""
    hours = BusinessHours.from_settings(timezone=business_timezone, weekly=settings.weekly_hours,
                                        holidays=settings.holidays)
    opening = hours.next_open(now)
    return {
        "first_name": _first_name(contact),
        "business_name": settings.business_name or profile.name,
        "user_name": _user_name(call=call, contact=contact, profile=profile, settings=settings),
        "booking_link": settings.booking_link or None,
        "next_open_time": describe_moment(opening, now=now, timezone=business_timezone) if opening else None,
    }


def compose_message(*, decision: Proceed, call: Missed, contact: ContactFacts | None, profile: LocationProfile,
                    settings: TextBackSettings, now: datetime) -> str:
    """The body to send: the chosen template rendered, cut to the location's segment limit."""
    values = placeholder_values(call=call, contact=contact, profile=profile, settings=settings,
                                business_timezone=decision.business_timezone, now=now)
    body = render(settings.templates[decision.template_key], values)
    return fit_to_segments(body, settings.max_segments)


def _first_name(contact: ContactFacts | None) -> str | None:
    """The contact's first name, unless HighLevel filled it with the phone number or a placeholder."""
    if contact is None or not contact.first_name:
        return None
    name = contact.first_name.strip()
    if not any(ch.isalpha() for ch in name) or normalize_number(name) is not None:
        return None
    if name.lower() in {"unknown", "caller", "guest", "customer", "n/a", "na", "none"}:
        return None
    return name


def _user_name(*, call: Missed, contact: ContactFacts | None, profile: LocationProfile,
               settings: TextBackSettings) -> str | None:
    """Who the text is from: the configured sender, the user the call rang, the line's owner, the contact's owner.

    None (the template's fallback, "the team") rather than a guess between several people.
    """
    if settings.sender_name:
        return settings.sender_name
    candidates = [call.user_id]
    called = normalize_number(call.called_number, default_region=profile.country or "US")
    if called:
        candidates.append(profile.line_owners.get(called))
    elif len(set(profile.line_owners.values())) == 1:
        # Call webhooks often omit the number called; with one user owning this location's line(s), it rang them.
        candidates.append(next(iter(profile.line_owners.values())))
    if contact is not None:
        candidates.append(contact.assigned_to)
    for user_id in candidates:
        if user_id and profile.user_first_names.get(user_id):
            return profile.user_first_names[user_id]
    return None
