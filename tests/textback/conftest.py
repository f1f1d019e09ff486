"""Fixtures for text-back tests against the sandbox over real HTTP, with the real database and Redis.

The clock: quiet hours and business hours depend on the time of day, and a suite must not pass at
noon and fail at midnight. The sender runs on `clock`, fixed at the most recent weekday 15:00 in
Austin (Acme Plumbing's zone, Texas rules): always a business-hours, allowed minute, and never in the
future of the sandbox's own clock, whose message timestamps the reconciliation compares against.
Calls handed to the sender carry a dateAdded a few seconds before that instant.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from werkzeug.serving import make_server

from integration import create_app
from integration.db import utcnow
from integration.extensions import db, get_redis
from integration.models import LocationSettings
from integration.sandbox.seed import SEED_LOCATION_IDS, SEED_LOCATION_PHONES
from integration.textback.facts import FactGatherer
from integration.textback.sender import TextBackSender
from oauth.services import get_oauth
from tests.oauth.conftest import ConsentDance
from workers.config import WorkerConfig, set_worker_config

ACME = SEED_LOCATION_IDS[0]
ACME_PHONE = SEED_LOCATION_PHONES[ACME]
AUSTIN = ZoneInfo("America/Chicago")


def next_open_afternoon(now: datetime) -> datetime:
    """Now if it is a weekday 09:00-16:00 in Austin, else the next weekday 15:00 (a future instant)."""
    local = now.astimezone(AUSTIN)
    if local.weekday() < 5 and 9 <= local.hour < 16:
        return now
    candidate = local.replace(hour=15, minute=0, second=0, microsecond=0)
    while candidate <= local or candidate.weekday() >= 5:
        candidate += timedelta(days=1)
    return candidate


def last_weekday_afternoon(now: datetime) -> datetime:
    """The most recent Monday-Friday 15:00 in Austin at or before `now`."""
    local = now.astimezone(AUSTIN)
    candidate = local.replace(hour=15, minute=0, second=0, microsecond=0)
    while candidate > local or candidate.weekday() >= 5:
        candidate -= timedelta(days=1)
    return candidate


@dataclass
class Clock:
    """A settable clock for the sender; `advance()` moves it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Scheduled:
    """What the sender asked to run later: (missed call id, when)."""

    runs: list[tuple[int, datetime]] = field(default_factory=list)

    def __call__(self, missed_call_id: int, when: datetime) -> None:
        self.runs.append((missed_call_id, when))


@pytest.fixture
def tb_settings(sandbox_settings):
    # Short client timeout so the "answered too late" faults take a second, not ten.
    return sandbox_settings.override(ghl_timeout=1.0, ghl_max_retries=2)


@pytest.fixture
def tb_app(tb_settings, redis_client):
    """The app pointed at the sandbox, with an app context pushed (handlers and jobs run inside one)."""
    application = create_app(tb_settings)
    application.config["TESTING"] = True
    set_worker_config(application, WorkerConfig().override(sweep_min_age_seconds=0.0))
    with application.app_context():
        yield application
    db.dispose()


@pytest.fixture
def install(tb_app, sandbox) -> Callable[[str], str]:
    """Install the app on a seed sub-account through the real consent dance; returns its id."""
    dance = ConsentDance(tb_app.test_client(), sandbox)

    def run(location_id: str = ACME) -> str:
        response = dance.install(location_id=location_id)
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        return location_id

    return run


@pytest.fixture
def acme(install) -> str:
    return install(ACME)


@pytest.fixture
def clock() -> Clock:
    return Clock(last_weekday_afternoon(utcnow()))


@pytest.fixture
def scheduled() -> Scheduled:
    return Scheduled()


@pytest.fixture
def make_sender(tb_app, clock, scheduled) -> Callable[..., TextBackSender]:
    """A sender on the app's real API client, with the test clock and a recording scheduler."""

    def make(**options) -> TextBackSender:
        client = get_oauth(tb_app).client
        gatherer = FactGatherer(database=db, client=client, redis=get_redis(tb_app), clock=clock)
        options.setdefault("reconcile_grace", timedelta(seconds=0))
        return TextBackSender(database=db, client=client, gatherer=gatherer, schedule=scheduled, clock=clock,
                              **options)

    return make


@pytest.fixture
def sender(make_sender) -> TextBackSender:
    return make_sender()


@pytest.fixture
def set_location_settings(tb_app) -> Callable[..., None]:
    def apply(location_id: str = ACME, *, enabled: bool = True, **values) -> None:
        with db.transaction() as session:
            row = session.get(LocationSettings, location_id)
            if row is None:
                row = LocationSettings(location_id=location_id, enabled=enabled, values={})
                session.add(row)
            row.enabled = enabled
            row.values = {**(row.values or {}), **values}

    return apply


@pytest.fixture
def served_app(tb_app, sandbox):
    """Our app on a real port, and the sandbox delivering its webhooks there."""
    server = make_server("127.0.0.1", 0, tb_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sandbox.configure(webhook_url=f"http://127.0.0.1:{server.server_port}/webhooks/ghl")
    yield tb_app
    server.shutdown()
    thread.join()


@pytest.fixture
def live_sender(tb_app, make_sender, clock):
    """The handlers' sender, on a clock at an allowed business-hours minute no earlier than the sandbox's
    own (the call's dateAdded is real time here, not rewritten)."""
    clock.now = next_open_afternoon(utcnow())
    sender = make_sender()
    tb_app.extensions["textback.sender"] = sender
    yield sender
    tb_app.extensions.pop("textback.sender", None)
