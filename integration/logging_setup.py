"""Logging: one line per record, with a filter that scrubs anything shaped like a token.

LOG_FORMAT=json writes each record as one JSON object (for a log pipeline): time, level, logger, message, pid, and
the ids of what the line is about when known: `job_id` (RQ's, workers.job_logging), and `event_id`, `location_id`,
`missed_call_id`, `crm_action_id` from `bind_log_context(...)`, which a job calls once at its start. The message is
the same redacted text as in the plain format; no payload or message body is logged at info level.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
from datetime import UTC, datetime

from flask import Flask

__all__ = [
    "JsonFormatter",
    "RedactSecretsFilter",
    "add_log_context",
    "bind_log_context",
    "configure_logging",
    "gunicorn_logconfig",
    "json_logs",
    "redact",
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CONTEXT: contextvars.ContextVar[dict[str, object] | None] = contextvars.ContextVar("textback_log_context",
                                                                                  default=None)
_CONTEXT_KEYS = ("event_id", "location_id", "missed_call_id", "crm_action_id")

# JWTs (HighLevel tokens), Fernet tokens and bearer headers. Defence in depth: code never logs
# tokens on purpose, this catches the accident (an exception message quoting a request).
_SECRET_PATTERNS = [
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    re.compile(r"gAAAAA[A-Za-z0-9_=-]{20,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)((?:access|refresh)_token[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(client_secret[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._~+/=-]{4,}"),
]


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + "[redacted]", text)
        else:
            text = pattern.sub("[redacted]", text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            # Render now, scrubbed, so a traceback quoting a token cannot leak it.
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


def json_logs(environ=os.environ) -> bool:
    """LOG_FORMAT=json asks for JSON lines (anything else: the plain format)."""
    return (environ.get("LOG_FORMAT") or "text").strip().lower() == "json"


def bind_log_context(**ids: object) -> None:
    """At the start of a job: these ids (None values left out), and no others, stamp every record it logs. Each job
    runs in a context of its own (workers.concurrent), so they end with it."""
    _CONTEXT.set({k: v for k, v in ids.items() if v is not None})


def add_log_context(**ids: object) -> None:
    """More ids for the rest of the current job (a location found once its row is read)."""
    _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: v for k, v in ids.items() if v is not None}})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, pid, and the ids known for it."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(), "pid": record.process,
        }
        job_id = getattr(record, "job_id", None)
        if job_id and job_id != "-":
            entry["job_id"] = job_id
        context = _CONTEXT.get() or {}
        for key in _CONTEXT_KEYS:
            value = getattr(record, key, None) or context.get(key)
            if value is not None:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)


def gunicorn_logconfig(environ=os.environ) -> dict:
    """gunicorn's `logconfig_dict`: its own error and access lines as JSON too under LOG_FORMAT=json (else empty:
    gunicorn's defaults)."""
    if not json_logs(environ):
        return {}
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": "integration.logging_setup.JsonFormatter"}},
        "handlers": {"error_console": handler, "console": {**handler, "stream": "ext://sys.stdout"}},
        "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
                    "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False}},
    }


def configure_logging(app: Flask | None = None) -> None:
    """Configure the root logger once per process; level from LOG_LEVEL (default INFO)."""
    root = logging.getLogger()
    if getattr(root, "_textback_configured", False):
        return
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_logs() else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactSecretsFilter())
    root.addHandler(handler)
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    root._textback_configured = True  # type: ignore[attr-defined]
    # Filters on a handler do not see records handled by other handlers (pytest's caplog):
    # attach the filter to every logger record via a record factory as well.
    previous_factory = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous_factory(*args, **kwargs)
        RedactSecretsFilter().filter(record)
        return record

    logging.setLogRecordFactory(factory)
