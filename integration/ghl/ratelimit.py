"""A per-resource request limiter shared by every process through Redis (DESIGN §4.4).

HighLevel allows 100 requests per 10 s per app per resource (location or company), across all of
our web and worker processes together (ghl-api-facts §9). Before each call a process reserves a
slot in Redis: one Lua script keeps a sliding-window log (a sorted set of slot times) and, in one
atomic step, hands out the earliest time t, no earlier than any slot already given, such that
(t - window, t] holds fewer than `limit` slots. The caller sleeps until t. So no window of `window`
seconds ever holds more than `limit` calls, callers are served first come first served (no waiting
worker starves while others keep winning the race for a freed slot), and a waiting caller costs one
Redis round trip, not a polling loop. Times come from the Redis server clock, so processes on hosts
with skewed clocks still agree.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping

from redis import Redis

from integration.ghl.errors import GHLRateLimited

__all__ = ["RedisRateLimiter"]

# KEYS[1] window log (zset of grant times in ms, possibly in the near future: reservations)
# KEYS[2] block marker (set after HighLevel said "no more")
# ARGV[1] limit, ARGV[2] window ms, ARGV[3] unique member, ARGV[4] longest acceptable wait in ms
# Returns {wait_ms, slot_ms, reserved}. The slot is the earliest time t >= every earlier slot such that
# (t - window, t] holds fewer than `limit` slots; reserved == 1 when it was taken (wait <= max wait).
# Slots are handed out in the order callers ask (FIFO), so no waiting caller starves.
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local slot = now
local blocked = redis.call('PTTL', KEYS[2])
if blocked > 0 then
  slot = now + blocked
end
local count = redis.call('ZCARD', KEYS[1])
if count > 0 then
  local last = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
  if last > slot then slot = last end
end
if count >= limit then
  local bound = tonumber(redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')[2]) + window
  if bound > slot then slot = bound end
end
local wait = slot - now
if wait > max_wait then
  return {wait, slot, 0}
end
redis.call('ZADD', KEYS[1], slot, ARGV[3])
redis.call('PEXPIRE', KEYS[1], wait + window)
return {wait, slot, 1}
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

    `acquire()` reserves the next free slot and sleeps until it (or raises GHLRateLimited when that is more
    than `max_wait` away); `observe()` reads HighLevel's X-RateLimit-* headers and pauses the resource
    when HighLevel says it is spent.
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

    def reserve(self, resource_id: str, *, max_wait: float) -> tuple[bool, float, float]:
        """Take the next free slot if it is at most `max_wait` seconds away.

        Returns (reserved, seconds until the slot, slot time in epoch seconds on the Redis clock). When
        not reserved, nothing was taken and the seconds say how long the caller would have had to wait.
        """
        wait_ms, slot_ms, reserved = self._acquire(
            keys=self._keys(resource_id),
            args=[self.limit, max(1, round(self.window * 1000)), uuid.uuid4().hex, max(0, round(max_wait * 1000))],
        )
        return bool(int(reserved)), max(int(wait_ms), 0) / 1000.0, int(slot_ms) / 1000.0

    def try_acquire(self, resource_id: str) -> tuple[bool, float]:
        """A slot right now: (True, grant time in epoch seconds) or (False, seconds until one is free)."""
        reserved, wait, slot = self.reserve(resource_id, max_wait=0.0)
        return (True, slot) if reserved else (False, max(wait, 0.001))

    def acquire(self, resource_id: str, *, max_wait: float = 30.0) -> float:
        """Block until a request for `resource_id` may go out; return its slot time (epoch seconds, Redis clock).

        The slot is reserved in one atomic step, first come first served, then this thread sleeps until
        it. Raises GHLRateLimited (with `retry_after`) without taking a slot when the next free one is
        more than `max_wait` seconds away.
        """
        reserved, wait, slot = self.reserve(resource_id, max_wait=max_wait)
        if not reserved:
            raise GHLRateLimited(
                f"local rate limit for resource {resource_id}: next free slot in {wait:.1f}s, more than "
                f"{max_wait:g}s ({self.limit} requests per {self.window:g}s)",
                retry_after=wait,
            )
        if wait > 0:
            self._sleep(wait)
        return slot

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
