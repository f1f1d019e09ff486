"""gunicorn settings the Procfile loads (`gunicorn -c python:integration.gunicorn_conf ...`).

The master makes the web's metrics process group before it forks its workers (integration.metrics), so the
counters of every gunicorn worker add up at /metrics, and removes it when it stops. With LOG_FORMAT=json gunicorn's
own lines are JSON too.
"""

from __future__ import annotations

from integration.logging_setup import gunicorn_logconfig
from integration.metrics_dir import prepare_process_group, remove_process_group

logconfig_dict = gunicorn_logconfig()


def on_starting(server) -> None:
    prepare_process_group("web")


def on_exit(server) -> None:
    remove_process_group()
