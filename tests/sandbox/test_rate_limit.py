"""HighLevel's rate limit: per (app, resource) burst window and daily quota, with headers."""

from __future__ import annotations

from integration.sandbox.seed import SEED_CONTACT_IDS, SEED_LOCATION_IDS

ACME, PEAK = SEED_LOCATION_IDS[0], SEED_LOCATION_IDS[1]


def test_every_resource_answer_carries_the_rate_limit_headers(sandbox):
    token = sandbox.tokens(ACME)["access_token"]
    contact = SEED_CONTACT_IDS[ACME][0]

    first = sandbox.api("GET", f"/contacts/{contact}", token)
    second = sandbox.api("GET", "/contacts/NoSuchContact0000000", token)

    assert first.headers["X-RateLimit-Max"] == "100"
    assert first.headers["X-RateLimit-Interval-Milliseconds"] == "10000"
    assert first.headers["X-RateLimit-Limit-Daily"] == "200000"
    assert int(first.headers["X-RateLimit-Daily-Remaining"]) == 199_999
    assert int(first.headers["X-RateLimit-Remaining"]) == 99
    assert second.status_code == 404
    assert int(second.headers["X-RateLimit-Remaining"]) == 98


def test_over_the_burst_limit_is_429_with_retry_after(sandbox):
    sandbox.configure(rate_limit=3, rate_window=60)
    token = sandbox.tokens(ACME)["access_token"]
    path = f"/contacts/{SEED_CONTACT_IDS[ACME][0]}"

    statuses = [sandbox.api("GET", path, token).status_code for _ in range(3)]
    refused = sandbox.api("GET", path, token)

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json() == {"statusCode": 429, "message": "Too Many Requests"}
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_limits_are_per_resource(sandbox):
    sandbox.configure(rate_limit=2, rate_window=60)
    acme = sandbox.tokens(ACME)["access_token"]
    peak = sandbox.tokens(PEAK)["access_token"]

    for _ in range(2):
        sandbox.api("GET", f"/locations/{ACME}", acme)

    assert sandbox.api("GET", f"/locations/{ACME}", acme).status_code == 429
    assert sandbox.api("GET", f"/locations/{PEAK}", peak).status_code == 200


def test_daily_quota(sandbox):
    sandbox.configure(daily_limit=2)
    token = sandbox.tokens(ACME)["access_token"]

    answers = [sandbox.api("GET", f"/locations/{ACME}", token) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[1].headers["X-RateLimit-Daily-Remaining"] == "0"
