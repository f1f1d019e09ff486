"""One process of the refresh race: N threads ask for a token for the same location at the same moment.

Run as `python -m tests.oauth.token_race_worker <location_id> <threads> <run_key>` with the app's
environment (DATABASE_URL, REDIS_URL, TOKEN_ENCRYPTION_KEYS, TEXTBACK_SANDBOX_URL...). Prints one JSON
line per thread: whether its API call worked and a short hash of the token it used (never the token).
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time

import redis

READY_TIMEOUT = 60.0


def race(app, *, location_id: str, threads: int, redis_url: str, run_key: str) -> list[dict]:
    """Start `threads` threads that wait for the go signal, then each get a token and call the API."""
    from oauth.services import get_oauth

    with app.app_context():
        oauth = get_oauth(app)
    control = redis.Redis.from_url(redis_url)
    results: list[dict] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def run() -> None:
        barrier.wait(timeout=READY_TIMEOUT)
        outcome: dict = {}
        try:
            with app.app_context():
                answer = oauth.client.get_location(location_id)
                token = oauth.tokens.access_token(location_id)  # the token callers use from now on
                outcome = {"ok": answer.get("id") == location_id,
                           "token": hashlib.sha256(token.encode()).hexdigest()[:16]}
        except Exception as exc:  # reported, not raised: the test asserts on every caller
            outcome = {"ok": False, "error": type(exc).__name__, "message": str(exc)[:200]}
        with lock:
            results.append(outcome)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    control.incr(f"{run_key}:ready")
    deadline = time.monotonic() + READY_TIMEOUT
    while not control.exists(f"{run_key}:go"):
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.005)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    control.close()
    return results


def main() -> None:
    from integration import create_app
    from integration.config import load_settings

    location_id, threads, run_key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    settings = load_settings()
    app = create_app(settings)
    for outcome in race(app, location_id=location_id, threads=threads, redis_url=settings.redis_url,
                        run_key=run_key):
        print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
