"""Faults with work in flight, on the stack as it ships (issue 13): Redis going away while the worker runs a
job, and a worker SIGKILLed while its send waits on HighLevel. Real processes, real PostgreSQL and Redis, the
sandbox over HTTP; each test failed before its fix (the worker exited 1; the text waited for a 15 s lease)."""

from __future__ import annotations

import time

from integration.textback.models import MissedCall
from tests.live.conftest import ACME, wait_for


def _fault_taken(sandbox, path: str) -> bool:
    """The armed fault on `path` has fired as often as it was armed for: those requests are in flight."""
    return not [f for f in sandbox.control("GET", "faults")["faults"] if f["path"] == path]


def test_the_worker_rides_through_redis_going_away_mid_job_and_texts_the_call_stored_meanwhile(live, sandbox):
    worker = live.start_worker()
    live.install()
    first, during_outage = live.daytime_callers(2)
    # The first call's CRM follow-up (tagging the contact) is still waiting on HighLevel when Redis stops.
    tags = r"^/contacts/[^/]+/tags$"
    sandbox.fault("slow", tags, method="POST", delay=4.0, times=1)
    sandbox.place_call(ACME, first, "no-answer")
    wait_for(lambda: live.texts_to(first), what="the first text", logs=live.logs)
    wait_for(lambda: _fault_taken(sandbox, tags), what="the follow-up's tag request in flight", logs=live.logs)

    live.redis.stop()
    # A call during the outage: the receiver stores it in PostgreSQL; its announcement to Redis is lost.
    sandbox.place_call(ACME, during_outage, "no-answer")
    time.sleep(6.0)  # the outage outlasts the job in flight and several reconnect attempts
    assert worker.alive(), f"the worker exited during the outage\n{live.logs()}"
    assert not live.texts_to(during_outage)

    live.redis.start()  # the same port, empty: everything Redis held is gone
    back_at = time.monotonic()
    wait_for(lambda: live.texts_to(during_outage), what="the call stored during the outage to be texted",
             timeout=40, logs=live.logs)
    print(f"\nRedis back -> the call stored during the outage texted after {time.monotonic() - back_at:.1f} s")

    time.sleep(2.0)  # a duplicate would show up here
    assert len(live.texts_to(first)) == 1 and len(live.texts_to(during_outage)) == 1
    assert worker.alive()
    output = worker.output()
    processes = output.count(" on queues ")  # one start-up line per worker process (WORKER_PROCESSES)
    assert processes >= 1
    # One line per worker process when Redis went, one when it came back: not a line per retry.
    assert output.count("Redis is unreachable") == processes, output[-4000:]
    assert output.count("Redis is reachable again") == processes
    assert "found an unhandled exception" not in output


def test_a_worker_killed_while_its_sends_wait_on_highlevel_is_taken_over_within_seconds(live, sandbox):
    """Two missed calls; the worker is SIGKILLed while both POSTs are in HighLevel's hands; HighLevel takes them
    a moment later. The restarted worker finds the texts in the conversations and sends neither again. The
    lease is set far beyond the test's wait, so only the dead worker's stopped heartbeat can explain a quick
    take-over."""
    environ = {"EVENT_LEASE_SECONDS": "300"}
    first = live.start_worker(**environ)
    live.install()
    callers = live.daytime_callers(2)
    send = r"^/conversations/messages$"
    sandbox.fault("slow", send, method="POST", delay=2.0, times=2)
    for caller in callers:
        sandbox.place_call(ACME, caller, "no-answer")
    wait_for(lambda: _fault_taken(sandbox, send), what="both sends in flight", logs=live.logs)

    first.kill()
    killed_at = time.monotonic()
    live.start_worker(**environ)  # the Procfile restarts it

    def settled() -> bool:
        return all(call.status == MissedCall.SENT for call in live.calls()) and len(live.calls()) == 2

    wait_for(settled, what="both calls settled as sent", timeout=60, logs=live.logs)
    print(f"\nworker killed mid-send -> both calls settled by the restarted worker after "
          f"{time.monotonic() - killed_at:.1f} s")
    time.sleep(2.0)  # a second text would show up here
    for caller in callers:
        assert len(live.texts_to(caller)) == 1, (caller, sandbox.sent_messages(locationId=ACME))
