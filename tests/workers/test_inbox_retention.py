"""Inbox retention: old finished events go, oldest first and in batches; work still to do and lifecycle events stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from integration.config import ConfigError
from integration.db import utcnow
from integration.extensions import db
from integration.models import WebhookEvent
from integration.textback.settings import MAX_CALL_AGE_MINUTES
from tests.workers.helpers import set_event
from workers.config import MIN_INBOX_RETENTION_DAYS, load_worker_config, set_worker_config
from workers.inbox_retention import prune_events, prune_inbox
from workers.schedule import PERIODIC_JOBS


def remaining() -> set[int]:
    with db.session() as session:
        return set(session.scalars(select(WebhookEvent.id)))


def aged(make_event, days: float, *, status: str = "done", event_type: str = "TestRecord") -> int:
    event_id = make_event(event_type)
    set_event(event_id, status=status, received_at=utcnow() - timedelta(days=days))
    return event_id


def test_old_finished_events_go_and_work_to_do_lifecycle_and_recent_events_stay(make_event):
    gone = {aged(make_event, 31, status=status) for status in ("done", "ignored", "failed")}
    assert len(gone) == 3
    kept = {aged(make_event, 31, status="pending"), aged(make_event, 31, status="processing"),
            aged(make_event, 400, event_type="INSTALL"), aged(make_event, 400, event_type="UNINSTALL"),
            aged(make_event, 29), aged(make_event, 0, status="ignored")}

    summary = prune_inbox()

    assert remaining() == kept
    assert summary.startswith("deleted 3 finished webhook event(s) received before") and "30-day" in summary


def test_the_retention_follows_the_setting(app, make_event, worker_config):
    ten_days = aged(make_event, 10)
    assert prune_inbox().startswith("deleted 0") and remaining() == {ten_days}
    set_worker_config(app, worker_config.override(inbox_retention_days=9))
    assert prune_inbox().startswith("deleted 1") and remaining() == set()


def test_pruning_goes_oldest_first_in_batches_and_stops_at_its_time_budget(make_event):
    old = [aged(make_event, 40 - n) for n in range(7)]
    recent = aged(make_event, 1)
    cutoff = utcnow() - timedelta(days=30)

    first = prune_events(db, received_before=cutoff, batch_size=3, time_budget_seconds=0)
    assert (first.deleted, first.finished) == (3, False)
    assert remaining() == {*old[3:], recent}

    rest = prune_events(db, received_before=cutoff, batch_size=3)
    assert (rest.deleted, rest.finished) == (4, True)
    assert remaining() == {recent}
    assert prune_events(db, received_before=cutoff, batch_size=3) == type(rest)(deleted=0, finished=True)


def test_an_inbox_of_only_old_rows_is_pruned_whole(make_event):
    for days in (50, 40, 35):
        aged(make_event, days)
    report = prune_events(db, received_before=utcnow() - timedelta(days=30), batch_size=2)
    assert (report.deleted, report.finished, remaining()) == (3, True, set())


def test_retention_outlasts_the_longest_call_age_a_location_may_allow():
    # A replay of a pruned call webhook must be too old to text (integration.textback.guards).
    assert MIN_INBOX_RETENTION_DAYS * 24 * 60 > MAX_CALL_AGE_MINUTES


@pytest.mark.parametrize("value", ["7", "0", "a month"])
def test_a_retention_too_short_or_not_a_number_is_refused(value):
    with pytest.raises(ConfigError, match="INBOX_RETENTION_DAYS"):
        load_worker_config({"INBOX_RETENTION_DAYS": value})
    assert load_worker_config({"INBOX_RETENTION_DAYS": "8"}).inbox_retention_days == 8


def test_pruning_runs_every_hour():
    job = next(job for job in PERIODIC_JOBS if job.name == "prune-inbox")
    assert (job.dotted_path, job.interval_seconds) == ("workers.inbox_retention.prune_inbox", 3600)
