"""Agency installs: from one Company token to a working Location token for every sub-account.

`provision_company` lists the agency's installed locations (every page), records each one, and
mints a Location token for each that lacks a live one. Minting is idempotent: a location that is
already provisioned is skipped. A location whose token cannot be minted is recorded with the reason
and retried later with backoff (`retry_due`), never silently dropped; after `max_attempts` it stays
visible as `gave_up` until a new install (or INSTALL webhook) tries again.

Each location whose token is stored is announced to `on_location_live` right after the commit: events that
arrived before the install had settled are waiting for exactly that (oauth.install_wait).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from integration.db import Database, utcnow
from integration.ghl.errors import GHLError
from integration.models import Installation
from oauth.errors import TokenUnavailable
from oauth.installation import COMPANY, LOCATION, MalformedTokenResponse, TokenGrant
from oauth.models import AgencyInstall, LocationProvisioning, ProvisioningStatus
from oauth.store import ACTIVE, InstallationStore

__all__ = ["Provisioner", "ProvisioningReport"]

log = logging.getLogger(__name__)

_BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
            timedelta(hours=6))


@dataclass
class ProvisioningReport:
    """Which locations got a token, which were already fine, which failed (id -> reason), which wait."""

    provisioned: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    deferred: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.provisioned)} provisioned, {len(self.already)} already, {len(self.failed)} failed, "
                f"{len(self.deferred)} deferred")


class Provisioner:
    """Mints and stores Location tokens for an agency's sub-accounts.

    Args:
        database: the configured Database.
        store: the InstallationStore.
        client: a GHLClient whose token provider serves the Company token.
        app_id: the 24-hex app id (for /oauth/installedLocations).
        max_attempts: failures after which a location is left as `gave_up`.
        time_budget: seconds `provision_company` spends minting before leaving the rest `pending`
            for the periodic job (keeps the install callback responsive for large agencies).
        clock: returns the current UTC time.
        on_location_live: called with [location id] after each commit that stored a Location token (it must not
            raise; oauth.install_wait.wake_waiting_events does not).
    """

    def __init__(self, *, database: Database, store: InstallationStore, client, app_id: str,
                 max_attempts: int = 8, time_budget: float = 20.0,
                 clock: Callable[[], datetime] = utcnow,
                 on_location_live: Callable[[list[str]], object] | None = None) -> None:
        self.database = database
        self.store = store
        self.client = client
        self.app_id = app_id
        self.max_attempts = max_attempts
        self.time_budget = time_budget
        self.clock = clock
        self.on_location_live = on_location_live

    # --- Whole agency ---

    def provision_company(self, company_id: str) -> ProvisioningReport:
        """List the agency's installed locations and give each a Location token.

        Raises GHLError / TokenUnavailable when the list itself cannot be fetched (nothing is recorded
        then; the caller decides whether to retry).
        """
        listed = self.client.installed_locations(company_id, app_id=self.app_id, is_installed=True)
        names: dict[str, str | None] = {}
        for item in listed:
            location_id = item.get("_id") or item.get("id")
            if isinstance(location_id, str) and location_id and item.get("isInstalled", True) is not False:
                names[location_id] = item.get("name") if isinstance(item.get("name"), str) else None
        log.info("agency %s: HighLevel lists %d installed locations", company_id, len(names))
        with self.database.transaction() as session:
            for location_id in names:
                self._record_pending(session, company_id=company_id, location_id=location_id)
            agency = session.get(AgencyInstall, company_id)
            if agency is not None:
                agency.last_provisioned_at = self.clock()
        report = ProvisioningReport()
        deadline = time.monotonic() + self.time_budget
        for location_id, name in names.items():
            if time.monotonic() > deadline:
                report.deferred.append(location_id)  # stays pending; retry_due picks it up
                continue
            self._provision_into(report, company_id=company_id, location_id=location_id, name=name)
        log.info("agency %s provisioning: %s", company_id, report.summary())
        return report

    # --- One location ---

    def provision_location(self, company_id: str, location_id: str, *, name: str | None = None) -> ProvisioningReport:
        """Give one location of a company we hold a Location token (idempotent: skips a live one)."""
        with self.database.transaction() as session:
            self._record_pending(session, company_id=company_id, location_id=location_id)
        report = ProvisioningReport()
        self._provision_into(report, company_id=company_id, location_id=location_id, name=name)
        return report

    def retry_due(self, *, limit: int = 100) -> ProvisioningReport:
        """Retry failed locations whose backoff has passed, pending ones left by a time budget, and
        agencies whose sub-accounts could not even be listed at install time."""
        now = self.clock()
        report = ProvisioningReport()
        with self.database.transaction() as session:
            unlisted = session.scalars(
                select(AgencyInstall.company_id)
                .join(Installation, (Installation.resource_id == AgencyInstall.company_id)
                      & (Installation.user_type == COMPANY))
                .where(AgencyInstall.status == "installed", AgencyInstall.last_provisioned_at.is_(None),
                       Installation.status == ACTIVE)
                .limit(limit)
            ).all()
        for company_id in unlisted:
            try:
                listed = self.provision_company(company_id)
            except (GHLError, TokenUnavailable) as exc:
                log.warning("agency %s: sub-accounts still cannot be listed: %s", company_id, exc)
                continue
            for name in ("provisioned", "already", "deferred"):
                getattr(report, name).extend(getattr(listed, name))
            report.failed.update(listed.failed)
        with self.database.transaction() as session:
            due = session.execute(
                select(LocationProvisioning.company_id, LocationProvisioning.location_id)
                .where(
                    or_(LocationProvisioning.status == ProvisioningStatus.PENDING,
                        LocationProvisioning.status == ProvisioningStatus.FAILED),
                    or_(LocationProvisioning.next_attempt_at.is_(None), LocationProvisioning.next_attempt_at <= now),
                )
                .order_by(LocationProvisioning.next_attempt_at)
                .limit(limit)
            ).all()
        for company_id, location_id in due:
            self._provision_into(report, company_id=company_id, location_id=location_id, name=None)
        if due:
            log.info("provisioning retry: %s", report.summary())
        return report

    # --- Internals ---

    def _record_pending(self, session, *, company_id: str, location_id: str) -> None:
        record = session.get(LocationProvisioning, location_id)
        if record is None:
            session.add(LocationProvisioning(location_id=location_id, company_id=company_id,
                                             status=ProvisioningStatus.PENDING, attempts=0))
        elif record.status != ProvisioningStatus.PROVISIONED or record.company_id != company_id:
            # A new install (or INSTALL webhook) gives failed, gave-up and uninstalled locations a fresh start.
            record.company_id = company_id
            record.status = ProvisioningStatus.PENDING
            record.attempts = 0
            record.next_attempt_at = None

    def _provision_into(self, report: ProvisioningReport, *, company_id: str, location_id: str,
                        name: str | None) -> None:
        with self.database.transaction() as session:
            record = session.get(LocationProvisioning, location_id)
            if record is not None and record.status == ProvisioningStatus.UNINSTALLED:
                return
            live = session.scalar(
                select(Installation.id).where(Installation.user_type == LOCATION,
                                              Installation.resource_id == location_id,
                                              Installation.status == ACTIVE)
            )
            if live is not None:
                if record is not None:
                    record.status, record.reason, record.next_attempt_at = ProvisioningStatus.PROVISIONED, None, None
                report.already.append(location_id)
                return
        try:
            answer = self.client.location_token(company_id, location_id)
            grant = TokenGrant.from_response(
                {"companyId": company_id, "locationId": location_id, **answer}, now=self.clock(),
                expected_user_type=LOCATION)
            if grant.location_id != location_id:
                raise MalformedTokenResponse("HighLevel answered with a token for another location")
        except (GHLError, TokenUnavailable, MalformedTokenResponse) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self._record_failure(company_id=company_id, location_id=location_id, reason=reason)
            report.failed[location_id] = reason
            return
        with self.database.transaction() as session:
            self.store.save_location_grant(session, grant, minted_from_company=True, location_name=name)
            record = session.get(LocationProvisioning, location_id)
            if record is not None:
                record.attempts += 1
                record.last_attempt_at = self.clock()
        log.info("agency %s: location %s provisioned", company_id, location_id)
        report.provisioned.append(location_id)
        if self.on_location_live is not None:
            # Per location, not once per agency: in a large bulk install the first locations' waiting missed
            # calls must not wait for the last location's token.
            self.on_location_live([location_id])

    def _record_failure(self, *, company_id: str, location_id: str, reason: str) -> None:
        now = self.clock()
        with self.database.transaction() as session:
            record = session.get(LocationProvisioning, location_id)
            if record is None:
                record = LocationProvisioning(location_id=location_id, company_id=company_id, attempts=0)
                session.add(record)
            if record.status == ProvisioningStatus.UNINSTALLED:
                return
            record.attempts = (record.attempts or 0) + 1
            record.last_attempt_at = now
            record.reason = reason[:1000]
            if record.attempts >= self.max_attempts:
                record.status = ProvisioningStatus.GAVE_UP
                record.next_attempt_at = None
            else:
                record.status = ProvisioningStatus.FAILED
                record.next_attempt_at = now + _BACKOFF[min(record.attempts - 1, len(_BACKOFF) - 1)]
        log.warning("agency %s: could not mint a token for location %s (attempt %d): %s",
                    company_id, location_id, record.attempts, reason)
