"""The sandbox's latency model (integration.sandbox.latency): exact at the stated quantiles, configurable, off by
default, applied to HighLevel's API only and side by side, and the fault switches still work with it on."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from integration.sandbox.latency import HIGHLEVEL_LATENCY, LatencyError, LatencyModel, parse_latency
from integration.sandbox.seed import SEED_CONTACT_IDS, SEED_LOCATION_IDS

ACME = SEED_LOCATION_IDS[0]
CONTACT = SEED_CONTACT_IDS[ACME][1]


def test_the_quantile_function_is_exact_at_median_p95_and_p99():
    model = HIGHLEVEL_LATENCY
    assert model.quantile(0.5) == pytest.approx(150)
    assert model.quantile(0.95) == pytest.approx(400)
    assert model.quantile(0.99) == pytest.approx(1000)
    assert model.quantile(0.99999) == 3000  # capped at max


def test_draws_follow_the_distribution_and_repeat_with_a_seed():
    model = LatencyModel(median_ms=150, p95_ms=400, p99_ms=1000, max_ms=3000, seed=11)
    sampler = model.sampler()
    draws = sorted(sampler.draw_seconds() * 1000 for _ in range(40_000))
    assert draws[len(draws) // 2] == pytest.approx(150, rel=0.05)
    assert draws[int(len(draws) * 0.95)] == pytest.approx(400, rel=0.06)
    assert draws[int(len(draws) * 0.99)] == pytest.approx(1000, rel=0.12)
    assert max(draws) <= 3000
    first, second = model.sampler(), model.sampler()
    assert [first.draw_seconds() for _ in range(5)] == [second.draw_seconds() for _ in range(5)]


@pytest.mark.parametrize(("text", "expected"), [
    ("off", None), ("", None), ("highlevel", HIGHLEVEL_LATENCY), ("default", HIGHLEVEL_LATENCY),
    ("median=50,p95=80,p99=100,max=150,seed=3", LatencyModel(50, 80, 100, 150, 3)),
    ({"median": 20, "p95": 30, "p99": 40}, LatencyModel(20, 30, 40, 120)),
])
def test_settings_in_words_or_json(text, expected):
    assert parse_latency(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("median=abc,p95=1,p99=2", "latency median must be a number"),
    ("median=100,p95=50,p99=200", "median <= p95 <= p99 <= max"),
    ("median=100", "latency needs p95, p99"),
    ("fast", "expected off, highlevel or median="),
    ({"median": 1, "p95": 2, "p99": 3, "jitter": 1}, "unknown field(s) jitter"),
    ({"median": -1, "p95": 2, "p99": 3}, "latency median must be a number of milliseconds > 0"),
    (42, "latency must be null"),
])
def test_bad_settings_say_which_field(text, message):
    with pytest.raises(LatencyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_latency(text)


def test_it_is_off_by_default_and_bad_control_input_is_a_400(sandbox):
    assert sandbox.control("GET", "latency") == {"latency": None, "drawn": 0}
    bad = {"latency": {"median": "slow", "p95": 1, "p99": 2}}
    response = sandbox.http.post(f"{sandbox.url}/_sandbox/config", json=bad, timeout=10)
    assert response.status_code == 400 and "latency median must be a number of milliseconds" in response.json()["error"]
    assert sandbox.control("GET", "config")["latency"] is None


def _timed_get(sandbox, token):
    started = time.monotonic()
    response = sandbox.api("GET", f"/contacts/{CONTACT}", token)
    return response.status_code, time.monotonic() - started


def test_api_answers_wait_side_by_side_and_the_control_api_does_not_wait(sandbox):
    token = sandbox.tokens(ACME)["access_token"]
    sandbox.configure(latency={"median": 300, "p95": 300, "p99": 300, "max": 300})
    status, took = _timed_get(sandbox, token)
    assert status == 200 and took >= 0.29
    # Twenty at once finish in about one delay, not twenty (lower bound only for the single one above; here the
    # bound is generous: sequential waits would take 6 s).
    started = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _: _timed_get(sandbox, token), range(20)))
    assert {status for status, _ in results} == {200}
    assert time.monotonic() - started < 3.0
    control_started = time.monotonic()
    sandbox.control("GET", "messages")
    assert time.monotonic() - control_started < 0.29
    assert sandbox.control("GET", "latency")["drawn"] >= 21


def test_faults_still_fire_with_the_latency_on(sandbox):
    token = sandbox.tokens(ACME)["access_token"]
    sandbox.configure(latency="median=100,p95=100,p99=100,max=100")
    sandbox.fault("500", f"^/contacts/{CONTACT}$", times=1)
    sandbox.fault("hang", f"^/contacts/{CONTACT}$", times=1, delay=0.2)
    first = sandbox.api("GET", f"/contacts/{CONTACT}", token)
    started = time.monotonic()
    second = sandbox.api("GET", f"/contacts/{CONTACT}", token)
    assert (first.status_code, second.status_code) == (500, 504)
    assert time.monotonic() - started >= 0.29  # latency, then the hang
    assert sandbox.api("GET", f"/contacts/{CONTACT}", token).status_code == 200
    entries = sandbox.requests_log(path=f"^/contacts/{CONTACT}$")
    assert [e["fault"] for e in entries[-3:]] == ["500", "hang", None]
    assert all(isinstance(e["arrived"], float) for e in entries)
