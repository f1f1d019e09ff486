"""The booking agent's options on the app page: on/off, the calendar it books on, the grace period, the cap.

GET /app shows the card (built by `agent_form`) with the calendars HighLevel lists for the session's location
(`GET /calendars/`), fetched when the page is shown; HighLevel being down does not break the page, the card
says so and keeps the current choice. POST /app/agent-settings (CSRF checked by integration.web_security)
validates with AgentSettingsSchema (every error next to its field, the typed values shown back, nothing
stored), checks the calendar against HighLevel's list when it can be had, and saves LocationSettings.values
["agent"]. Turning the agent on needs a calendar.

Tenancy: only the location in the SSO session is ever read or written (DESIGN invariant 5).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, abort, redirect, request, url_for
from marshmallow import ValidationError

from integration.agent.settings import DEFAULT_AGENT_SETTINGS, AgentSettingsSchema
from integration.app_page import current_context, render_location_page
from integration.extensions import db
from integration.models import Location, LocationSettings
from integration.textback.settings import merge_documents
from integration.web_security import csrf_token
from oauth.store import is_location_active

__all__ = ["AgentForm", "agent_form", "bp"]

log = logging.getLogger(__name__)
bp = Blueprint("agent_settings", __name__, url_prefix="/app")

FIELDS = ("enabled", "calendar_id", "grace_minutes", "max_messages_per_hour")


@dataclass
class AgentForm:
    """What the card needs: the values shown, HighLevel's calendars (or why they are missing), errors."""

    values: dict[str, Any]
    calendars: list[dict] = field(default_factory=list)
    problem: str | None = None
    errors: dict[str, str] = field(default_factory=dict)
    saved: bool = False
    csrf: str = ""


def _stored(location_id: str) -> dict:
    """The location's effective agent section: defaults < agency < location."""
    with db.session() as s:
        location = s.get(Location, location_id)
        row = s.get(LocationSettings, location_id)
        company = location.company if location is not None else None
        agency = (company.default_settings or {}).get("agent") if company is not None else None
        own = (row.values or {}).get("agent") if row is not None else None
    return merge_documents(DEFAULT_AGENT_SETTINGS, agency if isinstance(agency, dict) else None,
                           own if isinstance(own, dict) else None)


def _calendars(location_id: str) -> tuple[list[dict], str | None]:
    """(the location's active calendars as {id, name}, a problem to show instead) from HighLevel."""
    from integration.crm.page import _page_client

    with db.session() as s:
        if not is_location_active(s, location_id):
            return [], "HighLevel cannot be asked for this sub-account's calendars right now (not connected)."
    try:
        listed = _page_client().list_calendars(location_id)
    except Exception as exc:  # the page must render whatever HighLevel (or its token) does
        log.warning("app page: HighLevel calendars for %s unavailable (%s)", location_id, type(exc).__name__)
        return [], ("HighLevel did not answer, so the calendars cannot be listed right now. Your saved choice is "
                    "kept; reload the page to try again.")
    calendars = [{"id": str(c["id"]), "name": str(c.get("name") or c["id"])} for c in listed
                 if isinstance(c, dict) and c.get("id") and c.get("isActive", True) is not False]
    return calendars, None


def agent_form(location_id: str, *, saved: bool = False) -> AgentForm:
    """The agent card for the session's location, with its current values."""
    calendars, problem = _calendars(location_id)
    return AgentForm(values=_stored(location_id), calendars=calendars, problem=problem, saved=saved,
                     csrf=csrf_token())


def _submitted() -> dict[str, Any]:
    # A hidden "off" precedes the checkbox, so an unticked box still says so; the last value wins.
    enabled = (request.form.getlist("enabled") or ["off"])[-1] in ("on", "true", "1")
    return {"enabled": enabled, "calendar_id": request.form.get("calendar_id", "").strip(),
            "grace_minutes": request.form.get("grace_minutes", "").strip(),
            "max_messages_per_hour": request.form.get("max_messages_per_hour", "").strip()}


def _messages(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name, messages in exc.messages.items():
        text = " ".join(map(str, messages)) if isinstance(messages, list) else str(messages)
        errors[name if name in FIELDS else "calendar_id"] = text
    return errors


@bp.post("/agent-settings")
def save_agent_settings():
    context = current_context()
    if context is None or not context.get("location_id"):
        abort(401, description="Open TextBack from the sub-account in HighLevel to change its settings.")
    location_id = context["location_id"]
    submitted = _submitted()
    errors: dict[str, str] = {}
    cleaned = None
    try:
        cleaned = AgentSettingsSchema().load(submitted)
    except ValidationError as exc:
        errors = _messages(exc)
    calendars, problem = _calendars(location_id)
    if cleaned is not None and cleaned["calendar_id"]:
        known = {c["id"] for c in calendars}
        unchanged = cleaned["calendar_id"] == _stored(location_id)["calendar_id"]
        if problem is None and cleaned["calendar_id"] not in known:
            errors["calendar_id"] = "This calendar is not one of the sub-account's calendars in HighLevel."
        elif problem is not None and not unchanged:
            errors["calendar_id"] = "HighLevel's calendars cannot be checked right now; try again in a moment."
    if errors:
        form = AgentForm(values=submitted, calendars=calendars, problem=problem, errors=errors, csrf=csrf_token())
        return render_location_page(context, status=400, agent=lambda: form)
    with db.transaction() as s:
        location = s.get(Location, location_id)
        if location is None or (location.company_id and location.company_id != context["company_id"]):
            abort(404)
        row = s.get(LocationSettings, location_id)
        if row is None:
            row = LocationSettings(location_id=location_id, enabled=True, values={})
            s.add(row)
        # A new dict, so the JSON column is seen as changed.
        row.values = {**(row.values or {}), "agent": cleaned}
    log.info("app page: booking agent settings of %s saved by user %s (enabled=%s)", location_id,
             context.get("user_id"), cleaned["enabled"])
    return redirect(url_for("app_page.page", saved="agent") + "#agent-settings", code=303)
