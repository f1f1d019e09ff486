"""Signed webhook delivery, as HighLevel does it.

The body is compact JSON (what JSON.stringify produces) carrying `timestamp` and `webhookId`; those
exact bytes are signed with the sandbox's Ed25519 key (`x-ghl-signature`) and RSA key
(`x-wh-signature`, PKCS#1 v1.5 SHA-256), both base64. Delivery happens on background threads so an
API request never waits for the app. Like HighLevel, only a 429 answer is retried (by default six
times, ten minutes apart plus jitter); any other answer, or a network error, is final. Every
attempt is logged and kept in the delivery log.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from integration.sandbox.ids import iso
from integration.sandbox.settings import SandboxConfig

__all__ = ["Delivery", "WebhookDispatcher", "WebhookSigner", "encode_payload"]

log = logging.getLogger(__name__)

_MAX_LOG = 5_000


def encode_payload(payload: dict) -> bytes:
    """Compact JSON, key order kept: byte-identical to JSON.stringify of the same object."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookSigner:
    """Signs body bytes with the sandbox's private keys (integration.sandbox.keys)."""

    def __init__(self, ed25519_key, rsa_key) -> None:
        self._ed25519 = ed25519_key
        self._rsa = rsa_key

    def headers(self, body: bytes) -> dict[str, str]:
        ed_signature = self._ed25519.sign(body)
        rsa_signature = self._rsa.sign(body, padding.PKCS1v15(), hashes.SHA256())
        return {
            "Content-Type": "application/json",
            "User-Agent": "HighLevel-Sandbox-Webhooks/1.0",
            "x-ghl-signature": base64.b64encode(ed_signature).decode(),
            "x-wh-signature": base64.b64encode(rsa_signature).decode(),
        }


@dataclass
class Delivery:
    """One webhook and its attempts. `state`: pending, retrying, delivered, failed or gave_up."""

    webhook_id: str
    event_type: str
    url: str
    body: bytes
    headers: dict[str, str]
    retry_delays: tuple[float, ...]
    jitter: float
    timeout: float
    generation: int
    location_id: str | None = None
    state: str = "pending"
    attempts: list[dict] = field(default_factory=list)
    created_at: str = field(default_factory=iso)

    def to_dict(self, *, with_payload: bool = True) -> dict:
        data = {
            "webhookId": self.webhook_id,
            "type": self.event_type,
            "locationId": self.location_id,
            "url": self.url,
            "state": self.state,
            "attempts": [dict(a) for a in self.attempts],
            "createdAt": self.created_at,
        }
        if with_payload:
            data["payload"] = json.loads(self.body)
        return data


class WebhookDispatcher:
    """Delivers signed webhooks on a small thread pool; a scheduler thread runs 429 retries."""

    def __init__(self, signer: WebhookSigner, config: Callable[[], SandboxConfig], *, workers: int = 8) -> None:
        self._signer = signer
        self._config = config
        self._lock = threading.Condition()
        self._log: dict[str, Delivery] = {}
        self._order: list[str] = []
        self._schedule: list[tuple[float, int, Delivery]] = []
        self._tiebreak = itertools.count()
        self._generation = 0
        self._stopping = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox-webhook")
        self._scheduler = threading.Thread(target=self._run_schedule, name="sandbox-webhook-retries", daemon=True)
        self._scheduler.start()

    # -- public --------------------------------------------------------------------------------------

    def deliver(self, payload: dict, *, wait: bool = False) -> Delivery | None:
        """Stamp, sign and send `payload`. Returns None when the event type is switched off.

        With `wait`, the first attempt happens on the caller's thread and the result is returned
        (retries after a 429 still run in the background).
        """
        config = self._config()
        event_type = str(payload.get("type", ""))
        if config.webhook_events is not None and event_type not in config.webhook_events:
            return None
        payload = dict(payload)
        payload.setdefault("timestamp", iso())
        payload.setdefault("webhookId", str(uuid.uuid4()))
        body = encode_payload(payload)
        with self._lock:
            delivery = Delivery(
                webhook_id=str(payload["webhookId"]), event_type=event_type, url=config.webhook_url, body=body,
                headers=self._signer.headers(body), retry_delays=config.webhook_retry_delays,
                jitter=config.webhook_retry_jitter, timeout=config.webhook_timeout, generation=self._generation,
                location_id=payload.get("locationId"),
            )
            self._remember(delivery)
        if wait:
            self._attempt(delivery)
        else:
            self._pool.submit(self._attempt, delivery)
        return delivery

    def deliveries(self, *, webhook_id: str | None = None, event_type: str | None = None) -> list[dict]:
        with self._lock:
            found = [self._log[w] for w in self._order]
            if webhook_id:
                found = [d for d in found if d.webhook_id == webhook_id]
            if event_type:
                found = [d for d in found if d.event_type == event_type]
            return [d.to_dict() for d in found]

    def get(self, webhook_id: str) -> dict | None:
        with self._lock:
            delivery = self._log.get(webhook_id)
            return delivery.to_dict() if delivery else None

    def reset(self) -> None:
        """Forget the log and drop scheduled retries (attempts already in flight finish unlogged)."""
        with self._lock:
            self._generation += 1
            self._log.clear()
            self._order.clear()
            self._schedule.clear()
            self._lock.notify_all()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._schedule.clear()
            self._lock.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- internals -----------------------------------------------------------------------------------

    def _remember(self, delivery: Delivery) -> None:
        self._log[delivery.webhook_id] = delivery
        self._order.append(delivery.webhook_id)
        while len(self._order) > _MAX_LOG:
            self._log.pop(self._order.pop(0), None)

    def _attempt(self, delivery: Delivery) -> None:
        number = len(delivery.attempts) + 1
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            response = requests.post(delivery.url, data=delivery.body, headers=delivery.headers,
                                     timeout=delivery.timeout, allow_redirects=False)
            status = response.status_code
            response.close()
        except requests.RequestException as exc:
            error = type(exc).__name__
        elapsed_ms = int((time.monotonic() - started) * 1000)
        with self._lock:
            if delivery.generation != self._generation or self._stopping:
                return
            delivery.attempts.append({"attempt": number, "at": iso(), "status": status, "error": error,
                                      "durationMs": elapsed_ms})
            retries_used = number - 1
            if status == 429 and retries_used < len(delivery.retry_delays):
                delay = delivery.retry_delays[retries_used]
                delay += random.uniform(0, delay * delivery.jitter)
                delivery.state = "retrying"
                heapq.heappush(self._schedule, (time.monotonic() + delay, next(self._tiebreak), delivery))
                self._lock.notify_all()
            elif status is not None and 200 <= status < 300:
                delivery.state = "delivered"
            elif status == 429:
                delivery.state = "gave_up"
            else:
                delivery.state = "failed"
        log.info("webhook %s %s attempt %d to %s -> %s (%d ms)", delivery.event_type, delivery.webhook_id, number,
                 delivery.url, status if status is not None else error, elapsed_ms)

    def _run_schedule(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and (not self._schedule or self._schedule[0][0] > time.monotonic()):
                    timeout = self._schedule[0][0] - time.monotonic() if self._schedule else None
                    self._lock.wait(timeout)
                if self._stopping:
                    return
                _, _, delivery = heapq.heappop(self._schedule)
            try:
                self._pool.submit(self._attempt, delivery)
            except RuntimeError:  # pool shut down while stopping
                return
