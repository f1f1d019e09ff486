"""How long the sandbox makes each API answer wait: HighLevel takes 100-500 ms per call, more at peak.

Off unless asked for (tests and `make run` stay instant). Benchmarks turn it on with `SANDBOX_LATENCY` when they
start the sandbox, or at run time through `POST /_sandbox/config {"latency": ...}`:

    off | none                          no delay (the default)
    highlevel | default                 median 150 ms, p95 400 ms, p99 1000 ms, at most 3000 ms
    median=150,p95=400,p99=1000[,max=3000][,seed=7]
    highlevel,seed=7                    HighLevel's figures, any of them (or the seed) changed

The delay is drawn per request, from a distribution that is exact at the three quantiles: a lognormal body up to
p95 (its sigma from median and p95), steeper above (the slope through p95 and p99 on the normal scale), capped at
`max`. A single lognormal cannot hit all three (with median 150 and p95 400 its p99 would be ~600 ms): real tails
are fatter than their body. Seeded, the draws repeat run to run.

Where it applies: every request to HighLevel's API routes (OAuth tokens, contacts, conversations, opportunities,
locations, users, calendars), before the endpoint acts, as network and server time; never to the control API
(/_sandbox), the sandbox's own pages or its webhook deliveries. A fault adds to it: `slow` waits its delay on top,
`timeout_after_accept` acts then holds its answer, a `429`/`500`/`html_error`/`hang` answers after the latency
without acting. The wait holds no lock: concurrent requests wait side by side.

What waits before the endpoint also waits before its bookkeeping: the rate limit counts a request when it
reaches the endpoint (limits and headers unchanged), a one-shot fault goes to the first matching request
whose latency has ended, and a message's `dateAdded` is the end of its latency; the request log's
`arrived` is the moment it came in. So a client pacing itself at exactly 100 per 10 s can, through the
jitter, have 101 counted in one window; a benchmark that checks our own per-location rate should count
on `arrived` (the pipeline benchmark lifts the sandbox's limits anyway). GET /_sandbox/latency reports
the model, the delays requests met and how many waited at once (integration.sandbox.latency_stats).
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from statistics import NormalDist

__all__ = ["HIGHLEVEL_LATENCY", "LatencyError", "LatencyModel", "parse_latency"]

_Z95 = NormalDist().inv_cdf(0.95)
_Z99 = NormalDist().inv_cdf(0.99)


class LatencyError(ValueError):
    """A latency setting is malformed; the message names the field."""


@dataclass(frozen=True)
class LatencyModel:
    """Per-request delay in milliseconds, exact at median, p95 and p99 (see the module docstring)."""

    median_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("median_ms", "p95_ms", "p99_ms", "max_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise LatencyError(f"latency {name.removesuffix('_ms')} must be a number of milliseconds > 0")
        if not self.median_ms <= self.p95_ms <= self.p99_ms <= self.max_ms:
            raise LatencyError("latency must grow: median <= p95 <= p99 <= max")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise LatencyError("latency seed must be a whole number")

    def quantile(self, fraction: float) -> float:
        """The delay (ms) at `fraction` (0 < fraction < 1)."""
        return self.at_z(NormalDist().inv_cdf(fraction))

    def at_z(self, z: float) -> float:
        """The delay (ms) at standard-normal score `z`: the quantile function on the normal scale."""
        log_median = math.log(self.median_ms)
        body = (math.log(self.p95_ms) - log_median) / _Z95
        if z <= _Z95:
            value = log_median + body * z
        else:
            tail = (math.log(self.p99_ms) - math.log(self.p95_ms)) / (_Z99 - _Z95)
            value = math.log(self.p95_ms) + tail * (z - _Z95)
        return min(math.exp(value), self.max_ms)

    def sampler(self) -> LatencySampler:
        return LatencySampler(self)

    def to_dict(self) -> dict:
        return {"median_ms": self.median_ms, "p95_ms": self.p95_ms, "p99_ms": self.p99_ms, "max_ms": self.max_ms,
                "seed": self.seed}


class LatencySampler:
    """Draws delays (seconds) from a model; thread-safe, reproducible when the model has a seed."""

    def __init__(self, model: LatencyModel) -> None:
        self.model = model
        self._random = random.Random(model.seed)
        self._lock = threading.Lock()
        self.drawn = 0

    def draw_seconds(self) -> float:
        with self._lock:
            z = self._random.gauss(0.0, 1.0)
            self.drawn += 1
        return self.model.at_z(z) / 1000.0


HIGHLEVEL_LATENCY = LatencyModel(median_ms=150, p95_ms=400, p99_ms=1000, max_ms=3000)
_FIELDS = {"median": "median_ms", "p95": "p95_ms", "p99": "p99_ms", "max": "max_ms", "seed": "seed"}
# The model's own names (what GET /_sandbox/config shows) are accepted too, so a config read back can be posted.
_ALIASES = {long: short for short, long in _FIELDS.items()}
_PRESET_WORDS = frozenset({"highlevel", "default", "on", "true"})
_HIGHLEVEL_FIGURES = {"median": HIGHLEVEL_LATENCY.median_ms, "p95": HIGHLEVEL_LATENCY.p95_ms,
                      "p99": HIGHLEVEL_LATENCY.p99_ms}


def parse_latency(value) -> LatencyModel | None:
    """A latency setting (the env var's text, or the control API's JSON) as a model; None for off.

    Raises:
        LatencyError: the value is malformed (the message names the field).
    """
    if value is None or value is False:
        return None
    if isinstance(value, LatencyModel):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"", "off", "none", "0", "false"}:
            return None
        if text in _PRESET_WORDS:
            return HIGHLEVEL_LATENCY
        parts: dict = {}
        for item in text.split(","):
            name, sep, raw = item.partition("=")
            name = _ALIASES.get(name.strip(), name.strip())
            if not sep and name in _PRESET_WORDS:
                # "highlevel,seed=7": HighLevel's figures with a seed (or any figure) changed; the cap is
                # derived again unless given, so "highlevel,p99=5000" stays valid.
                parts = {**_HIGHLEVEL_FIGURES, **parts}
                continue
            if not sep or name not in _FIELDS:
                raise LatencyError(f"latency: expected off, highlevel or median=..,p95=..,p99=..[,max=..][,seed=..]; "
                                   f"got {item.strip()!r}")
            try:
                parts[name] = int(raw) if name == "seed" else float(raw)
            except ValueError:
                raise LatencyError(f"latency {name} must be a number, got {raw.strip()!r}") from None
        value = parts
    if not isinstance(value, dict):
        raise LatencyError("latency must be null, \"off\", \"highlevel\" or an object with median, p95 and p99 (ms)")
    value = {_ALIASES.get(name, name): setting for name, setting in value.items()}
    unknown = set(value) - set(_FIELDS)
    if unknown:
        raise LatencyError(f"latency: unknown field(s) {', '.join(sorted(unknown))}")
    missing = {"median", "p95", "p99"} - set(value)
    if missing:
        raise LatencyError(f"latency needs {', '.join(sorted(missing))} (milliseconds)")
    p99 = value["p99"]
    maximum = value.get("max", max(3 * p99, 1) if isinstance(p99, int | float) and not isinstance(p99, bool) else p99)
    return LatencyModel(median_ms=value["median"], p95_ms=value["p95"], p99_ms=value["p99"], max_ms=maximum,
                        seed=value.get("seed"))
