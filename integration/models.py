"""The foundation's tables: agencies, sub-accounts, installations, settings and the webhook inbox.

Later capabilities add their own tables by migration. HighLevel ids (20-char strings) are the
primary keys of companies and locations, because every webhook and API call names them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from integration.db import Base, JSONType, UTCDateTime, utcnow

__all__ = ["Company", "Installation", "Location", "LocationSettings", "WebhookEvent", "WorkerHeartbeat"]

# Integer ids that are BIGINT on PostgreSQL but still auto-increment on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Company(Base):
    """An agency (HighLevel "Company")."""

    __tablename__ = "companies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    # Settings every new sub-account of this agency starts with (same shape as LocationSettings.values).
    default_settings: Mapped[dict] = mapped_column(JSONType, default=dict)
    # From the INSTALL webhook's whitelabelDetails.domain: the agency's own HighLevel address, which may
    # embed our page (integration.web_security frame-ancestors). None when not white-labelled.
    whitelabel_domain: Mapped[str | None] = mapped_column(String(253))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    locations: Mapped[list[Location]] = relationship(back_populates="company")


class Location(Base):
    """A sub-account (HighLevel "Location"): the tenant every missed call belongs to."""

    __tablename__ = "locations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    company_id: Mapped[str | None] = mapped_column(ForeignKey("companies.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    timezone: Mapped[str | None] = mapped_column(String(64))
    # installed | uninstalled. History and settings survive an uninstall so a reinstall resumes.
    status: Mapped[str] = mapped_column(String(20), default="installed")
    installed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    uninstalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    company: Mapped[Company | None] = relationship(back_populates="locations")
    settings: Mapped[LocationSettings | None] = relationship(back_populates="location", uselist=False)

    @property
    def is_live(self) -> bool:
        return self.status == "installed"


class Installation(Base):
    """OAuth tokens for one resource: a Company (agency) token or a Location token.

    Tokens are stored encrypted (MultiFernet, see oauth/crypto) and never leave this row in clear
    except to go into an Authorization header.
    """

    __tablename__ = "installations"
    __table_args__ = (UniqueConstraint("user_type", "resource_id", name="uq_installations_resource"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # "Company" or "Location", as HighLevel's userType says.
    user_type: Mapped[str] = mapped_column(String(16))
    # The company id for a Company token, the location id for a Location token.
    resource_id: Mapped[str] = mapped_column(String(64))
    company_id: Mapped[str | None] = mapped_column(String(64), index=True)
    location_id: Mapped[str | None] = mapped_column(String(64), index=True)
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    # Location tokens minted from a company token may come without a refresh token.
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scope: Mapped[str | None] = mapped_column(Text)
    installed_by_user_id: Mapped[str | None] = mapped_column(String(64))
    is_bulk_installation: Mapped[bool] = mapped_column(Boolean, default=False)
    # active | needs_reconnect | uninstalled
    status: Mapped[str] = mapped_column(String(20), default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)
    last_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LocationSettings(Base):
    """Per-location product settings as one validated document (see integration.settings_schema)."""

    __tablename__ = "location_settings"

    location_id: Mapped[str] = mapped_column(ForeignKey("locations.id"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    values: Mapped[dict] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    location: Mapped[Location] = relationship(back_populates="settings")


# Events still in play, or needing a person (not done, not ignored): what operators and the sweeper look for.
ACTIVE_STATUSES = ("pending", "processing", "failed")
ACTIVE_STATUSES_SQL = f"status IN ({', '.join(repr(status) for status in ACTIVE_STATUSES)})"


class WebhookEvent(Base):
    """The durable inbox: every verified webhook lands here before HighLevel gets its 200."""

    __tablename__ = "webhook_events"
    # Only the events still in play: the sweeper, the admitter and /metrics look for these, and a finished
    # event leaves the index (migration 0009 says why that matters on the ack path).
    __table_args__ = (Index("ix_webhook_events_active", "status", "received_at",
                            postgresql_where=text(ACTIVE_STATUSES_SQL), sqlite_where=text(ACTIVE_STATUSES_SQL)),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # webhookId when HighLevel sends one, else "sha256:<hex of the raw body>".
    dedupe_key: Mapped[str] = mapped_column(String(100), unique=True)
    # Looked up only for UNINSTALL events (oauth.models indexes those); an index over every event's type
    # would cost every insert on the ack path a little more.
    event_type: Mapped[str] = mapped_column(String(64))
    company_id: Mapped[str | None] = mapped_column(String(64))
    # No index of its own: the lookups by location (a pending UNINSTALL; events waiting for the location's install)
    # go through partial indexes that the receiver's INSERT never writes to (oauth.models).
    location_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSONType)
    # pending | processing | done | ignored | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    status_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Of those claims, the ones that found the location's install not settled yet and gave the event back
    # (oauth.install_wait): `attempts` stays the fencing token, `attempts - install_waits` is what
    # EVENT_MAX_ATTEMPTS counts. A server default only: the receiver's INSERT never names it.
    install_waits: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The worker process holding a `processing` event (integration.liveness): a dead holder's event is taken
    # over as soon as its heartbeat stops, not only when the lease runs out.
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WorkerHeartbeat(Base):
    """One row per running worker process, touched every second (integration.liveness).

    In the database, not Redis: whether a holder is alive decides whether its event or its text in flight may be
    taken over, and that must survive Redis going away (a Redis restarted empty would make every holder look
    dead at once).
    """

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
