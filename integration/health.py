"""Liveness, readiness and Prometheus metrics.

/metrics has two parts. Gauges of state (the inbox, installations, queues) are read from the database and Redis
at scrape time: they are the record of truth, whichever process answers. Counters and histograms of what happened
(webhooks, texts, HighLevel calls...) are recorded by the processes as it happens (integration.metrics: how the
processes of gunicorn and `python -m workers` add up).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select, text

from integration import metrics as recorded
from integration.db import utcnow
from integration.extensions import db, get_redis
from integration.models import ACTIVE_STATUSES, Installation, Location, WebhookEvent

__all__ = ["STORE_GAUGES", "bp"]

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


# The gauges _StoreCollector reads at scrape time (tests check the dashboard and alert rules against these).
STORE_GAUGES = ("textback_webhook_events", "textback_installations", "textback_locations", "textback_dependency_up",
                "textback_webhook_announcements_waiting", "textback_queue_depth", "textback_queue_oldest_age_seconds")


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
            depth = GaugeMetricFamily("textback_queue_depth", "Jobs waiting in each RQ queue; `announced` and "
                                      "`announced_later`: new webhook events waiting to be made jobs", labels=["queue"])
            oldest = GaugeMetricFamily("textback_queue_oldest_age_seconds", "Age of the job (or announced event) "
                                       "waiting longest in each queue; 0 when it is empty", labels=["queue"])
            if redis_ok:

                redis = get_redis()
                waiting = _queue_waits(redis, db_ok)
                for queue, (count, age) in waiting.items():
                    depth.add_metric([queue], count)
                    oldest.add_metric([queue], age)
                unadmitted.add_metric([], waiting["announced"][0] + waiting["announced_later"][0])
        yield from (inbox, installs, locations, up, unadmitted, depth, oldest)


def _queue_waits(redis, db_ok: bool) -> dict[str, tuple[int, float]]:
    """(length, age of the head in seconds) of each RQ queue and each announcement list: one pipeline of LLEN and
    LINDEX 0, then the heads' enqueue times (RQ's job hash) and received times (the inbox row, by primary key)."""
    from rq.utils import utcparse

    from workers.queues import LATER_EVENTS_KEY, NEW_EVENTS_KEY, QUEUE_NAMES

    lists = {name: f"rq:queue:{name}" for name in QUEUE_NAMES} | {"announced": NEW_EVENTS_KEY,
                                                                   "announced_later": LATER_EVENTS_KEY}
    pipeline = redis.pipeline(transaction=False)
    for key in lists.values():
        pipeline.llen(key)
        pipeline.lindex(key, 0)
    answers = pipeline.execute()
    now = utcnow()
    waits: dict[str, tuple[int, float]] = {}
    for index, name in enumerate(lists):
        count, head = answers[2 * index], answers[2 * index + 1]
        age = 0.0
        if head is not None:
            head = head.decode() if isinstance(head, bytes) else str(head)
            if name in QUEUE_NAMES:
                enqueued = redis.hget(f"rq:job:{head}", "enqueued_at")
                if enqueued:
                    age = (now - utcparse(enqueued.decode()).replace(tzinfo=now.tzinfo)).total_seconds()
            elif db_ok and head.isdigit():
                with db.transaction() as session:
                    received = session.scalar(select(WebhookEvent.received_at).where(WebhookEvent.id == int(head)))
                if received is not None:
                    age = (now - received).total_seconds()
        waits[name] = (int(count), max(0.0, age))
    return waits


@bp.get("/metrics")
def metrics():
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StoreCollector(current_app._get_current_object()))
    for collector in recorded.process_group_collectors():
        registry.register(collector)
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4; charset=utf-8")
