"""The sandbox's web UI (filled in below)."""

from __future__ import annotations

from flask import Blueprint

__all__ = ["bp"]

bp = Blueprint("sandbox_ui", __name__)


@bp.get("/")
def dashboard():
    return "HighLevel sandbox"
