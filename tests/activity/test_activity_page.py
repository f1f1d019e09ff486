"""GET /app/activity and /app/activity.csv: keyset paging (ties, both sources, no duplicates or gaps), filters,
search, the CSV, bad input (a clear 400, never a 500) and tenancy (another location's calls are never reachable)."""

from __future__ import annotations

import csv
import html as html_lib
import io
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest

from integration.activity.filters import ActivityFilters, Cursor
from integration.activity.query import fetch_page
from integration.csv_stream import safe_cell
from integration.db import utcnow
from integration.extensions import db
from tests.activity import seed
from tests.activity.helpers import sign_in, table_rows

HERE, OTHER = "LocationActivity0001", "LocationActivity0002"
ZONE_FILTERS = ActivityFilters()
ZONE = ZoneInfo("America/Chicago")  # tests/activity/seed.py's locations


def _seed_mixed(now: datetime) -> list[tuple[int, int]]:
    """60 missed calls (many at the same instant) and 15 ignored calls, some sharing those instants; returns
    the expected order as (kind, id), newest first."""
    seed.location(HERE)
    seed.location(OTHER, company_id="CompanyOther00000001", name="Other Co")
    rows = []
    for index in range(60):
        at = now - timedelta(minutes=10 * (index // 4))  # 4 calls per instant: ties broken by id
        status = ("sent", "skipped", "failed", "deferred")[index % 4]
        rows.append((at, 0, seed.missed_call(HERE, at, status=status, number=f"+1512555{index:04d}",
                                             name=f"Caller {index}")))
    for index in range(15):
        at = now - timedelta(minutes=10 * index)
        rows.append((at, 1, seed.ignored_call(HERE, at, duration=60 + index)))
    seed.missed_call(OTHER, now, status="sent", number="+19995550000", name="Secret Other")
    seed.ignored_call(OTHER, now, number="+19995550001")
    rows.sort(reverse=True)
    return [(kind, row_id) for _, kind, row_id in rows]


def _walk(limit: int, filters: ActivityFilters = ZONE_FILTERS, location_id: str = HERE) -> list[tuple[int, int]]:
    seen, cursor = [], None
    while True:
        with db.session() as session:
            page = fetch_page(session, location_id, filters, cursor=cursor, limit=limit)
        seen += [(row.kind, row.id) for row in page.rows]
        assert len(page.rows) <= limit
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


@pytest.mark.parametrize("limit", [1, 3, 4, 7, 50, 200])
def test_keyset_pages_cover_every_row_once_in_order(app, limit):
    expected = _seed_mixed(utcnow())
    assert _walk(limit) == expected


def test_rows_arriving_while_paging_do_not_shift_later_pages(app):
    now = utcnow() - timedelta(hours=1)
    expected = _seed_mixed(now)
    with db.session() as session:
        first = fetch_page(session, HERE, ZONE_FILTERS, cursor=None, limit=10)
    seed.missed_call(HERE, utcnow(), status="sent")  # a new call, newer than everything
    seen, cursor = [(r.kind, r.id) for r in first.rows], first.next_cursor
    while cursor is not None:
        with db.session() as session:
            page = fetch_page(session, HERE, ZONE_FILTERS, cursor=cursor, limit=10)
        seen += [(r.kind, r.id) for r in page.rows]
        cursor = page.next_cursor
    assert seen == expected


def test_filters_by_result_date_and_search(app):
    now = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)  # 13:00 in Chicago
    _seed_mixed(now)
    zone = __import__("zoneinfo").ZoneInfo("America/Chicago")

    def walk(**args):
        return _walk(50, ActivityFilters.from_args(args, zone=zone))

    assert len(walk(outcome="failed")) == 15 and {k for k, _ in walk(outcome="failed")} == {0}
    assert len(walk(outcome="ignored")) == 15 and {k for k, _ in walk(outcome="ignored")} == {1}
    assert len(walk(outcome="missed")) == 60
    # Local dates: everything is on 10 March in Chicago; nothing on the 9th.
    assert len(walk(**{"from": "2026-03-10", "to": "2026-03-10"})) == 75
    assert walk(**{"to": "2026-03-09"}) == []
    # Name search (missed calls only, case-insensitive, % and _ are literal), number search (both sources).
    assert len(walk(q="caller 1")) == 11  # Caller 1, Caller 10..19
    assert walk(q="caller_1") == [] and walk(q="100%") == []
    assert len(walk(q="(512) 555-0007")) == 1
    assert len(walk(q="5125550199")) == 15  # the ignored calls' number
    assert walk(q="Secret Other") == [] and walk(q="999555") == []


def _page(client, **query):
    response = client.get("/app/activity", query_string=query)
    return response, html_lib.unescape(response.get_data(as_text=True))


def test_the_page_pages_with_next_links_and_says_why(app, client, settings):
    _seed_mixed(utcnow())
    sign_in(client, settings, HERE)
    response, html = _page(client, limit=20)
    assert response.status_code == 200
    rows = table_rows(html)
    assert len(rows) == 20
    assert any("Not missed Not texted: answered, 1 min" in r for r in rows)
    assert any("Deferred Deferred to 08:00 tomorrow caller time (quiet hours)" in r for r in rows)
    assert "Secret Other" not in html
    seen = list(rows)
    while 'rel="next"' in html:
        next_href = html.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
        assert "limit=20" in next_href
        response, html = _page(client, **{k: v[0] for k, v in parse_qs(urlparse(next_href).query).items()})
        assert response.status_code == 200
        seen += table_rows(html)
    assert len(seen) == 75


@pytest.mark.parametrize(("query", "message"), [
    ({"outcome": "bogus"}, "outcome must be one of: all, missed, texted"),
    ({"from": "2026-13-01"}, "'from' must be a date like 2026-03-31"),
    ({"to": "yesterday"}, "'to' must be a date like 2026-03-31"),
    ({"from": "2026-03-10", "to": "2026-03-01"}, "the 'from' date is after the 'to' date"),
    ({"from": "0001-01-01"}, "'from' must be between 2000-01-01 and 2100-12-31"),
    ({"limit": "0"}, "limit must be a whole number from 1 to 200"),
    ({"limit": "100000"}, "limit must be a whole number from 1 to 200"),
    ({"limit": "-5"}, "limit must be a whole number from 1 to 200"),
    ({"after": "junk!!"}, "this page link is not valid"),
    ({"after": "bm90fGF8Y3Vyc29y"}, "this page link is not valid"),
    ({"after": Cursor(datetime(2026, 1, 1, tzinfo=UTC), 0, 1).encode() + "A" * 200}, "this page link is not valid"),
    ({"q": "x" * 81}, "search for at most 80 characters"),
])
def test_bad_input_is_a_clear_400(app, client, settings, query, message):
    seed.location(HERE)
    sign_in(client, settings, HERE)
    response, html = _page(client, **query)
    assert response.status_code == 400
    assert message in html
    csv_response = client.get("/app/activity.csv", query_string=query)
    csv_response.get_data()  # a streamed answer holds the request context until it is read
    if "after" not in query and "limit" not in query:  # the CSV takes no paging parameters
        assert csv_response.status_code == 400 and message in csv_response.get_json()["error"]


def test_the_csv_streams_every_row_the_filters_select(app, client, settings):
    _seed_mixed(utcnow())
    seed.missed_call(HERE, utcnow() - timedelta(days=1), status="skipped", name="=HYPERLINK(\"http://x\")")
    sign_in(client, settings, HERE)
    response = client.get("/app/activity.csv")
    assert response.status_code == 200 and response.is_streamed
    assert response.headers["Content-Disposition"] == 'attachment; filename="textback-activity.csv"'
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["call time", "caller name", "caller number", "call", "result", "what happened", "reply",
                       "replied at", "lead stage"]
    assert len(rows) == 1 + 76
    assert [r[1] for r in rows if "HYPERLINK" in r[1]] == ["'=HYPERLINK(\"http://x\")"]
    assert any(r[2] == "+15125550005" and r[4] == "Skipped" for r in rows)  # phone numbers are not escaped
    failed = list(csv.reader(io.StringIO(client.get("/app/activity.csv?outcome=failed").get_data(as_text=True))))
    assert len(failed) == 1 + 15 and {r[4] for r in failed[1:]} == {"Failed"}
    assert "Secret Other" not in response.get_data(as_text=True)


def test_no_route_or_parameter_reaches_another_locations_calls(app, client, settings):
    _seed_mixed(utcnow())
    sign_in(client, settings, HERE)
    for path in ("/app/activity", "/app/activity.csv", "/app/report", "/app/report.csv"):
        for query in ({}, {"location_id": OTHER}, {"locationId": OTHER}, {"location": OTHER}, {"q": "Secret"},
                      {"q": "999555"}):
            body = client.get(path, query_string=query).get_data(as_text=True)
            assert "Secret Other" not in body and "9995550000" not in body and "Other Co" not in body
    # A cursor is a position, not a tenant: one taken from the other location's rows still lists only ours.
    with db.session() as session:
        theirs = fetch_page(session, OTHER, ZONE_FILTERS, cursor=None, limit=1).next_cursor
    assert theirs is not None
    _, html = _page(client, after=theirs.encode())
    assert "Secret Other" not in html


def test_without_a_session_the_page_asks_highlevel_to_sign_in(app, client):
    for path in ("/app/activity", "/app/activity.csv", "/app/report", "/app/report.csv"):
        response = client.get(path)
        assert response.status_code == 401 and "Connecting to HighLevel" in response.get_data(as_text=True)


def test_an_agency_session_goes_back_to_the_agency_page(app, client, settings):
    from integration.sso import encrypt_sso_payload

    seed.location(HERE)
    context = {"userId": "AgencyUser0000000001", "companyId": "CompanySeed000000001", "role": "admin",
               "type": "agency", "userName": "Ann", "email": "ann@example.com"}
    client.post("/app/sso", json={"encryptedData": encrypt_sso_payload(context, settings.ghl_sso_key)})
    response = client.get("/app/activity")
    assert response.status_code == 302 and response.headers["Location"].endswith("/app")


def test_a_location_of_another_company_is_not_shown(app, client, settings):
    seed.location(HERE)
    seed.missed_call(HERE, utcnow(), name="Hidden Caller")
    sign_in(client, settings, HERE, company_id="AttackerCompany00001")
    for path in ("/app/activity", "/app/report"):
        response = client.get(path)
        assert response.status_code == 404 and "Hidden Caller" not in response.get_data(as_text=True)


def test_the_csv_has_the_pages_rows_in_the_pages_order_across_its_batches(app, client, settings):
    """The export builds its cells without the page's objects: they must still say what the page says."""
    from integration.activity.export import activity_csv
    from integration.page_tenant import SignedInLocation, location_settings

    now = utcnow()
    _seed_mixed(now)
    seed.missed_call(HERE, now - timedelta(hours=5), status="sent", name="@SUM(A1)", number="-x",
                     lead={"replied_at": now - timedelta(hours=4), "reply_body": "=cmd|' /C calc'!A0 " + "x" * 200})
    location = SignedInLocation(id=HERE, name="Acme", company_id=None, settings=location_settings(None, None),
                                zone=ZONE)
    for filters in (ZONE_FILTERS, ActivityFilters.from_args({"outcome": "failed"}, zone=ZONE),
                    ActivityFilters.from_args({"q": "555"}, zone=ZONE)):
        expected, cursor = [], None
        while True:
            with db.session() as session:
                page = fetch_page(session, HERE, filters, cursor=cursor, limit=9)
            expected += [(r.called_at.astimezone(ZONE).isoformat(timespec="seconds"), safe_cell(r.caller_name),
                          safe_cell(r.caller_number), r.call, r.badge, r.outcome, safe_cell(r.reply),
                          r.replied_at.astimezone(ZONE).isoformat(timespec="seconds") if r.replied_at else "",
                          r.stage or "") for r in page.rows]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        body = b"".join(activity_csv(location, filters, batch_size=7)).decode().lstrip("\ufeff")
        rows = [tuple(r) for r in csv.reader(io.StringIO(body))][1:]
        assert rows == [tuple(str(c) for c in row) for row in expected]
        assert len(rows) > 7
    everything = list(csv.reader(io.StringIO(b"".join(activity_csv(location, ZONE_FILTERS, batch_size=7)).decode())))
    assert ["'@SUM(A1)", "'-x"] in [r[1:3] for r in everything]
    assert any(r[6].startswith("'=cmd|") and r[6].endswith("…") for r in everything)
