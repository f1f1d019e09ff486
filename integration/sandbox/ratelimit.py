"""HighLevel's rate limit: a sliding burst window plus a daily quota per (client, resource)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["RateDecision", "SlidingWindowLimiter"]


@dataclass(frozen=True)
class RateDecision:
    """The outcome of one request against the limits, with the headers HighLevel sends."""

    allowed: bool
    limit: int
    remaining: int
    window_ms: int
    daily_limit: int
    daily_remaining: int
    retry_after: int

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit-Daily": str(self.daily_limit),
            "X-RateLimit-Daily-Remaining": str(self.daily_remaining),
            "X-RateLimit-Interval-Milliseconds": str(self.window_ms),
            "X-RateLimit-Max": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class SlidingWindowLimiter:
    """Thread-safe. Rejected requests do not consume a slot (so a client backing off recovers)."""

    def __init__(self, clock=time.monotonic, wall_clock=time.time) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._daily: dict[tuple[str, str], tuple[int, int]] = {}

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
            self._daily.clear()

    def hit(self, key: tuple[str, str], *, limit: int, window: float, daily_limit: int) -> RateDecision:
        now = self._clock()
        day = int(self._wall_clock() // 86_400)
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - window:
                hits.popleft()
            day_of_count, used_today = self._daily.get(key, (day, 0))
            if day_of_count != day:
                used_today = 0
            burst_full = len(hits) >= limit
            daily_full = used_today >= daily_limit
            if burst_full or daily_full:
                if daily_full:
                    retry_after = 86_400 - int(self._wall_clock() % 86_400)
                elif hits:
                    retry_after = max(1, math.ceil(hits[0] + window - now))
                else:  # a limit of 0: nothing will ever fit in the window
                    retry_after = max(1, math.ceil(window))
                return RateDecision(False, limit, 0, int(window * 1000), daily_limit,
                                    max(0, daily_limit - used_today), retry_after)
            hits.append(now)
            used_today += 1
            self._daily[key] = (day, used_today)
            return RateDecision(True, limit, limit - len(hits), int(window * 1000), daily_limit,
                                daily_limit - used_today, 0)
