"""The sandbox stays consistent when hammered from many threads and from more than one process."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import requests

from integration.config import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from integration.sandbox.seed import SEED_CONTACT_IDS, SEED_LOCATION_IDS

ACME = SEED_LOCATION_IDS[0]
LUIS = SEED_CONTACT_IDS[ACME][1]


def _send_many(url: str, token: str, count: int, label: str) -> list[str]:
    """Send `count` texts; module-level so a spawned process can run it."""
    ids = []
    with requests.Session() as http:
        for n in range(count):
            answer = http.post(f"{url}/conversations/messages", timeout=30,
                               headers={"Authorization": f"Bearer {token}", "Version": "2021-04-15"},
                               json={"type": "SMS", "contactId": LUIS, "message": f"{label}-{n}"})
            answer.raise_for_status()
            ids.append(answer.json()["messageId"])
    return ids


def test_twenty_threads_and_two_processes_sending_at_once(sandbox):
    token = sandbox.tokens(ACME)["access_token"]
    sandbox.configure(rate_limit=10_000)

    with ThreadPoolExecutor(max_workers=20) as threads:
        thread_ids = list(threads.map(lambda i: _send_many(sandbox.url, token, 5, f"t{i}"), range(20)))
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as processes:
        process_ids = list(processes.map(_send_many, [sandbox.url] * 2, [token] * 2, [10, 10], ["p0", "p1"]))

    all_ids = [i for batch in thread_ids + process_ids for i in batch]
    assert len(all_ids) == 120 and len(set(all_ids)) == 120
    sent = sandbox.sent_messages(contactId=LUIS)
    assert sorted(m["messageId"] for m in sent) == sorted(all_ids)
    thread = sandbox.thread(LUIS)["messages"]
    assert {m["id"] for m in thread} >= set(all_ids)
    assert len({m["conversationId"] for m in sent}) == 1


def test_a_refresh_token_raced_by_twenty_threads_is_used_exactly_once(sandbox):
    tokens = sandbox.tokens(ACME)
    form = {"client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET, "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"]}

    def refresh(_):
        return requests.post(f"{sandbox.url}/oauth/token", data=form, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=20) as threads:
        statuses = list(threads.map(refresh, range(20)))

    assert sorted(statuses) == [200] + [401] * 19


def test_the_rate_limit_holds_under_concurrency(sandbox):
    sandbox.configure(rate_limit=25, rate_window=60)
    token = sandbox.tokens(ACME)["access_token"]

    def call(_):
        return requests.get(f"{sandbox.url}/locations/{ACME}", timeout=30,
                            headers={"Authorization": f"Bearer {token}", "Version": "2021-07-28"}).status_code

    with ThreadPoolExecutor(max_workers=20) as threads:
        statuses = list(threads.map(call, range(60)))

    assert statuses.count(200) == 25 and statuses.count(429) == 35
