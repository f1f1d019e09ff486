"""The report's per-day rollup equals the live count of the calls, whatever happens to them and whenever.

Each test compares the rollup (report_daily_funnels, kept by the triggers of migration 0015) with the live query
(integration.report.funnel.weekly_funnels over the calls and their leads) for every period the report offers,
and day by day: after calls are recorded around local midnights and daylight-saving changes, after late changes
(statuses decided, leads replying, booking, won with a value, value corrected, won -> lost, a call deleted, a call
moved to another day), after the time zone changes, for the migration's backfill of existing calls, and while a
rebuild races an open write. The rollup exists on PostgreSQL only; on SQLite the report counts the calls.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, delete, select, text, update
from sqlalchemy.orm import Session

from integration.crm.models import CrmLead
from integration.extensions import db
from integration.report.funnel import Funnel, weekly_funnels
from integration.report.lead_leak import PERIODS, build_report, week_starts
from integration.report.models import ReportDailyFunnel, ReportRollupZone
from integration.report.rollup import ensure_rollup
from integration.textback.models import MissedCall, SendIntent
from tests.activity import seed

HERE = "LocationRollup000001"
CHICAGO, KOLKATA = ZoneInfo("America/Chicago"), ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
STATUSES = ("pending", "sending", "sent", "skipped", "failed", "deferred")


@pytest.fixture
def postgres(app):
    if db.engine.dialect.name != "postgresql":
        pytest.fail("the rollup tests need PostgreSQL: set TEST_DATABASE_URL")
    return db.engine


def _comparable(funnel: Funnel) -> tuple:
    # Money to the cent: the rollup adds numerics, the live query sums floats (last-bit differences).
    return (funnel.missed, funnel.eligible, funnel.texted, funnel.replied, funnel.booked, funnel.won,
            round(funnel.won_value, 2), funnel.won_unvalued, funnel.booked_open)


def assert_rollup_equals_live(location_id: str, zone: ZoneInfo) -> None:
    with db.session() as session:
        for weeks in PERIODS:
            report = build_report(session, location_id, zone=zone, weeks=weeks, average_job_value=400, now=NOW)
            assert report.from_rollup, "the report did not read the rollup"
            live = weekly_funnels(session, location_id, week_starts(NOW, zone, weeks), NOW)
            assert [_comparable(w.funnel) for w in report.weeks] == [_comparable(f) for f in live], weeks
        # Day by day as well, every day ever (not just the report's periods).
        rolled = {row.day: (row.missed, row.eligible, row.texted, row.replied, row.booked, row.won,
                            round(float(row.won_value), 2), row.won_unvalued, row.booked_open)
                  for row in session.scalars(select(ReportDailyFunnel)
                                             .where(ReportDailyFunnel.location_id == location_id))}
    assert {day: counts for day, counts in rolled.items() if any(counts)} == live_days(location_id, zone)


def live_days(location_id: str, zone: ZoneInfo) -> dict[date, tuple]:
    """The funnel per local day, counted in Python from the rows (independent of both SQL paths)."""
    days: dict[date, list] = {}
    with db.session() as session:
        calls = session.execute(select(MissedCall.id, MissedCall.created_at, MissedCall.status)
                                .where(MissedCall.location_id == location_id)).all()
        leads = {lead.missed_call_id: lead for lead in session.scalars(select(CrmLead))}
    for call_id, created_at, status in calls:
        counts = days.setdefault(created_at.astimezone(zone).date(), [0] * 9)
        counts[0] += 1
        counts[1] += status != "skipped"
        counts[2] += status == "sent"
        lead = leads.get(call_id)
        if lead is not None:
            won = lead.outcome == "won"
            counts[3] += lead.replied_at is not None
            counts[4] += lead.booked_at is not None or won
            counts[5] += won
            counts[6] += (lead.outcome_value or 0) if won else 0
            counts[7] += won and lead.outcome_value is None
            counts[8] += lead.booked_at is not None and lead.outcome is None
    return {day: (*c[:6], round(c[6], 2), *c[7:]) for day, c in days.items()}


def _instants(rng: random.Random) -> list[datetime]:
    """Two years of call times, with calls a minute either side of local midnight and of the DST changes."""
    instants = [NOW - timedelta(seconds=rng.uniform(60, 730 * 86400)) for _ in range(250)]
    for day in (date(2025, 3, 9), date(2025, 11, 2), date(2026, 3, 8), date(2026, 11, 1), date(2026, 11, 16)):
        midnight = datetime.combine(day, datetime.min.time(), tzinfo=CHICAGO).astimezone(UTC)
        instants += [midnight - timedelta(minutes=1), midnight, midnight + timedelta(minutes=1),
                     midnight + timedelta(hours=2, minutes=30)]  # (2:30 local does not exist on a spring day)
    return instants


def _seed_calls(rng: random.Random, location_id: str) -> list[int]:
    ids = []
    for at in _instants(rng):
        status = rng.choice(STATUSES)
        lead = None
        if status == "sent" and rng.random() < 0.8:
            lead = rng.choice([{}, {"replied_at": at + timedelta(minutes=5)},
                               {"booked_at": at + timedelta(hours=1)},
                               {"booked_at": at + timedelta(hours=1), "outcome": "won",
                                "outcome_value": round(rng.uniform(50, 5000), 2)},
                               {"outcome": "won"}, {"outcome": "lost", "outcome_value": 300.0}])
        ids.append(seed.missed_call(location_id, at, status=status, lead=lead, sent_after=3))
    return ids


def test_the_rollup_equals_the_calls_through_every_late_change(postgres):
    rng = random.Random(14)
    seed.location(HERE, installed_days_ago=800)
    assert ensure_rollup(postgres, HERE, CHICAGO)  # built empty, before any call: the triggers do the rest
    ids = _seed_calls(rng, HERE)
    assert_rollup_equals_live(HERE, CHICAGO)

    # Late decisions: pending -> sending -> sent, deferred -> skipped, sent -> failed (a re-check), and back.
    with db.transaction() as session:
        for call_id in rng.sample(ids, 80):
            for status in rng.sample(STATUSES, 3):
                session.execute(update(MissedCall).where(MissedCall.id == call_id).values(status=status))
    assert_rollup_equals_live(HERE, CHICAGO)

    # Leads change weeks later: replies, bookings, won with and without a value, corrected values, won -> lost,
    # a booking cancelled; new leads for calls texted late.
    with db.transaction() as session:
        leads = session.scalars(select(CrmLead).where(CrmLead.location_id == HERE)).all()
        for lead in rng.sample(leads, min(60, len(leads))):
            change = rng.choice([{"replied_at": lead.called_at + timedelta(minutes=9)},
                                 {"booked_at": lead.called_at + timedelta(days=3)}, {"booked_at": None},
                                 {"outcome": "won", "outcome_value": round(rng.uniform(1, 9000), 2)},
                                 {"outcome": "won", "outcome_value": None}, {"outcome": "lost"},
                                 {"outcome": None}, {"outcome_value": 1234.56}])
            session.execute(update(CrmLead).where(CrmLead.id == lead.id).values(**change))
        with_lead = {lead.missed_call_id for lead in session.scalars(select(CrmLead))}
        for call_id in [i for i in ids if i not in with_lead][:15]:
            call = session.get(MissedCall, call_id)
            session.add(CrmLead(missed_call_id=call_id, location_id=HERE, contact_id=call.contact_id,
                                caller_number=call.caller_number, called_at=call.created_at,
                                texted_at=call.created_at, replied_at=call.created_at + timedelta(hours=1),
                                outcome="won", outcome_value=480.0))
    assert_rollup_equals_live(HERE, CHICAGO)

    # A call (and its lead) deleted; a call whose time was corrected to another day; a lead deleted alone.
    with db.transaction() as session:
        lead = session.scalars(select(CrmLead).where(CrmLead.outcome == "won").limit(1)).one()
        session.execute(delete(CrmLead).where(CrmLead.id == lead.id))
        session.execute(delete(SendIntent).where(SendIntent.missed_call_id == lead.missed_call_id))
        session.execute(delete(MissedCall).where(MissedCall.id == lead.missed_call_id))
        moved = session.scalars(select(CrmLead).where(CrmLead.replied_at.is_not(None)).limit(1)).one()
        call = session.get(MissedCall, moved.missed_call_id)
        session.execute(update(MissedCall).where(MissedCall.id == call.id)
                        .values(created_at=call.created_at - timedelta(days=40, hours=7)))
        session.execute(delete(CrmLead).where(CrmLead.id == session.scalars(
            select(CrmLead.id).where(CrmLead.booked_at.is_not(None)).limit(1)).one()))
    assert_rollup_equals_live(HERE, CHICAGO)


def test_another_zone_rebuilds_the_days_in_that_zone(postgres):
    rng = random.Random(15)
    seed.location(HERE, installed_days_ago=800)
    _seed_calls(rng, HERE)
    assert ensure_rollup(postgres, HERE, CHICAGO)
    assert_rollup_equals_live(HERE, CHICAGO)
    # The contractor sets another time zone (a half-hour one): the report's days move with it.
    with db.session() as session:
        assert not build_report(session, HERE, zone=KOLKATA, weeks=12, average_job_value=0, now=NOW).from_rollup
    assert ensure_rollup(postgres, HERE, KOLKATA)
    assert_rollup_equals_live(HERE, KOLKATA)
    seed.missed_call(HERE, NOW - timedelta(hours=1), status="sent", lead={"replied_at": NOW}, sent_after=2)
    assert_rollup_equals_live(HERE, KOLKATA)


def test_the_report_page_builds_the_rollup_and_shows_the_same_numbers(postgres, client, settings, monkeypatch):
    from tests.activity.helpers import sign_in

    seed.location(HERE, installed_days_ago=800, job_value=400)
    _seed_calls(random.Random(16), HERE)
    sign_in(client, settings, HERE)
    with db.session() as session:
        assert session.get(ReportRollupZone, HERE) is None

    def weeks_and_total(csv_text: str) -> list[str]:
        # (the summary lines under the total hold "per week" figures measured up to the request's own instant)
        return csv_text.split("\r\n\r\n")[0].splitlines()

    rolled = weeks_and_total(client.get("/app/report.csv?weeks=104").get_data(as_text=True))  # builds the rollup
    with db.session() as session:
        assert session.get(ReportRollupZone, HERE).zone == "America/Chicago"
        assert session.scalar(select(ReportDailyFunnel.day).where(ReportDailyFunnel.location_id == HERE).limit(1))
    assert len(rolled) == 1 + 104 + 1
    # The same CSV counted from the calls (no rollup): identical, week by week, to the cent.
    with db.transaction() as session:
        session.execute(delete(ReportRollupZone))
        session.execute(delete(ReportDailyFunnel))
    monkeypatch.setattr("integration.report.page.ensure_rollup", lambda *args: False)
    assert weeks_and_total(client.get("/app/report.csv?weeks=104").get_data(as_text=True)) == rolled


def test_a_rebuild_waits_for_an_open_write_and_holds_new_writes_back(postgres):
    seed.location(HERE, installed_days_ago=800)
    _seed_calls(random.Random(17), HERE)
    assert ensure_rollup(postgres, HERE, CHICAGO)

    # 1. A write is open (its call inserted, not committed) when the zone changes: the rebuild waits for it.
    writer = Session(postgres)
    writer.add(MissedCall(call_key="race:1", location_id=HERE, call_status="no-answer", status="sent",
                          created_at=NOW - timedelta(hours=3), updated_at=NOW))
    writer.flush()
    rebuilt = threading.Event()
    thread = threading.Thread(target=lambda: (ensure_rollup(postgres, HERE, KOLKATA), rebuilt.set()))
    thread.start()
    time.sleep(0.5)
    assert not rebuilt.is_set(), "the rebuild did not wait for the open write"
    writer.commit()
    writer.close()
    thread.join(10)
    assert rebuilt.is_set()
    assert_rollup_equals_live(HERE, KOLKATA)

    # 2. A rebuild is running (not committed) when a call comes in: the write waits, then counts in the new days.
    rebuild = postgres.connect()
    transaction = rebuild.begin()
    rebuild.execute(text("SELECT report_rollup_rebuild(:l, 'America/Chicago')"), {"l": HERE})
    written = threading.Event()

    def write():
        seed.missed_call(HERE, NOW - timedelta(minutes=30), status="skipped")
        written.set()

    thread = threading.Thread(target=write)
    thread.start()
    time.sleep(0.5)
    assert not written.is_set(), "the write did not wait for the rebuild"
    transaction.commit()
    rebuild.close()
    thread.join(10)
    assert written.is_set()
    assert_rollup_equals_live(HERE, CHICAGO)


def test_the_migration_backfills_existing_calls_in_each_locations_zone(postgres, database_url):
    """Upgrade a database with calls from the revision before 0015: the backfilled rollup equals the calls."""
    from alembic.script import ScriptDirectory

    from integration.migrate import alembic_config, upgrade

    before = ScriptDirectory.from_config(alembic_config(database_url)).get_revision("0015_report_rollups").down_revision
    url = database_url.rsplit("/", 1)[0] + "/" + database_url.rsplit("/", 1)[1] + "_rollup_backfill"
    admin = create_engine(database_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = url.rsplit("/", 1)[1]
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(url, before)
        engine = create_engine(url)
        zones = {"LocSettingsZone00001": "Asia/Kolkata", "LocAgencyZone0000001": "Europe/Berlin",
                 "LocHighLevelZone0001": "America/Chicago", "LocNoZone00000000001": "America/New_York"}
        rng = random.Random(18)
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO companies (id, name, default_settings, created_at, updated_at) "
                                    "VALUES ('CoBerlin', 'A', '{\"timezone\": \"Europe/Berlin\"}', now(), now()), "
                                    "('CoPlain', 'B', '{}', now(), now())"))
            for location_id, company, timezone in (("LocSettingsZone00001", "CoPlain", "America/Chicago"),
                                                   ("LocAgencyZone0000001", "CoBerlin", "America/Chicago"),
                                                   ("LocHighLevelZone0001", "CoPlain", "America/Chicago"),
                                                   ("LocNoZone00000000001", "CoPlain", None),
                                                   ("LocBadZone0000000001", "CoPlain", "Mars/Olympus_Mons")):
                connection.execute(text("INSERT INTO locations (id, company_id, name, timezone, status, "
                                        "created_at, updated_at) VALUES (:l, :c, :l, :z, 'installed', now(), now())"),
                                   {"l": location_id, "c": company, "z": timezone})
            connection.execute(text("INSERT INTO location_settings (location_id, enabled, values, updated_at) "
                                    "VALUES ('LocSettingsZone00001', true, '{\"timezone\": \"Asia/Kolkata\"}', now())"))
            for n, at in enumerate(_instants(rng) * 2):
                location_id = list(zones)[n % 4] if n % 13 else "LocBadZone0000000001"
                status = STATUSES[n % len(STATUSES)]
                call_id = connection.scalar(text(
                    "INSERT INTO textback_missed_calls (call_key, location_id, contact_id, call_status, called_at, "
                    "duplicate_webhooks, status, created_at, updated_at) VALUES (:k, :l, :c, 'no-answer', :at, 0, :s, "
                    ":at, :at) RETURNING id"), {"k": f"bf:{n}", "l": location_id, "c": f"c{n}", "at": at, "s": status})
                if status == "sent":
                    k = n // len(STATUSES)  # (n itself is the same modulo 6 for every sent call)
                    won = k % 3 == 0
                    connection.execute(text(
                        "INSERT INTO crm_leads (missed_call_id, location_id, contact_id, caller_number, called_at, "
                        "texted_at, replied_at, booked_at, outcome, outcome_value, created_at, updated_at) VALUES "
                        "(:id, :l, :c, '+15125550100', :at, :at, :at, :booked, :outcome, :value, :at, :at)"),
                        {"id": call_id, "l": location_id, "c": f"c{n}", "at": at,
                         "booked": at if k % 2 else None, "outcome": "won" if won else None,
                         "value": (k % 7) * 111.11 if won and k % 5 else None})
        engine.dispose()
        upgrade(url)  # through 0015 (its backfill) to head, which the models read

        db.configure(url)  # the helpers below read through `db`
        with db.session() as session:
            built = dict(session.execute(select(ReportRollupZone.location_id, ReportRollupZone.zone)).all())
        assert built == zones  # a zone PostgreSQL does not know gets no rollup (the page builds one)
        for location_id, zone in zones.items():
            assert live_days(location_id, ZoneInfo(zone)), location_id
            assert_rollup_equals_live(location_id, ZoneInfo(zone))
    finally:
        db.configure(database_url)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
