"""Receiver under faults: the database down or locked answers 429 (HighLevel retries), never 5xx;
Redis down or stalled still answers 200 and the sweeper enqueues the event once Redis is back."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest
from sqlalchemy import create_engine, text

from integration import create_app
from integration.embedded_redis import EmbeddedRedis, free_port
from integration.extensions import db
from tests.webhooks.test_receiver import URL, missed_call, row_count, rows
from workers.config import WorkerConfig, set_worker_config
from workers.queues import SERIALIZER, WEBHOOKS_QUEUE, get_queue
from workers.sweeper import Sweeper
from workers.worker import TextbackSimpleWorker


def dead_database_url() -> str:
    return f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/nothing"


def test_database_down_answers_429_with_retry_after(settings, app, signed_webhook, live_location):
    body, headers = signed_webhook(missed_call(live_location(), webhook_id="wh-db-down"))
    broken = create_app(settings.override(database_url=dead_database_url()))
    response = broken.test_client().post(URL, data=body, headers=headers)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "retry later" in response.json["error"]

    # HighLevel's retry, once the database is back, is stored exactly once.
    healthy = create_app(settings)
    assert healthy.test_client().post(URL, data=body, headers=headers).status_code == 200
    assert healthy.test_client().post(URL, data=body, headers=headers).json["status"] == "duplicate"
    assert row_count() == 1


def test_database_down_still_rejects_bad_signatures_with_401(settings, app, signed_webhook):
    broken = create_app(settings.override(database_url=dead_database_url()))
    body, headers = signed_webhook(missed_call("anyLocation000000001"), schemes=())
    assert broken.test_client().post(URL, data=body, headers=headers).status_code == 401


def test_unexpected_error_answers_429_not_500(client, signed_webhook, live_location, monkeypatch, caplog):
    """Fault injection: any bug on this route must still let HighLevel retry."""
    from integration import webhooks

    def broken_classifier(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(webhooks, "classify_event", broken_classifier)
    body, headers = signed_webhook(missed_call(live_location()))
    with caplog.at_level(logging.ERROR, logger="integration.webhooks"):
        response = client.post(URL, data=body, headers=headers)
    assert response.status_code == 429 and response.headers["Retry-After"]
    assert any("unexpected error" in r.getMessage() for r in caplog.records)


def test_locked_inbox_answers_429_instead_of_hanging(client, database_url, signed_webhook, live_location):
    """Another session holds the table: the ack path's timeout turns the wait into a 429."""
    body, headers = signed_webhook(missed_call(live_location()))
    engine = create_engine(database_url)
    locker = engine.connect()
    try:
        if database_url.startswith("postgresql"):
            transaction = locker.begin()
            locker.execute(text("LOCK TABLE webhook_events IN ACCESS EXCLUSIVE MODE"))
        else:
            locker.exec_driver_sql("PRAGMA busy_timeout = 0")
            transaction = None
            locker.exec_driver_sql("BEGIN EXCLUSIVE")
        response = client.post(URL, data=body, headers=headers)
    finally:
        if transaction is not None:
            transaction.rollback()
        else:
            locker.exec_driver_sql("ROLLBACK")
        locker.close()
        engine.dispose()
    assert response.status_code == 429


def wait_for_log(caplog, text: str, timeout: float = 5.0):
    """The first log record containing `text`, waiting for it (announcements are logged by another thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in caplog.records:
            if text in record.getMessage():
                return record
        time.sleep(0.02)
    return None


@pytest.fixture
def second_redis():
    """A Redis of our own that the test may stop and start on the same port."""
    server = EmbeddedRedis().start()
    yield server
    server.stop()


def test_redis_down_still_200_and_the_sweeper_enqueues_once_redis_is_back(
        settings, app, signed_webhook, live_location, second_redis, caplog, tmp_path, monkeypatch):
    from tests.workers.fixture_handlers import TEST_HANDLERS, runs
    from workers import handlers

    monkeypatch.setattr(handlers, "HANDLERS", {**handlers.HANDLERS, **TEST_HANDLERS})
    port = second_redis.port
    second_redis.stop()
    flaky = create_app(settings.override(redis_url=f"redis://127.0.0.1:{port}/0"))
    set_worker_config(flaky, WorkerConfig().override(sweep_min_age_seconds=0.0))
    payload = {"type": "TestRecord", "evidence_dir": str(tmp_path), "webhookId": str(uuid.uuid4())}
    body, headers = signed_webhook(payload)
    with caplog.at_level(logging.WARNING, logger="integration.inbox_writer"):
        response = flaky.test_client().post(URL, data=body, headers=headers)
        assert response.status_code == 200
        assert wait_for_log(caplog, "not enqueued (ConnectionError)")
    [row] = rows()
    assert row.status == "pending"

    second_redis.port = port
    second_redis.start()
    with flaky.app_context():
        from integration.extensions import get_redis

        report = Sweeper(database=db, redis=get_redis(), config=WorkerConfig().override(
            sweep_min_age_seconds=0.0)).sweep_once()
        assert report.counts["enqueued"] == 1
        queue = get_queue(WEBHOOKS_QUEUE, get_redis())
        TextbackSimpleWorker([queue], connection=get_redis(), serializer=SERIALIZER).work(burst=True)
    assert rows()[0].status == "done"
    assert len(runs(tmp_path)) == 1


def test_redis_stalled_still_200_quickly_enough_to_matter(settings, app, signed_webhook, live_location,
                                                          second_redis, caplog):
    """CLIENT PAUSE freezes Redis for 1.5 s: the answer does not wait for Redis at all (the announcement is
    sent by the writer's own thread), and that thread's 0.5 s socket timeout gives up on it."""
    import redis

    stalled = create_app(settings.override(redis_url=second_redis.url))
    body, headers = signed_webhook(missed_call(live_location()))
    control = redis.Redis.from_url(second_redis.url)
    control.execute_command("CLIENT", "PAUSE", "1500", "ALL")
    try:
        with caplog.at_level(logging.WARNING, logger="integration.inbox_writer"):
            response = stalled.test_client().post(URL, data=body, headers=headers)
            answered_at = time.time()
            record = wait_for_log(caplog, "not enqueued (TimeoutError)")
    finally:
        control.execute_command("CLIENT", "UNPAUSE")
        control.close()
    assert response.status_code == 200
    assert record is not None and answered_at < record.created
    assert rows()[0].status == "pending"


def test_concurrent_duplicates_store_one_row(app, signed_webhook, live_location):
    """Catalogue B16: the same webhookId at the same moment from two threads: one row, two 200s."""
    body, headers = signed_webhook(missed_call(live_location(), webhook_id="wh-concurrent"))
    barrier = threading.Barrier(4)
    codes: list[int] = []

    def deliver():
        client = app.test_client()
        barrier.wait()
        codes.append(client.post(URL, data=body, headers=headers).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert codes == [200] * 4
    assert row_count() == 1


def test_a_connection_dropped_under_the_pool_costs_one_429_and_is_replaced(client, signed_webhook, live_location,
                                                                           caplog):
    """A database restart or an idle cut: that webhook gets 429 (HighLevel retries), the pool drops the dead
    connection, and the retry is stored once."""
    from integration.extensions import ack_db

    location = live_location()
    first_body, first_headers = signed_webhook(missed_call(location))
    assert client.post(URL, data=first_body, headers=first_headers).status_code == 200
    pooled = list(ack_db.engine.pool._pool.queue)  # the idle connection the first webhook used
    assert pooled
    for record in pooled:
        record.dbapi_connection.close()
    body, headers = signed_webhook(missed_call(location))
    with caplog.at_level(logging.ERROR, logger="integration.webhooks"):
        assert client.post(URL, data=body, headers=headers).status_code == 429
    assert any("database unavailable" in r.getMessage() for r in caplog.records)
    assert client.post(URL, data=body, headers=headers).status_code == 200
    assert client.post(URL, data=body, headers=headers).json["status"] == "duplicate"
    assert row_count() == 2
