"""The sandbox's latency model (integration.sandbox.latency): exact at the stated quantiles, configurable, off by
default, applied to HighLevel's API only and side by side, and the fault switches still work with it on."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from click.testing import CliRunner

from integration.cli import cli
from integration.sandbox.latency import HIGHLEVEL_LATENCY, LatencyError, LatencyModel, parse_latency
from integration.sandbox.seed import SEED_CONTACT_IDS, SEED_LOCATION_IDS
from integration.sandbox.settings import SandboxConfig
from integration.sandbox.state import SandboxState

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
    ("highlevel,seed=7", LatencyModel(150, 400, 1000, 3000, 7)),
    ("seed=7,highlevel,p99=2000", LatencyModel(150, 400, 2000, 6000, 7)),
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
    report = sandbox.control("GET", "latency")
    assert (report["latency"], report["drawn"], report["delayed"], report["observed_ms"]) == (None, 0, 0, None)
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


# -- what the sandbox reports, and where the delay does not apply ------------------------------------------------

CONSTANT_200_MS = "median=200,p95=200,p99=200,max=200"


def test_the_report_shows_the_delays_requests_met_and_starts_over_when_cleared(sandbox):
    token = sandbox.tokens(ACME)["access_token"]
    sandbox.configure(latency=CONSTANT_200_MS)
    for _ in range(3):
        assert sandbox.api("GET", f"/contacts/{CONTACT}", token).status_code == 200

    report = sandbox.control("GET", "latency")
    assert report["latency"]["median_ms"] == 200
    assert (report["delayed"], report["waiting"]) == (3, 0)
    assert report["observed_ms"]["count"] == 3
    assert report["observed_ms"]["p50"] == report["observed_ms"]["max"] == 200.0

    sandbox.control("DELETE", "latency")
    cleared = sandbox.control("GET", "latency")
    assert (cleared["delayed"], cleared["observed_ms"]) == (0, None)
    assert cleared["latency"] == report["latency"]  # the model stays on


def test_a_hundred_requests_wait_at_once(sandbox):
    # 20 calls/s x 5 API calls x up to a second: about a hundred requests wait at the same time.
    token = sandbox.tokens(ACME)["access_token"]
    sandbox.configure(latency="median=500,p95=500,p99=500,max=500", rate_limit=10_000)

    def one(_):
        with requests.Session() as session:  # a connection (and a server thread) each
            return sandbox.api("GET", f"/contacts/{CONTACT}", token, session=session).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(100) as pool:
        statuses = list(pool.map(one, range(100)))
    took = time.monotonic() - started

    assert statuses == [200] * 100
    assert took >= 0.5
    assert took < 10.0  # one after another: 50 s
    report = sandbox.control("GET", "latency")
    assert report["delayed"] == 100
    assert report["peak_waiting"] >= 20  # generous: on a loaded machine not all hundred overlap


def test_pages_the_control_api_and_the_consent_form_are_not_delayed(sandbox):
    sandbox.configure(latency="median=1000,p95=1000,p99=1000,max=1000")

    assert requests.get(f"{sandbox.url}/", timeout=10).status_code == 200
    assert requests.get(f"{sandbox.url}/ui/webhooks", timeout=10).status_code == 200
    sandbox.control("GET", "messages")
    code = sandbox.authorize(ACME)  # the consent form, as a browser posts it
    assert sandbox.control("GET", "latency")["delayed"] == 0

    started = time.monotonic()
    assert sandbox.exchange(code).status_code == 200  # /oauth/token is HighLevel's API: delayed
    assert time.monotonic() - started >= 0.95
    assert sandbox.control("GET", "latency")["delayed"] == 1


def test_slow_waits_on_top_of_the_latency(sandbox):
    token = sandbox.tokens(ACME)["access_token"]
    sandbox.configure(latency=CONSTANT_200_MS)
    sandbox.fault("slow", f"^/contacts/{CONTACT}$", delay=0.3)

    started = time.monotonic()
    answer = sandbox.api("GET", f"/contacts/{CONTACT}", token)

    assert answer.status_code == 200
    assert time.monotonic() - started >= 0.49


def test_timeout_after_accept_still_acts_then_holds_with_the_latency_on(sandbox):
    token = sandbox.tokens(ACME)["access_token"]
    sandbox.configure(latency=CONSTANT_200_MS)
    sandbox.fault("timeout_after_accept", r"^/conversations/messages$", delay=3)
    sms = {"type": "SMS", "contactId": CONTACT, "message": "Sorry we missed you!"}

    with pytest.raises(requests.Timeout):
        sandbox.api("POST", "/conversations/messages", token, json=sms, timeout=1.0)

    assert [m["body"] for m in sandbox.sent_messages(contactId=CONTACT)] == [sms["message"]]
    assert sandbox.control("GET", "latency")["delayed"] >= 1


def test_the_config_read_back_can_be_posted_again(sandbox):
    sandbox.configure(latency="median=40,p95=60,p99=90,seed=4")
    shown = sandbox.control("GET", "config")["latency"]
    assert shown == {"median_ms": 40, "p95_ms": 60, "p99_ms": 90, "max_ms": 270, "seed": 4}

    assert sandbox.configure(latency=shown)["latency"] == shown
    assert sandbox.configure(latency="off")["latency"] is None


def test_a_reset_draws_the_same_seeded_delays_again():
    state = SandboxState(SandboxConfig().updated({"latency": "median=150,p95=400,p99=1000,seed=21"}))
    before = [state.latency_delay() for _ in range(5)]
    state.reset()
    assert [state.latency_delay() for _ in range(5)] == before


def test_a_bad_sandbox_latency_stops_the_sandbox_command_naming_it():
    result = CliRunner().invoke(cli, ["sandbox"], env={"SANDBOX_LATENCY": "median=fast,p95=1,p99=2"})

    assert result.exit_code == 2
    assert "SANDBOX_LATENCY" in result.output and "latency median must be a number" in result.output
