"""The location profile cache: stale-while-revalidate, the generation guard against an invalidation racing a
fetch, Redis trouble, the periodic warm-up. Real Redis; HighLevel is the sandbox over HTTP."""

from __future__ import annotations

import threading

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from integration.extensions import get_redis
from integration.textback.cache import RevalidatingCache
from integration.textback.profiles import LocationProfiles
from integration.textback.together import run_together
from tests.textback.conftest import ACME
from workers.profiles import warm_location_profiles


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def profile_reads(sandbox) -> int:
    return len(sandbox.requests_log(path=f"^/locations/{ACME}$"))


def test_an_invalidation_during_a_fetch_keeps_the_older_answer_out_of_the_cache(redis_client):
    cache = RevalidatingCache(redis_client, prefix="test:thing", hard_ttl=60)
    before_the_change = cache.read("a")
    cache.invalidate("a")  # the webhook lands while that fetch is in flight
    assert cache.put("a", {"name": "old"}, after=before_the_change, fetched_at=1.0) is False
    assert cache.read("a").entry is None

    after_the_change = cache.read("a")
    assert cache.put("a", {"name": "new"}, after=after_the_change, fetched_at=2.0) is True
    entry = cache.read("a").entry
    assert (entry.value, entry.fetched_at) == ({"name": "new"}, 2.0)
    assert 0 < redis_client.ttl("test:thing:a") <= 60


def test_redis_down_means_asking_highlevel_not_failing(acme, sandbox, sender):
    down = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    profiles = LocationProfiles(client=sender.client, redis=down)
    assert profiles.get(ACME).name == "Acme Plumbing"
    assert profiles.refresh_if_older(ACME) is True
    with pytest.raises(RedisError):
        profiles.invalidate(ACME)  # a webhook handler must see this, so its event is retried


def test_a_stale_profile_is_served_and_one_refresher_fetches_it(acme, sandbox, sender):
    clock = Clock()
    profiles = LocationProfiles(client=sender.client, redis=get_redis(), soft_ttl=300, clock=clock)
    profiles.fetch(ACME)
    reads = profile_reads(sandbox)

    clock.now += 301
    found = profiles.lookup(ACME)
    assert (found.profile.name, found.stale) == ("Acme Plumbing", True)
    assert profiles.get(ACME).name == "Acme Plumbing"  # served stale: no HighLevel call
    assert profile_reads(sandbox) == reads

    assert profiles.cache.claim(ACME, seconds=30)  # another worker is refreshing it right now
    assert profiles.refresh_if_older(ACME) is False
    profiles.cache.release(ACME)
    assert profiles.refresh_if_older(ACME) is True
    assert profile_reads(sandbox) == reads + 1
    assert profiles.lookup(ACME).stale is False
    assert profiles.refresh_if_older(ACME) is False


def test_the_periodic_warm_up_fills_missing_profiles_of_live_locations_only_once(acme, sandbox, tb_app, redis_client):
    redis_client.flushdb()
    assert warm_location_profiles() == {"live": 1, "due": 1, "warmed": 1, "failed": 0}
    reads = profile_reads(sandbox)
    assert warm_location_profiles() == {"live": 1, "due": 0, "warmed": 0, "failed": 0}
    assert profile_reads(sandbox) == reads


def test_reads_run_together_and_every_error_waits_for_the_others():
    meeting = threading.Barrier(3, timeout=5)
    assert run_together(*[lambda n=n: (meeting.wait(), n)[1] for n in range(3)]) == [0, 1, 2]

    finished = []

    def slow():
        threading.Event().wait(0.2)
        finished.append("slow")
        return "slow"

    def broken():
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        run_together(broken, slow)
    assert finished == ["slow"]  # nothing left running behind the caller's back
