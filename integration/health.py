"""Liveness, readiness and Prometheus metrics.

Metrics are read from the database and Redis at scrape time rather than kept in process memory:
gunicorn and the workers are many processes, and the database is the record of truth anyway.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select, text

from integration.extensions import db, get_redis
from integration.models import ACTIVE_STATUSES, Installation, Location, WebhookEvent

__all__ = ["bp"]

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


def _check_database() -> str | None:
    try:
        with db.transaction() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    return None


def _check_redis() -> str | None:
    try:
        get_redis().ping()
    except Exception as exc:
        return f"redis unreachable: {type(exc).__name__}"
    return None


@bp.get("/readyz")
def readyz():
    problems = [p for p in (_check_database(), _check_redis()) if p]
    if problems:
        log.warning("not ready: %s", "; ".join(problems))
        return jsonify(status="unavailable", problems=problems), 503
    return jsonify(status="ok")


class _StoreCollector:
    """Gauges computed from the database and Redis at scrape time."""

    def __init__(self, app) -> None:
        self.app = app

    def collect(self):
        # Only the statuses an operator alerts on: counting done and ignored rows would scan the whole inbox
        # (which keeps every event) at every scrape; ix_webhook_events_active answers these cheaply.
        inbox = GaugeMetricFamily("textback_webhook_events", "Webhook events in the inbox that are pending, "
                                  "processing or failed", labels=["status"])
        installs = GaugeMetricFamily("textback_installations", "Installations by type and status",
                                     labels=["user_type", "status"])
        locations = GaugeMetricFamily("textback_locations", "Locations by status", labels=["status"])
        up = GaugeMetricFamily("textback_dependency_up", "1 when a dependency answers", labels=["dependency"])
        unadmitted = GaugeMetricFamily(
            "textback_webhook_announcements_waiting",
            "New webhook events announced but not yet made jobs (grows when no worker runs maintenance)")
        db_ok = _check_database() is None
        up.add_metric(["database"], 1.0 if db_ok else 0.0)
        if db_ok:
            with db.transaction() as session:
                for status, count in session.execute(
                    select(WebhookEvent.status, func.count())
                    .where(WebhookEvent.status.in_(ACTIVE_STATUSES)).group_by(WebhookEvent.status)
                ):
                    inbox.add_metric([status], count)
                for user_type, status, count in session.execute(
                    select(Installation.user_type, Installation.status, func.count()).group_by(
                        Installation.user_type, Installation.status
                    )
                ):
                    installs.add_metric([user_type, status], count)
                for status, count in session.execute(select(Location.status, func.count()).group_by(Location.status)):
                    locations.add_metric([status], count)
        with self.app.app_context():
            redis_ok = _check_redis() is None
            up.add_metric(["redis"], 1.0 if redis_ok else 0.0)
            if redis_ok:
                from workers.queues import LATER_EVENTS_KEY, NEW_EVENTS_KEY

                redis = get_redis()
                unadmitted.add_metric([], redis.llen(NEW_EVENTS_KEY) + redis.llen(LATER_EVENTS_KEY))
        yield from (inbox, installs, locations, up, unadmitted)


@bp.get("/metrics")
def metrics():
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StoreCollector(current_app._get_current_object()))
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4; charset=utf-8")
