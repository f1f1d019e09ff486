"""The simulated HighLevel resource API (paths exactly as the official specs write them)."""

from __future__ import annotations

from flask import Blueprint

__all__ = ["bp"]

bp = Blueprint("sandbox_api", __name__)

# Views register themselves on `bp` when imported.
from integration.sandbox.api import calendars, contacts, conversations, directory, opportunities  # noqa: E402,F401
