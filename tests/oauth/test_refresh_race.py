"""The refresh race: callers in several processes and threads need a token for the same location whose
access token has expired. Exactly one refresh reaches HighLevel, every caller gets a working token,
and the single-use rule is never violated (no refresh is ever rejected)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from integration.db import utcnow
from integration.sandbox.seed import SEED_LOCATION_IDS
from tests.oauth.token_race_worker import race

LOCATION_ID = SEED_LOCATION_IDS[0]
PROCESSES = 2
THREADS_PER_PROCESS = 10
THREADS_IN_TEST_PROCESS = 10
REPO = Path(__file__).resolve().parents[2]


def _child_environ(settings, sandbox) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GHL_", "TEXTBACK_", "TOKEN_"))}
    environ.update({
        "TEXTBACK_ENV": "development",
        "TEXTBACK_INSTANCE_PATH": settings.instance_path,
        "TEXTBACK_SANDBOX_URL": sandbox.url,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "TOKEN_ENCRYPTION_KEYS": ",".join(settings.token_encryption_keys),
        "PUBLIC_BASE_URL": settings.public_base_url,
        "LOG_LEVEL": "DEBUG",
    })
    return environ


@pytest.mark.parametrize("expired_where", ["in_our_records", "only_at_highlevel"])
def test_one_refresh_for_many_concurrent_callers_across_processes(dance, oauth, oauth_app, sandbox, sandbox_settings,
                                                                     watched_tokens, expired_where):
    assert dance.install(location_id=LOCATION_ID).status_code == 302
    with oauth.database.transaction() as session:
        row = oauth.store.find(session, LOCATION_ID)
        watched_tokens.update({oauth.store.access_token_of(row), oauth.store.refresh_token_of(row)})
        if expired_where == "in_our_records":
            row.expires_at = utcnow() - timedelta(minutes=1)
    # HighLevel has expired it either way: a caller that used the old token would get a 401.
    sandbox.control("POST", "tokens/expire", json={"resourceId": LOCATION_ID})

    run_key = f"race:{time.monotonic_ns()}"
    children = [
        subprocess.Popen([sys.executable, "-m", "tests.oauth.token_race_worker", LOCATION_ID,
                          str(THREADS_PER_PROCESS), run_key],
                         cwd=REPO, env=_child_environ(sandbox_settings, sandbox), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(PROCESSES)
    ]
    control = redis.Redis.from_url(sandbox_settings.redis_url)
    local_results: list[dict] = []
    local = threading.Thread(target=lambda: local_results.extend(race(
        oauth_app, location_id=LOCATION_ID, threads=THREADS_IN_TEST_PROCESS,
        redis_url=sandbox_settings.redis_url, run_key=run_key)))
    local.start()
    try:
        deadline = time.monotonic() + 60
        while int(control.get(f"{run_key}:ready") or 0) < PROCESSES + 1:
            assert time.monotonic() < deadline, "race processes did not get ready"
            assert all(child.poll() is None for child in children), "a race process died while starting"
            time.sleep(0.01)
        control.set(f"{run_key}:go", 1)
        outputs = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
        control.close()
    local.join(timeout=120)

    child_logs = "\n".join(err for _, err in outputs)
    assert all(child.returncode == 0 for child in children), child_logs[-3000:]
    results = local_results + [json.loads(line) for out, _ in outputs for line in out.splitlines() if line]
    assert len(results) == PROCESSES * THREADS_PER_PROCESS + THREADS_IN_TEST_PROCESS
    refreshes = [r for r in sandbox.requests_log(path="^/oauth/token$") if r.get("grant_type") == "refresh_token"]
    diagnosis = f"refreshes={refreshes}\nchild logs (tail):\n{child_logs[-3000:]}"
    assert [r for r in results if not r["ok"]] == [], diagnosis
    assert len({r["token"] for r in results}) == 1, diagnosis  # everyone ended up with the one refreshed token
    assert len(refreshes) == 1, diagnosis
    assert refreshes[0]["status"] == 200  # the single-use rule was never violated
    with oauth.database.transaction() as session:
        row = oauth.store.find(session, LOCATION_ID)
        assert row.status == "active"
        new_tokens = {oauth.store.access_token_of(row), oauth.store.refresh_token_of(row)}
    watched_tokens.update(new_tokens)
    for token in watched_tokens:
        assert token not in child_logs
