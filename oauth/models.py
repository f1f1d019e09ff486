"""Tables of the install flow: consent states, agency installs and per-location provisioning.

Tokens themselves live in `integration.models.Installation` (one row per Company or Location
token, encrypted). These tables hold what the install flow needs around them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from integration.db import Base, UTCDateTime, utcnow
from integration.models import WebhookEvent

__all__ = ["AgencyInstall", "LocationProvisioning", "OAuthState", "ProvisioningStatus"]


class OAuthState(Base):
    """A consent `state` we issued: single-use (deleted when consumed) and expiring."""

    __tablename__ = "oauth_states"

    state: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class AgencyInstall(Base):
    """An agency (Company token) install and what HighLevel told us about it.

    `installed_at` is the moment of the latest (re)install: an UNINSTALL received before it belongs
    to an earlier install and does not stop this one.
    """

    __tablename__ = "agency_installs"

    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="installed")  # installed | uninstalled
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    uninstalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    installed_by_user_id: Mapped[str | None] = mapped_column(String(64))
    is_bulk_installation: Mapped[bool] = mapped_column(Boolean, default=False)
    install_to_future_locations: Mapped[bool | None] = mapped_column(Boolean)
    last_provisioned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ProvisioningStatus:
    PENDING = "pending"  # known to need a Location token, not minted yet
    PROVISIONED = "provisioned"  # minted and stored
    FAILED = "failed"  # minting failed; `reason` says why, retried at `next_attempt_at`
    GAVE_UP = "gave_up"  # failed `max_attempts` times; visible, not retried automatically
    UNINSTALLED = "uninstalled"  # the location or agency was uninstalled: never mint again


class LocationProvisioning(Base):
    """One sub-account an agency install covers: whether its Location token was minted, and if not why."""

    __tablename__ = "location_provisioning"
    __table_args__ = (Index("ix_location_provisioning_status_next", "status", "next_attempt_at"),)

    location_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    company_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default=ProvisioningStatus.PENDING)
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


_UNINSTALL_ROWS = "event_type = 'UNINSTALL'"
# Every token request asks "is an UNINSTALL for this resource waiting in the inbox?" (oauth.store.
# uninstall_waiting): UNINSTALL events received since the latest install are few, so this index makes
# that question cheap however large the inbox grows. Partial: no other event ever writes to it.
Index("ix_webhook_events_uninstall_received", WebhookEvent.received_at,
      postgresql_where=text(_UNINSTALL_ROWS), sqlite_where=text(_UNINSTALL_ROWS))

WAITING_FOR_INSTALL_SQL = "status = 'pending' AND install_waits > 0"
# When a location's token is stored, its events waiting for the install are run at once (oauth.install_wait; the
# lookup repeats this predicate word for word, so PostgreSQL can use the index whatever plan it caches).
# Only an event a worker has already given back holds install_waits > 0, so the receiver's INSERT (0) and every
# ordinary event's claim and finish never write to this index, and it holds just the events waiting right now.
Index("ix_webhook_events_waiting_for_install", WebhookEvent.location_id,
      postgresql_where=text(WAITING_FOR_INSTALL_SQL), sqlite_where=text(WAITING_FOR_INSTALL_SQL))
