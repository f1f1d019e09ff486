"""SandboxState: everything the simulated HighLevel remembers, guarded by one lock.

The sandbox is one threaded process; the app's tests hit it from many threads and processes at
once, so every read-modify-write of the World happens under `state.lock`. The token store, the
rate limiter, the fault list and the webhook dispatcher have their own internal locks.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from integration.sandbox.faults import FaultInjector
from integration.sandbox.ids import iso
from integration.sandbox.latency import LatencySampler
from integration.sandbox.latency_stats import LatencyStats
from integration.sandbox.ratelimit import SlidingWindowLimiter
from integration.sandbox.seed import build_seed
from integration.sandbox.settings import SandboxConfig
from integration.sandbox.tokens import TokenStore
from integration.sandbox.world import World

__all__ = ["Install", "SandboxState"]

_REQUEST_LOG_SIZE = 20_000


@dataclass
class Install:
    """The app installed on one sub-account (what /oauth/installedLocations reports)."""

    location_id: str
    company_id: str
    installed_at: str
    bulk: bool


class SandboxState:
    """The sandbox's memory. `reset()` returns to the seed with the start-up configuration."""

    def __init__(self, config: SandboxConfig) -> None:
        self.lock = threading.RLock()
        self.initial_config = config
        self.config = config
        self.world: World = build_seed()
        self.tokens = TokenStore()
        self.limiter = SlidingWindowLimiter()
        self.faults = FaultInjector()
        self.installs: dict[str, Install] = {}
        # Agencies that bulk-installed: new sub-accounts would get the app too.
        self.future_installs: set[str] = set()
        self._requests: deque[dict] = deque(maxlen=_REQUEST_LOG_SIZE)
        self._requests_lock = threading.Lock()
        # Set by create_sandbox_app (the dispatcher needs the state's config to deliver).
        self.dispatcher = None
        self._latency: LatencySampler | None = None
        self.latency_stats = LatencyStats()

    def reset(self) -> None:
        with self.lock:
            self.config = self.initial_config
            self.world = build_seed()
            self.installs.clear()
            self.future_installs.clear()
        self.tokens.reset()
        self.limiter.reset()
        self.faults.clear()
        # A fresh sampler: after a reset a seeded model draws the same delays again, as at start-up.
        self._latency = None
        self.latency_stats.clear()
        with self._requests_lock:
            self._requests.clear()
        if self.dispatcher is not None:
            self.dispatcher.reset()

    def update_config(self, changes: dict) -> SandboxConfig:
        with self.lock:
            self.config = self.config.updated(changes)
            return self.config

    # -- latency (integration.sandbox.latency) ---------------------------------------------------------

    def latency_delay(self) -> float:
        """Seconds the current API request waits before it is handled; 0 with the latency model off."""
        model = self.config.latency
        if model is None:
            return 0.0
        sampler = self._latency
        if sampler is None or sampler.model is not model:
            with self.lock:
                if self._latency is None or self._latency.model is not model:
                    self._latency = model.sampler()
                sampler = self._latency
        return sampler.draw_seconds()

    def latency_report(self) -> dict:
        model = self.config.latency
        sampler = self._latency if self._latency is not None and self._latency.model is model else None
        return {"latency": model.to_dict() if model else None, "drawn": sampler.drawn if sampler else 0,
                **self.latency_stats.snapshot()}

    # -- request log (never tokens, never bodies) ----------------------------------------------------

    def log_request(self, entry: dict) -> None:
        entry.setdefault("at", iso())
        with self._requests_lock:
            self._requests.append(entry)

    def requests(self) -> list[dict]:
        with self._requests_lock:
            return list(self._requests)

    # -- installs ------------------------------------------------------------------------------------

    def record_install(self, *, location_id: str, company_id: str, bulk: bool) -> None:
        with self.lock:
            if location_id not in self.installs:
                self.installs[location_id] = Install(location_id, company_id, iso(), bulk)

    def is_installed(self, location_id: str) -> bool:
        with self.lock:
            return location_id in self.installs
