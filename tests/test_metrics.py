"""integration.metrics: bounded labels, what each hook records, the process groups, the JSON log format, and the
dashboard and alert rules in deploy/ referring only to metrics that exist."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from integration import metrics
from integration.logging_setup import JsonFormatter, RedactSecretsFilter, add_log_context, bind_log_context
from integration.metrics_dir import prepare_process_group, remove_process_group

ROOT = Path(__file__).resolve().parents[1]


def _sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


# --- bounded labels ---


@pytest.mark.parametrize(("path", "label"), [
    ("/contacts/abc123", "/contacts/{id}"),
    ("/contacts/abc123/tags", "/contacts/{id}/tags"),
    ("/contacts/upsert", "/contacts/upsert"),
    ("/contacts/search/duplicate", "/contacts/search/duplicate"),
    ("/conversations/messages", "/conversations/messages"),
    ("/conversations/c-9/messages", "/conversations/{id}/messages"),
    ("/opportunities/o-1/status", "/opportunities/{id}/status"),
    ("/calendars/cal-1/free-slots", "/calendars/{id}/free-slots"),
    ("/locations/loc-42", "/locations/{id}"),
    ("/oauth/token", "/oauth/token"),
    ("/users/search?companyId=x", "/users/search"),
    # Anything not in the table is one fixed label, never the path (which would carry ids).
    ("/contacts/abc123/unknown/deeper", "other"),
    ("/medias/upload-file", "other"),
    ("/locations/loc-42/customValues/cv-1", "other"),
])
def test_highlevel_paths_become_templates_or_other(path, label):
    assert metrics.endpoint_label(path) == label


def test_every_path_the_client_calls_has_a_template():
    source = (ROOT / "integration/ghl/client.py").read_text()
    paths = set(re.findall(r'path = f?"(/[^"]*)"', source)) | set(re.findall(r'_call\("[A-Z]+", "(/[^"]*)"', source))
    assert len(paths) > 15
    for path in paths:
        concrete = re.sub(r"\{[^}]+\}", "some-id", path)
        assert metrics.endpoint_label(concrete) != "other", path


@pytest.mark.parametrize(("status", "label"), [(200, "200"), (429, "429"), (503, "503"), (418, "4xx"), (302, "3xx"),
                                               ("timeout", "timeout"), ("connection_error", "connection_error"),
                                               ("anything", "other"), (999, "other")])
def test_statuses_are_a_fixed_set(status, label):
    assert metrics.status_label(status) == label


@pytest.mark.parametrize(("outcome", "category"), [
    ("skipped: texted this caller 2 h ago", "cooldown"),
    ("skipped: texted this caller just now", "cooldown"),
    ("skipped: the daily limit of 50 texts is reached", "daily_cap"),
    ("skipped: the caller opted out of texts 3 days ago", "opted_out"),
    ("skipped: the caller has Do Not Disturb on for SMS", "dnd"),
    ("skipped: text back is turned off for this sub-account", "disabled"),
    ("skipped: the app is not installed on this sub-account", "not_installed"),
    ("skipped: the call was 2 h ago when it reached us, too long ago to text back", "too_old"),
    ("skipped: the call has no contact record in HighLevel", "no_contact"),
    ("skipped: +447700900123 is an international number (texts go to US, CA numbers)", "international"),
    ("skipped: the caller is one of the business's own numbers", "own_number"),
    ("skipped: the caller is a team member (Mike)", "staff"),
    ("skipped: the caller is on the excluded numbers list", "excluded"),
    ("skipped: existing customer (tagged customer)", "existing_customer"),
    ("skipped: no after-hours message is set", "no_template"),
    ("skipped: a person (user u1) already texted the caller (checked again right before sending)", "person_replied"),
    ("skipped: the caller opted out of texts (checked again right before sending)", "opted_out"),
    ("skipped: anonymous caller (no caller id)", "unusable_number"),
    ("skipped: +1555 is not a valid phone number", "unusable_number"),
    ("skipped: +15551234567 is a landline", "unusable_number"),
    ("skipped: something nobody foresaw for +15551234567 and contact c-1", "other"),
])
def test_skip_reasons_become_categories(outcome, category):
    assert metrics.skip_reason_label(outcome) == category
    assert category in metrics.SKIP_REASONS


def test_event_types_outside_the_subscription_are_other():
    assert metrics.event_type_label("InboundMessage") == "InboundMessage"
    assert metrics.event_type_label("SomethingNew-" + "x" * 50) == "other"
    assert metrics.event_type_label(None) == "unknown"


# --- hooks ---


def test_recording_helpers_count_with_bounded_labels():
    before = _sample("textback_webhooks_total", event_type="other", outcome="stored")
    metrics.webhook_answered("ForgedType", "stored")
    metrics.webhook_answered("ForgedType", "free text outcome")
    assert _sample("textback_webhooks_total", event_type="other", outcome="stored") == before + 1
    assert _sample("textback_webhooks_total", event_type="other", outcome="other") >= 1

    before = _sample("textback_crm_actions_total", kind="other", outcome="done")
    metrics.crm_action("made-up-kind", "done")
    assert _sample("textback_crm_actions_total", kind="other", outcome="done") == before + 1


def test_token_refresh_counts_by_how_it_ended():
    from oauth.errors import NeedsReconnect, TokenRefreshUnavailable

    def count(outcome):
        return _sample("textback_token_refreshes_total", user_type="Location", outcome=outcome)

    start = {o: count(o) for o in ("refreshed", "rejected", "unavailable", "error")}
    with metrics.token_refresh("Location"):
        pass
    for exc in (NeedsReconnect("r", resource_id="x"), TokenRefreshUnavailable("u", resource_id="x"), KeyError("k")):
        with pytest.raises(type(exc)), metrics.token_refresh("Location"):
            raise exc
    assert {o: count(o) - start[o] for o in start} == {"refreshed": 1, "rejected": 1, "unavailable": 1, "error": 1}


def test_a_text_marked_sent_twice_counts_once(app):
    """intents.mark_sent counts the first time the intent becomes sent, not a re-mark of it (the sender's resume)."""
    from datetime import timedelta

    from integration.db import utcnow
    from integration.extensions import db
    from integration.textback import intents
    from integration.textback.models import MissedCall, SendIntent

    now = utcnow()
    with db.transaction() as session:
        call = MissedCall(call_key="metrics-once", location_id="loc", call_status="no-answer",
                          called_at=now - timedelta(seconds=4))
        session.add(call)
        session.flush()
        intent = SendIntent(call_key="metrics-once", missed_call_id=call.id, location_id="loc", to_number="+15550001",
                            body="hi", segments=1, template_key="business_hours", status=SendIntent.SENDING,
                            counted_day=now.date(), created_at=now, updated_at=now)
        session.add(intent)
        session.flush()
        intent_id = intent.id
    texted = _sample("textback_missed_calls_finished_total", outcome="texted")
    observed = _sample("textback_call_to_text_seconds_count")
    intents.mark_sent(db, intent_id, message_id="m1", conversation_id="c1", now=now, outcome="texted")
    intents.mark_sent(db, intent_id, message_id="m1", conversation_id="c1", now=now + timedelta(seconds=1),
                      outcome="texted")
    assert _sample("textback_missed_calls_finished_total", outcome="texted") == texted + 1
    assert _sample("textback_call_to_text_seconds_count") == observed + 1
    assert _sample("textback_call_to_text_seconds_bucket", le="5.0") >= 1


def test_metrics_endpoint_serves_the_recorded_metrics_in_one_process(client):
    metrics.webhook_answered("InboundMessage", "retry_later")
    body = client.get("/metrics").get_data(as_text=True)
    names = {f.name for f in text_string_to_metric_families(body)}
    from integration.health import STORE_GAUGES

    assert set(STORE_GAUGES) | {"textback_webhooks", "textback_call_to_text_seconds"} <= names
    assert 'textback_webhooks_total{event_type="InboundMessage",outcome="retry_later"}' in body


def test_queue_oldest_age_reads_rq_and_the_announcement_lists(client, redis_client):
    from integration.extensions import db
    from integration.models import WebhookEvent
    from workers.queues import NEW_EVENTS_KEY

    with db.transaction() as session:
        from datetime import timedelta

        from integration.db import utcnow

        event = WebhookEvent(dedupe_key="metrics-age", event_type="InboundMessage", payload={},
                             received_at=utcnow() - timedelta(seconds=90))
        session.add(event)
        session.flush()
        event_id = event.id
    redis_client.rpush(NEW_EVENTS_KEY, event_id)
    redis_client.rpush("rq:queue:default", "job-x")
    redis_client.hset("rq:job:job-x", "enqueued_at", "2000-01-01T00:00:00.000000Z")
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))}
    ages = {s.labels["queue"]: s.value for s in families["textback_queue_oldest_age_seconds"].samples}
    depths = {s.labels["queue"]: s.value for s in families["textback_queue_depth"].samples}
    assert 89 <= ages["announced"] < 200
    assert ages["default"] > 10 ** 8 and depths["default"] == 1
    assert ages["webhooks"] == 0 and depths["webhooks"] == 0


# --- process groups ---


def test_process_groups_are_created_empty_and_dead_ones_removed(tmp_path):
    base = tmp_path / "m"
    (base / "workers-999999999").mkdir(parents=True)  # no such pid: its parent is gone
    (base / "web-1").mkdir()  # pid 1 is alive
    (base / "notes").mkdir()  # not a group: left alone
    environ = {"PROMETHEUS_MULTIPROC_DIR": str(base)}
    group = prepare_process_group("workers", environ=environ)
    assert group == base.resolve() / f"workers-{os.getpid()}" and not any(group.iterdir())
    assert environ["PROMETHEUS_MULTIPROC_DIR"] == str(group)
    assert sorted(p.name for p in base.iterdir()) == sorted(["web-1", "notes", group.name])
    remove_process_group(group)
    assert not group.exists()


def test_processes_forked_in_a_group_add_up_and_groups_are_labelled(tmp_path):
    """Two groups of real processes (a parent forking children, as gunicorn and the supervisor do), summed per group
    by the exposition."""
    script = r"""
import os
from integration import metrics
pids = []
for n in range(3):
    pid = os.fork()
    if pid == 0:
        for _ in range(10):
            metrics.webhook_answered("InboundMessage", "stored")
        metrics.WEBHOOK_ACK_SECONDS.observe(0.01)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
metrics.webhook_answered("INSTALL", "stored")
"""
    environ = {k: v for k, v in os.environ.items() if k != "TEXTBACK_METRICS_BASE"}
    groups = ["web-101", "workers-202"]
    for group in groups:
        (tmp_path / group).mkdir()
        subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, capture_output=True,
                       env={**environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / group)})
    exposer = r"""
import os
os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["GROUP"]
from prometheus_client import CollectorRegistry, generate_latest
from integration import metrics
registry = CollectorRegistry(auto_describe=False)
for c in metrics.process_group_collectors():
    registry.register(c)
print(generate_latest(registry).decode())
"""
    exposed = subprocess.run([sys.executable, "-c", exposer], cwd=ROOT, check=True, capture_output=True, text=True,
                             env={**environ, "GROUP": str(tmp_path / "web-101"),
                                  "TEXTBACK_METRICS_BASE": str(tmp_path)}).stdout
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(exposed) for s in f.samples}
    for group in groups:
        key = ("textback_webhooks_total", (("event_type", "InboundMessage"), ("outcome", "stored"),
                                           ("process_group", group)))
        assert samples[key] == 30
        assert samples[("textback_webhook_ack_seconds_count", (("process_group", group),))] == 3
        assert samples[("textback_webhooks_total", (("event_type", "INSTALL"), ("outcome", "stored"),
                                                    ("process_group", group)))] == 1


# --- JSON logs ---


def _json_line(record: logging.LogRecord) -> dict:
    RedactSecretsFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_json_log_lines_carry_ids_and_no_tokens():
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsb2NhdGlvbiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    bind_log_context(event_id=7)
    add_log_context(location_id="loc-1")
    record = logging.LogRecord("workers.jobs", logging.INFO, __file__, 1, "refresh with access_token=%s failed",
                               (token,), None)
    record.job_id = "webhook-event-7-1"
    line = _json_line(record)
    assert line["event_id"] == 7 and line["location_id"] == "loc-1" and line["job_id"] == "webhook-event-7-1"
    assert line["level"] == "INFO" and line["logger"] == "workers.jobs"
    assert token not in json.dumps(line) and "[redacted]" in line["message"]
    bind_log_context(missed_call_id=3)  # a new job: the previous job's ids are gone
    line = _json_line(logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None))
    assert line.get("missed_call_id") == 3 and "event_id" not in line and "location_id" not in line


def test_json_exceptions_are_redacted():
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsb2NhdGlvbiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    try:
        raise RuntimeError(f"Authorization: Bearer {token}")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    line = _json_line(record)
    assert "RuntimeError" in line["exception"] and token not in json.dumps(line)


# --- deploy/: dashboard and alert rules ---

_PROMQL_WORDS = {"sum", "rate", "increase", "max", "min", "by", "histogram_quantile", "clamp_min", "le", "and", "or",
                 "unless", "without", "on", "ignoring", "avg", "count", "irate", "offset", "bool", "topk"}


def _known_series() -> set[str]:
    from integration.health import STORE_GAUGES

    names = set(STORE_GAUGES)
    for family in metrics.REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_count", "_sum")}
    return names


def _metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    without_groupings = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_ranges)
    return {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_groupings)
            if w not in _PROMQL_WORDS and not w.isdigit() and not re.fullmatch(r"\d*e\d*", w)}


def test_alert_rules_and_dashboard_refer_only_to_metrics_that_exist():
    known = _known_series()
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    alerts = [r for group in rules["groups"] for r in group["rules"]]
    assert {"TextBackTextsFailing", "TextBackQueueStuck", "TextBackWebhooksAnswered429"} <= {a["alert"] for a in alerts}
    dashboard = json.loads((ROOT / "deploy/grafana/textback.json").read_text())
    expressions = [a["expr"] for a in alerts] + [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(expressions) > 15
    for expr in expressions:
        names = _metric_names(expr)
        assert names, expr
        assert names <= known, (expr, names - known)
    # The extraction itself catches a misspelt name.
    assert _metric_names('sum(rate(textback_webhook_total{outcome="x"}[5m]))') - known == {"textback_webhook_total"}
