"""The live preview's sample values: what the placeholders would be for a text sent now.

The first name is a real caller's (the latest missed call's contact, read from HighLevel), or a sample name the
page labels as one when there is no caller to take it from (SAMPLE_FIRST_NAME); the rest is
what the send path would use (integration.textback.compose): the configured sender or the signed-in
user's first name, the business name, the booking link, and when the business opens next.
The browser re-renders as the user types (static/app/settings.js mirrors integration.textback.template).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select

from integration.extensions import db
from integration.textback.business_hours import BusinessHours, describe_moment
from integration.textback.models import MissedCall
from integration.textback.settings import SettingsError, TextBackSettings
from integration.textback.template import DEFAULT_FALLBACKS, GSM_MULTI, GSM_SINGLE, UCS2_MULTI, UCS2_SINGLE

__all__ = ["SAMPLE_FIRST_NAME", "latest_caller_first_name", "preview_data"]

log = logging.getLogger(__name__)
FALLBACK_ZONE = "America/New_York"
SAMPLE_FIRST_NAME = "Jordan"


def latest_caller_first_name(location_id: str, client) -> str | None:
    """The first name HighLevel has for this location's latest caller, or None (no caller, no name, or
    HighLevel not answering: the preview then shows the template's fallback, as a real text would)."""
    with db.session() as s:
        contact_id = s.scalar(select(MissedCall.contact_id)
                              .where(MissedCall.location_id == location_id, MissedCall.contact_id.is_not(None))
                              .order_by(MissedCall.created_at.desc()).limit(1))
    if not contact_id or client is None:
        return None
    try:
        contact = client.get_contact(location_id, contact_id)
    except Exception as exc:  # the preview must render whatever HighLevel does
        log.info("app page: preview contact for %s unavailable (%s)", location_id, type(exc).__name__)
        return None
    name = str(contact.get("firstName") or "").strip()
    return name if any(ch.isalpha() for ch in name) else None


def preview_data(*, settings: TextBackSettings | None, location_name: str | None, location_timezone: str | None,
                 user_name: str | None, caller_first_name: str | None, now: datetime | None = None) -> dict:
    """The JSON the preview script reads (values for the placeholders, and the segment rules)."""
    now = now or datetime.now(UTC)
    zone = (settings.timezone if settings else "") or location_timezone or FALLBACK_ZONE
    next_open = None
    if settings is not None:
        try:
            hours = BusinessHours.from_settings(timezone=zone, weekly=settings.weekly_hours,
                                                holidays=settings.holidays)
            opening = hours.next_open(now)
            next_open = describe_moment(opening, now=now, timezone=zone) if opening else None
        except (SettingsError, ValueError, KeyError) as exc:
            log.info("app page: preview opening time unavailable (%s)", type(exc).__name__)
    user_first = (user_name or "").split()[0] if (user_name or "").split() else None
    # No caller yet (a new sub-account, the agency's defaults): a realistic name, labelled as a sample on the page,
    # so the preview reads like a real text rather than "Hi there".
    sample = caller_first_name is None
    return {
        "sample": sample,
        "values": {
            "first_name": SAMPLE_FIRST_NAME if sample else caller_first_name,
            "user_name": user_first,
            "business_name": location_name,
            "booking_link": None,
            "next_open_time": next_open,
        },
        "fallbacks": DEFAULT_FALLBACKS,
        "caller": caller_first_name,
        "maxSegments": settings.max_segments if settings else 3,
        "limits": {"gsmSingle": GSM_SINGLE, "gsmMulti": GSM_MULTI, "ucs2Single": UCS2_SINGLE,
                   "ucs2Multi": UCS2_MULTI},
    }
