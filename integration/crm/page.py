"""The CRM options on the app page: pipeline and stages, who gets the task, job value, tags, windows.

GET /app shows the form (built by `crm_form`), with the pipelines and users HighLevel lists for the
session's location, fetched when the page is shown. HighLevel being down does not break the page:
the form says so and keeps the current choices. POST /app/crm-settings (its CSRF token checked by
integration.web_security) validates with the settings schema (every error next to its field), checks the picked ids
against HighLevel's lists when they can be had, and saves into LocationSettings.values["crm"].
The pipelines it lists are also stored as the follow-up's cached directory (integration.crm.pipelines):
a pipeline created in HighLevel and picked here minutes later is known to the follow-up at once.

Tenancy: only the location in the SSO session is ever read or written (DESIGN invariant 5).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, abort, current_app, redirect, request, url_for
from marshmallow import ValidationError

from integration.app_page import current_context, render_location_page
from integration.crm.pipelines import Pipelines
from integration.crm.settings import DEFAULT_CRM_SETTINGS, CrmSettingsSchema
from integration.extensions import db, get_redis, get_settings
from integration.ghl.client import GHLClient, client_from_settings
from integration.models import Location, LocationSettings
from integration.textback.settings import merge_documents
from integration.web_security import csrf_token
from oauth.store import is_location_active

__all__ = ["CrmForm", "bp", "crm_form"]

log = logging.getLogger(__name__)
bp = Blueprint("crm_settings", __name__, url_prefix="/app")

FIELDS = tuple(DEFAULT_CRM_SETTINGS)
_CLIENT_KEY = "crm.page_client"
_STAGE_FIELDS = {"new_stage_id": "new", "replied_stage_id": "replied", "booked_stage_id": "booked"}


@dataclass
class CrmForm:
    """What the template needs: the values shown, HighLevel's lists (or why they are missing), errors."""

    values: dict[str, Any]
    pipelines: list[dict] = field(default_factory=list)
    users: list[dict] = field(default_factory=list)
    problem: str | None = None
    errors: dict[str, str] = field(default_factory=dict)
    saved: bool = False
    csrf: str = ""


def _stored_values(location_id: str) -> tuple[dict, dict]:
    """(the location's whole stored document, its effective CRM section: defaults < agency < location)."""
    with db.session() as s:
        location = s.get(Location, location_id)
        row = s.get(LocationSettings, location_id)
        company = location.company if location is not None else None
        agency = (company.default_settings or {}).get("crm") if company is not None else None
        stored = dict(row.values or {}) if row is not None else {}
    crm = merge_documents(DEFAULT_CRM_SETTINGS, agency if isinstance(agency, dict) else None,
                          stored.get("crm") if isinstance(stored.get("crm"), dict) else None)
    return stored, crm


def _page_client() -> GHLClient:
    """An API client for page requests: a short timeout and one retry, so a HighLevel outage costs seconds."""
    client = current_app.extensions.get(_CLIENT_KEY)
    if client is None:
        from oauth.services import get_oauth

        settings = get_settings()
        client = client_from_settings(settings.override(ghl_timeout=min(settings.ghl_timeout, 5.0), ghl_max_retries=1),
                                      token_provider=get_oauth().tokens, redis=get_redis())
        current_app.extensions[_CLIENT_KEY] = client
    return client


def _highlevel_lists(location_id: str) -> tuple[list[dict], list[dict], str | None]:
    """(pipelines with stages, users, a problem to show instead) for the location, from HighLevel."""
    with db.session() as s:
        if not is_location_active(s, location_id):
            return [], [], "HighLevel cannot be asked for this sub-account right now (not connected)."
    try:
        client = _page_client()
        listed_at = time.time()
        listed = client.get_pipelines(location_id)
        pipelines = [_pipeline(p) for p in listed if isinstance(p, dict) and p.get("id")]
        users = [_user(u) for u in client.list_users(location_id)
                 if isinstance(u, dict) and u.get("id") and not u.get("deleted")]
    except Exception as exc:  # the page must render whatever HighLevel (or its token) does
        log.warning("app page: HighLevel lists for %s unavailable (%s)", location_id, type(exc).__name__)
        return [], [], ("HighLevel did not answer, so the pipelines and users cannot be listed right now. "
                        "Your saved choices are kept; reload the page to try again.")
    Pipelines(client=client, redis=get_redis()).store(location_id, listed, listed_at=listed_at)
    return pipelines, users, None


def _pipeline(raw: dict) -> dict:
    stages = [{"id": str(st["id"]), "name": str(st.get("name") or st["id"])}
              for st in raw.get("stages") or [] if isinstance(st, dict) and st.get("id")]
    return {"id": str(raw["id"]), "name": str(raw.get("name") or raw["id"]), "stages": stages}


def _user(raw: dict) -> dict:
    name = raw.get("name") or " ".join(filter(None, [raw.get("firstName"), raw.get("lastName")]))
    return {"id": str(raw["id"]), "name": str(name or raw["id"])}


def crm_form(location_id: str, *, saved: bool = False, values: dict | None = None,
             errors: dict[str, str] | None = None) -> CrmForm:
    """The CRM options form for the session's location (current values unless `values` are given)."""
    pipelines, users, problem = _highlevel_lists(location_id)
    shown = values if values is not None else _stored_values(location_id)[1]
    return CrmForm(values=shown, pipelines=pipelines, users=users, problem=problem, errors=errors or {},
                   saved=saved, csrf=csrf_token())


def _check_against_highlevel(cleaned: dict, pipelines: list[dict], users: list[dict]) -> dict[str, str]:
    """The picked ids must be HighLevel's: the pipeline, stages of that pipeline, a user of the location."""
    errors: dict[str, str] = {}
    by_id = {p["id"]: p for p in pipelines}
    if cleaned["pipeline_id"] and cleaned["pipeline_id"] not in by_id:
        errors["pipeline_id"] = "This pipeline is not one of the sub-account's pipelines."
    pipeline = by_id.get(cleaned["pipeline_id"]) if cleaned["pipeline_id"] else None
    if pipeline is None and not cleaned["pipeline_id"]:
        pipeline = next((p for p in pipelines if p["name"].strip().lower() == "missed call"),
                        pipelines[0] if pipelines else None)
    stage_ids = {st["id"] for st in pipeline["stages"]} if pipeline else set()
    for name in _STAGE_FIELDS:
        if cleaned[name] and "pipeline_id" not in errors and cleaned[name] not in stage_ids:
            errors[name] = "Pick a stage of the chosen pipeline."
    if cleaned["assigned_user_id"] and cleaned["assigned_user_id"] not in {u["id"] for u in users}:
        errors["assigned_user_id"] = "This user is not a user of the sub-account."
    return errors


@bp.post("/crm-settings")
def save_crm_settings():
    context = current_context()
    if context is None or not context.get("location_id"):
        abort(401, description="Open TextBack from the sub-account in HighLevel to change its settings.")
    # The CSRF token was checked before this view ran (integration.web_security, every POST under /app).
    location_id = context["location_id"]
    submitted = {name: request.form.get(name, "").strip() for name in FIELDS}
    errors: dict[str, str] = {}
    try:
        cleaned = CrmSettingsSchema().load(submitted)
    except ValidationError as exc:
        errors = {name: " ".join(map(str, messages)) if isinstance(messages, list) else str(messages)
                  for name, messages in exc.messages.items()}
        cleaned = None
    pipelines, users, problem = _highlevel_lists(location_id)
    if cleaned is not None and problem is None:
        errors = _check_against_highlevel(cleaned, pipelines, users)
    if errors:
        form = CrmForm(values=submitted, pipelines=pipelines, users=users, problem=problem, errors=errors,
                       csrf=csrf_token())
        return render_location_page(context, status=400, crm=lambda: form)
    with db.transaction() as s:
        location = s.get(Location, location_id)
        if location is None or (location.company_id and location.company_id != context["company_id"]):
            abort(404)
        row = s.get(LocationSettings, location_id)
        if row is None:
            row = LocationSettings(location_id=location_id, enabled=True, values={})
            s.add(row)
        # A new dict, so the JSON column is seen as changed.
        row.values = {**(row.values or {}), "crm": cleaned}
    log.info("app page: CRM settings of %s saved by user %s", location_id, context.get("user_id"))
    return redirect(url_for("app_page.page", saved="crm"), code=303)
