"""What the latency model did: how many API answers it delayed, how many wait right now, and the delays seen.

A benchmark reads it from GET /_sandbox/latency to check that the delays it asked for are the ones its
requests met (and that they waited side by side: `peak_waiting` far above one), instead of trusting the
configuration. The observed quantiles are over the most recent delays only, so a long run does not grow
the sandbox's memory.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager

__all__ = ["LatencyStats"]

# Enough for a minute at 20 missed calls/s x 5 API calls each, several times over.
_RECENT_DELAYS = 50_000


class LatencyStats:
    """Thread-safe counters of the delays the sandbox applied; `clear()` starts over."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recent_ms: deque[float] = deque(maxlen=_RECENT_DELAYS)
        self._delayed = 0
        self._waiting = 0
        self._peak_waiting = 0

    def clear(self) -> None:
        with self._lock:
            self._recent_ms.clear()
            self._delayed = 0
            # Requests waiting now still leave through wait(); only the peak starts over from them.
            self._peak_waiting = self._waiting

    @contextmanager
    def waiting(self, seconds: float):
        """Count one request as waiting `seconds` while the caller sleeps inside the block (no lock held)."""
        with self._lock:
            self._recent_ms.append(seconds * 1000.0)
            self._delayed += 1
            self._waiting += 1
            self._peak_waiting = max(self._peak_waiting, self._waiting)
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1

    def wait(self, seconds: float) -> None:
        """Sleep `seconds`, counted."""
        with self.waiting(seconds):
            time.sleep(seconds)

    def snapshot(self) -> dict:
        with self._lock:
            recent = sorted(self._recent_ms)
            report = {"delayed": self._delayed, "waiting": self._waiting, "peak_waiting": self._peak_waiting}
        report["observed_ms"] = _quantiles(recent)
        return report


def _quantiles(ordered: list[float]) -> dict | None:
    """Nearest-rank quantiles of the recent delays, in ms (None before the first delay)."""
    if not ordered:
        return None

    def rank(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)

    return {"count": len(ordered), "p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99),
            "max": round(ordered[-1], 1), "mean": round(sum(ordered) / len(ordered), 1)}
