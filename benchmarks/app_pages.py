"""Benchmark the activity and report pages (issue 14): one location with 100 000 calls over 2 years, in PostgreSQL.

    .venv/bin/python -m benchmarks.app_pages [--calls 100000] [--runs 40] [--database-url URL]

It WIPES the database first (default postgresql://postgres@127.0.0.1:5432/h2_bench; a database whose name does
not contain "bench" is refused), migrates it, and seeds in bulk with INSERT ... SELECT generate_series (seconds,
not minutes):
- the location: --calls missed calls spread over 730 days (62% texted, 28% skipped, 3% failed, 1% deferred,
  the rest in progress), with names and numbers, a send intent for each texted call, a lead for each texted call
  (30% replied, 12% booked, 6% won with a value), a person's reply on a fifth of the leads, and 100 answered
  calls a day for the inbox's 30 days (ignored webhook events);
- neighbours: 20 other locations with 10 000 calls each in the same tables, and 200 000 finished inbox rows of
  other kinds, so the indexes have to pick this location's rows out of a bigger table.

Then it signs a browser session in by SSO (the real POST /app/sso) and times each page --runs times inside the
app (the WSGI call, no network): server time p50 / p95. Pages: the activity's first page; a filtered page
(result = failed, last 90 days); a deep keyset page (the cursor of the 90 000th row); a name search and a
number search; the report for 12, 52 and 104 weeks. Last, the activity CSV of every call (the --calls missed
calls and the answered ones) is streamed, and its time and the peak of Python memory while streaming are shown
(tracemalloc; a second, untraced run gives the time).

The indexes the pages use (migration 0013_call_activity):
- ix_textback_missed_calls_location_created_id (location_id, created_at, id): activity pages (keyset order),
  the filters and searches within a location, the report's period scans;
- ix_webhook_events_ignored_calls (location_id, received_at, id) WHERE status = 'ignored' AND the reason is
  an answered / not-counted call: the answered calls;
- crm_leads' unique missed_call_id (the lead of each call);
- the report's weeks: report_daily_funnels (location_id, day), the per-day rollup (migration 0015);
- the report's response times: ix_crm_leads_location_called (location_id, called_at) INCLUDE (texted_at,
  first_human_reply_at), one index-only scan for both (migration 0017: each lead keeps its first human reply).
Targets: p95 <= 150 ms per page; the CSV of 100 000 rows in <= 5 s without holding them all in memory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.loadgen import percentile

LOCATION, COMPANY = "BenchLocation0000001", "BenchCompany00000001"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/h2_bench"


def _wipe_and_migrate(url: str) -> None:
    from integration.migrate import upgrade

    if "bench" not in url.rsplit("/", 1)[-1]:
        raise SystemExit(f"refusing to wipe {url}: its database name does not contain 'bench'")
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = url.rsplit("/", 1)[-1]
    with admin.connect() as connection:
        if not connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade(url)


# One location's calls, every n-th status, names and numbers derived from n; :loc, :calls, :days bound.
_CALLS = """
INSERT INTO textback_missed_calls (call_key, location_id, contact_id, caller_number, contact_name, call_status,
    call_duration, called_at, duplicate_webhooks, status, outcome, template_key, created_at, updated_at)
SELECT :loc || ':' || n, :loc, 'contact' || (n % 40000), '+1512' || lpad(((n * 7919) % 10000000)::text, 7, '0'),
    (ARRAY['Dana','Luis','Priya','Sam','Ava','Noah','Mia','Ethan','Zoe','Omar'])[1 + n % 10] || ' ' ||
    (ARRAY['Whitfield','Garcia','Shah','Lee','Brown','Kim','Nguyen','Patel','Cohen','Okafor'])[1 + (n / 10) % 10],
    (ARRAY['no-answer','busy','voicemail','no-answer','canceled'])[1 + n % 5], 0, at, 0,
    CASE WHEN n % 100 < 62 THEN 'sent' WHEN n % 100 < 90 THEN 'skipped' WHEN n % 100 < 93 THEN 'failed'
         WHEN n % 100 < 94 THEN 'deferred' ELSE 'pending' END,
    CASE WHEN n % 100 < 62 THEN 'texted at ' || to_char(at, 'HH24:MI') || ' (business-hours message, 1 segment)'
         WHEN n % 100 < 70 THEN 'skipped: texted this caller ' || (1 + n % 20) || ' h ago'
         WHEN n % 100 < 78 THEN 'skipped: the caller has Do Not Disturb on for SMS'
         WHEN n % 100 < 84 THEN 'skipped: the caller is a team member (Sara Kim)'
         WHEN n % 100 < 90 THEN 'skipped: +1512555' || lpad((n % 10000)::text, 4, '0') || ' is a landline'
         WHEN n % 100 < 93 THEN 'failed: HighLevel refused the text: the contact has DND enabled for SMS'
         WHEN n % 100 < 94 THEN 'deferred to 08:00 tomorrow caller time (quiet hours)' ELSE NULL END,
    'business_hours', at, at
FROM (SELECT n, now() - (:days * interval '1 day') * (n::float / :calls) - interval '1 minute' AS at
      FROM generate_series(1, :calls) AS n) AS calls
"""
_INTENTS = """
INSERT INTO textback_send_intents (call_key, missed_call_id, location_id, contact_id, to_number, body, segments,
    template_key, counted_day, status, attempts, sent_at, created_at, updated_at)
SELECT call_key, id, location_id, contact_id, caller_number, 'Hi, sorry we missed your call!', 1, 'business_hours',
    created_at::date, 'sent', 1, created_at + (2 + id % 5) * interval '1 second', created_at, created_at
FROM textback_missed_calls WHERE location_id = :loc AND status = 'sent'
"""
_LEADS = """
INSERT INTO crm_leads (missed_call_id, location_id, contact_id, caller_number, called_at, texted_at, replied_at,
    reply_body, booked_at, outcome, outcome_value, created_at, updated_at)
SELECT id, location_id, contact_id, caller_number, created_at, created_at + interval '3 seconds',
    CASE WHEN id % 10 < 3 THEN created_at + interval '6 minutes' END,
    CASE WHEN id % 10 < 3 THEN 'Yes please, the water heater is leaking. Can someone come today?' END,
    CASE WHEN id % 25 < 3 THEN created_at + interval '2 hours' END,
    CASE WHEN id % 50 < 3 THEN 'won' WHEN id % 50 = 3 THEN 'lost' END,
    CASE WHEN id % 50 < 3 THEN 350 + id % 900 END, created_at, created_at
FROM textback_missed_calls WHERE location_id = :loc AND status = 'sent'
"""
_PERSON_REPLIES = """
INSERT INTO textback_conversation_messages (location_id, contact_id, direction, author, body, occurred_at,
    created_at)
SELECT location_id, contact_id, 'outbound', 'person', 'On our way at 3pm', called_at + interval '14 minutes',
    called_at + interval '14 minutes'
FROM crm_leads WHERE location_id = :loc AND id % 5 = 0
"""
_ANSWERED = """
INSERT INTO webhook_events (dedupe_key, event_type, location_id, payload, status, status_reason, attempts,
    received_at)
SELECT 'bench-answered-' || :loc || '-' || n, 'InboundMessage', :loc,
    jsonb_build_object('type', 'InboundMessage', 'locationId', :loc, 'messageType', 'CALL', 'direction', 'inbound',
                       'status', 'completed', 'callStatus', 'completed', 'callDuration', 30 + n % 600,
                       'from', '+1737' || lpad((n % 10000000)::text, 7, '0'), 'contactId', 'contact' || (n % 40000)),
    'ignored', 'not a missed call: answered for ' || (30 + n % 600) || ' s', 1,
    now() - interval '30 days' * (n::float / :count)
FROM generate_series(1, :count) AS n
"""
_OTHER_EVENTS = """
INSERT INTO webhook_events (dedupe_key, event_type, location_id, payload, status, status_reason, attempts,
    received_at)
SELECT 'bench-other-' || n, 'OutboundMessage', 'Neighbour' || lpad((n % 20)::text, 12, '0'),
    '{"type": "OutboundMessage"}'::jsonb, 'done', 'our own text for missed call', 1,
    now() - interval '30 days' * (n::float / :count)
FROM generate_series(1, :count) AS n
"""


def seed(url: str, *, calls: int) -> None:
    from integration.db import utcnow

    started = time.perf_counter()
    engine = create_engine(url)
    locations = [(LOCATION, calls)] + [(f"Neighbour{i:011d}", 10_000) for i in range(20)]
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO companies (id, name, default_settings, created_at, updated_at) "
                                "VALUES (:c, 'Bench Agency', '{}', now(), now())"), {"c": COMPANY})
        for location_id, _ in locations:
            connection.execute(text(
                "INSERT INTO locations (id, company_id, name, timezone, status, installed_at, created_at, updated_at) "
                "VALUES (:l, :c, :name, 'America/Chicago', 'installed', now() - interval '731 days', now(), now())"),
                {"l": location_id, "c": COMPANY, "name": "Acme Plumbing" if location_id == LOCATION else location_id})
        connection.execute(text("INSERT INTO location_settings (location_id, enabled, values, updated_at) VALUES "
                                "(:l, true, '{\"crm\": {\"average_job_value\": 400}}', now())"), {"l": LOCATION})
        for location_id, count in locations:
            connection.execute(text(_CALLS), {"loc": location_id, "calls": count, "days": 730})
            connection.execute(text(_INTENTS), {"loc": location_id})
            connection.execute(text(_LEADS), {"loc": location_id})
            connection.execute(text(_PERSON_REPLIES), {"loc": location_id})
        connection.execute(text(_ANSWERED), {"loc": LOCATION, "count": 3000})
        connection.execute(text(_OTHER_EVENTS), {"count": 200_000})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
        total = connection.execute(text("SELECT count(*) FROM textback_missed_calls")).scalar()
    engine.dispose()
    print(f"seeded {calls} calls for {LOCATION} ({total} in the table) in {time.perf_counter() - started:.1f} s"
          f" at {utcnow():%Y-%m-%d %H:%M} UTC")


def _signed_in_client(url: str):
    from integration import create_app
    from integration.config import load_settings
    from integration.sso import encrypt_sso_payload

    environ = {"TEXTBACK_ENV": "development", "DATABASE_URL": url, "LOG_LEVEL": "WARNING",
               "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13")}
    settings = load_settings(environ, instance_path=tempfile.mkdtemp(prefix="app-pages-bench-"))
    app = create_app(settings)
    client = app.test_client()
    context = {"userId": "BenchUser00000000001", "companyId": COMPANY, "role": "admin", "type": "location",
               "activeLocation": LOCATION, "userName": "Bench", "email": "bench@example.com"}
    answer = client.post("/app/sso", json={"encryptedData": encrypt_sso_payload(context, settings.ghl_sso_key)})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return app, client


def _deep_cursor(app, depth: int) -> str:
    from integration.activity.filters import Cursor
    from integration.extensions import db

    with app.app_context(), db.session() as session:
        at, row_id = session.execute(text(
            "SELECT created_at, id FROM textback_missed_calls WHERE location_id = :l "
            "ORDER BY created_at DESC, id DESC OFFSET :d LIMIT 1"), {"l": LOCATION, "d": depth}).one()
    return Cursor(at=at, kind=0, id=row_id).encode()


def time_pages(app, client, *, runs: int, calls: int) -> None:
    from datetime import date, timedelta

    depth = int(calls * 0.9)
    pages = {
        "activity, first page": "/app/activity",
        "activity, failed in the last 90 days": f"/app/activity?outcome=failed&from={date.today() - timedelta(90)}",
        f"activity, deep keyset page (row {depth})": f"/app/activity?after={_deep_cursor(app, depth)}",
        "activity, search by name ('whitfield')": "/app/activity?q=whitfield",
        "activity, search by number ('555 01')": "/app/activity?q=555+01",
        "activity, search with few matches ('zoe okafor')": "/app/activity?q=zoe+okafor",
        "report, 12 weeks": "/app/report",
        "report, 52 weeks": "/app/report?weeks=52",
        "report, 104 weeks": "/app/report?weeks=104",
    }
    print(f"\nserver time per page over {runs} runs (after 3 warm-up runs), ms:")
    print(f"  {'page':58} {'p50':>7} {'p95':>7} {'max':>7}")
    for label, path in pages.items():
        timings = []
        for run in range(runs + 3):
            started = time.perf_counter()
            response = client.get(path)
            body = response.get_data()
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, (path, response.status_code, body[:300])
            if run >= 3:
                timings.append(elapsed)
        verdict = "ok" if percentile(timings, 0.95) <= 150 else "OVER 150 ms"
        print(f"  {label:58} {statistics.median(timings):7.1f} {percentile(timings, 0.95):7.1f} {max(timings):7.1f}"
              f"  {verdict}")


def time_csv(client) -> None:
    def stream() -> tuple[int, int, float]:
        started = time.perf_counter()
        response = client.get("/app/activity.csv")
        size = lines = 0
        for chunk in response.response:
            size += len(chunk)
            lines += chunk.count(b"\n")
        response.close()
        return size, lines, time.perf_counter() - started

    size, lines, untraced = stream()
    tracemalloc.start()
    _, _, traced = stream()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    verdict = "ok" if untraced <= 5 else "OVER 5 s"
    print(f"\nactivity CSV: {lines - 1} rows, {size / 1e6:.1f} MB streamed in {untraced:.2f} s ({verdict}); "
          f"peak Python memory while streaming {peak / 1e6:.1f} MB (traced run {traced:.2f} s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--no-seed", action="store_true", help="reuse the database seeded by the last run")
    args = parser.parse_args(argv)
    if not args.no_seed:
        _wipe_and_migrate(args.database_url)
        seed(args.database_url, calls=args.calls)
    app, client = _signed_in_client(args.database_url)
    time_pages(app, client, runs=args.runs, calls=args.calls)
    time_csv(client)


if __name__ == "__main__":
    main()
