"""Periodic OAuth maintenance: plain functions the scheduler runs inside an app context.

- `refresh_idle_installations`: a refresh token unused for a year dies (ghl-api-facts §1.2). An
  installation nobody has called for a long time is refreshed well before that.
- `retry_failed_provisioning`: locations whose Location token could not be minted are retried
  with backoff (oauth.provisioning).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, or_, select

from integration.models import Installation
from oauth.errors import TokenUnavailable
from oauth.services import get_oauth
from oauth.store import ACTIVE

__all__ = ["DEFAULT_IDLE_AFTER", "refresh_idle_installations", "retry_failed_provisioning"]

log = logging.getLogger(__name__)

# Far inside the one-year life of a refresh token, so a few failed runs still leave months of slack.
DEFAULT_IDLE_AFTER = timedelta(days=30)


def refresh_idle_installations(*, idle_after: timedelta = DEFAULT_IDLE_AFTER, limit: int = 200) -> dict[str, int]:
    """Refresh active installations not refreshed for `idle_after`. Returns counts by outcome."""
    oauth = get_oauth()
    cutoff = oauth.tokens.clock() - idle_after
    with oauth.database.transaction() as session:
        candidates = session.scalars(
            select(Installation.resource_id)
            .where(
                Installation.status == ACTIVE,
                # Minted Location tokens (no refresh token) are renewed from the company token instead.
                Installation.refresh_token_encrypted.is_not(None),
                or_(Installation.last_refreshed_at.is_(None), Installation.last_refreshed_at < cutoff),
            )
            .order_by(func.coalesce(Installation.last_refreshed_at, Installation.created_at))
            .limit(limit)
        ).all()
    counts = {"refreshed": 0, "skipped": 0, "failed": 0}
    for resource_id in candidates:
        try:
            refreshed = oauth.tokens.refresh_if_idle(resource_id, idle_for=idle_after)
        except TokenUnavailable as exc:
            # NeedsReconnect has already been recorded on the row; a retryable failure waits for the next run.
            log.warning("idle refresh of %s failed: %s", resource_id, exc)
            counts["failed"] += 1
            continue
        counts["refreshed" if refreshed else "skipped"] += 1
    if candidates:
        log.info("idle refresh: %s", counts)
    return counts


def retry_failed_provisioning(*, limit: int = 100) -> dict[str, int]:
    """Retry minting Location tokens that failed earlier and whose backoff has passed."""
    report = get_oauth().provisioner.retry_due(limit=limit)
    return {"provisioned": len(report.provisioned), "already": len(report.already), "failed": len(report.failed)}
