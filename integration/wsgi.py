"""WSGI entry point for gunicorn (`gunicorn integration.wsgi:app`)."""

from __future__ import annotations

import sys

from integration import create_app
from integration.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    # One clear line in the platform's log instead of a traceback.
    print(f"textback: {exc}", file=sys.stderr, flush=True)
    sys.exit(2)
