"""Worker body for the cross-process limiter test (a module, so a spawned process can import it)."""

from __future__ import annotations

import threading

import redis


def acquire_many(redis_url: str, resource_id: str, *, limit: int, window: float, per_thread: int,
                 threads: int, key_prefix: str, max_wait: float) -> list[float]:
    """Run `threads` threads that each acquire `per_thread` slots; return every grant time.

    An acquire that cannot get a slot within `max_wait` raises, and the exception reaches the test.
    """
    from integration.ghl.ratelimit import RedisRateLimiter

    connection = redis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(connection, limit=limit, window=window, key_prefix=key_prefix)
    grants: list[float] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            for _ in range(per_thread):
                granted_at = limiter.acquire(resource_id, max_wait=max_wait)
                with lock:
                    grants.append(granted_at)
        except BaseException as exc:  # handed to the parent process below
            failures.append(exc)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    connection.close()
    if failures:
        raise failures[0]
    return grants
