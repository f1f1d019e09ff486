"""The custom page HighLevel embeds (GET /app) and its SSO exchange (POST /app/sso).

Tenancy rule (DESIGN invariant 5): the page trusts only the decrypted SSO payload, and only for the
location (or agency) named in it. Nothing in the URL selects a tenant.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Blueprint, abort, render_template, request, session
from sqlalchemy import select

from integration.extensions import db, get_settings
from integration.models import Installation, Location
from integration.sso import SSOError, decrypt_sso_payload

__all__ = ["bp", "current_context", "is_agency_admin", "render_location_page"]

log = logging.getLogger(__name__)
bp = Blueprint("app_page", __name__, url_prefix="/app")

SESSION_KEY = "sso"
SESSION_SECONDS = 3600


def is_agency_admin(context: dict) -> bool:
    """An agency admin per HighLevel's SSO payload (type "agency", role "admin"): the only users who may change the
    agency's defaults or apply them to sub-accounts. Agency users with another role, and sub-account users, may not."""
    return context.get("type") == "agency" and context.get("role") == "admin"


def current_context() -> dict | None:
    """The SSO context of this browser session, or None when absent or expired."""
    context = session.get(SESSION_KEY)
    if not context or context.get("expires_at", 0) < time.time():
        return None
    return context


@bp.post("/sso")
def sso_exchange():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="send JSON {\"encryptedData\": \"...\"}")
    payload = body.get("encryptedData") or body.get("key") or body.get("payload")
    if not isinstance(payload, str) or not payload:
        return {"error": "encryptedData is required"}, 400
    try:
        context = decrypt_sso_payload(payload, get_settings().ghl_sso_key)
    except SSOError as exc:
        log.info("SSO payload rejected: %s", exc)
        return {"error": str(exc)}, 401
    previous = current_context() or {}
    # HighLevel keeps the iframe's cookies when the user switches sub-account (or user): the page asks for the
    # user on every load, and a different context starts a new session (the page then reloads for it).
    changed = (previous.get("user_id"), previous.get("company_id"), previous.get("location_id")) != (
        context.user_id, context.company_id, context.location_id)
    if not changed:
        # The role can change in HighLevel while the iframe stays open: the latest payload's word counts.
        session[SESSION_KEY] = dict(previous, role=context.role, type=context.type, user_name=context.user_name,
                                    expires_at=time.time() + SESSION_SECONDS)
        return {"ok": True, "changed": False, "locationId": context.location_id, "companyId": context.company_id}
    session.clear()
    session[SESSION_KEY] = {
        "user_id": context.user_id,
        "company_id": context.company_id,
        "location_id": context.location_id,
        "role": context.role,
        "type": context.type,
        "user_name": context.user_name,
        "expires_at": time.time() + SESSION_SECONDS,
    }
    return {"ok": True, "changed": True, "locationId": context.location_id, "companyId": context.company_id}


def render_location_page(context: dict, *, status: int = 200, installed_notice: str | None = None,
                         **sections: Callable[[], object]):
    """The sub-account page for the session's location (404 when it is not installed for this tenant).

    `sections` are the capabilities' parts of the page (e.g. `crm`, the CRM options form), each built
    by calling it only once the location is known to be this tenant's.
    """
    with db.transaction() as s:
        location = s.get(Location, context["location_id"])
        if location is None or (location.company_id and location.company_id != context["company_id"]):
            # Not (or no longer) installed for this tenant: say so, show nothing else.
            return render_template("app/not_installed.html", location_id=context["location_id"]), 404
        installation = s.scalar(
            select(Installation).where(Installation.user_type == "Location", Installation.resource_id == location.id)
        )
    parts = {name: build() for name, build in sections.items()}
    return render_template("app/location.html", context=context, location=location, installation=installation,
                           installed_notice=installed_notice, **parts), status


@bp.get("")
def page():
    context = current_context()
    installed_notice = request.args.get("installed")
    if context is None:
        return render_template("app/sso_bootstrap.html", installed_notice=installed_notice,
                               sandbox_mode=get_settings().sandbox_mode)
    if context["location_id"]:
        from integration.crm.page import crm_form
        from integration.settings_page.agent import agent_form
        from integration.settings_page.views import location_settings_section

        saved = request.args.get("saved")
        return render_location_page(context, installed_notice=installed_notice,
                                    settings=lambda: location_settings_section(context, saved=saved == "settings"),
                                    crm=lambda: crm_form(context["location_id"], saved=saved == "crm"),
                                    agent=lambda: agent_form(context["location_id"], saved=saved == "agent"))
    from integration.settings_page.agency import agency_page

    return agency_page(context, installed_notice=installed_notice)
