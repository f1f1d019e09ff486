"""Which code handles which HighLevel webhook event type.

Values are "module:function" strings resolved on first use, so the registry imports nothing and
every capability owns its handler module. A handler is called as
`handler(payload: dict, *, event_id: int) -> str | None` inside the worker's app context; it returns
an optional human-readable note stored on the inbox row, and raises to have the event retried.

Every event type `marketplace.json` subscribes to must appear in HANDLERS or IGNORED_EVENTS
(tests/test_manifest.py checks it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

__all__ = ["HANDLERS", "IGNORED_EVENTS", "resolve_handler"]

HANDLERS: dict[str, str] = {
    # oauth.events provisions; the wrapper then warms the location's profile for its first missed call.
    "INSTALL": "workers.handlers.locations:handle_install",
    "UNINSTALL": "oauth.events:handle_uninstall",
    "InboundMessage": "workers.handlers.messages:handle_inbound_message",
    "OutboundMessage": "workers.handlers.messages:handle_outbound_message",
    "ContactDndUpdate": "workers.handlers.crm:handle_contact_dnd_update",
    "AppointmentCreate": "workers.handlers.crm:handle_appointment_create",
    "OpportunityStatusUpdate": "workers.handlers.crm:handle_opportunity_status_update",
    "OpportunityStageUpdate": "workers.handlers.crm:handle_opportunity_stage_update",
    # What the send knows about a location (name, users' names and numbers): dropped and fetched again.
    "LocationUpdate": "workers.handlers.locations:handle_location_update",
    "UserCreate": "workers.handlers.locations:handle_user_change",
    "UserUpdate": "workers.handlers.locations:handle_user_change",
    "UserDelete": "workers.handlers.locations:handle_user_change",
}

# Subscribed, stored in the inbox (so nothing is lost) and marked ignored: the contact is never cached (the
# send and the CRM follow-up read it fresh), and DND changes come as ContactDndUpdate.
IGNORED_EVENTS: frozenset[str] = frozenset({"ContactUpdate", "ContactDelete"})

_resolved: dict[str, Callable] = {}


def resolve_handler(event_type: str) -> Callable | None:
    """The handler function for `event_type`, or None when the type is ignored or unknown."""
    target = HANDLERS.get(event_type)
    if target is None:
        return None
    if target not in _resolved:
        module_name, _, function_name = target.partition(":")
        _resolved[target] = getattr(importlib.import_module(module_name), function_name)
    return _resolved[target]
