"""The installation store: where grants become rows, and the one question every job asks first.

One `installations` row per token (Company or Location, unique on user type + resource id), tokens
encrypted with the TokenCipher. Uninstalling deletes the tokens but keeps the company, location,
settings and history rows, so a reinstall resumes where it left off.

`is_location_active(session, location_id)` is the check every job makes before an API call. It
also looks at the webhook inbox: an UNINSTALL that was acknowledged but not yet processed stops
the location at once, so no API call happens for it after HighLevel got our 200.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import and_, bindparam, exists, false, func, or_, select, true, update
from sqlalchemy.orm import Session

from integration.db import utcnow
from integration.models import Company, Installation, Location, LocationSettings, WebhookEvent
from oauth.crypto import TokenCipher
from oauth.installation import COMPANY, LOCATION, TokenGrant
from oauth.models import AgencyInstall, LocationProvisioning, ProvisioningStatus

__all__ = [
    "ACTIVE",
    "NEEDS_RECONNECT",
    "UNINSTALLED",
    "InstallationStore",
    "installations_with_state",
    "is_location_active",
    "location_active_clause",
    "location_state",
    "uninstall_waiting",
]

log = logging.getLogger(__name__)

ACTIVE = "active"
NEEDS_RECONNECT = "needs_reconnect"
UNINSTALLED = "uninstalled"

UNINSTALL_EVENT = "UNINSTALL"


class InstallationStore:
    """Saves grants, reads installations, and records reconnects and uninstalls.

    Every method takes the caller's session and does not commit: the caller decides what is one
    transaction ("nothing half stored").

    Args:
        cipher: encrypts tokens before they touch a row.
        clock: returns the current UTC time.
    """

    def __init__(self, cipher: TokenCipher, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.cipher = cipher
        self.clock = clock

    # --- Saving grants ---

    def save_company_grant(self, session: Session, grant: TokenGrant) -> Installation:
        """Store an agency's Company token and (re)mark the agency installed."""
        assert grant.user_type == COMPANY
        now = self.clock()
        self._ensure_company(session, grant.company_id)
        agency = session.get(AgencyInstall, grant.company_id)
        if agency is None:
            agency = AgencyInstall(company_id=grant.company_id)
            session.add(agency)
        agency.status = "installed"
        agency.installed_at = now
        agency.uninstalled_at = None
        agency.installed_by_user_id = grant.user_id
        agency.is_bulk_installation = grant.is_bulk_installation
        agency.install_to_future_locations = grant.install_to_future_locations
        return self._upsert_installation(session, grant, refresh_token=grant.refresh_token)

    def save_location_grant(self, session: Session, grant: TokenGrant, *, minted_from_company: bool,
                            location_name: str | None = None) -> Installation:
        """Store a Location token, (re)install the location and link a new one to its agency's default settings.

        Args:
            minted_from_company: True for a token from /oauth/locationToken. Its refresh token is not
                kept: such a token is re-minted from the company token when it expires, which keeps
                one source of truth per location (a stored refresh token would be a second one).
            location_name: the sub-account's name when we know it.
        """
        assert grant.user_type == LOCATION
        now = self.clock()
        if grant.company_id:
            self._ensure_company(session, grant.company_id)
        location = session.get(Location, grant.location_id)
        if location is None:
            location = Location(id=grant.location_id, created_at=now)
            session.add(location)
        if grant.company_id:
            location.company_id = grant.company_id
        if location_name:
            location.name = location_name[:255]
        location.status = "installed"
        location.installed_at = now
        location.uninstalled_at = None
        session.flush()
        if session.get(LocationSettings, location.id) is None:
            # A new sub-account gets its agency's defaults by being linked to the agency: its own document
            # starts empty, and the effective settings are built-in defaults < agency defaults < own
            # values (integration.textback.settings), so a later change of the agency defaults reaches it.
            # A reinstall keeps the existing document.
            session.add(LocationSettings(location_id=location.id, enabled=True, values={}))
        provisioning = session.get(LocationProvisioning, location.id)
        if provisioning is not None:
            provisioning.status = ProvisioningStatus.PROVISIONED
            provisioning.reason = None
            provisioning.next_attempt_at = None
        refresh = None if minted_from_company else grant.refresh_token
        return self._upsert_installation(session, grant, refresh_token=refresh)

    def _ensure_company(self, session: Session, company_id: str) -> Company:
        company = session.get(Company, company_id)
        if company is None:
            company = Company(id=company_id, default_settings={})
            session.add(company)
            session.flush()
        return company

    def _upsert_installation(self, session: Session, grant: TokenGrant, *, refresh_token: str | None) -> Installation:
        now = self.clock()
        row = session.scalar(
            select(Installation).where(Installation.user_type == grant.user_type,
                                       Installation.resource_id == grant.resource_id)
        )
        if row is None:
            row = Installation(user_type=grant.user_type, resource_id=grant.resource_id, created_at=now)
            session.add(row)
        row.company_id = grant.company_id
        row.location_id = grant.location_id
        row.access_token_encrypted = self.cipher.encrypt(grant.access_token)
        row.refresh_token_encrypted = self.cipher.encrypt_optional(refresh_token)
        row.expires_at = grant.expires_at
        row.scope = grant.scope
        row.installed_by_user_id = grant.user_id or row.installed_by_user_id
        row.is_bulk_installation = grant.is_bulk_installation
        row.status = ACTIVE
        row.status_reason = None
        row.last_refreshed_at = now
        session.flush()
        return row

    # --- Reading ---

    def find(self, session: Session, resource_id: str, *, user_type: str | None = None) -> Installation | None:
        """The installation acting for `resource_id` (a location or company id); a Location token wins a tie."""
        query = select(Installation).where(Installation.resource_id == resource_id)
        if user_type is not None:
            query = query.where(Installation.user_type == user_type)
        rows = session.scalars(query).all()
        if not rows:
            return None
        rows.sort(key=lambda r: r.user_type != LOCATION)
        return rows[0]

    def access_token_of(self, row: Installation) -> str:
        """The access token in clear (raises TokenDecryptError)."""
        return self.cipher.decrypt(row.access_token_encrypted)

    def refresh_token_of(self, row: Installation) -> str | None:
        return self.cipher.decrypt_optional(row.refresh_token_encrypted)

    # --- Status changes ---

    def mark_needs_reconnect(self, session: Session, row: Installation | int, reason: str, *,
                             resource: str | None = None,
                             only_if_tokens: tuple[str | None, str | None] | None = None) -> bool:
        """Stop using this installation until someone reinstalls; `reason` is shown to the agency.

        Args:
            row: the installation (or its id).
            resource: how to name it in the log (default: from the row).
            only_if_tokens: (access, refresh) ciphertexts the row must still hold, so that a pair
                stored meanwhile by someone else is never condemned.

        Returns True when the row was marked.
        """
        row_id = row if isinstance(row, int) else row.id
        conditions = [Installation.id == row_id, Installation.status == ACTIVE]
        if only_if_tokens is not None:
            access_ct, refresh_ct = only_if_tokens
            conditions += [_same(Installation.access_token_encrypted, access_ct),
                           _same(Installation.refresh_token_encrypted, refresh_ct)]
        result = session.execute(
            update(Installation)
            .where(*conditions)
            .values(status=NEEDS_RECONNECT, status_reason=reason[:500], updated_at=self.clock())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:
            name = resource or (f"{row.user_type} {row.resource_id}" if not isinstance(row, int) else f"#{row_id}")
            log.warning("installation %s needs reconnecting: %s", name, reason)
        return bool(result.rowcount)

    def uninstall_location(self, session: Session, location_id: str) -> bool:
        """Delete the location's tokens and mark it uninstalled. False when it already was (or is unknown)."""
        now = self.clock()
        changed = self._drop_tokens(session, user_type=LOCATION, resource_id=location_id)
        location = session.get(Location, location_id)
        if location is not None and location.status != "uninstalled":
            location.status = "uninstalled"
            location.uninstalled_at = now
            changed = True
        provisioning = session.get(LocationProvisioning, location_id)
        if provisioning is not None and provisioning.status != ProvisioningStatus.UNINSTALLED:
            provisioning.status = ProvisioningStatus.UNINSTALLED
            provisioning.next_attempt_at = None
            changed = True
        return changed

    def uninstall_company(self, session: Session, company_id: str) -> list[str]:
        """Delete the agency's token and those of all its locations; returns the locations that were stopped."""
        now = self.clock()
        self._drop_tokens(session, user_type=COMPANY, resource_id=company_id)
        agency = session.get(AgencyInstall, company_id)
        if agency is not None and agency.status != "uninstalled":
            agency.status = "uninstalled"
            agency.uninstalled_at = now
        location_ids = set(session.scalars(select(Location.id).where(Location.company_id == company_id)))
        location_ids |= set(session.scalars(
            select(LocationProvisioning.location_id).where(LocationProvisioning.company_id == company_id)))
        location_ids |= set(session.scalars(
            select(Installation.resource_id).where(Installation.user_type == LOCATION,
                                                   Installation.company_id == company_id)))
        return sorted(lid for lid in location_ids if self.uninstall_location(session, lid))

    def _drop_tokens(self, session: Session, *, user_type: str, resource_id: str) -> bool:
        result = session.execute(
            update(Installation)
            .where(Installation.user_type == user_type, Installation.resource_id == resource_id,
                   or_(Installation.status != UNINSTALLED, Installation.access_token_encrypted.is_not(None),
                       Installation.refresh_token_encrypted.is_not(None)))
            .values(access_token_encrypted=None, refresh_token_encrypted=None, status=UNINSTALLED,
                    status_reason="uninstalled", updated_at=self.clock())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount > 0


def uninstall_waiting(session: Session, *, location_id: str | None, company_id: str | None,
                      since: datetime | None) -> bool:
    """True when an UNINSTALL for this location (or for its whole agency) arrived at or after `since`.

    The receiver stores webhooks before answering 200 and a worker processes them later; this check
    closes that window. An UNINSTALL received before `since` (the latest install) belongs to an
    earlier install and is ignored, so a reinstall works.
    """
    if not (location_id or company_id):
        return False
    return bool(session.scalar(select(_uninstall_waiting_clause(location_id, company_id, since))))


def _uninstall_waiting_clause(location_id, company_id, since):
    """uninstall_waiting as an EXISTS clause; the arguments may be values or columns of an outer query."""
    targets = []  # a plain None names nothing (`== None` would match every row without one)
    if location_id is not None:
        targets.append(WebhookEvent.location_id == location_id)
    if company_id is not None:
        targets.append(and_(WebhookEvent.company_id == company_id, WebhookEvent.location_id.is_(None)))
    received = true() if since is None else or_(WebhookEvent.received_at >= since, _is_null(since))
    return exists().where(WebhookEvent.event_type == UNINSTALL_EVENT, WebhookEvent.status != "ignored",
                          or_(*targets), received)


def _is_null(value):
    """`value IS NULL` for a column or expression; False for a plain value (not None: that is handled above)."""
    return value.is_(None) if hasattr(value, "is_") else false()


def location_state(session: Session, location_id: str) -> tuple[str, bool] | None:
    """(the location's status, whether an UNINSTALL for it or its agency is waiting) in one statement; None when
    the location has no row."""
    since = func.coalesce(Location.installed_at, Location.created_at)
    waiting = _uninstall_waiting_clause(Location.id, Location.company_id, since)
    found = session.execute(select(Location.status, waiting).where(Location.id == location_id)).first()
    return None if found is None else (found[0], bool(found[1]))


def installations_with_state(session: Session, resource_id: str) -> list:
    """The installations acting for `resource_id` as rows of their columns, a Location token first, each with
    `location_status` and `uninstall_waiting` (location_state's answer; None when it is no Location token or its
    location has no row). One prebuilt statement: the token is read before every API call."""
    rows = session.connection().execute(_installations_with_state_query(), {"resource_id": resource_id}).all()
    return sorted(rows, key=lambda row: row.user_type != LOCATION)


@functools.cache
def _installations_with_state_query():
    since = func.coalesce(Location.installed_at, Location.created_at)
    waiting = _uninstall_waiting_clause(Location.id, Location.company_id, since)
    columns = [column for column in Installation.__table__.c]
    return (select(*columns, Location.status.label("location_status"), waiting.label("uninstall_waiting"))
            .select_from(Installation)
            .outerjoin(Location, and_(Installation.user_type == LOCATION, Location.id == Installation.resource_id))
            .where(Installation.resource_id == bindparam("resource_id")))


def is_location_active(session: Session, location_id: str) -> bool:
    """May a job make an API call for this location right now?

    True only when the location is installed, holds an active token (not uninstalled, not waiting
    for a reconnect) and no UNINSTALL for it or its agency is waiting in the inbox. Every job checks
    this before an API call; the TokenProvider enforces the same rule for calls that slip through.
    One statement (one round trip), built once: it is asked several times per missed call.
    """
    return session.connection().scalar(_active_location_query(), {"location_id": location_id}) is not None


def location_active_clause():
    """is_location_active as a boolean SQL expression of the bound parameter `location_id`, to ask it inside a
    statement that checks other things too."""
    return _active_location_query().exists()


@functools.cache
def _active_location_query():
    # Built once with a bound parameter: composing it (and its cache key) cost more CPU than running it.
    active_token = exists().where(Installation.user_type == LOCATION, Installation.resource_id == Location.id,
                                  Installation.status == ACTIVE)
    since = func.coalesce(Location.installed_at, Location.created_at)
    return select(Location.id).where(
        Location.id == bindparam("location_id"), Location.status == "installed", active_token,
        ~_uninstall_waiting_clause(Location.id, Location.company_id, since),
    )


def _same(column, value):
    return column.is_(None) if value is None else column == value
