"""Job: send a "send me a test text" (integration.settings_page.test_text) to the user's own phone.

The real send path's parts: the location's OAuth token and rate limit (the app's API client), the
location's effective settings, the same template rendering and segment cut as a text back, and
POST /conversations/messages to a HighLevel contact with the user's number (found or created by
POST /contacts/upsert). Not the missed-call sender itself: that one refuses staff numbers (by design),
and a test must never touch a caller's cooldown, the daily count, or the activity.
"""

from __future__ import annotations

import logging

from integration.db import utcnow
from integration.extensions import db
from integration.ghl.errors import GHLError
from integration.logging_setup import redact
from integration.models import Company, Location, LocationSettings
from integration.settings_page.test_text import TestText
from integration.textback.phone import normalize_number
from integration.textback.settings import SettingsError, effective_settings
from integration.textback.template import fit_to_segments, render
from oauth.errors import TokenUnavailable

__all__ = ["TEST_PREFIX", "send_test_text"]

log = logging.getLogger(__name__)
# Marks the text in the conversation, so nobody mistakes it for a real text back.
TEST_PREFIX = "[TextBack test] "


def _finish(test_text_id: int, *, status: str, outcome: str, **fields) -> str:
    with db.transaction() as s:
        row = s.get(TestText, test_text_id)
        row.status, row.outcome = status, outcome
        for name, value in fields.items():
            setattr(row, name, value)
    log.info("test text %s: %s", test_text_id, outcome)
    return outcome


def send_test_text(test_text_id: int) -> str:
    from oauth.services import get_oauth

    with db.session() as s:
        row = s.get(TestText, test_text_id)
        if row is None or row.status != TestText.QUEUED:
            return "nothing to send"
        location = s.get(Location, row.location_id)
        company = s.get(Company, location.company_id) if location and location.company_id else None
        own = s.get(LocationSettings, row.location_id)
        location_name = location.name if location else None
        defaults = dict(company.default_settings or {}) if company else {}
        values = dict(own.values or {}) if own else {}
    client = get_oauth().client
    try:
        settings = effective_settings(company_defaults=defaults, location_values=values)
        users = client.list_users(row.location_id)
        user = next((u for u in users if isinstance(u, dict) and u.get("id") == row.user_id), None)
        if user is None:
            return _finish(test_text_id, status=TestText.FAILED,
                           outcome="failed: your HighLevel user is not a user of this sub-account")
        phone = normalize_number(user.get("phone"))
        if phone is None:
            return _finish(test_text_id, status=TestText.FAILED,
                           outcome="failed: your HighLevel user has no mobile number; add one in HighLevel "
                                   "(Settings > My Profile) and try again")
        first_name = str(user.get("firstName") or "").strip() or None
        contact = client.upsert_contact(row.location_id, phone=phone, first_name=first_name,
                                        last_name=user.get("lastName") or None)
        body = TEST_PREFIX + fit_to_segments(render(settings.templates[row.template_key], {
            "first_name": first_name, "business_name": settings.business_name or location_name,
            "user_name": settings.sender_name or first_name, "booking_link": settings.booking_link or None,
            "next_open_time": None,
        }), settings.max_segments)
        answer = client.send_message(row.location_id, contact_id=contact["id"], message=body, to_number=phone)
    except SettingsError as exc:
        return _finish(test_text_id, status=TestText.FAILED, outcome=f"failed: the settings are invalid ({exc})")
    except TokenUnavailable as exc:
        return _finish(test_text_id, status=TestText.FAILED,
                       outcome=f"failed: the HighLevel connection cannot be used ({redact(str(exc))})")
    except GHLError as exc:
        return _finish(test_text_id, status=TestText.FAILED,
                       outcome=f"failed: HighLevel refused the text ({redact(exc.message)})")
    return _finish(test_text_id, status=TestText.SENT, outcome=f"sent to {phone}", to_number=phone, body=body,
                   contact_id=contact.get("id"), message_id=answer.get("messageId"), sent_at=utcnow())
