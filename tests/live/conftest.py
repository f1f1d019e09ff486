"""The product as it runs in production, for fault tests: our app served on a real port (the receiver), the
sandbox delivering webhooks to it, `python -m workers` as the Procfile runs it, and a Redis of the test's own
that it may stop and start (an embedded one: a real redis-server when there is one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from integration import create_app
from integration.embedded_redis import EmbeddedRedis
from integration.extensions import db
from integration.models import LocationSettings
from integration.sandbox.seed import SEED_LOCATION_IDS
from integration.textback.models import MissedCall
from oauth.store import is_location_active
from tests.daytime import daytime_callers
from tests.oauth.conftest import ConsentDance

ROOT = Path(__file__).resolve().parents[2]
ACME = SEED_LOCATION_IDS[0]


def wait_for(condition: Callable, *, what: str, timeout: float = 60.0, logs: Callable[[], str] = lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{logs()}")


class WorkerProcess:
    """`python -m workers` in its own session (so a kill takes its maintenance child too), output in a file."""

    def __init__(self, environ: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", "workers"], cwd=ROOT, env=environ,
                                        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker and everything it started, at once (a host losing the process)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int | None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self._log.close()
        return self.process.returncode


@dataclass
class LiveStack:
    """The receiver on a real port, the sandbox pointed at it, and a way to start workers."""

    url: str
    redis: EmbeddedRedis
    environ: dict[str, str]
    tmp_path: Path
    sandbox: object
    dance: ConsentDance
    workers: list[WorkerProcess]

    def start_worker(self, **extra_environ: str) -> WorkerProcess:
        worker = WorkerProcess({**self.environ, **extra_environ}, self.tmp_path / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- worker {w.process.pid} ---\n{w.output()[-6000:]}" for w in self.workers)

    def install(self, location_id: str = ACME) -> str:
        """The consent dance, then wait for a worker to provision the location (the INSTALL webhook)."""
        response = self.dance.install(location_id=location_id)
        assert response.status_code == 302, response.get_data(as_text=True)[:300]

        def live() -> bool:
            with db.session() as session:
                return is_location_active(session, location_id)

        wait_for(live, what=f"location {location_id} to be installed", logs=self.logs)
        return location_id

    def daytime_callers(self, count: int, location_id: str = ACME) -> list[str]:
        """Numbers it is daytime for now, and the location told to take calls from their country."""
        numbers, region = daytime_callers(datetime.now(UTC), count)
        with db.transaction() as session:
            row = session.get(LocationSettings, location_id) or LocationSettings(location_id=location_id, values={})
            row.values = {**(row.values or {}), "allowed_countries": ["US", "CA", region]}
            session.add(row)
        return numbers

    def texts_to(self, number: str, location_id: str = ACME) -> list[dict]:
        return [m for m in self.sandbox.sent_messages(locationId=location_id) if m.get("toNumber") == number]

    def calls(self) -> list[MissedCall]:
        with db.session() as session:
            return list(session.scalars(select(MissedCall).order_by(MissedCall.id)))


@pytest.fixture
def live_redis():
    server = EmbeddedRedis().start()
    yield server
    server.stop()


@pytest.fixture
def live(settings, sandbox, live_redis, tmp_path, instance_dir):
    """The stack, on the test database and a Redis of its own; workers are started by the test."""
    from integration.embedded_redis import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    live_settings = settings.override(public_base_url=url, ghl_api_base=sandbox.url,
                                      ghl_marketplace_base=sandbox.url, redis_url=live_redis.url)
    app = create_app(live_settings)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sandbox.configure(webhook_url=f"{url}/webhooks/ghl", redirect_uris=[f"{url}/oauth/callback"],
                      app_page_url=f"{url}/app")
    environ = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": live_settings.database_url,
               "REDIS_URL": live_redis.url, "TEXTBACK_INSTANCE_PATH": str(instance_dir), "PUBLIC_BASE_URL": url,
               "TEXTBACK_SANDBOX_URL": sandbox.url, "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
    stack = LiveStack(url=url, redis=live_redis, environ=environ, tmp_path=tmp_path, sandbox=sandbox,
                      dance=ConsentDance(app.test_client(), sandbox), workers=[])
    with app.app_context():
        yield stack
    for worker in stack.workers:
        worker.stop()
    server.shutdown()
    thread.join()
    db.dispose()
