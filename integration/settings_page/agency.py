"""The agency's one page: every sub-account at a glance, the agency's default settings, push and on/off.

GET  /app (agency session)     rendered by `agency_page` (called from integration.app_page)
POST /app/agency/defaults      save the agency's default settings (the same form as a sub-account's)
POST /app/agency/sub-accounts  for the ticked sub-accounts: apply the defaults (drop their own values for the
                               form's fields, so they inherit), or turn text back on or off

The 30-day numbers are three grouped queries over the agency's locations (missed calls by location and
created_at, leads by location), not one query per sub-account.

Only an agency admin (HighLevel's SSO payload: type "agency", role "admin") may POST here; any other agency user
gets the page read-only (its controls disabled, a sentence saying why) and a forged POST is a 403 that changes
nothing.

Tenancy: only the session's company, and only locations whose company_id is that company, are read or
written; a location id posted for another agency is ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, redirect, render_template, request, url_for
from sqlalchemy import func, select

from integration.app_page import current_context, is_agency_admin
from integration.db import utcnow
from integration.extensions import db
from integration.models import Company, Installation, Location, LocationSettings
from integration.report import funnel_for_locations
from integration.settings_page.fields import get_path
from integration.settings_page.form import SettingsForm, apply_submission, fields_for, form_for, without_fields
from integration.settings_page.preview import preview_data
from integration.settings_page.views import TEMPLATE_LABELS
from integration.textback.models import MissedCall
from integration.textback.quiet_hours import DEFAULT_STATE_RULES
from integration.textback.settings import DEFAULT_SETTINGS, SettingsError, effective_settings
from oauth.models import LocationProvisioning

__all__ = ["SubAccountRow", "agency_page", "bp"]

log = logging.getLogger(__name__)
bp = Blueprint("agency_page", __name__, url_prefix="/app/agency")
FUNNEL_DAYS = 30
RECONNECT_FIX = ("HighLevel refused our access (the app was disconnected or its permissions changed): "
                 "reinstall TextBack for this sub-account from the Marketplace; its settings are kept.")


@dataclass
class SubAccountRow:
    id: str
    name: str
    status: str  # active | needs_reconnect | uninstalled | no_access
    enabled: bool
    last_missed_at: datetime | None
    missed: int
    texted: int
    replied: int
    booked: int
    recovered_value: float
    own_settings: int  # how many form fields it set itself


READ_ONLY = ("Only an agency admin can change the agency defaults or apply them to sub-accounts. You can see "
             "everything here; ask an admin of your agency in HighLevel to make changes.")


def _agency_context() -> dict:
    context = current_context()
    if context is None or context.get("location_id"):
        abort(401, description="Open TextBack from the agency view in HighLevel to manage sub-accounts.")
    return context


def _agency_admin_context():
    """(the session's context, None) for an agency admin; (None, the read-only page answering 403) otherwise."""
    context = _agency_context()
    if not is_agency_admin(context):
        log.info("app page: agency %s: change refused for user %s (type %s, role %s)", context["company_id"],
                 context.get("user_id"), context.get("type"), context.get("role"))
        return None, agency_page(context, status=403, refused=True)
    return context, None


def sub_account_rows(company_id: str, *, now: datetime | None = None) -> list[SubAccountRow]:
    since = (now or utcnow()) - timedelta(days=FUNNEL_DAYS)
    with db.session() as s:
        locations = s.scalars(select(Location).where(Location.company_id == company_id).order_by(Location.name)).all()
        ids = [loc.id for loc in locations]
        if not ids:
            return []
        installs = {i.resource_id: i for i in s.scalars(
            select(Installation).where(Installation.user_type == "Location", Installation.resource_id.in_(ids)))}
        settings = {r.location_id: r for r in s.scalars(
            select(LocationSettings).where(LocationSettings.location_id.in_(ids)))}
        last = dict(s.execute(select(MissedCall.location_id, func.max(MissedCall.created_at))
                              .where(MissedCall.location_id.in_(ids)).group_by(MissedCall.location_id)).all())
        # The same counts as each sub-account's Lead Leak report (integration.report), one grouped query for all.
        funnels = funnel_for_locations(s, ids, since)
    rows = []
    for loc in locations:
        install = installs.get(loc.id)
        status = ("uninstalled" if not loc.is_live else "no_access" if install is None
                  else "needs_reconnect" if install.status == "needs_reconnect" else "active")
        row = settings.get(loc.id)
        funnel = funnels[loc.id]
        own = (row.values or {}) if row else {}
        rows.append(SubAccountRow(
            id=loc.id, name=loc.name or loc.id, status=status, enabled=bool(row.enabled) if row else True,
            last_missed_at=_local(last.get(loc.id), loc.timezone), missed=funnel.missed, texted=funnel.texted,
            replied=funnel.replied, booked=funnel.booked, recovered_value=funnel.won_value,
            own_settings=sum(1 for f in fields_for("location") if get_path(own, f.path) is not None)))
    return rows


def _local(moment: datetime | None, zone: str | None) -> datetime | None:
    """`moment` in the sub-account's own time zone (UTC when it has none HighLevel told us, or an unknown one)."""
    if moment is None:
        return None
    try:
        return moment.astimezone(ZoneInfo(zone)) if zone else moment
    except (KeyError, ValueError):
        return moment


def _defaults_section(company: Company | None, *, form: SettingsForm | None = None, saved: bool = False) -> dict:
    defaults = dict(company.default_settings or {}) if company else {}
    shown = form or form_for(scope="agency", inherited=DEFAULT_SETTINGS, own=defaults, saved=saved)
    try:
        effective = effective_settings(company_defaults=defaults)
    except SettingsError:
        effective = None
    preview = preview_data(settings=effective, location_name=None, location_timezone=None, user_name=None,
                           caller_first_name=None)
    return {"form": shown, "preview": preview, "preview_caller": None, "templates": TEMPLATE_LABELS,
            "state_rules": DEFAULT_STATE_RULES, "action": url_for("agency_page.save_defaults")}


def agency_page(context: dict, *, status: int = 200, form: SettingsForm | None = None,
                installed_notice: str | None = None, refused: bool = False):
    company_id = context["company_id"]
    with db.session() as s:
        company = s.get(Company, company_id)
        # Sub-accounts whose Location token could not be minted yet have no Location row: listed too.
        known = set(s.scalars(select(Location.id).where(Location.company_id == company_id)))
        provisioning = s.scalars(select(LocationProvisioning).where(LocationProvisioning.company_id == company_id))
        pending = [p for p in provisioning if p.location_id not in known]
    notice = {"defaults": "Agency defaults saved.", "pushed": "Defaults applied to the chosen sub-accounts.",
              "on": "Text back turned on for the chosen sub-accounts.",
              "off": "Text back turned off for the chosen sub-accounts."}.get(request.args.get("done", ""))
    return render_template("app/agency.html", context=context, company=company, rows=sub_account_rows(company_id),
                           pending=pending, installed_notice=installed_notice, notice=notice,
                           settings=_defaults_section(company, form=form, saved=request.args.get("done") == "defaults"),
                           reconnect_fix=RECONNECT_FIX, funnel_days=FUNNEL_DAYS,
                           can_manage=is_agency_admin(context), read_only=READ_ONLY, refused=refused), status


@bp.post("/defaults")
def save_defaults():
    context, refusal = _agency_admin_context()
    if refusal is not None:
        return refusal
    with db.session() as s:
        company = s.get(Company, context["company_id"])
        own = dict(company.default_settings or {}) if company else {}
    new_own, form = apply_submission(scope="agency", form=request.form, inherited=DEFAULT_SETTINGS, own=own)
    if new_own is None:
        return agency_page(context, status=400, form=form)
    with db.transaction() as s:
        company = s.get(Company, context["company_id"])
        if company is None:
            company = Company(id=context["company_id"], default_settings={})
            s.add(company)
        company.default_settings = new_own
    log.info("app page: agency defaults of %s saved by user %s", context["company_id"], context.get("user_id"))
    return redirect(url_for("app_page.page", done="defaults") + "#defaults", code=303)


@bp.post("/sub-accounts")
def change_sub_accounts():
    context, refusal = _agency_admin_context()
    if refusal is not None:
        return refusal
    action = request.form.get("action", "")
    if action not in ("push", "on", "off"):
        abort(400, description="Choose what to do with the ticked sub-accounts.")
    chosen = set(request.form.getlist("location_id"))
    if not chosen:
        return redirect(url_for("app_page.page", done="none") + "#sub-accounts", code=303)
    with db.transaction() as s:
        # Only this agency's sub-accounts: an id of another agency's location is silently not among them.
        ids = list(s.scalars(select(Location.id).where(Location.company_id == context["company_id"],
                                                       Location.id.in_(chosen))))
        for location_id in ids:
            row = s.get(LocationSettings, location_id)
            if row is None:
                row = LocationSettings(location_id=location_id, enabled=True, values={})
                s.add(row)
            if action == "push":
                row.values = without_fields(row.values or {}, "agency")
            else:
                row.enabled = action == "on"
    log.info("app page: agency %s: %s for %d sub-account(s) by user %s", context["company_id"], action, len(ids),
             context.get("user_id"))
    return redirect(url_for("app_page.page", done="pushed" if action == "push" else action) + "#sub-accounts",
                    code=303)
