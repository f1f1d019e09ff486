"""Generated sub-accounts for benchmarks with many locations: part of the seed agency, installable in bulk, served
by the API like the seed's; bad counts are a 400."""

from __future__ import annotations

from integration.sandbox.seed import SEED_LOCATION_IDS


def test_generated_sub_accounts_join_the_agency_and_answer_like_the_seed(sandbox):
    ids = sandbox.control("POST", "locations", {"count": 5})["locationIds"]
    assert len(set(ids)) == 5 and not set(ids) & set(SEED_LOCATION_IDS)
    assert sandbox.control("POST", "locations", {"count": 5})["locationIds"] == ids  # the same ones again
    token = sandbox.tokens(ids[4])["access_token"]
    location = sandbox.api("GET", f"/locations/{ids[4]}", token).json()["location"]
    assert location["phone"].startswith("+1") and location["name"].startswith("Gen Services")
    users = sandbox.api("GET", "/users/", token, params={"locationId": ids[4]}).json()["users"]
    assert len(users) == 2
    placed = sandbox.place_call(ids[4], "+12125550177", "no-answer")
    assert placed["contactId"]


def test_a_bad_count_is_refused(sandbox):
    for count in (-1, 10_000, "3", True):
        response = sandbox.http.post(f"{sandbox.url}/_sandbox/locations", json={"count": count}, timeout=10)
        assert response.status_code == 400 and "count must be a whole number" in response.json()["error"]
