"""`POST /webhooks/ghl`: verify, store durably, answer, then enqueue (DESIGN §4.1, §4.5, §4.6).

HighLevel retries a webhook only when we answer 429; every other answer is final. So:
- 200 only once the event is committed (or was already stored: a duplicate is a success);
- 429 with Retry-After whenever the database cannot take it, and for anything unexpected on this
  route: never a 5xx, which HighLevel would treat as "drop it";
- 401 for a bad signature, 400 for a signed body that is not a JSON object, 413 for an oversized one
  (all final, all logged, none echoing the body).
Events for another app or a location that is no longer installed are stored as `ignored` and answered 200:
HighLevel never retries a non-429, so the status code only matters for its logs, while a stored row
tells an operator what arrived and why nothing happened. An event for a location we have never seen is stored
pending: its install may still be on its way, and the worker decides (integration.inbox, oauth.install_wait).
There is no freshness window on the body's `timestamp`: HighLevel's 429 retries come 10-70 minutes later
and may keep the original timestamp (unverified), so a Stripe-style 5-minute window could refuse the very
retries we asked for. Replays are stopped by the dedupe key instead, which is kept for good.
Storing is one INSERT on the ack pool (integration.inbox_writer); a thread of the process then announces
new ids to the workers, many per RPUSH, so no request waits on Redis.
The request makes no outbound HTTP call; Redis is touched only after the commit, with short timeouts,
and a failed announcement is repaired by the sweeper.

The route is a plain WSGI handler mounted in front of Flask (`mount_receiver`), not a Flask view: it
needs none of Flask's per-request machinery (request context, session cookie, URL map, error pages),
and on the benchmark machine that machinery cost more CPU than verifying, parsing and storing together
(benchmarks/webhook_pipeline.py; figures in issue 4's note). Every other path goes on to Flask.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from functools import cached_property

from flask import Flask
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wsgi import get_input_stream

from integration import metrics
from integration.config import Settings
from integration.extensions import ack_db, get_settings
from integration.inbox import PayloadError, Receipt, classify_event, parse_payload
from integration.inbox_writer import InboxWriter
from integration.signatures import SignatureError, WebhookVerifier

__all__ = ["RETRY_AFTER_SECONDS", "WEBHOOK_PATH", "WebhookReceiver", "mount_receiver"]

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/ghl"
# HighLevel retries on its own schedule (~10 min) whatever we say; 60 s is an honest hint for others.
RETRY_AFTER_SECONDS = 60
_ENQUEUE_SOCKET_TIMEOUT = 0.5
_ENQUEUE_CLIENTS: dict[str, Redis] = {}
_ENQUEUE_CLIENTS_LOCK = threading.Lock()
Answer = tuple[str, list[tuple[str, str]], bytes]  # WSGI status line, headers, body


def mount_receiver(app: Flask) -> None:
    """Put the receiver in front of `app`'s WSGI pipeline (test clients and gunicorn both go through it)."""
    app.wsgi_app = WebhookReceiver(get_settings(app), downstream=app.wsgi_app)  # type: ignore[method-assign]


def _enqueue_redis(url: str | None) -> Redis | None:
    """A Redis client for announcing only: short timeouts and no retries, so an outage costs milliseconds.

    One per process and URL (not per app), so test suites and reloads do not leak connection pools.
    """
    if not url:
        return None
    with _ENQUEUE_CLIENTS_LOCK:
        client = _ENQUEUE_CLIENTS.get(url)
        if client is None:
            client = Redis.from_url(url, socket_connect_timeout=_ENQUEUE_SOCKET_TIMEOUT,
                                    socket_timeout=_ENQUEUE_SOCKET_TIMEOUT, retry=Retry(NoBackoff(), 0))
            _ENQUEUE_CLIENTS[url] = client
    return client


def _announcer(connection: Redis | None):
    """How newly stored events are announced to the workers (workers.admitter): one RPUSH per group.

    Called from the writer's announcer thread. Best effort: the rows are committed, so a failure only
    delays processing until the next sweep.
    """
    from workers.queues import announce_events

    def announce(event_ids: list[int], later_ids: list[int]) -> None:
        if connection is None:
            log.warning("events %s stored but not enqueued: REDIS_URL is not set",
                        ", ".join(map(str, event_ids + later_ids)))
            return
        announce_events(connection, event_ids, later_ids)

    return announce


def _json(status: int, body: dict, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    """(status line, headers, body) of a JSON answer."""
    data = json.dumps(body).encode()
    return (f"{status} {HTTP_STATUS_CODES[status]}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers], data)


def _read_body(environ, limit: int) -> bytes:
    """The raw body, at most `limit` bytes.

    Raises:
        RequestEntityTooLarge: longer than `limit` (413). ClientDisconnected: shorter than declared (400).
    """
    raw = get_input_stream(environ, max_content_length=limit).read()
    if len(raw) > limit:  # belt and braces: a chunked body declares no length
        raise RequestEntityTooLarge()
    return raw


class WebhookReceiver:
    """WSGI middleware: answers POST /webhooks/ghl itself and passes every other request to `downstream`."""

    def __init__(self, settings: Settings, *, downstream) -> None:
        self.settings = settings
        self.downstream = downstream
        # This process's inbox writer (integration.inbox_writer); its announcer thread starts on first use.
        self.writer = InboxWriter(ack_db, announce=_announcer(_enqueue_redis(settings.redis_url)))

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != WEBHOOK_PATH:
            return self.downstream(environ, start_response)
        started = time.perf_counter()
        if environ.get("REQUEST_METHOD") != "POST":
            status, headers, body = _json(405, {"error": "only POST is allowed here"}, (("Allow", "POST"),))
            metrics.webhook_answered(None, "not_post")
        else:
            status, headers, body = self._answer(environ)
        start_response(status, headers)
        metrics.WEBHOOK_ACK_SECONDS.observe(time.perf_counter() - started)
        return [body]

    @cached_property
    def verifier(self) -> WebhookVerifier:
        """Built on first use: an app created only for a CLI command never parses the keys."""
        return WebhookVerifier.from_settings(self.settings)

    def _answer(self, environ) -> Answer:
        """200 once stored (or already stored), 429 if it cannot be stored now, a final 4xx for bad input."""
        try:
            return self._receive(environ)
        except HTTPException as exc:
            if exc.code is not None and exc.code < 500:  # 413, or 400 for a body cut short
                metrics.webhook_answered(None, "too_large" if exc.code == 413 else "bad_request")
                return _json(exc.code, {"error": exc.description or exc.name})
            return self._retry_later(exc)
        except Exception as exc:
            return self._retry_later(exc)

    def _receive(self, environ) -> Answer:
        raw_body = _read_body(environ, self.settings.webhook_max_bytes)
        try:
            scheme = self.verifier.verify(raw_body, EnvironHeaders(environ))
        except SignatureError as exc:
            log.info("webhook rejected: %s (%d bytes from %s)", exc.reason, len(raw_body),
                     environ.get("REMOTE_ADDR"))
            metrics.webhook_answered(None, "unsigned")
            return _json(401, {"error": "invalid or missing signature"})
        try:
            payload = parse_payload(raw_body)
        except PayloadError as exc:
            log.warning("signed webhook (%s) rejected: %s (%d bytes)", scheme, exc, len(raw_body))
            metrics.webhook_answered(None, "bad_request")
            return _json(400, {"error": str(exc)})
        receipt = self._store(payload, raw_body)
        return _json(200, {"status": "stored" if receipt.created else "duplicate", "id": receipt.event_id})

    def _store(self, payload: dict, raw_body: bytes) -> Receipt:
        """Committed when it returns: one INSERT on the ack pool (autocommit)."""
        event = classify_event(payload, raw_body=raw_body, app_id=self.settings.ghl_app_id)
        receipt = self.writer.store(event)
        metrics.webhook_answered(event.event_type, "duplicate" if not receipt.created else
                                 "ignored" if receipt.status == "ignored" else "stored")
        # Not for routine ones (answered calls, most call webhooks): a line each would cost the ack path more CPU
        # than storing them, and the row keeps the reason.
        if receipt.created and receipt.status == "ignored" and not event.routine:
            log.info("webhook %s stored as ignored (%s): event %s, location %s", event.event_type,
                     receipt.status_reason, receipt.event_id, event.location_id or "-")
        return receipt

    @staticmethod
    def _retry_later(exc: BaseException) -> Answer:
        """Anything else (database down, a bug) becomes 429 so HighLevel retries: never a 5xx."""
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            log.error("webhook not stored, database unavailable (%s); answered 429", type(exc).__name__)
        else:
            log.error("webhook not stored, unexpected error; answered 429", exc_info=exc)
        metrics.webhook_answered(None, "retry_later")
        return _json(429, {"error": "the webhook could not be stored right now; retry later"},
                     (("Retry-After", str(RETRY_AFTER_SECONDS)),))
