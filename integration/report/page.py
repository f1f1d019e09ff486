"""GET /app/report (the Lead Leak report) and GET /app/report.csv, for the SSO session's location only; POST
/app/report/job-value sets the average job value the report multiplies by, where the contractor reads it.

`weeks` picks the period (integration.report.lead_leak.PERIODS); anything else is a 400 that says what is
allowed. Nothing in the query string selects a tenant (integration.page_tenant).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from flask import Blueprint, redirect, render_template, request

from integration.csv_stream import csv_response, encode_rows
from integration.db import utcnow
from integration.extensions import db
from integration.models import LocationSettings
from integration.page_tenant import signed_in_location
from integration.report.chart import trend_svg
from integration.report.lead_leak import DEFAULT_WEEKS, PERIODS, LeadLeak, build_report
from integration.report.rollup import ensure_rollup
from integration.settings_page.fields import FieldError, field_by_path

__all__ = ["bp"]

bp = Blueprint("report", __name__, url_prefix="/app")
log = logging.getLogger(__name__)
# The settings form's own field for the job value (its parser and its messages).
_JOB_VALUE = field_by_path(("crm", "average_job_value"))

CSV_HEADER = ("week starting", "missed calls", "could be texted", "texted", "replied", "booked", "won",
              "won value", "recovered value")


class _BadPeriod(ValueError):
    pass


def _weeks(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_WEEKS
    if not raw.isdigit() or int(raw) not in PERIODS:
        raise _BadPeriod(f"weeks must be one of: {', '.join(map(str, PERIODS))}")
    return int(raw)


def _report(location, weeks: int) -> LeadLeak:
    # Once per location and zone (a first report, a changed time zone): roll its calls up per local day.
    ensure_rollup(db.engine, location.id, location.zone)
    with db.session() as session:
        return build_report(session, location.id, zone=location.zone, weeks=weeks,
                            average_job_value=location.average_job_value, now=utcnow())


@bp.get("/report")
def report():
    location = signed_in_location()
    try:
        weeks = _weeks(request.args.get("weeks"))
    except _BadPeriod as exc:
        return render_template("app/report.html", location=location, error=str(exc), report=None,
                               periods=PERIODS, weeks=DEFAULT_WEEKS, active_nav="report", job=_job_form(location)
                               ), 400
    return _render(location, weeks, job=_job_form(location, saved=request.args.get("saved") == "job-value"))


def _render(location, weeks: int, *, job: dict, status: int = 200):
    leak = _report(location, weeks)
    return render_template("app/report.html", location=location, error=None, report=leak, periods=PERIODS,
                           weeks=weeks, chart=trend_svg(leak.weeks), active_nav="report", job=job), status


def _job_form(location, *, typed: str | None = None, error: str | None = None, saved: bool = False) -> dict:
    value = location.average_job_value
    return {"value": typed if typed is not None else (f"{value:g}" if value else ""), "error": error,
            "saved": saved}


@bp.post("/report/job-value")
def save_job_value():
    """The sub-account's average job value, set where the report uses it (the same value as the CRM options' job
    value: settings crm.average_job_value, validated as the settings form validates it)."""
    location = signed_in_location()
    try:
        weeks = _weeks(request.form.get("weeks"))
    except _BadPeriod:
        weeks = DEFAULT_WEEKS
    typed = (request.form.get("average_job_value") or "")[:40]
    try:
        value = _JOB_VALUE.parse(typed) if typed.strip() else 0
    except FieldError as exc:
        return _render(location, weeks, job=_job_form(location, typed=typed, error=str(exc)), status=400)
    with db.transaction() as session:
        row = session.get(LocationSettings, location.id)
        if row is None:
            row = LocationSettings(location_id=location.id, enabled=True, values={})
            session.add(row)
        values = dict(row.values or {})
        crm = dict(values.get("crm") or {}) if isinstance(values.get("crm"), dict) else {}
        row.values = {**values, "crm": {**crm, "average_job_value": value}}  # a new dict: the JSON column changed
    log.info("report: average job value of %s set to %s", location.id, value)
    return redirect(f"/app/report?weeks={weeks}&saved=job-value#job-value", code=303)


@bp.get("/report.csv")
def report_export():
    location = signed_in_location()
    try:
        weeks = _weeks(request.args.get("weeks"))
    except _BadPeriod as exc:
        return {"error": str(exc)}, 400
    return csv_response(_report_rows(_report(location, weeks)), filename=f"textback-report-{weeks}-weeks.csv")


def _report_rows(leak: LeadLeak) -> Iterator[bytes]:
    job = leak.average_job_value
    yield "\ufeff".encode() + encode_rows([CSV_HEADER])
    for week in leak.weeks:
        f = week.funnel
        yield encode_rows([(week.starts.isoformat(), f.missed, f.eligible, f.texted, f.replied, f.booked, f.won,
                            f"{f.won_value:.2f}", f"{f.recovered_value(job):.2f}")])
    t = leak.total
    yield encode_rows([
        ("total", t.missed, t.eligible, t.texted, t.replied, t.booked, t.won, f"{t.won_value:.2f}",
         f"{leak.recovered:.2f}"),
        (),
        ("missed calls per week", f"{leak.missed_per_week:.1f}"),
        ("average job value", f"{job:.2f}"),
        ("lead leak per year (job value x missed calls per week x 52)", f"{leak.leak_per_year:.2f}"),
    ])
