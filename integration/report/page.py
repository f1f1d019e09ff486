"""GET /app/report (the Lead Leak report) and GET /app/report.csv, for the SSO session's location only.

`weeks` picks the period (integration.report.lead_leak.PERIODS); anything else is a 400 that says what is
allowed. Nothing in the query string selects a tenant (integration.page_tenant).
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, render_template, request

from integration.csv_stream import csv_response, encode_rows
from integration.db import utcnow
from integration.extensions import db
from integration.page_tenant import signed_in_location
from integration.report.chart import trend_svg
from integration.report.lead_leak import DEFAULT_WEEKS, PERIODS, LeadLeak, build_report
from integration.report.rollup import ensure_rollup

__all__ = ["bp"]

bp = Blueprint("report", __name__, url_prefix="/app")

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
                               periods=PERIODS, weeks=DEFAULT_WEEKS, active_nav="report"), 400
    leak = _report(location, weeks)
    return render_template("app/report.html", location=location, error=None, report=leak, periods=PERIODS,
                           weeks=weeks, chart=trend_svg(leak.weeks), active_nav="report")


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
