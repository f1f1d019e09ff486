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
from workers.errors import EventIgnored, PermanentEventError

__all__ = ["handle_install", "handle_uninstall"]

log = logging.getLogger(__name__)


def _check_app(payload: dict) -> None:
    """The receiver already drops foreign apps; checked again because a handler must not trust its caller."""
    app_id = payload.get("appId")
    if app_id and str(app_id).lower() != get_settings().ghl_app_id:
        raise EventIgnored(f"the event is for app {str(app_id)[:40]}, not ours")


def _id(payload: dict, key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value.strip() else None


def handle_install(payload: dict, *, event_id: int) -> str | None:
    """Provision what an INSTALL webhook announces, when we hold the agency's token."""
    _check_app(payload)
    oauth = get_oauth()
    company_id, location_id = _id(payload, "companyId"), _id(payload, "locationId")
    if not company_id and not location_id:
        raise EventIgnored("INSTALL without companyId or locationId")
    with oauth.database.transaction() as session:
        holds_company = False
        if company_id:
            _remember_whitelabel_domain(session, company_id, payload)
            agency = session.get(AgencyInstall, company_id)
            company_row = oauth.store.find(session, company_id, user_type="Company")
            holds_company = (agency is not None and agency.status == "installed" and company_row is not None
                             and company_row.status == ACTIVE)
        location_row = oauth.store.find(session, location_id, user_type="Location") if location_id else None
        location_live = location_row is not None and location_row.status == ACTIVE

    if location_id:
        if location_live:
            # Its events waiting for the install were woken when the token was stored; again here, cheaply, in
            # case that wake-up was lost (Redis unreachable at the time).
            oauth.wake_waiting_events([location_id])
            return f"location {location_id} already has a live token"
        if not holds_company:
            # A sub-account install: its token arrives through the OAuth callback, not here.
            return f"no agency token for company {company_id or '(none)'}; waiting for the OAuth callback"
        report = _transient_raises(lambda: oauth.provisioner.provision_location(company_id, location_id))
        if location_id in report.failed:
            return f"location {location_id}: token not minted yet ({report.failed[location_id]}); will retry"
        return f"location {location_id} provisioned from company {company_id}"

    if not holds_company:
        return f"no agency token for company {company_id}; waiting for the OAuth callback"
    report = _transient_raises(lambda: oauth.provisioner.provision_company(company_id))
    return f"company {company_id}: {report.summary()}"


def _remember_whitelabel_domain(session, company_id: str, payload: dict) -> None:
    """The agency's white-label domain (the app page may be embedded there: integration.web_security)."""
    from integration.models import Company
    from integration.web_security import normalize_whitelabel_domain

    details = payload.get("whitelabelDetails") if isinstance(payload.get("whitelabelDetails"), dict) else {}
    domain = normalize_whitelabel_domain(details.get("domain"))
    company = session.get(Company, company_id)
    if domain and company is None:
        company = Company(id=company_id, name=payload.get("companyName") or None, default_settings={})
        session.add(company)
    if company is not None and domain and company.whitelabel_domain != domain:
        company.whitelabel_domain = domain


def _transient_raises(provision):
    """Run a provisioning step; raise (so the inbox retries) only when trying again can help."""
    try:
        return provision()
    except TokenUnavailable as exc:
        if exc.retryable:
            raise
        raise PermanentEventError(f"the agency token is unusable: {exc}") from exc
    except GHLError as exc:
        if exc.is_ambiguous or exc.status == 429:
            raise
        raise PermanentEventError(f"HighLevel refused: {exc}") from exc


def handle_uninstall(payload: dict, *, event_id: int) -> str | None:
    """Stop everything for the location or agency: tokens deleted, settings and history kept."""
    _check_app(payload)
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
            raise EventIgnored("UNINSTALL without locationId or companyId")
    log.info("UNINSTALL event %s: %s", event_id, outcome)
    return outcome
