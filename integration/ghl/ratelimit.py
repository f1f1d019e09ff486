"""A per-resource request limiter shared by every process through Redis (DESIGN §4.4).

HighLevel allows 100 requests per 10 s per app per resource (location or company), across all of
our web and worker processes together (ghl-api-facts §9). Each process asks Redis for a slot before
a call; one Lua script keeps a sliding-window log (a sorted set of grant times) so the check and the
grant are atomic. Times come from the Redis server clock, so processes on hosts with skewed clocks
still agree on the window.

A grant at time t is refused while `limit` grants already lie in (t - window, t], which means no
window of `window` seconds ever holds more than `limit` grants.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping

from redis import Redis

from integration.ghl.errors import GHLRateLimited

__all__ = ["RedisRateLimiter"]

# KEYS[1] window log (zset of grant times in ms), KEYS[2] block marker (set after HighLevel said "no more")
# ARGV[1] limit, ARGV[2] window in ms, ARGV[3] unique member for this grant
# Returns {wait_ms, now_ms}: wait_ms == 0 means granted at now_ms; otherwise try again after wait_ms.
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local blocked = redis.call('PTTL', KEYS[2])
if blocked > 0 then
  return {blocked, now}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {0, now}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {tonumber(oldest[2]) + window - now, now}
"""

# KEYS[1] block marker; ARGV[1] block for this many ms. Only ever lengthens an existing block.
_BLOCK_LUA = """
local wanted = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < wanted then
  redis.call('SET', KEYS[1], '1', 'PX', wanted)
end
return 0
"""


class RedisRateLimiter:
    """Sliding-window limiter keyed by resource id, shared across processes via Redis.

    `acquire()` blocks until a slot is free (or raises GHLRateLimited after `max_wait`); `observe()`
    reads HighLevel's X-RateLimit-* headers and pauses the resource when HighLevel says it is spent.
    """

    def __init__(self, redis: Redis, *, limit: int = 100, window: float = 10.0, key_prefix: str = "ghl:rl",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.redis = redis
        self.limit = limit
        self.window = window
        self.key_prefix = key_prefix
        self._sleep = sleep
        self._acquire = redis.register_script(_ACQUIRE_LUA)
        self._block = redis.register_script(_BLOCK_LUA)

    def __repr__(self) -> str:
        return f"RedisRateLimiter(limit={self.limit}, window={self.window}, key_prefix={self.key_prefix!r})"

    def _keys(self, resource_id: str) -> list[str]:
        # The braces make both keys hash to one slot, so the script also runs on Redis Cluster.
        return [f"{self.key_prefix}:{{{resource_id}}}:window", f"{self.key_prefix}:{{{resource_id}}}:blocked"]

    def try_acquire(self, resource_id: str) -> tuple[bool, float]:
        """One attempt: (True, grant time in epoch seconds) or (False, seconds to wait before trying again)."""
        wait_ms, now_ms = self._acquire(
            keys=self._keys(resource_id),
            args=[self.limit, max(1, round(self.window * 1000)), uuid.uuid4().hex],
        )
        if int(wait_ms) == 0:
            return True, int(now_ms) / 1000.0
        return False, max(int(wait_ms), 1) / 1000.0

    def acquire(self, resource_id: str, *, max_wait: float = 30.0) -> float:
        """Block until a request for `resource_id` may go out; return the grant time (epoch seconds, Redis clock).

        Raises GHLRateLimited (with `retry_after`) when no slot frees up within `max_wait` seconds.
        """
        deadline = time.monotonic() + max_wait
        while True:
            granted, value = self.try_acquire(resource_id)
            if granted:
                return value
            remaining = deadline - time.monotonic()
            if value > remaining:
                raise GHLRateLimited(
                    f"local rate limit for resource {resource_id}: no free slot within {max_wait:g}s "
                    f"({self.limit} requests per {self.window:g}s)",
                    retry_after=value,
                )
            # A little jitter so the processes that were waiting for the same slot do not all wake at once.
            self._sleep(value + random.uniform(0, min(0.05, value)))

    def block(self, resource_id: str, seconds: float) -> None:
        """Stop granting slots for `resource_id` for `seconds` (HighLevel answered 429 or said it is spent)."""
        if seconds > 0:
            self._block(keys=[self._keys(resource_id)[1]], args=[max(1, round(seconds * 1000))])

    def observe(self, resource_id: str, headers: Mapping[str, str]) -> None:
        """Back off when HighLevel reports `X-RateLimit-Remaining: 0` for the resource.

        The pause lasts one burst interval (`X-RateLimit-Interval-Milliseconds`, else our window): other
        clients of the same app (or a previous deploy) may have used the allowance we did not count.
        """
        remaining = _header_number(headers, "X-RateLimit-Remaining")
        if remaining is None or remaining > 0:
            return
        interval_ms = _header_number(headers, "X-RateLimit-Interval-Milliseconds")
        self.block(resource_id, interval_ms / 1000.0 if interval_ms else self.window)


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None
