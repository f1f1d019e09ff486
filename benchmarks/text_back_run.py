"""One text-back run of the pipeline benchmark (issue 13): missed calls at a rate, measured end to end.

What a run measures, for `rate` missed calls/s over `duration` s, each from a caller the sandbox knows (its own
contact: the per-caller cooldown would skip repeats), spread round robin over the installed locations:
- webhook -> send: from the moment the benchmark sent the call's webhook to the moment our
  `POST /conversations/messages` reached the sandbox (`requestArrivedAt`: before the latency model's delay, so
  HighLevel's own time on the send is not counted as ours), p50 / p99 / max; every call texted exactly once;
- the CRM follow-up: from the webhook to the last of the lead's HighLevel changes (tag, note, opportunity)
  recorded as done;
- HighLevel's limit: the most requests any location made in any 10 s (the sandbox's request log, by arrival),
  and how many answers were the sandbox's own 429 (its limiter is HighLevel's 100 per 10 s unless lifted);
- the peak resident memory of the worker process groups (the supervisor, its workers, the maintenance process).
"""

from __future__ import annotations

import concurrent.futures
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime

from benchmarks.loadgen import open_loop, percentile
from benchmarks.memory import RssPeak
from benchmarks.webhook_payloads import CallerRef, missed_call

__all__ = ["TextRun", "TextRunner"]


@dataclass
class TextRun:
    label: str
    rate: float
    duration: float
    calls: int
    texted_once: int = 0
    texted_twice: int = 0
    send_latencies: list[float] = field(default_factory=list)
    crm_latencies: list[float] = field(default_factory=list)
    crm_done: int = 0
    max_per_location_10s: int = 0
    sandbox_429s: int = 0
    worker_rss_bytes: int = 0
    worker_pss_bytes: int = 0
    acks_ok: int = 0
    throughput: float = 0.0
    outcomes: dict = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.calls - self.texted_once - self.texted_twice

    @property
    def p50(self) -> float:
        return percentile(self.send_latencies, .5)

    @property
    def p99(self) -> float:
        return percentile(self.send_latencies, .99)

    @property
    def crm_p99(self) -> float:
        return percentile(self.crm_latencies, .99)

    def holds(self, *, p99_seconds: float = 1.0) -> bool:
        return self.texted_once == self.calls and self.p99 <= p99_seconds

    def lines(self) -> list[str]:
        ms = lambda seconds: f"{seconds * 1000:.0f} ms"  # noqa: E731 - local shorthand
        return [
            f"  {self.label}: {self.rate:g} missed calls/s for {self.duration:g} s ({self.calls} calls)",
            f"    texts: {self.texted_once} exactly once, {self.texted_twice} more than once, {self.lost} not texted; "
            f"webhooks answered 200: {self.acks_ok}/{self.calls}",
            f"    webhook -> send request at the sandbox: p50 {ms(self.p50)}, p99 {ms(self.p99)}, "
            f"max {ms(max(self.send_latencies, default=float('nan')))}; {self.throughput:.1f} texts/s sustained",
            f"    CRM follow-up done (tag, note, opportunity): {self.crm_done}/{self.texted_once + self.texted_twice}; "
            f"webhook -> last change p50 {percentile(self.crm_latencies, .5):.1f} s, p99 {self.crm_p99:.1f} s, "
            f"max {max(self.crm_latencies, default=float('nan')):.1f} s",
            f"    HighLevel's limit: at most {self.max_per_location_10s} requests by one location in any 10 s "
            f"(limit 100); sandbox 429s {self.sandbox_429s}",
            f"    worker memory peak (supervisor, workers, maintenance): RSS summed "
            f"{self.worker_rss_bytes / 2**20:.0f} MB (pages the forks share counted in each), "
            f"PSS {self.worker_pss_bytes / 2**20:.0f} MB (counted once)",
        ]


class TextRunner:
    """Runs text-back phases against a started stack (see benchmarks.webhook_pipeline)."""

    def __init__(self, *, urls, database, stack, signer, locations: list[str], numbers, control, senders: int,
                 worker_sessions: list[int]) -> None:
        self.urls = urls
        self.database = database
        self.stack = stack
        self.signer = signer
        self.locations = locations
        self._numbers = iter(numbers)
        self.control = control
        self.senders = senders
        self.worker_sessions = worker_sessions

    def callers(self, count: int) -> list[CallerRef]:
        """`count` new callers, each with a contact and a call in the sandbox (its own webhooks off meanwhile)."""
        numbers = [next(self._numbers) for _ in range(count)]
        # Put back what was delivered before (the subscribed types), not every type the sandbox makes: HighLevel
        # sends an app only what its marketplace.json subscribes to.
        delivered = self.control("GET", "config")["webhook_events"]
        self.control("POST", "config", {"webhook_events": []})
        try:
            def place(index_number: tuple[int, str]) -> CallerRef:
                index, number = index_number
                location_id = self.locations[index % len(self.locations)]
                placed = self.control("POST", "calls", {"locationId": location_id, "from": number,
                                                        "outcome": "no-answer"})
                return CallerRef(location_id, placed["contactId"], placed["conversationId"], placed["messageId"])

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                return list(pool.map(place, enumerate(numbers)))
        finally:
            self.control("POST", "config", {"webhook_events": delivered})

    def run(self, label: str, *, rate: float, duration: float, crm_timeout: float = 120.0) -> TextRun:
        from benchmarks.webhook_pipeline import planned_at, signed_schedule, wait_for_drain

        callers = self.callers(int(rate * duration))
        wait_for_drain(self.database, self.stack, timeout=60)
        log_start = len(self.control("GET", "requests")["requests"])
        start_wall, batch = signed_schedule(
            lambda i, start: self.signer.request(missed_call(callers[i], at=planned_at(start, i, rate))), len(callers))
        result = TextRun(label=label, rate=rate, duration=duration, calls=len(callers))
        with RssPeak(self.worker_sessions) as rss:
            acks = open_loop(f"{self.urls.app}/webhooks/ghl", batch, rate=rate, start_wall=start_wall,
                             senders=self.senders)
            sent_at = {callers[r.index].contact_id: r.sent_wall for r in acks}
            result.acks_ok = sum(1 for r in acks if r.status == 200)
            texts = self._wait_for_texts(sent_at)
            crm = self._wait_for_crm(sent_at, timeout=crm_timeout)
        result.worker_rss_bytes, result.worker_pss_bytes = rss.bytes, rss.pss_bytes
        result.texted_once = sum(1 for stamps in texts.values() if len(stamps) == 1)
        result.texted_twice = sum(1 for stamps in texts.values() if len(stamps) > 1)
        result.send_latencies = [min(stamps) - sent_at[contact] for contact, stamps in texts.items()]
        if texts:
            first = min(sent_at.values())
            last = max(max(stamps) for stamps in texts.values())
            result.throughput = (result.texted_once + result.texted_twice) / max(last - first, 1e-9)
        result.crm_done = len(crm)
        result.crm_latencies = [done - sent_at[contact] for contact, done in crm.items()]
        entries = self.control("GET", "requests")["requests"][log_start:]
        result.max_per_location_10s = _max_per_resource_window(entries, window=10.0)
        result.sandbox_429s = sum(1 for e in entries if e.get("status") == 429 and not e.get("fault"))
        if result.texted_once != result.calls:
            result.outcomes = _outcomes(self.database, set(sent_at))
        return result

    def _texts(self, sent_at: dict[str, float]) -> dict[str, list[float]]:
        texts: dict[str, list[float]] = {}
        for message in self.control("GET", "messages")["messages"]:
            if message["contactId"] in sent_at:
                arrived = message.get("requestArrivedAt")
                if arrived is None:
                    arrived = datetime.fromisoformat(message["dateAdded"].replace("Z", "+00:00")).timestamp()
                texts.setdefault(message["contactId"], []).append(arrived)
        return texts

    def _wait_for_texts(self, sent_at: dict[str, float], *, quiet_for: float = 20.0) -> dict[str, list[float]]:
        last_count, last_progress = -1, time.monotonic()
        while True:
            texts = self._texts(sent_at)
            if len(texts) != last_count:
                last_count, last_progress = len(texts), time.monotonic()
            if last_count == len(sent_at) or time.monotonic() - last_progress > quiet_for:
                break
            self.stack.check_alive()
            time.sleep(0.5)
        time.sleep(1.0)  # a duplicate would show up right after the first text
        return self._texts(sent_at)

    def _wait_for_crm(self, sent_at: dict[str, float], *, timeout: float) -> dict[str, float]:
        """contactId -> epoch seconds its lead's last HighLevel change finished, once all are final."""
        deadline = time.monotonic() + timeout
        while True:
            done = _crm_done(self.database, set(sent_at))
            if len(done) >= len(sent_at) or time.monotonic() > deadline:
                return done
            self.stack.check_alive()
            time.sleep(0.5)


def _crm_done(database, contact_ids: set[str]) -> dict[str, float]:
    from sqlalchemy import select

    from integration.crm.models import CrmAction, CrmLead

    finals = {CrmAction.DONE, CrmAction.SKIPPED, CrmAction.FAILED}
    with database.session() as session:
        rows = session.execute(select(CrmLead.contact_id, CrmAction.status, CrmAction.finished_at)
                               .join(CrmAction, CrmAction.lead_id == CrmLead.id)).all()
    by_contact: dict[str, list] = defaultdict(list)
    for contact, status, finished in rows:
        if contact in contact_ids:
            by_contact[contact].append((status, finished))
    return {contact: max(f.timestamp() for _, f in actions) for contact, actions in by_contact.items()
            if len(actions) >= 3 and all(status in finals and f is not None for status, f in actions)}


def _max_per_resource_window(entries: list[dict], *, window: float) -> int:
    """The most requests one resource (location) made within any `window` seconds, by arrival time."""
    by_resource: dict[str, list[float]] = defaultdict(list)
    for entry in entries:
        if entry.get("resource") and isinstance(entry.get("arrived"), int | float):
            by_resource[entry["resource"]].append(entry["arrived"])
    most = 0
    for stamps in by_resource.values():
        stamps.sort()
        inside: deque[float] = deque()
        for stamp in stamps:
            inside.append(stamp)
            while inside[0] <= stamp - window:
                inside.popleft()
            most = max(most, len(inside))
    return most


def _outcomes(database, contact_ids: set[str]) -> dict:
    from collections import Counter

    from sqlalchemy import select

    from integration.textback.models import MissedCall

    with database.session() as session:
        rows = session.execute(select(MissedCall.contact_id, MissedCall.status, MissedCall.outcome)).all()
    return dict(Counter(f"{status}: {(outcome or '')[:70]}" for contact, status, outcome in rows
                        if contact in contact_ids).most_common(8))
