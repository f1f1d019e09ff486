"""Logging: one line per record, with a filter that scrubs anything shaped like a token."""

from __future__ import annotations

import logging
import os
import re

from flask import Flask

__all__ = ["RedactSecretsFilter", "configure_logging", "redact"]

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


def configure_logging(app: Flask | None = None) -> None:
    """Configure the root logger once per process; level from LOG_LEVEL (default INFO)."""
    root = logging.getLogger()
    if getattr(root, "_textback_configured", False):
        return
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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
