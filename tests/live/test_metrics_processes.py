"""/metrics adds up across real processes: gunicorn with 2 workers (the Procfile's config) and `python -m workers`
with 3 worker processes plus its maintenance process, all writing to one metrics base directory. Signed webhooks
come from the sandbox; the counts scraped from the web must equal what the database and the sandbox recorded,
exactly, whichever gunicorn worker answers the scrape. The same run is logged with LOG_FORMAT=json: every line is
a JSON object, and no token, client secret or message body is in any of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from integration import create_app
from integration.crm.models import CrmAction
from integration.embedded_redis import free_port
from integration.extensions import db
from integration.models import Installation, LocationSettings, WebhookEvent
from integration.textback.models import MissedCall
from oauth.crypto import TokenCipher
from tests.daytime import daytime_callers
from tests.live.conftest import ACME, ROOT, WorkerProcess, wait_for
from tests.oauth.conftest import ConsentDance

CALLERS = 6
REPEATS = 2  # callers who call again at once: skipped by the cooldown


def _scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, summed over process groups: {(name, sorted labels without process_group): value}."""
    body = requests.get(f"{url}/metrics", timeout=10).text
    totals: dict[tuple[str, tuple], float] = Counter()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "process_group"))
            totals[(sample.name, labels)] += sample.value
    return totals


def _value(totals, name: str, **labels: str) -> float:
    return totals.get((name, tuple(sorted(labels.items()))), 0.0)


def _sum(totals, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in totals.items() if n == name and set(labels.items()) <= set(ls))


@pytest.fixture
def stack(settings, sandbox, live_redis, tmp_path, instance_dir):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    metrics_base = tmp_path / "metrics"
    environ = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": settings.database_url, "REDIS_URL": live_redis.url,
               "TEXTBACK_INSTANCE_PATH": str(instance_dir), "PUBLIC_BASE_URL": url, "TEXTBACK_SANDBOX_URL": sandbox.url,
               "LOG_LEVEL": "INFO", "LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1",
               "PROMETHEUS_MULTIPROC_DIR": str(metrics_base), "WORKER_PROCESSES": "3", "WORKER_NICE": "0",
               "WORKER_FOLLOW_UP_NICE": "0"}
    web_log = tmp_path / "web.log"
    with open(web_log, "wb") as out:
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:integration.gunicorn_conf",
                                "integration.wsgi:app", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                                "--threads", "4", "--timeout", "30", "--no-control-socket"],
                               cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    worker = WorkerProcess(environ, tmp_path / "worker.log")

    def logs() -> str:
        return f"--- web ---\n{web_log.read_text()[-4000:]}\n--- worker ---\n{worker.output()[-4000:]}"

    def up() -> bool:
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, what="gunicorn", timeout=60, logs=logs)
        sandbox.configure(webhook_url=f"{url}/webhooks/ghl", redirect_uris=[f"{url}/oauth/callback"],
                          app_page_url=f"{url}/app")
        app = create_app(settings.override(public_base_url=url, ghl_api_base=sandbox.url,
                                           ghl_marketplace_base=sandbox.url, redis_url=live_redis.url))
        with app.app_context():
            yield {"url": url, "app": app, "dance": ConsentDance(app.test_client(), sandbox), "worker": worker,
                   "logs": logs, "web_log": web_log, "metrics_base": metrics_base, "web": web}
    finally:
        worker.stop()
        web.terminate()
        web.wait(timeout=30)
        db.dispose()


def test_counters_add_up_across_gunicorn_and_worker_processes_and_logs_are_json_without_secrets(stack, sandbox,
                                                                                                 settings):
    url, logs = stack["url"], stack["logs"]
    assert stack["dance"].install(location_id=ACME).status_code == 302
    numbers, region = daytime_callers(datetime.now(UTC), CALLERS)
    with db.transaction() as session:
        row = session.get(LocationSettings, ACME) or LocationSettings(location_id=ACME, values={})
        row.values = {**(row.values or {}), "allowed_countries": ["US", "CA", region]}
        session.add(row)

    def installed() -> bool:
        with db.session() as session:
            return session.scalar(select(func.count()).select_from(WebhookEvent).where(
                WebhookEvent.event_type == "INSTALL", WebhookEvent.status == "done")) == 1

    wait_for(installed, what="the INSTALL webhook processed", logs=logs)
    for number in numbers:
        sandbox.place_call(ACME, number, "no-answer")
    wait_for(lambda: all(sandbox_texts(sandbox, n) for n in numbers), what="every caller texted", timeout=90,
             logs=logs)
    for number in numbers[:REPEATS]:
        sandbox.place_call(ACME, number, "no-answer")

    def settled() -> bool:
        with db.session() as session:
            calls = list(session.scalars(select(MissedCall)))
            crm_open = session.scalar(select(func.count()).select_from(CrmAction).where(
                CrmAction.status.not_in(("done", "skipped", "failed"))))
            events_open = session.scalar(select(func.count()).select_from(WebhookEvent).where(
                WebhookEvent.status.in_(("pending", "processing"))))
        return len(calls) == CALLERS + REPEATS and all(c.is_final for c in calls) and not crm_open \
            and not events_open

    wait_for(settled, what="every call, CRM action and event final", timeout=120, logs=logs)
    time.sleep(1.0)

    with db.session() as session:
        calls = Counter(c.status for c in session.scalars(select(MissedCall)))
        crm_done = Counter(kind for kind, in session.execute(select(CrmAction.kind).where(CrmAction.status == "done")))
        stored = Counter((t, s) for t, s in session.execute(select(WebhookEvent.event_type, WebhookEvent.status)))
        installation = session.scalar(select(Installation).where(Installation.resource_id == ACME))
    assert calls == {"sent": CALLERS, "skipped": REPEATS}, calls
    sent = [m for n in numbers for m in sandbox_texts(sandbox, n)]
    assert len(sent) == CALLERS

    # Several scrapes: each is answered by one of gunicorn's two workers, and must say the same.
    scrapes = [_scrape(url) for _ in range(6)]
    for totals in scrapes:
        assert _value(totals, "textback_missed_calls_finished_total", outcome="texted") == CALLERS
        assert _value(totals, "textback_call_to_text_seconds_count") == CALLERS
        assert _value(totals, "textback_missed_calls_finished_total", outcome="skipped") == REPEATS
        assert _value(totals, "textback_missed_calls_skipped_total", reason="cooldown") == REPEATS
        # Every stored webhook once, by type, whichever gunicorn worker stored it.
        for event_type in ("INSTALL", "InboundMessage", "OutboundMessage"):
            in_db = sum(n for (t, _), n in stored.items() if t == event_type)
            counted = _sum(totals, "textback_webhooks_total", event_type=event_type, outcome="stored") + \
                _sum(totals, "textback_webhooks_total", event_type=event_type, outcome="ignored")
            assert counted == in_db, (event_type, counted, in_db)
        assert _value(totals, "textback_webhook_ack_seconds_count") >= sum(stored.values())
        # One POST /conversations/messages per text, no retries in this run.
        sends = _sum(totals, "textback_ghl_requests_total", method="POST", endpoint="/conversations/messages")
        assert sends == CALLERS
        for kind, count in crm_done.items():
            assert _value(totals, "textback_crm_actions_total", kind=kind, outcome="done") == count, kind
    assert scrapes[0] == scrapes[-1] or _stable(scrapes)

    # Bounded labels: templated endpoints only, never an id.
    totals = scrapes[-1]
    endpoints = {dict(ls)["endpoint"] for (n, ls) in totals if n == "textback_ghl_requests_total"}
    assert endpoints and all(e.startswith("/") and ACME not in e for e in endpoints), endpoints
    assert "/contacts/{id}" in endpoints or "/contacts/{id}/tags" in endpoints

    # The counts came from several processes of each group: gunicorn's workers and the worker supervisor's forks.
    groups = {p.name: {f.name.rsplit("_", 1)[-1] for f in p.glob("*.db")} for p in stack["metrics_base"].iterdir()}
    web_pids = set().union(*(pids for name, pids in groups.items() if name.startswith("web-")))
    worker_pids = set().union(*(pids for name, pids in groups.items() if name.startswith("workers-")))
    assert len(worker_pids) >= 3, groups  # two webhook processes, the follow-up process (and maintenance)
    assert len(web_pids) >= 1, groups

    # JSON logs: every line an object; ids as fields; no secrets or message bodies anywhere.
    cipher = TokenCipher.from_settings(settings)
    secrets = [cipher.decrypt(installation.access_token_encrypted), settings.ghl_client_secret]
    if installation.refresh_token_encrypted:
        secrets.append(cipher.decrypt(installation.refresh_token_encrypted))
    bodies = {m.get("message") or m.get("body") for m in sent} - {None, ""}
    assert bodies
    records = []
    for path in (stack["web_log"], stack["worker"].log_path):
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pytest.fail(f"not a JSON log line in {path.name}: {line[:300]}")
    text = "\n".join(json.dumps(r) for r in records)
    for secret in secrets:
        assert secret and secret not in text
    for body in bodies:
        assert body not in text
    assert any("event_id" in r and "job_id" in r and r.get("location_id") == ACME for r in records)
    assert any("missed_call_id" in r for r in records)


def _stable(scrapes) -> bool:
    """Counters of finished work do not move between scrapes once everything is final (gauges may)."""
    keys = [k for k in scrapes[0] if k[0].endswith(("_total", "_count"))]
    return all(s.get(k) == scrapes[0].get(k) for s in scrapes for k in keys)


def sandbox_texts(sandbox, number: str) -> list[dict]:
    return [m for m in sandbox.sent_messages(locationId=ACME) if m.get("toNumber") == number]
