"""The settings form's routes: a sub-account saves its settings and asks for a test text.

POST /app/settings                 save the sub-account's text-back settings (and on/off)
POST /app/settings/test-text       text the signed-in user's own phone with a chosen template
GET  /app/settings/test-text       the latest test text's status (JSON, for the page's status line)

Tenancy (DESIGN invariant 5): the location is the SSO session's, never a form field or URL parameter.
CSRF and the session are checked before any of these run (integration.web_security).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Blueprint, abort, redirect, request, url_for
from sqlalchemy import func, select

from integration.app_page import current_context, render_location_page
from integration.db import utcnow
from integration.extensions import db, get_redis
from integration.models import Company, Location, LocationSettings
from integration.settings_page.fields import TEMPLATE_LABELS
from integration.settings_page.form import SettingsForm, apply_submission, form_for
from integration.settings_page.preview import latest_caller_first_name, preview_data
from integration.settings_page.test_text import TestText
from integration.textback.quiet_hours import DEFAULT_STATE_RULES
from integration.textback.settings import DEFAULT_SETTINGS, SettingsError, effective_settings, merge_documents

__all__ = ["bp", "location_settings_section"]

log = logging.getLogger(__name__)
bp = Blueprint("settings_page", __name__, url_prefix="/app")

TEST_TEXT_JOB = "workers.test_text.send_test_text"
# Each test text is a real SMS on the business's bill: a few an hour per user is plenty.
TEST_TEXTS_PER_HOUR = 5


def _location_context() -> dict:
    context = current_context()
    if context is None or not context.get("location_id"):
        abort(401, description="Open TextBack from the sub-account in HighLevel to change its settings.")
    return context


def _documents(location_id: str, company_id: str) -> tuple[dict, dict, bool, Location]:
    """(inherited: built-ins < agency defaults, the location's own document, enabled, the location row)."""
    with db.session() as s:
        location = s.get(Location, location_id)
        if location is None or (location.company_id and location.company_id != company_id):
            abort(404)
        company = s.get(Company, location.company_id) if location.company_id else None
        row = s.get(LocationSettings, location_id)
        inherited = merge_documents(DEFAULT_SETTINGS, company.default_settings if company else None)
        return inherited, dict(row.values or {}) if row else {}, bool(row.enabled) if row else True, location


def _page_client():
    from integration.crm.page import _page_client as crm_page_client

    try:
        return crm_page_client()
    except Exception as exc:  # the preview works without HighLevel
        log.info("app page: no API client for the preview (%s)", type(exc).__name__)
        return None


def location_settings_section(context: dict, *, form: SettingsForm | None = None, saved: bool = False) -> dict:
    """Everything the settings card needs for the session's location."""
    location_id = context["location_id"]
    inherited, own, enabled, location = _documents(location_id, context["company_id"])
    shown = form or form_for(scope="location", inherited=inherited, own=own, enabled=enabled, saved=saved)
    try:
        effective = effective_settings(company_defaults=None, location_values=merge_documents(inherited, own))
    except SettingsError:
        effective = None
    preview = preview_data(settings=effective, location_name=location.name, location_timezone=location.timezone,
                           user_name=context.get("user_name"),
                           caller_first_name=latest_caller_first_name(location_id, _page_client()))
    with db.session() as s:
        latest_test = s.scalar(select(TestText).where(TestText.location_id == location_id,
                                                      TestText.user_id == context["user_id"])
                               .order_by(TestText.id.desc()).limit(1))
    return {"form": shown, "preview": preview, "preview_caller": preview["caller"], "templates": TEMPLATE_LABELS,
            "state_rules": DEFAULT_STATE_RULES, "latest_test": latest_test, "action": url_for("settings_page.save")}


@bp.post("/settings")
def save():
    context = _location_context()
    location_id = context["location_id"]
    inherited, own, _, _ = _documents(location_id, context["company_id"])
    new_own, form = apply_submission(scope="location", form=request.form, inherited=inherited, own=own)
    if new_own is None:
        return render_location_page(context, status=400,
                                    settings=lambda: location_settings_section(context, form=form))
    with db.transaction() as s:
        row = s.get(LocationSettings, location_id)
        if row is None:
            row = LocationSettings(location_id=location_id, values={})
            s.add(row)
        row.values = new_own
        row.enabled = form.enabled
    log.info("app page: text-back settings of %s saved by user %s (enabled=%s)", location_id,
             context.get("user_id"), form.enabled)
    return redirect(url_for("app_page.page", saved="settings") + "#settings", code=303)


@bp.post("/settings/test-text")
def send_test_text():
    context = _location_context()
    template_key = request.form.get("template", "")
    if template_key not in TEMPLATE_LABELS:
        abort(400, description="Pick which message to test.")
    _documents(context["location_id"], context["company_id"])  # 404 unless it is this tenant's
    with db.transaction() as s:
        recent = s.scalar(select(func.count()).select_from(TestText).where(
            TestText.location_id == context["location_id"], TestText.user_id == context["user_id"],
            TestText.created_at >= utcnow() - timedelta(hours=1)))
        if recent >= TEST_TEXTS_PER_HOUR:
            abort(429, description=f"You sent {recent} test texts in the last hour; try again later.")
        row = TestText(location_id=context["location_id"], user_id=context["user_id"], template_key=template_key,
                       status=TestText.QUEUED)
        s.add(row)
        s.flush()
        test_text_id = row.id
    from workers.config import get_worker_config
    from workers.queues import DEFAULT_QUEUE, enqueue

    config = get_worker_config()
    try:
        enqueue(DEFAULT_QUEUE, TEST_TEXT_JOB, test_text_id, connection=get_redis(), job_timeout=60,
                result_ttl=config.result_ttl, failure_ttl=config.failure_ttl)
    except Exception as exc:
        log.warning("app page: test text %s not queued (%s)", test_text_id, type(exc).__name__)
        with db.transaction() as s:
            failed = s.get(TestText, test_text_id)
            failed.status, failed.outcome = TestText.FAILED, "failed: the sending queue is not reachable; try again"
    return redirect(url_for("app_page.page", test="sent") + "#test-text", code=303)


@bp.get("/settings/test-text")
def test_text_status():
    context = _location_context()
    with db.session() as s:
        row = s.scalar(select(TestText).where(TestText.location_id == context["location_id"],
                                              TestText.user_id == context["user_id"])
                       .order_by(TestText.id.desc()).limit(1))
        if row is None:
            return {"status": None}
        return {"status": row.status, "outcome": row.outcome}
