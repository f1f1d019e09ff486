"""The ack path's writer: one INSERT per webhook, then an announcement sent by a thread of its own, so no
request waits on Redis and many ids share one RPUSH."""

from __future__ import annotations

import logging
import threading
import time
import uuid

from integration.extensions import ack_db
from integration.inbox import StoredEvent
from integration.inbox_writer import InboxWriter
from tests.webhooks.test_receiver import rows


def event(location_id: str | None, **fields) -> StoredEvent:
    values = dict(dedupe_key=str(uuid.uuid4()), event_type="InboundMessage", company_id=None,
                  location_id=location_id, payload={"type": "InboundMessage", "locationId": location_id},
                  status="pending", status_reason=None, check_location=bool(location_id))
    values.update(fields)
    return StoredEvent(**values)


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


class Announcements:
    """Records what the writer announces: (urgent ids, later ids) per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], list[int]]] = []

    def __call__(self, ids: list[int], later: list[int]) -> None:
        self.calls.append((ids, later))

    @property
    def urgent(self) -> list[list[int]]:
        return [ids for ids, _ in self.calls if ids]


def test_a_stored_event_is_committed_then_announced(app, live_location):
    announced = Announcements()
    receipt = InboxWriter(ack_db, announce=announced).store(event(live_location()))
    assert receipt.created and receipt.status == "pending"
    assert [r.id for r in rows()] == [receipt.event_id]  # committed when store() returns
    wait_for(lambda: announced.calls)
    assert announced.calls == [([receipt.event_id], [])]


def test_events_that_may_wait_are_announced_apart_from_urgent_ones(app, live_location):
    location = live_location()
    announced = Announcements()
    writer = InboxWriter(ack_db, announce=announced)
    echo = writer.store(event(location, event_type="OutboundMessage", urgent=False))
    call = writer.store(event(location))
    wait_for(lambda: sum(len(i) + len(later) for i, later in announced.calls) == 2)
    assert [i for ids, _ in announced.calls for i in ids] == [call.event_id]
    assert [i for _, later in announced.calls for i in later] == [echo.event_id]


def test_only_new_pending_events_are_announced(app, live_location):
    installed, gone = live_location(), live_location(status="uninstalled")
    announced = Announcements()
    writer = InboxWriter(ack_db, announce=announced)
    duplicate_key = f"wh-{uuid.uuid4()}"
    receipts = [writer.store(e) for e in (
        event(installed, dedupe_key=duplicate_key), event(installed, dedupe_key=duplicate_key), event(gone),
        event("nowhere000000000001"),
        event(installed, status="ignored", status_reason="foreign app", check_location=False),
    )]
    assert [(r.created, r.status, r.status_reason) for r in receipts] == [
        (True, "pending", None), (False, "duplicate", None),
        (True, "ignored", "location not installed (status uninstalled)"),
        # A location never seen may be one whose INSTALL is still being processed: pending, for the worker to decide.
        (True, "pending", "unknown location: waiting for its install"), (True, "ignored", "foreign app")]
    assert receipts[1].event_id == receipts[0].event_id
    time.sleep(0.3)
    assert [i for ids, later in announced.calls for i in ids + later] == [receipts[0].event_id, receipts[3].event_id]


def test_ids_committed_while_an_announcement_is_in_flight_share_the_next_one(app, live_location):
    location = live_location()
    in_flight, release = threading.Event(), threading.Event()
    announced: list[list[int]] = []

    def slow_redis(ids: list[int], later: list[int]) -> None:
        announced.append(ids + later)
        in_flight.set()
        release.wait(10)

    writer = InboxWriter(ack_db, announce=slow_redis)
    first = writer.store(event(location))
    assert in_flight.wait(5)
    started = time.monotonic()
    later = [writer.store(event(location)) for _ in range(5)]
    assert time.monotonic() - started < 5  # nobody waited for the stalled announcement
    release.set()
    wait_for(lambda: len(announced) == 2)
    assert announced == [[first.event_id], [r.event_id for r in later]]


def test_an_announce_failure_is_logged_and_the_event_stays_stored(app, live_location, caplog):
    caplog.set_level(logging.WARNING, logger="integration.inbox_writer")

    def broken(ids, later):
        raise ConnectionError("redis went away")

    receipt = InboxWriter(ack_db, announce=broken).store(event(live_location()))
    assert receipt.created
    assert [r.id for r in rows()] == [receipt.event_id]
    wait_for(lambda: any("stored but not enqueued" in r.getMessage() for r in caplog.records))
    assert any(f"events {receipt.event_id} stored but not enqueued (ConnectionError)" in r.getMessage()
               for r in caplog.records)


def test_under_load_one_announcement_per_interval_carries_every_id_and_a_quiet_one_goes_at_once(
        app, live_location, monkeypatch):
    import integration.inbox_writer as inbox_writer

    monkeypatch.setattr(inbox_writer, "ANNOUNCE_INTERVAL_SECONDS", 2.0)
    location = live_location()
    sent: list[tuple[float, list[int]]] = []
    writer = InboxWriter(ack_db, announce=lambda ids, later: sent.append((time.monotonic(), ids + later)))
    started = time.monotonic()
    first = writer.store(event(location))
    wait_for(lambda: sent)
    assert sent[0][1] == [first.event_id] and sent[0][0] - started < 1.5  # after a quiet spell: at once
    burst = [writer.store(event(location)).event_id for _ in range(5)]
    wait_for(lambda: len(sent) == 2)
    assert sent[1][1] == burst  # one RPUSH for the five...
    assert sent[1][0] - sent[0][0] >= 2.0  # ...sent no sooner than the interval after the previous one
