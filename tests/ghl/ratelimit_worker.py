"""Worker body for the cross-process limiter test (a module, so a spawned process can import it)."""

from __future__ import annotations

import threading

import redis


def acquire_many(redis_url: str, resource_id: str, *, limit: int, window: float, per_thread: int,
                 threads: int, key_prefix: str) -> list[float]:
    """Run `threads` threads that each acquire `per_thread` slots; return every grant time."""
    from integration.ghl.ratelimit import RedisRateLimiter

    connection = redis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(connection, limit=limit, window=window, key_prefix=key_prefix)
    grants: list[float] = []
    lock = threading.Lock()

    def run() -> None:
        for _ in range(per_thread):
            granted_at = limiter.acquire(resource_id, max_wait=60.0)
            with lock:
                grants.append(granted_at)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    connection.close()
    return grants
