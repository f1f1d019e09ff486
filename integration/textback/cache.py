"""A Redis cache of what HighLevel said, served while a little stale, and never rewritten with an answer older
than the last invalidation.

Each entry is JSON with the wall-clock time its fetch started (`fetched_at`): readers decide how old is too
old for them (the send takes an entry up to the hard TTL, the follow-up refreshes it after a few minutes).
Redis expires it at the hard TTL.

The race an invalidating webhook must win: a worker starts fetching, a LocationUpdate drops the entry, the
worker's fetch (begun before the change) lands and would put the old answer back for the whole TTL. So
every entry has a generation counter beside it: a reader notes the generation with the entry (one MGET),
an invalidation increments it, and a write is applied only while the generation is still the one its
fetch started under (one Lua script, atomic in Redis). No clocks are compared across processes.

Redis trouble never fails a text: a read that fails is a miss (the caller asks HighLevel), a write that
fails is skipped. Only `invalidate` raises, so a webhook handler can have its event retried.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

__all__ = ["CacheRead", "CachedEntry", "RevalidatingCache"]

log = logging.getLogger(__name__)

# Compare-and-set on the generation: KEYS = entry, generation; ARGV = value, expected generation, ttl.
_PUT_IF_CURRENT = """
local generation = redis.call('GET', KEYS[2]) or '0'
if generation ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[3]))
return 1
"""
# The generation outlives any fetch by far; it only has to expire eventually (a location gone for good).
_GENERATION_TTL_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class CachedEntry:
    """A cached answer and the wall-clock time (epoch seconds) its fetch started."""

    value: dict
    fetched_at: float

    def age(self, now: float) -> float:
        return max(0.0, now - self.fetched_at)


@dataclass(frozen=True)
class CacheRead:
    """What one read found: the entry (None on a miss), and the generation a write after this read must match
    (None when Redis could not be read: then nothing is written either)."""

    entry: CachedEntry | None
    generation: str | None


class RevalidatingCache:
    """Entries under `{prefix}:{id}`, their generation under `{prefix}:{id}:generation`.

    Args:
        redis: the Redis client; None disables the cache (every read misses, writes do nothing).
        prefix: the key prefix, naming what is cached (e.g. "textback:location-profile").
        hard_ttl: seconds after which Redis drops an entry, however it is used.
        clock: wall-clock seconds (time.time): entries are compared with other processes' writes.
    """

    def __init__(self, redis: Redis | None, *, prefix: str, hard_ttl: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.prefix = prefix
        self.hard_ttl = int(hard_ttl)
        self.clock = clock
        self._put = redis.register_script(_PUT_IF_CURRENT) if redis is not None else None

    def key(self, item_id: str) -> str:
        return f"{self.prefix}:{item_id}"

    def read(self, item_id: str) -> CacheRead:
        """The entry and its generation, in one round trip."""
        if self.redis is None:
            return CacheRead(None, None)
        try:
            raw, generation = self.redis.mget(self.key(item_id), self._generation_key(item_id))
        except RedisError as exc:
            log.warning("%s cache unavailable (%s); asking HighLevel", self.prefix, type(exc).__name__)
            return CacheRead(None, None)
        return CacheRead(self._decode(item_id, raw), _text(generation) or "0")

    def read_many(self, item_ids: list[str]) -> dict[str, CachedEntry | None]:
        """Entries only (for a periodic look over many ids); raises RedisError."""
        if self.redis is None or not item_ids:
            return dict.fromkeys(item_ids)
        values = self.redis.mget([self.key(item_id) for item_id in item_ids])
        return {item_id: self._decode(item_id, raw) for item_id, raw in zip(item_ids, values, strict=True)}

    def put(self, item_id: str, value: dict, *, after: CacheRead, fetched_at: float) -> bool:
        """Store `value` (fetched starting at `fetched_at`, after the read `after`) unless it was invalidated
        since. True when stored."""
        if self._put is None or after.generation is None:
            return False
        document = json.dumps({"fetched_at": fetched_at, "value": value}, separators=(",", ":"))
        try:
            stored = self._put(keys=[self.key(item_id), self._generation_key(item_id)],
                               args=[document, after.generation, self.hard_ttl])
        except RedisError as exc:
            log.warning("%s cache unavailable (%s); not cached", self.prefix, type(exc).__name__)
            return False
        if not stored:
            log.info("%s of %s changed while it was fetched; the older answer is not cached", self.prefix, item_id)
        return bool(stored)

    def invalidate(self, item_id: str) -> None:
        """Drop the entry, and refuse every write whose fetch began before now. Raises RedisError."""
        if self.redis is None:
            return
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(self._generation_key(item_id))
            pipe.expire(self._generation_key(item_id), _GENERATION_TTL_SECONDS)
            pipe.delete(self.key(item_id))
            pipe.execute()

    def claim(self, item_id: str, *, seconds: float) -> bool:
        """One refresher at a time for an entry (SET NX with expiry, in case the refresher dies): True for the one
        that may fetch, which calls `release` when done. Without Redis, always True."""
        if self.redis is None:
            return True
        try:
            return bool(self.redis.set(self._claim_key(item_id), "1", nx=True, px=max(1, int(seconds * 1000))))
        except RedisError:
            return True

    def release(self, item_id: str) -> None:
        if self.redis is None:
            return
        with contextlib.suppress(RedisError):  # it expires by itself
            self.redis.delete(self._claim_key(item_id))

    def _claim_key(self, item_id: str) -> str:
        return f"{self.key(item_id)}:refreshing"

    def _generation_key(self, item_id: str) -> str:
        return f"{self.key(item_id)}:generation"

    def _decode(self, item_id: str, raw) -> CachedEntry | None:
        text = _text(raw)
        if text is None:
            return None
        try:
            document = json.loads(text)
            return CachedEntry(value=dict(document["value"]), fetched_at=float(document["fetched_at"]))
        except (ValueError, TypeError, KeyError):
            log.warning("%s of %s: unreadable cache entry, fetching again", self.prefix, item_id)
            return None


def _text(raw) -> str | None:
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)
