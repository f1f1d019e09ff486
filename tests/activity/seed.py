"""Rows for the activity and report tests, written straight to the database (the pipeline's own tests drive them
for real: tests/textback/test_activity_sandbox.py)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from integration.crm.models import CrmLead
from integration.db import utcnow
from integration.extensions import db
from integration.models import Company, Installation, Location, LocationSettings, WebhookEvent
from integration.textback.models import MissedCall, SendIntent

_keys = itertools.count(1)


def location(location_id: str, *, company_id: str = "CompanySeed000000001", name: str = "Acme Plumbing",
             installed_days_ago: float = 400, job_value: float = 0, timezone: str = "America/Chicago") -> str:
    with db.transaction() as session:
        if session.get(Company, company_id) is None:
            session.add(Company(id=company_id, name="Summit Agency"))
            session.flush()
        session.add(Location(id=location_id, company_id=company_id, name=name, timezone=timezone,
                             installed_at=utcnow() - timedelta(days=installed_days_ago)))
        session.flush()
        session.add(Installation(user_type="Location", resource_id=location_id, company_id=company_id,
                                 location_id=location_id, status="active"))
        session.add(LocationSettings(location_id=location_id, values={"crm": {"average_job_value": job_value}}))
    return location_id


def missed_call(location_id: str, at: datetime, *, status: str = "sent", outcome: str | None = None,
                number: str = "+15125550100", name: str | None = None, lead: dict | None = None,
                sent_after: float | None = None) -> int:
    """One missed call heard of at `at`; `lead` holds CrmLead fields (a texted call's lead)."""
    key = f"seed:{next(_keys)}"
    with db.transaction() as session:
        row = MissedCall(call_key=key, location_id=location_id, contact_id=f"c{key}", caller_number=number,
                         contact_name=name, call_status="no-answer", called_at=at, status=status,
                         outcome=outcome or {"sent": "texted at 14:02 (business-hours message, 1 segment)",
                                             "skipped": "skipped: the caller has Do Not Disturb on",
                                             "failed": "failed: HighLevel refused the text: nope",
                                             "deferred": "deferred to 08:00 tomorrow caller time (quiet hours)"
                                             }.get(status), created_at=at, updated_at=at)
        session.add(row)
        session.flush()
        if sent_after is not None:
            session.add(SendIntent(call_key=key, missed_call_id=row.id, location_id=location_id,
                                   contact_id=row.contact_id, to_number=number, body="Hi", segments=1,
                                   template_key="business_hours", counted_day=at.date(), status="sent",
                                   sent_at=at + timedelta(seconds=sent_after), created_at=at, updated_at=at))
        if lead is not None:
            session.add(CrmLead(missed_call_id=row.id, location_id=location_id, contact_id=row.contact_id,
                                caller_number=number, called_at=at,
                                texted_at=at + timedelta(seconds=sent_after or 0), **lead))
        return row.id


def ignored_call(location_id: str, at: datetime, *, duration: int = 180, number: str | None = "+15125550199",
                 reason: str | None = None) -> int:
    payload = {"type": "InboundMessage", "locationId": location_id, "messageType": "CALL", "direction": "inbound",
               "status": "completed", "callStatus": "completed", "callDuration": duration,
               "contactId": "ignoredContact", "dateAdded": at.isoformat()}
    if number:
        payload["from"] = number
    with db.transaction() as session:
        event = WebhookEvent(dedupe_key=f"seed-event:{next(_keys)}", event_type="InboundMessage",
                             location_id=location_id, payload=payload, status="ignored",
                             status_reason=reason or f"not a missed call: answered for {duration} s",
                             received_at=at)
        session.add(event)
        session.flush()
        return event.id
