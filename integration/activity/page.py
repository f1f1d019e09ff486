"""GET /app/activity ("why didn't it text?") and GET /app/activity.csv, for the SSO session's location only.

The query string filters and pages; it never names a tenant (integration.page_tenant). A bad filter is a 400
that says what is wrong, shown with the form so it can be fixed.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, render_template, request

from integration.activity.export import activity_csv
from integration.activity.filters import OUTCOMES, ActivityFilters, FilterError, parse_cursor, parse_limit
from integration.activity.query import fetch_page
from integration.csv_stream import csv_response
from integration.db import utcnow
from integration.extensions import db
from integration.page_tenant import signed_in_location

__all__ = ["bp"]

bp = Blueprint("activity", __name__, url_prefix="/app")


@bp.get("/activity")
def activity():
    location = signed_in_location()
    try:
        filters = ActivityFilters.from_args(request.args, zone=location.zone)
        limit = parse_limit(request.args.get("limit"))
        cursor = parse_cursor(request.args.get("after"))
    except FilterError as exc:
        # The form shows what was typed (escaped by Jinja, clipped), so it can be corrected.
        form = {key: (request.args.get(key) or "")[:80] for key in ("outcome", "from", "to", "q")}
        return render_template("app/activity.html", location=location, filters=ActivityFilters(), form=form,
                               error=str(exc), rows=[], outcomes=OUTCOMES, active_nav="activity", now=utcnow(),
                               first_page=True, next_url=None, csv_url="/app/activity.csv"), 400
    with db.session() as session:
        page = fetch_page(session, location.id, filters, cursor=cursor, limit=limit)
    query = filters.as_query()
    next_url = None
    if page.next_cursor is not None:
        next_url = "/app/activity?" + urlencode({**query, **({"limit": limit} if limit != 50 else {}),
                                                 "after": page.next_cursor.encode()})
    form = {"outcome": filters.outcome, "from": query.get("from", ""), "to": query.get("to", ""),
            "q": filters.search}
    return render_template("app/activity.html", location=location, filters=filters, form=form, error=None,
                           rows=page.rows, outcomes=OUTCOMES, active_nav="activity", now=utcnow(),
                           first_page=cursor is None, next_url=next_url,
                           csv_url="/app/activity.csv" + (f"?{urlencode(query)}" if query else ""))


@bp.get("/activity.csv")
def activity_export():
    location = signed_in_location()
    try:
        filters = ActivityFilters.from_args(request.args, zone=location.zone)
    except FilterError as exc:
        return {"error": str(exc)}, 400
    return csv_response(activity_csv(location, filters), filename="textback-activity.csv")
