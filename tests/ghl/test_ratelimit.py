"""The shared limiter, against real Redis, from several processes and threads at once."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest

from integration.ghl import GHLClient, GHLRateLimited, RedisRateLimiter
from tests.ghl.conftest import LOCATION
from tests.ghl.ratelimit_worker import acquire_many
from tests.ghl.scripted_server import json_reply


def most_grants_in_any_window(grants: list[float], window: float) -> int:
    """The largest number of grants inside any half-open window (t - window, t] of the given length."""
    times = sorted(grants)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_window_count_helper_counts_boundaries_like_the_limiter():
    # Guard for the assertion below: grants exactly one window apart are in different windows.
    assert most_grants_in_any_window([0.0, 0.5, 1.0, 1.0], 1.0) == 3
    assert most_grants_in_any_window([0.0, 0.999, 1.5], 1.0) == 2


def test_no_window_exceeds_the_limit_across_processes_and_threads(redis_url, redis_client):
    limit, window = 20, 1.0
    # 2 processes x 3 threads x 12 = 72 requests: at least 3 full windows' worth, so workers must wait.
    per_thread, threads, processes = 12, 3, 2
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        futures = [pool.submit(acquire_many, redis_url, "loc-shared", limit=limit, window=window,
                               per_thread=per_thread, threads=threads, key_prefix="test:rl",
                               # Slots are first come first served: with 6 callers and 20 slots per window
                               # nobody ever needs more than one window. A starving caller would raise.
                               max_wait=2 * window)
                   for _ in range(processes)]
        grants = [granted for future in futures for granted in future.result()]

    assert len(grants) == processes * threads * per_thread
    assert most_grants_in_any_window(grants, window) <= limit
    # And the limiter did not just serialise everything: full windows were used.
    assert most_grants_in_any_window(grants, window) == limit


def test_resources_have_separate_windows(redis_client):
    limiter = RedisRateLimiter(redis_client, limit=2, window=60.0, key_prefix="test:rl")
    assert [limiter.try_acquire("A")[0] for _ in range(3)] == [True, True, False]
    assert limiter.try_acquire("B")[0] is True


def test_acquire_gives_up_after_max_wait(redis_client):
    limiter = RedisRateLimiter(redis_client, limit=1, window=60.0, key_prefix="test:rl")
    limiter.acquire("A")
    with pytest.raises(GHLRateLimited) as caught:
        limiter.acquire("A", max_wait=0.5)
    assert 0 < caught.value.retry_after <= 60.0
    assert caught.value.is_ambiguous is False


def test_observe_blocks_the_resource_when_highlevel_says_it_is_spent(redis_client):
    limiter = RedisRateLimiter(redis_client, limit=100, window=10.0, key_prefix="test:rl")
    limiter.observe("A", {"X-RateLimit-Remaining": "5", "X-RateLimit-Interval-Milliseconds": "10000"})
    assert limiter.try_acquire("A")[0] is True

    limiter.observe("A", {"X-RateLimit-Remaining": "0", "X-RateLimit-Interval-Milliseconds": "10000"})
    granted, wait = limiter.try_acquire("A")
    assert granted is False and 9.0 < wait <= 10.0
    assert limiter.try_acquire("B")[0] is True  # only that resource


def test_client_takes_a_slot_per_attempt_and_shares_a_429_with_other_processes(scripted, sleeps, tokens,
                                                                                redis_client):
    limiter = RedisRateLimiter(redis_client, limit=100, window=10.0, key_prefix="test:rl")
    client = GHLClient(base_url=scripted.url, client_id="cid", client_secret="s", token_provider=tokens,
                       rate_limiter=limiter, sleep=sleeps.append, max_retries=0)
    scripted.queue(json_reply({"pipelines": []}),
                   json_reply({"message": "Too Many Requests"}, status=429, Retry_After="30"))

    client.get_pipelines(LOCATION)
    assert redis_client.zcard(f"test:rl:{{{LOCATION}}}:window") == 1

    with pytest.raises(GHLRateLimited):
        client.get_pipelines(LOCATION)
    # Every process sharing the limiter now waits out HighLevel's Retry-After for this location.
    granted, wait = limiter.try_acquire(LOCATION)
    assert granted is False and 29.0 < wait <= 30.0
    assert limiter.try_acquire("another-location")[0] is True
