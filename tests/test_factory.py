"""The factory honours test settings and connects to nothing at import or build time."""

import subprocess
import sys

from integration import create_app
from integration.config import load_settings


def test_factory_uses_given_settings(settings):
    app = create_app(settings)
    assert app.config["TEXTBACK"] is settings
    assert app.config["SECRET_KEY"] == settings.secret_key


def test_factory_does_not_connect(tmp_path):
    """Building the app with unreachable services must not fail: only requests connect."""
    environ = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "REDIS_URL": "redis://127.0.0.1:1/0"}
    app = create_app(load_settings(environ, instance_path=tmp_path))
    response = app.test_client().get("/healthz")
    assert response.status_code == 200


def test_import_connects_to_nothing():
    code = "import integration, oauth, workers, integration.models, integration.health; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={"DATABASE_URL": "postgresql://x@127.0.0.1:1/x", "PATH": ""})
    assert result.stdout.strip() == "ok", result.stderr


def test_readyz_reports_both_dependencies(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_names_the_dead_dependency(tmp_path, clean_db):
    environ = {"DATABASE_URL": clean_db, "REDIS_URL": "redis://127.0.0.1:1/0"}
    app = create_app(load_settings(environ, instance_path=tmp_path))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["problems"] == ["redis unreachable: ConnectionError"]


def test_metrics_in_prometheus_format(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert 'textback_dependency_up{dependency="database"} 1.0' in body
    assert 'textback_dependency_up{dependency="redis"} 1.0' in body
    assert "textback_webhook_announcements_waiting 0.0" in body


def test_metrics_count_announcements_no_worker_has_admitted(client, redis_client):
    from workers.queues import announce_events

    announce_events(redis_client, [1, 2, 3])
    assert "textback_webhook_announcements_waiting 3.0" in client.get("/metrics").get_data(as_text=True)


def test_metrics_count_the_events_still_in_play_by_status(app, client):
    from integration.extensions import db
    from integration.models import WebhookEvent

    statuses = ["pending", "pending", "processing", "failed", "done", "done", "ignored"]
    with db.transaction() as session:
        session.add_all(WebhookEvent(dedupe_key=f"metrics-{n}", event_type="InboundMessage", payload={}, status=status)
                        for n, status in enumerate(statuses))
    body = client.get("/metrics").get_data(as_text=True)
    assert 'textback_webhook_events{status="pending"} 2.0' in body
    assert 'textback_webhook_events{status="processing"} 1.0' in body
    assert 'textback_webhook_events{status="failed"} 1.0' in body
    # Finished events are not counted: that would scan the whole inbox at every scrape.
    assert 'status="done"' not in body and 'status="ignored"' not in body
