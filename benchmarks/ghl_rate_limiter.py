"""Benchmark the shared HighLevel rate limiter: overhead per call, and the limit held under contention.

    python benchmarks/ghl_rate_limiter.py [--redis redis://127.0.0.1:6379/14] [--processes 4] [--threads 8]

Two runs against real Redis (REDIS_URL, else an embedded one):
1. overhead: a limit no one reaches, so every acquire is one Lua round trip; prints p50/p99 latency.
2. contention: processes x threads hammer one location at the configured limit for a few windows;
   prints the grant rate and the most grants seen in any window (must be <= the limit).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _worker(redis_url: str, *, limit: int, window: float, threads: int, seconds: float,
            resource: str) -> tuple[list[float], list[float]]:
    import redis

    from integration.ghl.ratelimit import RedisRateLimiter

    limiter = RedisRateLimiter(redis.Redis.from_url(redis_url), limit=limit, window=window, key_prefix="bench:rl")
    grants: list[float] = []
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def run() -> None:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            granted_at = limiter.acquire(resource, max_wait=window * 2)
            elapsed = time.perf_counter() - started
            with lock:
                grants.append(granted_at)
                latencies.append(elapsed)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return grants, latencies


def most_in_any_window(grants: list[float], window: float) -> int:
    times, best, start = sorted(grants), 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def run(redis_url: str, *, processes: int, threads: int, limit: int, window: float, seconds: float,
        resource: str) -> tuple[list[float], list[float]]:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        futures = [pool.submit(_worker, redis_url, limit=limit, window=window, threads=threads, seconds=seconds,
                               resource=resource) for _ in range(processes)]
        results = [future.result() for future in futures]
    return [g for grants, _ in results for g in grants], [x for _, lat in results for x in lat]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=25.0, help="contention run length")
    args = parser.parse_args()

    embedded = None
    if not args.redis:
        from integration.embedded_redis import EmbeddedRedis

        embedded = EmbeddedRedis().start()
        args.redis = embedded.url
    try:
        _, latencies = run(args.redis, processes=args.processes, threads=args.threads, limit=10**9, window=1.0,
                           seconds=3.0, resource=f"bench-free-{time.time()}")
        quantiles = statistics.quantiles(latencies, n=100)
        print(f"overhead: {len(latencies)} acquires, "
              f"p50 {quantiles[49] * 1e3:.2f} ms, p99 {quantiles[98] * 1e3:.2f} ms")

        grants, _ = run(args.redis, processes=args.processes, threads=args.threads, limit=args.limit,
                        window=args.window, seconds=args.seconds, resource=f"bench-busy-{time.time()}")
        span = max(grants) - min(grants)
        print(f"contention: {len(grants)} grants in {span:.1f} s ({len(grants) / max(span, 1e-9):.1f}/s), "
              f"most in any {args.window:g} s window: {most_in_any_window(grants, args.window)} (limit {args.limit})")
    finally:
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    main()
