"""The booking agent's evaluation: scripted contractor-lead conversations, end to end against the sandbox calendar.

    nice -n 19 .venv/bin/python -m benchmarks.booking_agent \
        --database-url postgresql://postgres@127.0.0.1/textback_bench --redis-url redis://127.0.0.1:6379/11

Everything runs as in production except the processes: the sandbox (simulated HighLevel) serves its API and
signs and delivers real webhooks over HTTP to our app on a local port; the inbox stores them; an RQ worker runs
the handlers, the text back, the CRM actions and the agent's turns. Each conversation of the corpus
(benchmarks/data/booking_agent_corpus.json) is played on its own day and hour (the sandbox's clock, the text
back's and the agent's moved together): a missed call, our text back, then the caller's scripted texts, a team
member stepping in, or another customer taking an offered slot meanwhile.

What is counted, from the sandbox's own records (the ground truth):

- booking success: conversations where a booking was possible and wanted, booked exactly once on the slot the
  caller accepted (the one they picked from what the agent offered);
- caller messages to book (median over the successful ones);
- hand-over rate: conversations the agent handed to the team;
- wrong bookings (must be 0): an appointment where none was wanted, on a slot the caller did not accept, or two;
- end states as scripted, on-call alerts for emergencies, and bookings that miss a stated preference.

The database given is emptied first (every table truncated): point it at a database of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import create_engine, select, text
from werkzeug.serving import make_server

CORPUS = Path(__file__).parent / "data" / "booking_agent_corpus.json"
BUSINESS_ZONE = ZoneInfo("America/Chicago")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PARTS = {"morning": (0, 12), "afternoon": (12, 17), "evening": (17, 24)}
_FINAL_DELIVERY = {"delivered", "failed", "gave_up"}


class BenchClock:
    """Real time plus an offset: the day and hour a conversation is played at."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Result:
    id: str
    category: str
    expect: str
    state: str = ""
    reason: str = ""
    bookable: bool = False
    booked_ok: bool = False
    wrong: list[str] = field(default_factory=list)
    caller_messages_to_book: int | None = None
    preference_miss: str | None = None
    alert_ok: bool | None = None
    agent_texts: list[str] = field(default_factory=list)


class Harness:
    """The sandbox, our app on a port, the worker, and the clocks, for one run."""

    def __init__(self, *, database_url: str, redis_url: str, workdir: Path) -> None:
        from integration import create_app
        from integration.config import load_settings
        from integration.sandbox.server import SandboxServer

        self.clock = BenchClock()
        self.sandbox = SandboxServer(instance_path=workdir, webhook_retry_delays=(0.05,) * 6,
                                     webhook_retry_jitter=0.0, webhook_timeout=5.0).start()
        environ = {"TEXTBACK_ENV": "development", "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                   "PUBLIC_BASE_URL": "http://localhost:5000"}
        settings = load_settings(environ, instance_path=workdir).override(
            ghl_api_base=self.sandbox.url, ghl_marketplace_base=self.sandbox.url, ghl_timeout=3.0, ghl_max_retries=2)
        self.app = create_app(settings)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.http = requests.Session()
        self.control("POST", "config", {"webhook_url": f"http://127.0.0.1:{self.server.server_port}/webhooks/ghl"})

    # --- plumbing ---

    def control(self, method: str, path: str, body: dict | None = None, params: dict | None = None) -> dict:
        response = self.http.request(method, f"{self.sandbox.url}/_sandbox/{path}", json=body, params=params,
                                     timeout=30)
        if not response.ok:
            raise RuntimeError(f"sandbox {method} {path} -> {response.status_code}: {response.text[:300]}")
        return response.json()

    def settle(self, *, timeout: float = 180.0) -> None:
        """Deliver every webhook and run every job they cause until nothing new happens."""
        from integration.extensions import get_redis
        from workers.queues import DEFAULT_QUEUE, NEW_EVENTS_KEY, SERIALIZER, WEBHOOKS_QUEUE, get_queue
        from workers.worker import TextbackSimpleWorker

        class _QuietWorker(TextbackSimpleWorker):
            # NOTE: a burst worker's pubsub thread (for "stop job" commands nobody sends here) sometimes took a
            # minute to stop on a busy machine; the run does not need it.
            def subscribe(self) -> None:
                pass

            def unsubscribe(self) -> None:
                pass

        deadline = time.monotonic() + timeout
        queues = [get_queue(name, get_redis()) for name in (WEBHOOKS_QUEUE, DEFAULT_QUEUE)]
        while True:
            self._wait_for_deliveries(deadline)
            seen = len(self._deliveries())
            _QuietWorker(queues, connection=get_redis(), serializer=SERIALIZER).work(
                burst=True, with_scheduler=True, logging_level="WARNING")
            self._wait_for_deliveries(deadline)
            after = len(self._deliveries())
            if after == seen and not get_redis().llen(NEW_EVENTS_KEY) and not any(q.count for q in queues):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the run did not settle in time")

    def _deliveries(self) -> list[str]:
        """The state of every webhook delivery so far, read in-process: over the control API the whole log (with
        payloads) was JSON each poll, seconds per poll by the end of a run."""
        dispatcher = self.sandbox.state.dispatcher
        with dispatcher._lock:
            return [dispatcher._log[webhook_id].state for webhook_id in dispatcher._order]

    def _wait_for_deliveries(self, deadline: float) -> None:
        while any(state not in _FINAL_DELIVERY for state in self._deliveries()):
            if time.monotonic() > deadline:
                raise RuntimeError("webhooks still in flight")
            time.sleep(0.02)

    # --- setup ---

    def install_and_configure(self, location_id: str, calendar_id: str, on_call: str) -> None:
        """Install through the consent page, as a person does; turn the agent on with the seed calendar."""
        from integration.agent.engine import BookingAgent
        from integration.agent.settings import DEFAULT_AGENT_SETTINGS
        from integration.crm.runner import CrmActionRunner
        from integration.crm.settings import DEFAULT_CRM_SETTINGS
        from integration.extensions import db, get_redis
        from integration.models import LocationSettings
        from integration.textback.facts import FactGatherer
        from integration.textback.sender import TextBackSender
        from oauth.services import get_oauth
        from workers.agent import schedule_turn
        from workers.crm import schedule_action, schedule_now

        browser = self.app.test_client()
        consent = urlsplit(browser.get("/oauth/install").headers["Location"])
        form = {k: v[0] for k, v in parse_qs(consent.query).items()}
        form.update(choice=f"location:{location_id}", action="install")
        callback = urlsplit(self.http.post(f"{self.sandbox.url}{consent.path}", data=form, allow_redirects=False,
                                           timeout=30).headers["Location"])
        assert browser.get(f"{callback.path}?{callback.query}").status_code == 302
        self.control("POST", "contacts", {"locationId": location_id, "phone": on_call, "firstName": "On",
                                          "lastName": "Call"})
        with db.transaction() as session:
            session.merge(LocationSettings(location_id=location_id, enabled=True, values={
                "cooldown_hours": 0, "max_call_age_minutes": 7 * 24 * 60,
                "crm": {**DEFAULT_CRM_SETTINGS, "on_call_number": on_call},
                "agent": {**DEFAULT_AGENT_SETTINGS, "enabled": True, "calendar_id": calendar_id, "grace_minutes": 0,
                          "max_messages_per_hour": 8}}))
        client = get_oauth(self.app).client
        gatherer = FactGatherer(database=db, client=client, redis=get_redis(self.app), clock=self.clock)
        sender = TextBackSender(database=db, client=client, gatherer=gatherer, clock=self.clock,
                                reconcile_grace=timedelta(0))
        self.app.extensions["textback.sender"] = sender
        self.app.extensions["crm.runner"] = CrmActionRunner(database=db, client=client, gatherer=gatherer,
                                                            schedule=schedule_action, backoff=(0,), max_attempts=4)

        def schedule(conversation_id: int, when: datetime) -> None:
            schedule_turn(conversation_id, datetime.now(UTC) + max(when - self.clock(), timedelta(0)))

        self.app.extensions["agent.engine"] = BookingAgent(
            database=db, client=client, gatherer=gatherer, schedule=schedule, wake=schedule_now,
            retry_delays=(0.01, 0.02), clock=self.clock)
        self.settle()

    def set_time(self, moment: datetime) -> None:
        """Play what follows at `moment`: the sandbox's clock and ours."""
        offset = moment - datetime.now(UTC)
        self.clock.offset = offset
        self.control("POST", "clock", {"offsetSeconds": offset.total_seconds()})

    def stop(self) -> None:
        self.server.shutdown()
        self.sandbox.stop()


def _conversation_time(spec: dict, today: datetime) -> datetime:
    """When a conversation is played: a given date, else the next weekday after today; 13:00 unless told."""
    clock = spec.get("clock") or {}
    hour, minute = map(int, clock.get("time", "13:00").split(":"))
    zone = ZoneInfo(clock.get("zone", "America/Chicago"))
    if clock.get("date"):
        day = datetime.fromisoformat(clock["date"]).date()
    else:
        day = today.astimezone(zone).date() + timedelta(days=1)
        while day.weekday() >= 5:
            day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


def _satisfies(wants: dict, start: datetime, played_at: datetime) -> str | None:
    """Why the booked start (in the caller's zone) misses the caller's stated constraint; None when it fits."""
    local_day = played_at.astimezone(start.tzinfo).date()
    if "day_offset" in wants and start.date() != local_day + timedelta(days=wants["day_offset"]):
        return f"not {wants['day_offset']} day(s) ahead"
    if "weekday" in wants and _WEEKDAYS[start.weekday()] != wants["weekday"]:
        return f"not a {wants['weekday']}"
    if "part" in wants and not _PARTS[wants["part"]][0] <= start.hour < _PARTS[wants["part"]][1]:
        return f"not in the {wants['part']}"
    if "time" in wants and start.strftime("%H:%M") != wants["time"]:
        return f"not at {wants['time']}"
    if "after" in wants and start.strftime("%H:%M") < wants["after"]:
        return f"not after {wants['after']}"
    if wants.get("next_week"):
        monday = local_day + timedelta(days=7 - local_day.weekday())
        if not monday <= start.date() < monday + timedelta(days=7):
            return "not next week"
    return None


def _accepted(picks, offered: list[str], wants: dict) -> str | None:
    """The offered slot (ISO) the caller's text accepts, by the corpus's `picks`."""
    slots = [datetime.fromisoformat(value) for value in offered]
    if isinstance(picks, int):
        return offered[picks - 1] if 1 <= picks <= len(offered) else None
    if picks == "single":
        return offered[0] if len(offered) == 1 else None
    if picks == "time":
        found = [s for s in slots if s.strftime("%H:%M") == wants.get("time")]
        return found[0].isoformat() if found else None
    if isinstance(picks, str) and picks.startswith("weekday:"):
        found = [s for s in slots if _WEEKDAYS[s.weekday()] == picks.split(":", 1)[1]]
        return found[0].isoformat() if found else None
    return None


def run_conversation(harness: Harness, spec: dict, index: int, *, location_id: str, on_call_id: str) -> Result:
    from integration.agent.models import AgentConversation, AgentOutbound
    from integration.extensions import db
    from integration.sandbox import crm as sandbox_crm

    result = Result(id=spec["id"], category=spec["category"], expect=spec["expect"],
                    bookable=spec["expect"] == "booked")
    caller = spec.get("caller") or {}
    number = f"+1{caller.get('area', '512')}555{1000 + index:04d}"
    played_at = _conversation_time(spec, datetime.now(UTC))
    harness.set_time(played_at)
    state = harness.sandbox.state
    with state.lock:
        # Each lead meets the calendar as a contractor's week has it, not filled by the corpus's earlier bookings.
        state.world.appointments.clear()
    contact = harness.control("POST", "contacts", {"locationId": location_id, "phone": number,
                                                   "firstName": f"Lead{index}"})["contact"]
    with state.lock:
        state.world.contacts[contact["id"]]["timezone"] = caller.get("zone", "America/Chicago")
        alerts_before = sum(1 for m in state.world.sent if m["contactId"] == on_call_id)
    harness.control("POST", "calls", {"locationId": location_id, "from": number, "outcome": "no-answer"})
    harness.settle()

    def conversation():
        with db.session() as session:
            row = session.scalar(select(AgentConversation).where(AgentConversation.contact_id == contact["id"]))
            if row is not None:
                session.expunge(row)
            return row

    def appointments():
        with state.lock:
            return [dict(a) for a in state.world.appointments.values() if a["contactId"] == contact["id"]]

    sent, accepted = 0, None
    for turn in spec["turns"]:
        row = conversation()
        offered = list((row.memory or {}).get("offered") or []) if row is not None else []
        if "say" in turn:
            if turn.get("picks") is not None:
                accepted = _accepted(turn["picks"], offered, spec.get("wants") or {})
            harness.control("POST", "replies", {"locationId": location_id, "from": number, "body": turn["say"]})
            sent += 1
        elif "person" in turn:
            harness.control("POST", "person-messages", {"contactId": contact["id"], "body": turn["person"]})
        elif "take" in turn and offered and turn["take"] <= len(offered):
            # Another customer books that slot on the calendar meanwhile (HighLevel's own booking widget).
            filler = harness.control("POST", "contacts", {"locationId": location_id, "firstName": "Other",
                                                          "phone": f"+1512556{1000 + index:04d}"})["contact"]
            sandbox_crm.book_appointment(state, contact_id=filler["id"],
                                         start=datetime.fromisoformat(offered[turn["take"] - 1]))
        harness.settle()
        if appointments() and result.caller_messages_to_book is None:
            result.caller_messages_to_book = sent

    row = conversation()
    result.state = row.state if row is not None else "not started"
    result.reason = (row.reason or "") if row is not None else ""
    with db.session() as session:
        result.agent_texts = list(session.scalars(select(AgentOutbound.body).join(
            AgentConversation, AgentConversation.id == AgentOutbound.conversation_id).where(
            AgentConversation.contact_id == contact["id"], AgentOutbound.status == AgentOutbound.SENT)
            .order_by(AgentOutbound.id)))
    booked = appointments()
    if len(booked) > 1:
        result.wrong.append(f"{len(booked)} appointments")
    if booked and not result.bookable:
        result.wrong.append("booked although no booking was wanted")
    if booked and result.bookable:
        start = datetime.fromisoformat(booked[0]["startTime"])
        if accepted is None or start != datetime.fromisoformat(accepted):
            result.wrong.append(f"booked {booked[0]['startTime']}, the caller accepted {accepted}")
        else:
            result.booked_ok = len(booked) == 1
            zone = ZoneInfo(caller.get("zone", "America/Chicago"))
            result.preference_miss = _satisfies(spec.get("wants") or {}, start.astimezone(zone), played_at)
    if not result.booked_ok:
        result.caller_messages_to_book = None
    if spec.get("alert"):
        with state.lock:
            result.alert_ok = sum(1 for m in state.world.sent if m["contactId"] == on_call_id) > alerts_before
    return result


def _prepare_database(url: str) -> None:
    from integration.db import Base
    from integration.migrate import import_all_models, upgrade

    upgrade(url)
    import_all_models()
    engine = create_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as connection:
        if url.startswith("postgresql"):
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                connection.execute(text(f"DELETE FROM {name}"))  # noqa: S608 - our own table names
    engine.dispose()


def report(results: list[Result]) -> dict:
    bookable = [r for r in results if r.bookable]
    booked_ok = [r for r in bookable if r.booked_ok]
    steps = [r.caller_messages_to_book for r in booked_ok if r.caller_messages_to_book is not None]
    alerts = [r for r in results if r.alert_ok is not None]
    return {
        "conversations": len(results),
        "booking_possible": len(bookable),
        "booked_correctly": len(booked_ok),
        "booking_success_rate": round(100 * len(booked_ok) / len(bookable), 1) if bookable else None,
        "median_caller_messages_to_book": statistics.median(steps) if steps else None,
        "handover_rate": round(100 * sum(r.state == "handed_over" for r in results) / len(results), 1),
        "wrong_bookings": sum(bool(r.wrong) for r in results),
        "end_state_as_scripted": sum(r.state == r.expect for r in results),
        "emergency_alerts_sent": f"{sum(bool(r.alert_ok) for r in alerts)}/{len(alerts)}",
        "bookings_missing_a_stated_preference": sum(r.preference_miss is not None for r in booked_ok),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a database of its own: every table is emptied")
    parser.add_argument("--redis-url", required=True, help="a Redis database of its own: it is flushed")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--only", help="run only the conversations whose id contains this")
    parser.add_argument("--json", type=Path, help="write every conversation's result here")
    args = parser.parse_args(argv)

    import redis as redis_lib

    from integration.config import normalize_database_url
    from integration.sandbox.seed import SEED_CALENDAR_IDS, SEED_LOCATION_IDS

    database_url = normalize_database_url("--database-url", args.database_url)
    _prepare_database(database_url)
    redis_lib.Redis.from_url(args.redis_url).flushdb()
    corpus = json.loads(args.corpus.read_text())["conversations"]
    if args.only:
        corpus = [c for c in corpus if args.only in c["id"]]
    location_id = SEED_LOCATION_IDS[0]
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as workdir:
        harness = Harness(database_url=database_url, redis_url=args.redis_url, workdir=Path(workdir))
        started = time.monotonic()
        try:
            with harness.app.app_context():
                harness.install_and_configure(location_id, SEED_CALENDAR_IDS[location_id], on_call="+15125550188")
                with harness.sandbox.state.lock:
                    on_call_id = next(c["id"] for c in harness.sandbox.state.world.contacts.values()
                                      if c.get("phone") == "+15125550188")
                for index, spec in enumerate(corpus):
                    result = run_conversation(harness, spec, index, location_id=location_id, on_call_id=on_call_id)
                    results.append(result)
                    mark = "ok " if result.state == result.expect and not result.wrong else "-- "
                    print(f"{mark}{result.id:34} {result.state:12} booked={result.booked_ok!s:5} "
                          f"msgs={result.caller_messages_to_book} {'; '.join(result.wrong)}"
                          f"{' pref: ' + result.preference_miss if result.preference_miss else ''}", flush=True)
        finally:
            harness.stop()
    figures = report(results)
    figures["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1, default=str))
    return 0 if figures["wrong_bookings"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
