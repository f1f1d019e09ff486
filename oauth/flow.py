"""The install flow: consent redirect and callback, with a named reason for every way it can fail.

Shaped after bolt-python's OAuthFlow. The callback runs its checks in a fixed order (HighLevel's
`error`, the state, the code, the exchange, the storage); the first failure stops it and becomes a
`Failure(reason, status)` the view renders as a friendly page. Nothing is half stored: the grant is
saved in one transaction, and an agency's sub-accounts are provisioned after that commit (a
sub-account that fails is recorded and retried, it does not undo the install).

Installs started from the Marketplace reach the callback with a code and no state of ours: those
are accepted. A state that is present must be one we issued, to this browser, not yet used.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from sqlalchemy.exc import SQLAlchemyError

from integration.db import Database, utcnow
from integration.ghl.errors import GHLError, OAuthError
from oauth.errors import TokenUnavailable
from oauth.installation import COMPANY, MalformedTokenResponse, TokenGrant
from oauth.provisioning import Provisioner, ProvisioningReport
from oauth.scopes import requested_scopes
from oauth.state import OAuthStateStore, states_match
from oauth.store import InstallationStore

__all__ = ["Failure", "FailureReason", "InstallFlow", "Success"]

log = logging.getLogger(__name__)

_MAX_CODE_LENGTH = 512


class FailureReason:
    """Why a callback failed. Each has its own page (oauth/templates/oauth/failure.html)."""

    CANCELLED = "cancelled"  # the person declined on HighLevel's consent page
    INVALID_BROWSER = "invalid_browser"  # a state we did not issue to this browser
    INVALID_STATE = "invalid_state"  # unknown, expired or already used state
    MISSING_CODE = "missing_code"  # no (usable) authorization code
    INVALID_CODE = "invalid_code"  # HighLevel refused the code (bad, expired or already used)
    PROVIDER_UNAVAILABLE = "provider_unavailable"  # HighLevel down, slow or answering garbage
    UNUSABLE_ANSWER = "unusable_answer"  # HighLevel's token answer lacked what we need
    STORAGE_ERROR = "storage_error"  # our database refused the write


@dataclass(frozen=True)
class Failure:
    """A failed callback: `reason` names it, `status` is the HTTP status, `reference` ties page and log."""

    reason: str
    status: int
    reference: str


@dataclass(frozen=True)
class Success:
    """A stored install. `redirect_to` is the app page; `report` is set for agency installs."""

    user_type: str
    resource_id: str
    redirect_to: str
    report: ProvisioningReport | None = None


class InstallFlow:
    """Builds the consent URL and handles the callback.

    Args:
        settings: the app Settings (client id, marketplace base, public base URL, app id).
        database: the configured Database.
        states: the OAuthStateStore.
        store: the InstallationStore.
        client: the GHLClient (for the code exchange).
        provisioner: provisions an agency's sub-accounts after an agency install.
        scopes: the scopes to request (default: marketplace.json).
        clock: returns the current UTC time.
        on_location_live: called with [location id] after a sub-account install's token is committed: events
            that arrived before it are waiting for it (oauth.install_wait). Must not raise.
    """

    def __init__(self, *, settings, database: Database, states: OAuthStateStore, store: InstallationStore,
                 client, provisioner: Provisioner, scopes: tuple[str, ...] | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 on_location_live: Callable[[list[str]], object] | None = None) -> None:
        self.settings = settings
        self.database = database
        self.states = states
        self.store = store
        self.client = client
        self.provisioner = provisioner
        self.scopes = scopes if scopes is not None else requested_scopes()
        self.clock = clock
        self.on_location_live = on_location_live

    @property
    def redirect_uri(self) -> str:
        return f"{self.settings.public_base_url}/oauth/callback"

    # --- Install ---

    def start_install(self) -> tuple[str, str]:
        """Issue a state and return (consent URL, state); the caller binds the state to the browser."""
        state = self.states.issue()
        return self.authorize_url(state), state

    def authorize_url(self, state: str) -> str:
        base = f"{self.settings.ghl_marketplace_base}/v2/oauth/chooselocation"
        # NOTE: HighLevel's own install links also carry version_id=<appId>; client_id alone fails for
        # private and draft apps (ghl-api-facts §1.1).
        return prepare_grant_uri(base, self.settings.ghl_client_id, "code", redirect_uri=self.redirect_uri,
                                 scope=list(self.scopes), state=state, version_id=self.settings.ghl_app_id)

    # --- Callback ---

    def handle_callback(self, params: Mapping[str, str], *, bound_state: str | None) -> Success | Failure:
        """Run the callback checks in order; never raises for a bad request or a HighLevel failure."""
        if params.get("error"):
            return self._fail(FailureReason.CANCELLED, 200, f"HighLevel returned error={params.get('error')!r:.80}")

        sent_state = params.get("state")
        if sent_state:
            if not states_match(sent_state, bound_state):
                self.states.consume(sent_state)  # burn it: a state seen outside its browser is spent
                return self._fail(FailureReason.INVALID_BROWSER, 400, "the state is not bound to this browser")
            if not self.states.consume(sent_state):
                return self._fail(FailureReason.INVALID_STATE, 400, "the state is unknown, expired or already used")

        code = params.get("code") or ""
        if not code or len(code) > _MAX_CODE_LENGTH or not code.isprintable():
            return self._fail(FailureReason.MISSING_CODE, 400, "no usable authorization code")

        try:
            answer = self.client.exchange_code(code, redirect_uri=self.redirect_uri)
        except OAuthError as exc:
            return self._fail(FailureReason.INVALID_CODE, 400, f"HighLevel refused the code: {exc}")
        except GHLError as exc:
            return self._fail(FailureReason.PROVIDER_UNAVAILABLE, 502, f"code exchange failed: {exc}")

        try:
            grant = TokenGrant.from_response(answer, now=self.clock())
        except MalformedTokenResponse as exc:
            return self._fail(FailureReason.UNUSABLE_ANSWER, 502, f"unusable token answer: {exc}")

        try:
            with self.database.transaction() as session:
                if grant.user_type == COMPANY:
                    self.store.save_company_grant(session, grant)
                else:
                    self.store.save_location_grant(session, grant, minted_from_company=False)
        except SQLAlchemyError as exc:
            return self._fail(FailureReason.STORAGE_ERROR, 500, f"could not store the installation: "
                                                                f"{type(exc).__name__}")
        log.info("installed: %s %s (company %s, bulk=%s, started %s)", grant.user_type, grant.resource_id,
                 grant.company_id, grant.is_bulk_installation, "by us" if sent_state else "from the Marketplace")

        if grant.user_type != COMPANY and self.on_location_live is not None:
            self.on_location_live([grant.location_id])
        report = self._provision(grant) if grant.user_type == COMPANY else None
        return Success(user_type=grant.user_type, resource_id=grant.resource_id,
                       redirect_to="/app?" + urlencode({"installed": grant.resource_id}), report=report)

    def _provision(self, grant: TokenGrant) -> ProvisioningReport | None:
        """Provision the agency's sub-accounts now; if HighLevel cannot list them, the periodic job retries."""
        try:
            return self.provisioner.provision_company(grant.company_id)
        except (GHLError, TokenUnavailable, SQLAlchemyError) as exc:
            log.warning("agency %s installed, but its sub-accounts could not be listed yet (%s); "
                        "the provisioning job will retry", grant.company_id, exc)
            return None

    def _fail(self, reason: str, status: int, detail: str) -> Failure:
        reference = secrets.token_hex(4)
        level = logging.INFO if status < 500 else logging.WARNING
        log.log(level, "oauth callback failed [%s] reason=%s: %s", reference, reason, detail)
        return Failure(reason=reason, status=status, reference=reference)
