"""What the database says right before a text goes to HighLevel, in one round trip.

The send re-checks, after the contact read it waited on, what may have changed meanwhile: the app still
installed with a usable token and no UNINSTALL waiting, text back still on, the caller not opted out, and no
person having texted them since the call (integration.crm.takeover). Five reads once; one prebuilt statement now,
since it runs for every text and composing it cost more CPU than running it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from integration.crm.models import CrmContact
from integration.models import LocationSettings
from integration.textback.models import Caller, MissedCall, SendIntent
from oauth.store import location_active_clause

__all__ = ["LastCheck", "last_check"]


@dataclass(frozen=True)
class LastCheck:
    live: bool
    enabled: bool | None  # None: no settings row (the built-in default, on)
    opted_out_at: datetime | None
    called_at: datetime | None  # when the call rang (or was first seen)
    takeover_at: datetime | None
    takeover_user: str | None

    def person_since_call(self, fallback: datetime) -> bool:
        """Has a person texted the caller at or after the call (`fallback` when the call row is gone)?"""
        since = self.called_at or fallback
        return self.takeover_at is not None and self.takeover_at >= since


def last_check(session: Session, intent: SendIntent) -> LastCheck:
    row = session.execute(_statement(), {
        "location_id": intent.location_id, "phone": intent.to_number, "missed_call_id": intent.missed_call_id,
        "contact_id": intent.contact_id,
    }).one()
    return LastCheck(live=bool(row.live), enabled=row.enabled, opted_out_at=row.opted_out_at,
                     called_at=row.called_at, takeover_at=row.takeover_at, takeover_user=row.takeover_user)


@functools.cache
def _statement():
    location = bindparam("location_id")
    contact = (CrmContact.location_id == location, CrmContact.contact_id == bindparam("contact_id"))

    def one(column, *where):
        return select(column).where(*where).scalar_subquery()

    return select(
        location_active_clause().label("live"),
        one(LocationSettings.enabled, LocationSettings.location_id == location).label("enabled"),
        one(Caller.opted_out_at, Caller.location_id == location, Caller.phone == bindparam("phone")
            ).label("opted_out_at"),
        one(func.coalesce(MissedCall.called_at, MissedCall.created_at), MissedCall.id == bindparam("missed_call_id")
            ).label("called_at"),
        one(CrmContact.human_takeover_at, *contact).label("takeover_at"),
        one(CrmContact.human_user_id, *contact).label("takeover_user"),
    )
