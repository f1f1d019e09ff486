"""INSTALL and UNINSTALL webhooks (registered in workers/handlers/__init__.py).

Both run in a worker, inside the app context, as `handler(payload, *, event_id) -> note`. They are
idempotent: HighLevel may deliver twice and the inbox may retry. A note is stored on the inbox row;
raising asks for a retry, so only a transient failure raises.

- INSTALL for a location of an agency we hold (bulk install, "install to future locations"): mint
  its Location token from the Company token and give it the agency's defaults.
- INSTALL for a company we hold: provision every installed location that still lacks a token.
- INSTALL for an agency or location we hold no token for: nothing to do yet (the OAuth callback
  brings the token); noted, not retried.
- UNINSTALL: delete the tokens, mark uninstalled, keep settings and history.
"""

from __future__ import annotations

import logging

from integration.extensions import get_settings
from integration.ghl.errors import GHLError
from oauth.errors import TokenUnavailable
from oauth.models import AgencyInstall
from oauth.services import get_oauth
from oauth.store import ACTIVE

__all__ = ["handle_install", "handle_uninstall"]

log = logging.getLogger(__name__)


def _foreign_app(payload: dict) -> str | None:
    app_id = payload.get("appId")
    ours = get_settings().ghl_app_id
    if app_id and str(app_id).lower() != ours:
        return f"ignored: the event is for app {app_id}, not ours"
    return None


def _id(payload: dict, key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value.strip() else None


def handle_install(payload: dict, *, event_id: int) -> str | None:
    """Provision what an INSTALL webhook announces, when we hold the agency's token."""
    note = _foreign_app(payload)
    if note:
        return note
    oauth = get_oauth()
    company_id, location_id = _id(payload, "companyId"), _id(payload, "locationId")
    if not company_id and not location_id:
        return "ignored: INSTALL without companyId or locationId"
    with oauth.database.transaction() as session:
        holds_company = False
        if company_id:
            agency = session.get(AgencyInstall, company_id)
            company_row = oauth.store.find(session, company_id, user_type="Company")
            holds_company = (agency is not None and agency.status == "installed" and company_row is not None
                             and company_row.status == ACTIVE)
        location_row = oauth.store.find(session, location_id, user_type="Location") if location_id else None
        location_live = location_row is not None and location_row.status == ACTIVE

    if location_id:
        if location_live:
            return f"location {location_id} already has a live token"
        if not holds_company:
            # A sub-account install: its token arrives through the OAuth callback, not here.
            return f"no agency token for company {company_id or '(none)'}; waiting for the OAuth callback"
        try:
            report = _transient_raises(lambda: oauth.provisioner.provision_location(company_id, location_id))
        except _Final as exc:
            log.warning("INSTALL event %s: %s", event_id, exc)
            return str(exc)
        if location_id in report.failed:
            return f"location {location_id}: token not minted yet ({report.failed[location_id]}); will retry"
        return f"location {location_id} provisioned from company {company_id}"

    if not holds_company:
        return f"no agency token for company {company_id}; waiting for the OAuth callback"
    try:
        report = _transient_raises(lambda: oauth.provisioner.provision_company(company_id))
    except _Final as exc:
        log.warning("INSTALL event %s: %s", event_id, exc)
        return str(exc)
    return f"company {company_id}: {report.summary()}"


def _transient_raises(provision):
    """Run a provisioning step; raise (so the inbox retries) only when trying again can help."""
    try:
        return provision()
    except TokenUnavailable as exc:
        if exc.retryable:
            raise
        raise _Final(f"agency token unusable: {exc}") from exc
    except GHLError as exc:
        if exc.is_ambiguous or exc.status == 429:
            raise
        raise _Final(f"HighLevel refused: {exc}") from exc


class _Final(Exception):
    """A provisioning failure that a retry of the event cannot fix; becomes the event's note."""


def handle_uninstall(payload: dict, *, event_id: int) -> str | None:
    """Stop everything for the location or agency: tokens deleted, settings and history kept."""
    note = _foreign_app(payload)
    if note:
        return note
    oauth = get_oauth()
    location_id, company_id = _id(payload, "locationId"), _id(payload, "companyId")
    with oauth.database.transaction() as session:
        if location_id:
            changed = oauth.store.uninstall_location(session, location_id)
            outcome = (f"location {location_id} uninstalled" if changed
                       else f"location {location_id} was already uninstalled")
        elif company_id:
            stopped = oauth.store.uninstall_company(session, company_id)
            outcome = f"company {company_id} uninstalled; {len(stopped)} sub-account(s) stopped"
        else:
            return "ignored: UNINSTALL without locationId or companyId"
    log.info("UNINSTALL event %s: %s", event_id, outcome)
    return outcome
