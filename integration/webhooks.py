"""`POST /webhooks/ghl`: verify, store durably, answer, then enqueue (DESIGN §4.1, §4.5, §4.6).

HighLevel retries a webhook only when we answer 429; every other answer is final. So:
- 200 only once the event is committed (or was already stored: a duplicate is a success);
- 429 with Retry-After whenever the database cannot take it, and for anything unexpected on this
  route: never a 5xx, which HighLevel would treat as "drop it";
- 401 for a bad signature, 400 for a signed body that is not a JSON object, 413 for an oversized one
  (all final, all logged, none echoing the body).
Events for another app or a location that is not installed are stored as `ignored` and answered 200:
HighLevel never retries a non-429, so the status code only matters for its logs, while a stored row
tells an operator what arrived and why nothing happened.
There is no freshness window on the body's `timestamp`: HighLevel's 429 retries come 10-70 minutes later
and may keep the original timestamp (unverified), so a Stripe-style 5-minute window could refuse the very
retries we asked for. Replays are stopped by the dedupe key instead, which is kept for good.
Storing is one INSERT on the ack pool (integration.inbox_writer); a thread of the process then announces
new ids to the workers, many per RPUSH, so no request waits on Redis.
The request makes no outbound HTTP call; Redis is touched only after the commit, with short timeouts,
and a failed announcement is repaired by the sweeper.
"""

from __future__ import annotations

import logging
import threading

from flask import Blueprint, current_app, jsonify, request
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from integration.extensions import ack_db, get_settings
from integration.inbox import PayloadError, Receipt, classify_event, parse_payload
from integration.inbox_writer import InboxWriter
from integration.signatures import SignatureError, WebhookVerifier

__all__ = ["RETRY_AFTER_SECONDS", "bp"]

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

# HighLevel retries on its own schedule (~10 min) whatever we say; 60 s is an honest hint for others.
RETRY_AFTER_SECONDS = 60
_ENQUEUE_SOCKET_TIMEOUT = 0.5
_ENQUEUE_CLIENTS: dict[str, Redis] = {}
_ENQUEUE_CLIENTS_LOCK = threading.Lock()
_WRITER_LOCK = threading.Lock()


@bp.record_once
def _exempt_from_csrf(state) -> None:
    """Webhooks are authenticated by signature, not by a session: no CSRF token applies."""
    csrf = state.app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)


def _verifier() -> WebhookVerifier:
    verifier = current_app.extensions.get("textback.webhook_verifier")
    if verifier is None:
        verifier = WebhookVerifier.from_settings(get_settings())
        current_app.extensions["textback.webhook_verifier"] = verifier
    return verifier


def _enqueue_redis() -> Redis | None:
    """A Redis client for the ack path only: short timeouts and no retries, so an outage costs milliseconds.

    One per process and URL (not per app), so test suites and reloads do not leak connection pools.
    """
    url = get_settings().redis_url
    if not url:
        return None
    with _ENQUEUE_CLIENTS_LOCK:
        client = _ENQUEUE_CLIENTS.get(url)
        if client is None:
            client = Redis.from_url(url, socket_connect_timeout=_ENQUEUE_SOCKET_TIMEOUT,
                                    socket_timeout=_ENQUEUE_SOCKET_TIMEOUT, retry=Retry(NoBackoff(), 0))
            _ENQUEUE_CLIENTS[url] = client
    return client


def _read_body(limit: int) -> bytes:
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    raw = request.get_data(cache=False)
    if len(raw) > limit:
        raise RequestEntityTooLarge()
    return raw


def _writer() -> InboxWriter:
    """This process's inbox writer (integration.inbox_writer), with its announcer thread."""
    writer = current_app.extensions.get("textback.inbox_writer")
    if writer is None:
        with _WRITER_LOCK:
            writer = current_app.extensions.get("textback.inbox_writer")
            if writer is None:
                writer = InboxWriter(ack_db, announce=_announcer(_enqueue_redis()))
                current_app.extensions["textback.inbox_writer"] = writer
    return writer


def _store(payload: dict, raw_body: bytes) -> Receipt:
    """Committed when it returns: one INSERT on the ack pool (autocommit)."""
    event = classify_event(payload, raw_body=raw_body, app_id=get_settings().ghl_app_id)
    receipt = _writer().store(event)
    if receipt.created and receipt.status == "ignored":
        log.info("webhook %s stored as ignored (%s): event %s, location %s", event.event_type,
                 receipt.status_reason, receipt.event_id, event.location_id or "-")
    return receipt


def _announcer(connection: Redis | None):
    """How newly stored events are announced to the workers (workers.admitter): one RPUSH per group.

    Called from the writer's announcer thread, outside any app context, so it is bound to its client here.
    Best effort: the rows are committed, so a failure only delays processing until the next sweep.
    """
    from workers.queues import announce_events

    def announce(event_ids: list[int]) -> None:
        if connection is None:
            log.warning("events %s stored but not enqueued: REDIS_URL is not set", ", ".join(map(str, event_ids)))
            return
        announce_events(connection, event_ids)

    return announce


@bp.post("/webhooks/ghl")
def receive_ghl_webhook():
    """Every HighLevel webhook: 200 once stored (or already stored), 429 if it cannot be stored now."""
    settings = get_settings()
    raw_body = _read_body(settings.webhook_max_bytes)
    try:
        scheme = _verifier().verify(raw_body, request.headers)
    except SignatureError as exc:
        log.info("webhook rejected: %s (%d bytes from %s)", exc.reason, len(raw_body), request.remote_addr)
        return jsonify(error="invalid or missing signature"), 401
    try:
        payload = parse_payload(raw_body)
    except PayloadError as exc:
        log.warning("signed webhook (%s) rejected: %s (%d bytes)", scheme, exc, len(raw_body))
        return jsonify(error=str(exc)), 400

    receipt = _store(payload, raw_body)
    return jsonify(status="stored" if receipt.created else "duplicate", id=receipt.event_id), 200


@bp.errorhandler(Exception)
def _never_5xx(exc: Exception):
    """Client errors keep their status; anything else (database down, a bug) becomes 429 so HighLevel retries."""
    if isinstance(exc, HTTPException) and exc.code is not None and exc.code < 500:
        return exc
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, SQLAlchemyError):
        log.error("webhook not stored, database unavailable (%s); answered 429", type(exc).__name__)
    else:
        log.error("webhook not stored, unexpected error; answered 429", exc_info=exc)
    response = jsonify(error="the webhook could not be stored right now; retry later")
    return response, 429, {"Retry-After": str(RETRY_AFTER_SECONDS)}
