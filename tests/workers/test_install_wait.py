"""An event for a location whose install has not settled waits for it (issue 13, defect 1; oauth.install_wait).

The receiver stores such an event pending; the worker gives it back without spending an attempt, looks again
after a short delay, runs it the moment the location's token is stored, and ignores it with the reason once it
has waited INSTALL_WAIT_SECONDS since it arrived. Real PostgreSQL and Redis; the handler is a test handler
(TestRecord) that leaves evidence of every run.
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

import pytest
from rq.registry import ScheduledJobRegistry

from integration.config import ConfigError
from integration.db import utcnow
from integration.extensions import db, get_redis
from integration.inbox import StoredEvent, store_event
from integration.models import Company, Installation, Location
from oauth import install_wait
from oauth.install_wait import wake_waiting_events
from oauth.models import LocationProvisioning, ProvisioningStatus
from oauth.store import ACTIVE
from tests.workers.fixture_handlers import runs
from tests.workers.helpers import load_event, seconds_ago, set_event
from workers.config import set_worker_config
from workers.jobs import process_event
from workers.queues import SERIALIZER, WEBHOOKS_QUEUE, event_job_id, get_queue
from workers.worker import TextbackSimpleWorker

COMPANY = "companyWait00000001"


@pytest.fixture
def location_event(app_context, evidence_dir):
    """Store a TestRecord event for `location_id` the way the receiver does (the location's row decides)."""

    def make(location_id: str) -> int:
        payload = {"type": "TestRecord", "locationId": location_id, "evidence_dir": str(evidence_dir),
                   "webhookId": str(uuid.uuid4())}
        with db.transaction() as session:
            receipt = store_event(session, StoredEvent(
                dedupe_key=payload["webhookId"], event_type="TestRecord", company_id=None, location_id=location_id,
                payload=payload, status="pending", status_reason=None, check_location=True))
        return receipt.event_id

    return make


def provision(location_id: str, *, location_status: str = "installed", token_status: str | None = ACTIVE,
              provisioning: str | None = None) -> None:
    """The rows an install leaves (oauth.store.save_location_grant), without HighLevel."""
    with db.transaction() as session:
        if session.get(Company, COMPANY) is None:
            session.add(Company(id=COMPANY, name="Waiting Agency"))
            session.flush()
        location = session.get(Location, location_id) or Location(id=location_id, company_id=COMPANY)
        location.status = location_status
        session.add(location)
        if token_status is not None:
            session.add(Installation(user_type="Location", resource_id=location_id, location_id=location_id,
                                     company_id=COMPANY, status=token_status))
        if provisioning is not None:
            session.add(LocationProvisioning(location_id=location_id, company_id=COMPANY, status=provisioning))


def scheduled() -> ScheduledJobRegistry:
    return ScheduledJobRegistry(WEBHOOKS_QUEUE, connection=get_redis(), serializer=SERIALIZER)


def queued_job_ids() -> list[str]:
    return get_queue(WEBHOOKS_QUEUE, get_redis()).get_job_ids()


def test_an_event_for_a_location_never_seen_waits_without_spending_attempts(app, location_event, worker_config,
                                                                            evidence_dir):
    """Before the fix the receiver had already ignored it; and waiting must not use up EVENT_MAX_ATTEMPTS."""
    set_worker_config(app, worker_config.override(event_max_attempts=2))
    location = "futureLocation000001"
    event_id = location_event(location)
    assert load_event(event_id).status == "pending"

    for look in range(5):  # more looks than the attempt budget
        assert process_event(event_id) == f"waiting for the install of location {location}"
        row = load_event(event_id)
        assert (row.status, row.attempts, row.install_waits) == ("pending", look + 1, look + 1)
    assert row.status_reason == (f"waiting for the install of location {location} (the location is not known "
                                 "yet); looking again in 12 s")
    assert runs(evidence_dir) == []
    # The next look is scheduled, under the job id the next claim would get, a short while ahead.
    assert event_job_id(event_id, 5) in scheduled().get_job_ids()
    ahead = scheduled().get_scheduled_time(event_job_id(event_id, 5)) - utcnow()
    assert timedelta(seconds=10) < ahead <= timedelta(seconds=12)

    provision(location)
    assert process_event(event_id).startswith("done: recorded by pid")
    row = load_event(event_id)
    assert (row.status, row.attempts, row.install_waits) == ("done", 6, 5)
    assert [event for event, _ in runs(evidence_dir)] == [event_id]


def test_the_first_looks_come_after_a_couple_of_seconds_growing_modestly(location_event):
    event_id = location_event("futureLocation000002")
    delays = []
    for look in range(8):
        process_event(event_id)
        job_id = event_job_id(event_id, look + 1)
        # RQ keeps whole seconds (truncated): the look is due within the second before its delay.
        delays.append(math.ceil((scheduled().get_scheduled_time(job_id) - utcnow()).total_seconds()))
    assert delays == [2, 3, 5, 8, 12, 15, 15, 15]


def test_an_event_whose_install_never_comes_is_ignored_once_the_wait_is_over(location_event, worker_config,
                                                                             evidence_dir):
    location = "neverInstalled000001"
    event_id = location_event(location)
    process_event(event_id)
    assert load_event(event_id).status == "pending"

    # Shortly before the bound the next look is due at the bound itself, not a full delay later.
    set_event(event_id, received_at=seconds_ago(worker_config.install_wait_seconds - 1))
    process_event(event_id)
    assert load_event(event_id).status == "pending"
    ahead = scheduled().get_scheduled_time(event_job_id(event_id, 2)) - utcnow()
    assert ahead <= timedelta(seconds=1)

    set_event(event_id, received_at=seconds_ago(worker_config.install_wait_seconds + 1))
    assert process_event(event_id) == f"ignored: no installation for location {location} arrived within 10 min"
    row = load_event(event_id)
    assert (row.status, row.status_reason) == ("ignored", f"no installation for location {location} arrived "
                                                          "within 10 min")
    assert runs(evidence_dir) == []


def test_the_wait_is_configured_by_install_wait_seconds(app, location_event, worker_config):
    from workers.config import load_worker_config

    assert load_worker_config({}).install_wait_seconds == 600
    assert load_worker_config({"INSTALL_WAIT_SECONDS": "90"}).install_wait_seconds == 90
    for bad in ("soon", "0"):
        with pytest.raises(ConfigError, match="INSTALL_WAIT_SECONDS"):
            load_worker_config({"INSTALL_WAIT_SECONDS": bad})
    set_worker_config(app, worker_config.override(install_wait_seconds=90))
    event_id = location_event("neverInstalled000002")
    set_event(event_id, received_at=seconds_ago(91))
    process_event(event_id)
    assert load_event(event_id).status_reason == ("no installation for location neverInstalled000002 arrived "
                                                  "within 90 s")


def test_an_agency_install_still_minting_the_token_is_waited_for(location_event, evidence_dir):
    """A reinstall of a known location: its row says uninstalled, but the agency's provisioning is under way."""
    location = "reinstalling00000001"
    provision(location, location_status="uninstalled", token_status=None, provisioning=ProvisioningStatus.PENDING)
    event_id = location_event(location)
    set_event(event_id, status="pending", status_reason=None)  # received while it was still installed
    process_event(event_id)
    row = load_event(event_id)
    assert (row.status, row.install_waits) == ("pending", 1)
    assert "its token is still being minted" in row.status_reason
    assert runs(evidence_dir) == []


@pytest.mark.parametrize(("location_status", "token_status"), [
    ("uninstalled", "uninstalled"), ("installed", "needs_reconnect"),
])
def test_a_known_location_that_waiting_cannot_fix_is_left_to_the_handler(location_event, evidence_dir,
                                                                         location_status, token_status):
    """Uninstalled after the event arrived, or waiting for a person to reconnect: decided at once, as before."""
    location = f"known{uuid.uuid4().hex[:15]}"
    event_id = location_event(location)  # stored while the location was unknown: pending
    provision(location, location_status=location_status, token_status=token_status)
    assert process_event(event_id).startswith("done")
    assert load_event(event_id).install_waits == 0
    assert [event for event, _ in runs(evidence_dir)] == [event_id]


def test_storing_the_token_runs_the_waiting_event_at_once(location_event, evidence_dir, worker_config):
    """The wake-up brings the scheduled look forward (no second job); events of other locations stay put."""
    location, other = "futureLocation000003", "futureLocation000004"
    event_id, other_id = location_event(location), location_event(other)
    process_event(event_id)
    process_event(other_id)
    assert sorted(scheduled().get_job_ids()) == sorted([event_job_id(event_id, 1), event_job_id(other_id, 1)])

    provision(location)
    assert wake_waiting_events(db, get_redis(), [location], config=worker_config) == 1
    assert queued_job_ids() == [event_job_id(event_id, 1)]
    assert scheduled().get_job_ids() == [event_job_id(other_id, 1)]
    TextbackSimpleWorker([get_queue(WEBHOOKS_QUEUE, get_redis())], connection=get_redis(),
                         serializer=SERIALIZER).work(burst=True)
    assert load_event(event_id).status == "done"
    assert [event for event, _ in runs(evidence_dir)] == [event_id]
    assert load_event(other_id).status == "pending"


def test_a_wake_up_for_a_look_that_redis_lost_enqueues_it_afresh(location_event, worker_config):
    location = "futureLocation000005"
    event_id = location_event(location)
    process_event(event_id)
    get_redis().flushdb()  # Redis restarted empty: the scheduled look is gone
    provision(location)
    assert wake_waiting_events(db, get_redis(), [location], config=worker_config) == 1
    assert queued_job_ids() == [event_job_id(event_id, 1)]


def test_a_wake_up_never_raises(location_event, worker_config, caplog):
    class BrokenRedis:
        def __getattr__(self, name):
            raise ConnectionError("redis went away")

    location = "futureLocation000006"
    process_event(location_event(location))
    assert wake_waiting_events(db, BrokenRedis(), [location], config=worker_config) == 0
    assert "their retries will run them" in caplog.text


def test_a_token_stored_while_the_worker_decides_runs_the_event_at_once(location_event, monkeypatch, evidence_dir):
    """The race the wake-up cannot see: the token is committed after the worker read "not settled" and before it
    gave the event back (the wake found it still processing). The worker's second look catches it."""
    location = "futureLocation000007"
    event_id = location_event(location)
    real_install_state = install_wait.install_state
    looks = []

    def token_stored_right_after_the_first_look(database, event_id):
        state = real_install_state(database, event_id)
        if not looks:
            provision(location)
        looks.append(state)
        return state

    monkeypatch.setattr("workers.jobs.install_state", token_stored_right_after_the_first_look)
    process_event(event_id)
    assert [state.settled for state in looks] == [False, True]
    assert scheduled().get_job_ids() == []
    assert queued_job_ids() == [event_job_id(event_id, 1)]


def test_an_event_with_a_known_location_is_never_held_back(app_context, location_event, evidence_dir):
    location = "liveLocation00000001"
    provision(location)
    event_id = location_event(location)
    assert process_event(event_id).startswith("done")
    assert (load_event(event_id).attempts, load_event(event_id).install_waits) == (1, 0)
