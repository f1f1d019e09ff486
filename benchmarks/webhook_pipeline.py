"""Benchmark the webhook pipeline end to end (issues 4 and 13): the Procfile as shipped + the sandbox.

    .venv/bin/python -m benchmarks.webhook_pipeline [--duration 60] [--ack-rate 100] [--call-rate 20]

Starts, on this machine: the sandbox (`python -m integration.cli sandbox --latency highlevel`), the app under
gunicorn with the Procfile's settings, one `python -m workers` (which runs WORKER_PROCESSES itself), and a bare
Flask endpoint (benchmarks/bare_endpoint.py: signature check only) under the same gunicorn settings, all on
DATABASE_URL (PostgreSQL) and REDIS_URL. It WIPES that database and Redis db first: point them at a database of
their own (defaults: h_bench, db 7; a database whose name does not contain "bench" is wiped only with
--wipe-database). Two runs on the same database and Redis db cannot overlap (a lock file says so).
An agency of --locations (50) sub-accounts is installed in bulk through the real consent page and callback;
HighLevel's 100 requests / 10 s per location stay in force (--lift-rate-limits lifts them), and the sandbox
delivers only the webhook types marketplace.json subscribes to.

Phase 1, acknowledgement: signed InboundMessage webhooks of answered calls at --ack-rate for
--duration, lasting 1 to 5 minutes. Those of 2 minutes or more can be no location's missed call and
the receiver stores them as ignored (integration.textback.missed_call.never_missed); the shorter quarter
is queued and classified by the workers under the location's settings (sending nothing), so the
receiver is measured while the workers share the machine. --answers-need-workers makes every answered
call shorter than 2 minutes, so every webhook is a job, as all were before the receiver decided.
Phase 2, text back: missed calls at --call-rate for --duration, every CRM follow-up running; what is measured
is in benchmarks.text_back_run (webhook -> send request arrival at the sandbox, exactly once, the follow-up's
completion, requests per location per 10 s, worker memory).
Phase 4, the largest of --search-rates held with p99 <= 1 s; phase 5, phase 2 with the latency model off.
Phase 3, ceiling: closed loop, --clients keep-alive clients for --ceiling-seconds against the bare
endpoint, then against ours (answered calls, the same mix, each unique so each is a real insert), once with
the workers processing what arrives and once with them paused (SIGSTOP), the receiver alone.

Every phase prints where the CPU went (per process group, and what the rest of the machine used:
on a shared machine other work skews every figure). Logs, per-request CSVs and the report are kept
in --run-dir (a temporary directory by default). The daily cap is raised to its maximum on every location.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cpu import CpuTimeline, cpu_sample, describe_cpu
from benchmarks.loadgen import CeilingResult, Sent, closed_loop, open_loop, percentile
from benchmarks.stack import Stack, free_port
from benchmarks.text_back_run import TextRun, TextRunner
from benchmarks.webhook_payloads import (
    ANSWERED_SECONDS,
    SHORT_ANSWERED_SECONDS,
    CallerArea,
    CallerRef,
    Signer,
    answered_call,
    caller_numbers,
    pick_caller_area,
)
from integration.textback.missed_call import MAX_SHORT_CALL_SECONDS

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/h_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
# Both rate limits are lifted to this for the run (requests per window).
LIFTED_RATE_LIMIT = 1_000_000
MAX_DAILY_CAP = 10_000
ACK_CALLERS_PER_LOCATION = 20
# Webhooks/s our endpoint could reach at most in phase 3, to size its sets of unique webhooks.
CEILING_RATE_ALLOWANCE = 3000
TARGET_ACK_P99_MS = 50.0
TARGET_SEND_P50_MS = 300.0
TARGET_CRM_P99_S = 30.0
TARGET_WORKER_RSS_MB = 400
TARGET_SEND_P99_MS = 1000.0
TARGET_INGEST_SHARE = 0.5
# Environment variables that must not leak from the caller's shell into the stack.
_SCRUBBED_PREFIXES = ("GHL_", "TEXTBACK_", "SANDBOX_", "WORKER_")
_SCRUBBED = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "TOKEN_ENCRYPTION_KEYS", "PUBLIC_BASE_URL",
             "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS"}


# --- Setup ----------------------------------------------------------------------------------------


def _create_database_if_missing(url) -> None:
    """A fresh machine has no benchmark database yet: create it (through the server's `postgres` database)."""
    from sqlalchemy import create_engine, text

    server = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                  {"name": url.database}).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    finally:
        server.dispose()


def reset_database(url: str, *, allow_any_name: bool) -> str:
    """Empty the benchmark's database and migrate it; returns the SQLAlchemy URL.

    Raises:
        SystemExit: the database's name does not say it is a benchmark's and `allow_any_name` is False.
    """
    from sqlalchemy import create_engine, make_url, text

    from integration.config import normalize_database_url
    from integration.migrate import upgrade

    url = normalize_database_url("DATABASE_URL", url)
    name = make_url(url).database or ""
    if "bench" not in Path(name).name and not allow_any_name:
        raise SystemExit(f"refusing to wipe database {name!r}: its name does not contain 'bench' "
                         "(pass --wipe-database if it is yours to wipe)")
    if url.startswith("postgresql"):
        _create_database_if_missing(make_url(url))
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    elif url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    upgrade(url)
    return url


def code_version() -> str:
    """The commit the stack runs, and whether the working tree had uncommitted changes (others' work in progress)."""
    import subprocess

    def git(*argv: str) -> str:
        try:
            answer = subprocess.run(["git", *argv], capture_output=True, text=True, timeout=10, check=False)
        except OSError:
            return ""
        return answer.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = [line for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if line.strip()]
    return f"{head}" + (f" + {len(changed)} uncommitted changed file(s) in the working tree" if changed else "")


def stack_environment(*, database_url: str, redis_url: str, instance: Path, app_url: str,
                      sandbox_url: str, lift_rate_limits: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED and not k.startswith(_SCRUBBED_PREFIXES)}
    env.update(TEXTBACK_ENV="development", DATABASE_URL=database_url, REDIS_URL=redis_url,
               TEXTBACK_INSTANCE_PATH=str(instance), PUBLIC_BASE_URL=app_url, TEXTBACK_SANDBOX_URL=sandbox_url,
               PYTHONUNBUFFERED="1")
    if lift_rate_limits:
        env["GHL_RATE_LIMIT"] = str(LIFTED_RATE_LIMIT)
    return env


@dataclass
class Urls:
    app: str
    bare: str
    sandbox: str


def start_stack(stack: Stack, args: argparse.Namespace, urls: Urls) -> None:
    gunicorn = ["--workers", str(args.web_workers), "--threads", str(args.web_threads), "--timeout", "30",
                # Several gunicorns share this machine: no control socket in ~/.gunicorn to fight over.
                "--no-control-socket"]
    stack.spawn("sandbox", ["-m", "integration.cli", "sandbox", "--port", str(urlsplit(urls.sandbox).port),
                            "--webhook-url", f"{urls.app}/webhooks/ghl", "--latency", args.latency])
    stack.wait_http("sandbox", f"{urls.sandbox}/_sandbox/config")
    # The Procfile's web line: its gunicorn config (the metrics process group, the log format) included.
    stack.spawn("web", ["-m", "gunicorn", "-c", "python:integration.gunicorn_conf", "integration.wsgi:app",
                        "--bind", urlsplit(urls.app).netloc, *gunicorn])
    stack.spawn("bare", ["-m", "gunicorn", "benchmarks.bare_endpoint:app", "--bind", urlsplit(urls.bare).netloc,
                         *gunicorn])
    for number in range(args.workers):
        # One maintenance loop (sweeper, periodic jobs) is enough; the others only run jobs.
        worker_env = dict(stack.env)
        if args.worker_nice is not None:
            worker_env["WORKER_NICE"] = str(args.worker_nice)
        worker_env.update(item.split("=", 1) for item in args.worker_env)
        stack.spawn(f"worker{number + 1}", ["-m", "workers", *(["--no-maintenance"] if number else [])],
                    env=worker_env)
    stack.wait_http("web", f"{urls.app}/healthz")
    stack.wait_http("bare", f"{urls.bare}/healthz")


def install_agency(urls: Urls, company_id: str) -> None:
    """The real consent dance once for the whole agency (bulk install): our /oauth/install, the sandbox's consent
    page, our callback; every sub-account of the agency gets the app through its INSTALL webhook."""
    browser = requests.Session()
    start = browser.get(f"{urls.app}/oauth/install", allow_redirects=False, timeout=30)
    if start.status_code != 302:
        raise RuntimeError(f"/oauth/install answered {start.status_code}")
    consent = urlsplit(start.headers["Location"])
    form = {key: values[0] for key, values in parse_qs(consent.query).items()}
    form.update(choice=f"bulk:{company_id}", action="install")
    approved = browser.post(f"{urls.sandbox}{consent.path}", data=form, allow_redirects=False, timeout=30)
    if approved.status_code != 302:
        raise RuntimeError(f"the consent page answered {approved.status_code}: {approved.text[:200]}")
    callback = urlsplit(approved.headers["Location"])
    finished = browser.get(f"{urls.app}{callback.path}?{callback.query}", allow_redirects=False, timeout=120)
    if finished.status_code != 302:
        raise RuntimeError(f"/oauth/callback answered {finished.status_code}: {finished.text[:200]}")


def wait_until_live(database, location_ids: list[str], *, timeout: float = 120.0) -> None:
    from oauth.store import is_location_active

    deadline = time.monotonic() + timeout
    while True:
        with database.session() as session:
            waiting = [loc for loc in location_ids if not is_location_active(session, loc)]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"locations not live after {timeout:.0f} s: {waiting}")
        time.sleep(0.5)


def configure_locations(database, location_ids: list[str], area: CallerArea) -> dict:
    """Raise the daily cap to its maximum and allow the callers' country; returns the values written."""
    from integration.models import LocationSettings
    from integration.textback.settings import effective_settings

    values = {"daily_cap": MAX_DAILY_CAP, "allowed_countries": sorted({"US", "CA", area.region})}
    effective_settings(location_values=values)  # fails here, not in the workers, if the document is wrong
    with database.transaction() as session:
        for location_id in location_ids:
            row = session.get(LocationSettings, location_id)
            if row is None:
                session.add(LocationSettings(location_id=location_id, enabled=True, values=values))
            else:
                row.enabled = True
                row.values = {**(row.values or {}), **values}
    return values


def sandbox_control(urls: Urls, method: str, path: str, body: dict | None = None) -> dict:
    response = requests.request(method, f"{urls.sandbox}/_sandbox/{path}", json=body, timeout=60)
    if not response.ok:
        raise RuntimeError(f"sandbox {method} {path} -> {response.status_code}: {response.text[:200]}")
    return response.json()


def create_callers(urls: Urls, location_ids: list[str], numbers: list[str], *, outcome: str) -> list[CallerRef]:
    """Each number calls one of the locations (round robin) in the sandbox: a contact, a conversation, a call.

    The sandbox's own webhooks are switched off meanwhile; the benchmark sends the calls' webhooks itself.
    """
    def place(index_number: tuple[int, str]) -> CallerRef:
        index, number = index_number
        location_id = location_ids[index % len(location_ids)]
        placed = sandbox_control(urls, "POST", "calls", {"locationId": location_id, "from": number,
                                                         "outcome": outcome})
        return CallerRef(location_id, placed["contactId"], placed["conversationId"], placed["messageId"])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(place, enumerate(numbers)))


# --- Measuring ------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def planned_at(start_wall: float, index: int, rate: float) -> datetime:
    return datetime.fromtimestamp(start_wall + index / rate, UTC)


def signed_schedule(build, count: int) -> tuple[float, list[tuple[bytes, dict[str, str]]]]:
    """(start_wall, requests) where request i is `build(i, start_wall)`: stamped with the instant it will be sent.

    The start is planned far enough ahead for the signing to finish, so no webhook claims a call time
    in the future of its own delivery (the text-back guards treat that as a call still to come).
    """
    margin = 1.0 + count * 0.0005
    while True:
        start_wall = time.time() + margin
        batch = [build(index, start_wall) for index in range(count)]
        if time.time() < start_wall - 0.2:
            return start_wall, batch
        margin *= 2


def pending_events(database) -> int:
    from sqlalchemy import func, select

    from integration.models import WebhookEvent

    with database.session() as session:
        return session.scalar(select(func.count()).select_from(WebhookEvent)
                              .where(WebhookEvent.status.in_(("pending", "processing")))) or 0


def wait_for_drain(database, stack: Stack, *, timeout: float) -> float:
    """Seconds until the inbox has nothing pending or processing (timeout: returns what it waited)."""
    started = time.monotonic()
    while pending_events(database) and time.monotonic() - started < timeout:
        stack.check_alive()
        time.sleep(0.25)
    return time.monotonic() - started


def wait_for_quiet(database, stack: Stack, sample, *, timeout: float = 600.0) -> float:
    """Seconds until the inbox is drained and the stack idles (follow-up jobs, e.g. CRM actions, finished)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        stack.check_alive()
        before = sample()
        time.sleep(2.0)
        after = sample()
        busy = sum(after.groups[name] - before.groups.get(name, 0.0) for name in after.groups
                   if name in {c.name for c in stack.children}) / max(after.at - before.at, 1e-9)
        if busy < 0.1 and not pending_events(database):
            break
    return time.monotonic() - started


def window_lines(results: list[Sent], timeline: CpuTimeline, *, width: float = 5.0) -> list[str]:
    """p99 of the acks in each `width`-second stretch: best, median and worst, and the CPU during the worst."""
    origin = min(r.started for r in results)
    buckets: dict[int, list[float]] = {}
    for r in results:
        if r.status == 200:
            buckets.setdefault(int((r.started - origin) // width), []).append(r.latency)
    if len(buckets) < 2:
        return []
    p99s = sorted((percentile(v, .99), k) for k, v in buckets.items())
    worst_p99, worst = p99s[-1]
    cores = timeline.cores_between(origin + worst * width, origin + (worst + 1) * width)
    shown = ", ".join(f"{name} {value:.2f}" for name, value in sorted(cores.items(), key=lambda kv: -kv[1])
                      if value >= 0.05 and name != "machine")
    return [f"ack p99 per {width:g} s stretch: best {ms(p99s[0][0])}, median {ms(p99s[len(p99s) // 2][0])}, "
            f"worst {ms(worst_p99)} (at {worst * width:g}-{(worst + 1) * width:g} s)",
            f"  cpu during the worst stretch (cores): machine {cores.get('machine', float('nan')):.2f}; {shown}"]


@dataclass
class AckStats:
    sent: int
    statuses: Counter
    latencies: list[float]
    slips: list[float]
    span: float

    @classmethod
    def of(cls, results: list[Sent]) -> AckStats:
        statuses = Counter(r.status if r.status is not None else r.error for r in results)
        span = max(r.finished for r in results) - min(r.started for r in results)
        return cls(len(results), statuses, [r.latency for r in results if r.status == 200],
                   [r.slip for r in results], span)

    def lines(self, rate: float) -> list[str]:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items(), key=str))
        return [
            f"  sent {self.sent} at {rate:g}/s; answers {answers}; achieved {self.sent / self.span:.1f}/s",
            f"  ack latency (send -> answer, 200s): p50 {ms(percentile(self.latencies, .5))}, "
            f"p99 {ms(percentile(self.latencies, .99))}, max {ms(max(self.latencies, default=float('nan')))}",
            f"  load generator slip (due -> sent): p99 {ms(percentile(self.slips, .99))}, "
            f"max {ms(max(self.slips))}",
        ]


def save_results(path: Path, results: list[Sent]) -> None:
    """One CSV line per request (index, due/started/finished relative to the first due time, status)."""
    origin = min(r.due for r in results)
    lines = ["index,due_s,started_s,finished_s,latency_ms,status"]
    lines += [f"{r.index},{r.due - origin:.4f},{r.started - origin:.4f},{r.finished - origin:.4f},"
              f"{r.latency * 1000:.2f},{r.status or r.error}" for r in results]
    path.write_text("\n".join(lines) + "\n")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _text_rows(run: TextRun, *, crm_target: bool) -> list[tuple[str, str, str, str]]:
    return [
        (f"webhook -> send p50 at {run.rate:g}/s", ms(run.p50), f"<= {TARGET_SEND_P50_MS:g} ms",
         verdict(run.p50 * 1000 <= TARGET_SEND_P50_MS)),
        (f"webhook -> send p99 at {run.rate:g}/s", ms(run.p99), f"<= {TARGET_SEND_P99_MS:g} ms",
         verdict(run.p99 * 1000 <= TARGET_SEND_P99_MS)),
        ("texts == calls (0 lost, 0 twice)", f"{run.texted_once} / {run.calls}", "equal",
         verdict(run.texted_once == run.calls)),
        ("CRM follow-up done, p99", f"{run.crm_done} done, {run.crm_p99:.1f} s", f"<= {TARGET_CRM_P99_S:g} s",
         verdict(run.crm_done == run.texted_once and run.crm_p99 <= TARGET_CRM_P99_S) if crm_target else ""),
        ("most requests / 10 s by a location", f"{run.max_per_location_10s} (429s: {run.sandbox_429s})", "<= 100",
         verdict(run.max_per_location_10s <= 100 and run.sandbox_429s == 0)),
        ("worker memory peak, PSS (RSS summed)",
         f"{run.worker_pss_bytes / 2**20:.0f} MB ({run.worker_rss_bytes / 2**20:.0f} MB)",
         f"<= {TARGET_WORKER_RSS_MB} MB", verdict(run.worker_pss_bytes / 2**20 <= TARGET_WORKER_RSS_MB)),
    ]


# --- The run --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of phases 1 and 2 (default 60)")
    parser.add_argument("--ack-rate", type=float, default=100.0, help="webhooks/s in phase 1 (default 100)")
    parser.add_argument("--call-rate", type=float, default=20.0, help="missed calls/s in phase 2 (default 20)")
    parser.add_argument("--rate", type=float, default=None, help="shorthand: set both --ack-rate and --call-rate")
    parser.add_argument("--ceiling-seconds", type=float, default=15.0, help="phase 3 window per endpoint")
    parser.add_argument("--ceiling-rounds", type=int, default=3,
                        help="phase 3 rounds (bare, ours running, ours paused each); medians are reported")
    parser.add_argument("--clients", type=int, default=32, help="phase 3 concurrent clients (default 32)")
    parser.add_argument("--client-processes", type=int, default=2, help="processes the phase 3 clients run in")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn --workers for both endpoints")
    parser.add_argument("--web-threads", type=int, default=4, help="gunicorn --threads for both endpoints")
    parser.add_argument("--workers", type=int, default=1,
                        help="`python -m workers` commands (default 1: the Procfile's one worker line, which runs "
                             "WORKER_PROCESSES processes itself)")
    parser.add_argument("--locations", type=int, default=50, help="sub-accounts installed (default 50)")
    parser.add_argument("--lift-rate-limits", action="store_true",
                        help="lift HighLevel's 100 / 10 s per location in the sandbox and in our client")
    parser.add_argument("--search-rates", default="5,8,10,12,15,20,25,30",
                        help="phase 4: rates tried, in order, until one misses p99 <= 1 s")
    parser.add_argument("--search-seconds", type=float, default=20.0, help="phase 4: seconds per rate")
    parser.add_argument("--worker-nice", type=int, default=None,
                        help="the workers' WORKER_NICE (default: the product's, workers.config; 0 = web's priority)")
    parser.add_argument("--latency", default="highlevel",
                        help="the sandbox's API latency (integration.sandbox.latency): highlevel (median 150, p95 400, "
                             "p99 1000 ms; the default), off, or median=..,p95=..,p99=..")
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the workers (e.g. WORKER_CONCURRENCY=8); repeatable")
    parser.add_argument("--senders", type=int, default=160,
                        help="open-loop sender threads (enough to hold the rate through 1.5 s answers at 100/s)")
    parser.add_argument("--answers-need-workers", action="store_true",
                        help="phases 1 and 3: answered calls shorter than 2 min, so every one is a job (by default "
                             "three in four last longer and are decided by the receiver)")
    parser.add_argument("--phases", default="1,2,3,4,5",
                        help="which phases to run: 1 acks, 2 text back, 3 ceiling, 4 largest rate, 5 latency off "
                             "(default all)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
    parser.add_argument("--wipe-database", action="store_true",
                        help="allow wiping a database whose name does not contain 'bench'")
    parser.add_argument("--run-dir", type=Path, default=None, help="where logs and the instance go (default: temp)")
    args = parser.parse_args(argv)
    if args.rate is not None:
        args.ack_rate = args.call_rate = args.rate
    args.phases = {int(p) for p in args.phases.split(",") if p.strip()}
    args.search_rates = [float(r) for r in args.search_rates.split(",") if r.strip()]
    return args


def exclusive_run(database_url: str, redis_url: str):
    """Hold a lock for this database and Redis db, or exit: a second run would wipe them under the first one."""
    lock_path = Path(tempfile.gettempdir()) / (
        "textback-bench-" + hashlib.sha256(f"{database_url} {redis_url}".encode()).hexdigest()[:16] + ".lock")
    handle = open(lock_path, "w")  # noqa: SIM115 - held open for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SystemExit(f"another benchmark run is using {database_url} and {redis_url} (lock {lock_path})") from None
    return handle


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    lock = exclusive_run(args.database_url, args.redis_url)
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="textback-bench-"))
    run_dir.mkdir(parents=True, exist_ok=True)

    def on_term(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    stack = Stack(run_dir, {})
    try:
        return run(args, run_dir, stack)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping every process", flush=True)
        return 130
    finally:
        stack.stop()
        lock.close()
        print(f"logs: {run_dir}", flush=True)


def run(args: argparse.Namespace, run_dir: Path, stack: Stack) -> int:
    import redis

    from integration.config import load_settings
    from integration.db import Database
    from integration.sandbox.seed import SEED_COMPANY_ID, SEED_LOCATION_IDS

    out: list[str] = []

    def say(line: str = "") -> None:
        out.append(line)
        print(line, flush=True)

    instance = run_dir / "instance"
    urls = Urls(app=f"http://127.0.0.1:{free_port()}", bare=f"http://127.0.0.1:{free_port()}",
                sandbox=f"http://127.0.0.1:{free_port()}")
    database_url = reset_database(args.database_url, allow_any_name=args.wipe_database)
    redis.Redis.from_url(args.redis_url).flushdb()
    stack.env = stack_environment(database_url=database_url, redis_url=args.redis_url, instance=instance,
                                  app_url=urls.app, sandbox_url=urls.sandbox,
                                  lift_rate_limits=args.lift_rate_limits)
    load_settings(stack.env)  # generate the instance's secrets and sandbox keys once, before any child races for them
    database = Database()
    database.configure(database_url)
    budget = timedelta(seconds=args.duration * 2 + 600)
    area = pick_caller_area(datetime.now(UTC), span=budget)
    start_stack(stack, args, urls)
    if args.lift_rate_limits:
        sandbox_control(urls, "POST", "config", {"rate_limit": LIFTED_RATE_LIMIT, "daily_limit": LIFTED_RATE_LIMIT})
    generated = sandbox_control(urls, "POST", "locations", {"count": max(0, args.locations - len(SEED_LOCATION_IDS))})
    locations = (list(SEED_LOCATION_IDS) + generated["locationIds"])[:args.locations]
    install_agency(urls, SEED_COMPANY_ID)
    wait_until_live(database, locations)
    settings_values = configure_locations(database, locations, area)

    calls = int(args.call_rate * args.duration) * (2 in args.phases) + int(args.call_rate * args.duration) * (
        5 in args.phases) + int(sum(args.search_rates) * args.search_seconds) * (4 in args.phases)
    ack_count = ACK_CALLERS_PER_LOCATION * min(len(locations), 10)
    numbers = caller_numbers(area, calls + ack_count, seed=int(time.time()))
    sandbox_control(urls, "POST", "config", {"webhook_events": []})
    ack_callers = create_callers(urls, locations[:10], numbers[calls:], outcome="answered")
    # What the app subscribes to (marketplace.json), as HighLevel would deliver; not every type the sandbox makes.
    subscribed = json.loads((Path(__file__).resolve().parent.parent / "marketplace.json").read_text())["webhookEvents"]
    sandbox_control(urls, "POST", "config", {"webhook_events": subscribed})
    wait_for_drain(database, stack, timeout=60)
    signer = Signer(instance)
    sessions = {child.process.pid: child.name for child in stack.children}
    texts_runner = TextRunner(
        urls=urls, database=database, stack=stack, signer=signer, locations=locations, numbers=numbers[:calls],
        control=lambda method, path, body=None: sandbox_control(urls, method, path, body), senders=args.senders,
        worker_sessions=[child.process.pid for child in stack.children if child.name.startswith("worker")])

    def sample():
        return cpu_sample(sessions, database_name=database.engine.url.database)

    say(f"TextBack webhook pipeline benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    say(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; code: {code_version()}")
    say(f"web: gunicorn integration.wsgi:app --workers {args.web_workers} --threads {args.web_threads}; "
        f"bare: gunicorn benchmarks.bare_endpoint:app (same settings); {args.workers} x python -m workers"
        f" (WORKER_NICE {args.worker_nice if args.worker_nice is not None else 'default'}); "
        f"sandbox: python -m integration.cli sandbox")
    say(f"database: {database.engine.url.render_as_string(hide_password=True)}; redis: {args.redis_url}")
    if args.lift_rate_limits:
        say(f"rate limits LIFTED for this run: sandbox rate_limit={LIFTED_RATE_LIMIT}/10 s, "
            f"GHL_RATE_LIMIT={LIFTED_RATE_LIMIT} (this measures our pipeline, not HighLevel's 100/10 s per location)")
    else:
        say("rate limits as HighLevel's: the sandbox answers 429 past 100 requests / 10 s per location, and our "
            "client keeps under GHL_RATE_LIMIT (100 / 10 s) across processes")
    latency = sandbox_control(urls, "GET", "latency")["latency"]
    say(f"sandbox API latency: {latency or 'off'}")
    say(f"locations: {len(locations)} sub-accounts of one agency (the 3 seed ones and generated ones), installed in "
        f"bulk via consent + callback; settings {settings_values}")
    say(f"callers: {area.prefix}... ({', '.join(area.zones)}), inside quiet-hours windows for the run")
    say("webhooks: InboundMessage CALL payloads as the sandbox builds them, Ed25519-signed (x-ghl-signature)")
    say()

    rows: list[tuple[str, str, str, str]] = []
    ack: AckStats | None = None
    answered = SHORT_ANSWERED_SECONDS if args.answers_need_workers else ANSWERED_SECONDS
    share = sum(1 for seconds in answered if seconds < MAX_SHORT_CALL_SECONDS) / len(answered)
    answered_mix = (f"{answered.start}-{answered.stop - 1} s long: {share:.0%} queued and classified by the workers, "
                    f"the rest stored as ignored by the receiver")
    if 1 in args.phases:
        total = int(args.ack_rate * args.duration)
        start_wall, batch = signed_schedule(
            lambda i, start: signer.request(answered_call(ack_callers, i, at=planned_at(start, i, args.ack_rate),
                                                          durations=answered)),
            total)
        say(f"phase 1: acknowledgement, {args.ack_rate:g} webhooks/s for {args.duration:g} s "
            f"(answered calls, {answered_mix}; no text)")
        before = sample()
        with CpuTimeline(sample) as timeline:
            results = open_loop(f"{urls.app}/webhooks/ghl", batch, rate=args.ack_rate, start_wall=start_wall,
                                senders=args.senders)
        save_results(run_dir / "phase1_acks.csv", results)
        ack = AckStats.of(results)
        after = sample()
        for line in ack.lines(args.ack_rate):
            say(line)
        for line in window_lines(results, timeline):
            say(f"  {line}")
        for line in describe_cpu(before, after):
            say(f"  {line}")
        drained = wait_for_drain(database, stack, timeout=600)
        say(f"  workers' backlog drained {drained:.1f} s after the last webhook")
        wait_for_quiet(database, stack, sample)
        p99 = percentile(ack.latencies, .99)
        rows.append((f"ack p50 / p99 at {args.ack_rate:g}/s", f"{ms(percentile(ack.latencies, .5))} / {ms(p99)}",
                     f"p99 <= {TARGET_ACK_P99_MS:g} ms",
                     verdict(p99 * 1000 <= TARGET_ACK_P99_MS and ack.statuses.get(200) == ack.sent)))
        rows.append(("ingest rate held (phase 1)", f"{ack.sent / ack.span:.1f}/s", "", ""))
        say()

    if 2 in args.phases:
        say(f"phase 2: text back, {args.call_rate:g} missed calls/s for {args.duration:g} s over {len(locations)} "
            f"locations, every CRM follow-up running, sandbox latency {args.latency}")
        before = sample()
        texts = texts_runner.run("latency model on", rate=args.call_rate, duration=args.duration)
        after = sample()
        for line in texts.lines():
            say(line)
        for line in describe_cpu(before, after, per=(texts.texted_once, "texted call (its CRM follow-up included)")):
            say(f"  {line}")
        for outcome, count in texts.outcomes.items():
            say(f"    missed calls {outcome!r}: {count}")
        rows.extend(_text_rows(texts, crm_target=True))
        say()

    if 4 in args.phases:
        say(f"phase 4: the largest rate held with p99 <= 1 s, {args.search_seconds:g} s per rate "
            f"({', '.join(f'{r:g}' for r in args.search_rates)}/s, stopping at the first that misses)")
        held = None
        for rate in args.search_rates:
            wait_for_quiet(database, stack, sample)
            trial = texts_runner.run(f"{rate:g}/s", rate=rate, duration=args.search_seconds)
            for line in trial.lines()[:3]:
                say(line)
            if not trial.holds(p99_seconds=TARGET_SEND_P99_MS / 1000):
                break
            held = trial
        rows.append(("largest rate held, p99 <= 1 s", f"{held.rate:g}/s" if held else "below the first", "", ""))
        say()

    if 5 in args.phases:
        wait_for_quiet(database, stack, sample)
        sandbox_control(urls, "POST", "config", {"latency": None})
        say(f"phase 5: phase 2 again with the sandbox's latency model off ({args.call_rate:g} missed calls/s)")
        before = sample()
        instant = texts_runner.run("latency model off", rate=args.call_rate, duration=args.duration)
        after = sample()
        sandbox_control(urls, "POST", "config", {"latency": args.latency})
        for line in instant.lines():
            say(line)
        for line in describe_cpu(before, after, per=(instant.texted_once, "texted call (its CRM follow-up included)")):
            say(f"  {line}")
        rows.extend((f"{name} (latency off)", value, target, result)
                    for name, value, target, result in _text_rows(instant, crm_target=True))
        say()

    if 3 in args.phases:
        say(f"phase 3: ceiling, closed loop, {args.clients} keep-alive clients in {args.client_processes} "
            f"processes, {args.ceiling_seconds:g} s per run; ours twice: with the workers processing what "
            f"arrives, and with them paused (SIGSTOP) so the receiver has the machine alone")
        # Every webhook of a run against our endpoint is new (a duplicate would skip the insert). The bare
        # endpoint keeps nothing, so it reuses the first set.
        per_process = int((args.ceiling_seconds + 5) * CEILING_RATE_ALLOWANCE / args.client_processes)
        start_wall = time.time()

        def request_sets(run_number: int) -> list[list[tuple[bytes, dict[str, str]]]]:
            first = run_number * args.client_processes * per_process
            return [[signer.request(answered_call(ack_callers, first + n * per_process + i,
                                                  at=datetime.fromtimestamp(start_wall, UTC), durations=answered))
                     for i in range(per_process)] for n in range(args.client_processes)]

        runs = (("bare (verify + 200)", urls.bare, False),
                ("ours, workers running", urls.app, False),
                ("ours, workers paused", urls.app, True))
        ceilings: dict[str, list[CeilingResult]] = {name: [] for name, _, _ in runs}
        set_number = 0
        for round_number in range(args.ceiling_rounds):
            if args.ceiling_rounds > 1:
                say(f"  round {round_number + 1} of {args.ceiling_rounds}")
            for name, url, pause in runs:
                # The bare endpoint keeps nothing and reuses set 0; each run of ours gets unseen webhooks.
                if url == urls.app:
                    set_number += 1
                sets = request_sets(set_number if url == urls.app else 0)
                wait_for_quiet(database, stack, sample)
                before = sample()
                with stack.paused("worker") if pause else contextlib.nullcontext():
                    result = closed_loop(f"{url}/webhooks/ghl", sets, clients=args.clients,
                                         seconds=args.ceiling_seconds)
                after = sample()
                ceilings[name].append(result)
                answers = ", ".join(f"{k}: {v}" for k, v in sorted(result.statuses.items(), key=str))
                wrapped = " (WARNING: request set wrapped; raise CEILING_RATE_ALLOWANCE)" \
                    if url == urls.app and sum(result.statuses.values()) > per_process * args.client_processes else ""
                say(f"  {name}: {result.rate:.0f}/s (answers {answers}); latency p50 "
                    f"{ms(percentile(result.latencies, .5))}, p99 {ms(percentile(result.latencies, .99))}{wrapped}")
                for line in describe_cpu(before, after):
                    say(f"    {line}")

        def median_rate(name: str) -> float:
            rates = sorted(result.rate for result in ceilings[name])
            return rates[len(rates) // 2]

        bare = median_rate(runs[0][0])
        several = f" (median of {args.ceiling_rounds})" if args.ceiling_rounds > 1 else ""
        rows.append((f"bare endpoint ceiling{several}", f"{bare:.0f}/s", "", ""))
        for name, _, _ in runs[1:]:
            share = median_rate(name) / bare if bare else float("nan")
            rows.append((f"{name}: ceiling / bare{several}", f"{median_rate(name):.0f}/s = {share:.0%}",
                         f">= {TARGET_INGEST_SHARE:.0%}", verdict(share >= TARGET_INGEST_SHARE)))
        say()

    say(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    say()
    width = max(len(r[0]) for r in rows) if rows else 10
    say(f"{'metric':<{width}}  {'measured':>22}  {'target':<16} verdict")
    for metric, value, target, result in rows:
        say(f"{metric:<{width}}  {value:>22}  {target:<16} {result}")
    (run_dir / "report.txt").write_text("\n".join(out) + "\n")
    database.dispose()
    return 0 if all(r[3] != "MISS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
