"""The report's response times read from the leads (first_human_reply_at, kept by the triggers of migration 0017)
equal the live computation from the conversation log, whatever happens to the texts and the leads and whenever.

Each check compares, for every period the report offers, `response_times` (one scan of the leads) with
`live_response_times` (the join with the log the report used before), and every lead's stored value with the first
person's text found in Python from the rows. PostgreSQL only: SQLite has no triggers and reads the log itself.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, delete, select, text, update
from sqlalchemy.orm import Session

from integration.crm.models import CrmLead
from integration.extensions import db
from integration.report.lead_leak import PERIODS, week_starts
from integration.report.timing import HUMAN_REPLY_WINDOW, live_response_times, response_times
from integration.textback.models import ConversationMessage
from tests.activity import seed
from tests.activity.test_report_rollup import CHICAGO, NOW

HERE, ELSEWHERE = "LocationTimes0000001", "LocationTimesOther01"


@pytest.fixture
def postgres(app):
    if db.engine.dialect.name != "postgresql":
        pytest.fail("the response-time tests need PostgreSQL: set TEST_DATABASE_URL")
    return db.engine


def expected_first_reply(session: Session, lead: CrmLead) -> datetime | None:
    """The first person's text to the lead's contact in [called_at, called_at + 7 days), found in Python."""
    times = [m.occurred_at for m in session.scalars(select(ConversationMessage).where(
        ConversationMessage.location_id == lead.location_id, ConversationMessage.contact_id == lead.contact_id))
        if m.author == ConversationMessage.PERSON and m.occurred_at is not None
        and lead.called_at <= m.occurred_at < lead.called_at + HUMAN_REPLY_WINDOW]
    return min(times, default=None)


def assert_stored_equals_live(location_id: str = HERE) -> None:
    with db.session() as session:
        leads = session.scalars(select(CrmLead)).all()
        assert [(lead.id, lead.first_human_reply_at) for lead in leads] == [
            (lead.id, expected_first_reply(session, lead)) for lead in leads]
        for weeks in PERIODS:
            since = week_starts(NOW, CHICAGO, weeks)[0]
            stored = response_times(session, location_id, since, NOW)
            live = live_response_times(session, location_id, since, NOW)
            assert stored == live, weeks


def _message(contact_id: str, at: datetime | None, *, author: str = "person", location_id: str = HERE) -> int:
    with db.transaction() as session:
        row = ConversationMessage(location_id=location_id, contact_id=contact_id, direction="outbound",
                                  author=author, body="On our way", occurred_at=at)
        session.add(row)
        session.flush()
        return row.id


def _lead_call(at: datetime, *, contact_id: str | None = None) -> CrmLead:
    call_id = seed.missed_call(HERE, at, status="sent", lead={}, sent_after=3)
    with db.transaction() as session:
        lead = session.scalar(select(CrmLead).where(CrmLead.missed_call_id == call_id))
        if contact_id is not None:
            lead.contact_id = contact_id
        session.flush()
        session.expunge(lead)
        return lead


def test_the_stored_first_reply_equals_the_log_through_every_change(postgres):
    rng = random.Random(17)
    seed.location(HERE, installed_days_ago=800)
    seed.location(ELSEWHERE, company_id="CompanyTimesOther001", name="Other Co")
    leads = [_lead_call(NOW - timedelta(seconds=rng.uniform(600, 730 * 86400))) for _ in range(60)]
    # Two calls from the same contact two days apart: a text after both counts for both.
    twice = _lead_call(leads[0].called_at + timedelta(days=2), contact_id=leads[0].contact_id)
    assert_stored_equals_live()

    messages = []
    for lead in leads[:45]:
        for minutes in rng.sample([-5, 0, 1, 14, 90, 60 * 24 * 3, 60 * 24 * 7 - 1, 60 * 24 * 7, 60 * 24 * 9], 3):
            messages.append(_message(lead.contact_id, lead.called_at + timedelta(minutes=minutes)))
        # Not a person's, not this contact's, another location's: never a first reply.
        _message(lead.contact_id, lead.called_at + timedelta(minutes=2), author="textback")
        _message(lead.contact_id, lead.called_at + timedelta(minutes=3), author="caller")
        _message(lead.contact_id + "x", lead.called_at + timedelta(minutes=4))
        _message(lead.contact_id, lead.called_at + timedelta(minutes=5), location_id=ELSEWHERE)
    _message(leads[0].contact_id, None)
    _message(leads[0].contact_id, twice.called_at + timedelta(hours=1))
    assert_stored_equals_live()
    with db.session() as session:
        assert sum(lead.first_human_reply_at is not None for lead in session.scalars(select(CrmLead))) > 30

    # A lead recorded after the person had already answered (the BEFORE INSERT trigger reads the log).
    early = NOW - timedelta(days=20)
    _message("contactLate", early + timedelta(minutes=7))
    late = _lead_call(early, contact_id="contactLate")
    with db.session() as session:
        assert session.get(CrmLead, late.id).first_human_reply_at == early + timedelta(minutes=7)
    assert_stored_equals_live()

    with db.transaction() as session:
        # Texts deleted, moved in time, re-attributed, moved to another contact.
        for message_id in messages[:20]:
            session.execute(delete(ConversationMessage).where(ConversationMessage.id == message_id))
        for message_id in messages[20:40]:
            session.get(ConversationMessage, message_id).occurred_at -= timedelta(minutes=rng.randint(-11520, 11520))
        for message_id in messages[40:55]:
            session.execute(update(ConversationMessage).where(ConversationMessage.id == message_id)
                            .values(author="textback"))
        session.execute(update(ConversationMessage).where(ConversationMessage.author == "caller",
                                                          ConversationMessage.id % 3 == 0).values(author="person"))
        for message_id in messages[55:65]:
            session.execute(update(ConversationMessage).where(ConversationMessage.id == message_id)
                            .values(contact_id=leads[50].contact_id))
    assert_stored_equals_live()

    with db.transaction() as session:
        # Leads moved to another call time or contact; a value written straight to the column is put right.
        for lead in leads[45:55]:
            session.get(CrmLead, lead.id).called_at -= timedelta(days=rng.randint(-3, 3))
        session.execute(update(CrmLead).where(CrmLead.id == leads[56].id).values(contact_id=leads[1].contact_id))
        session.execute(update(CrmLead).where(CrmLead.id == leads[57].id)
                        .values(first_human_reply_at=NOW, replied_at=NOW))
    assert_stored_equals_live()


def test_the_report_page_shows_the_stored_times(postgres, client, settings):
    from tests.activity.helpers import sign_in

    seed.location(HERE, installed_days_ago=30)
    now = datetime.now(UTC)
    for index, minutes in enumerate((14, 20, 35)):
        lead = _lead_call(now - timedelta(days=index + 1))
        _message(lead.contact_id, lead.called_at + timedelta(minutes=minutes))
    _lead_call(now - timedelta(days=5))  # no reply: not counted in the human row
    sign_in(client, settings, HERE)
    html = client.get("/app/report?weeks=4").get_data(as_text=True)
    assert "<th scope=\"row\">A person's first reply</th><td class=\"num\">20 min</td>" in html
    assert '<td class="num">32 min</td><td class="num">3</td>' in html  # p90 of 14, 20, 35: 32 min; 3 replies


def test_a_lead_and_a_text_committed_together_do_not_miss_each_other(postgres):
    """The text's transaction holds the contact's lock: the lead's insert waits for it, then reads the text."""
    seed.location(HERE, installed_days_ago=30)
    called = NOW - timedelta(days=3)
    engine = create_engine(postgres.url)
    messaging = engine.connect()
    transaction = messaging.begin()
    messaging.execute(text(
        "INSERT INTO textback_conversation_messages (location_id, contact_id, direction, author, body, occurred_at,"
        " created_at) VALUES (:l, 'contactRace', 'outbound', 'person', 'hi', :at, now())"),
        {"l": HERE, "at": called + timedelta(minutes=9)})
    inserted = threading.Event()

    call_id = seed.missed_call(HERE, called, status="sent", sent_after=3)

    def insert_lead():
        with db.transaction() as session:
            session.add(CrmLead(missed_call_id=call_id, location_id=HERE, contact_id="contactRace",
                                caller_number="+15125550100", called_at=called, texted_at=called))
        inserted.set()

    thread = threading.Thread(target=insert_lead)
    thread.start()
    try:
        time.sleep(0.5)
        waited = not inserted.is_set()
        transaction.commit()
    finally:
        messaging.close()
        thread.join(10)
        engine.dispose()
    assert waited, "the lead's insert did not wait for the open text"
    assert inserted.is_set()
    with db.session() as session:
        lead = session.scalar(select(CrmLead).where(CrmLead.contact_id == "contactRace"))
        assert lead.first_human_reply_at == called + timedelta(minutes=9)
    assert_stored_equals_live()


def test_the_migration_backfills_existing_leads(postgres, database_url):
    """Upgrade a database with leads and texts from 0015: every lead's stored first reply equals the log's."""
    from integration.migrate import upgrade

    url = database_url + "_reply_backfill"
    admin = create_engine(database_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = url.rsplit("/", 1)[1]
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(url, "0015_report_rollups")
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO companies (id, name, default_settings, created_at, updated_at) "
                                    "VALUES ('CoPlain', 'B', '{}', now(), now())"))
            connection.execute(text("INSERT INTO locations (id, company_id, name, timezone, status, created_at, "
                                    "updated_at) VALUES (:l, 'CoPlain', :l, 'America/Chicago', 'installed', now(), "
                                    "now())"), {"l": HERE})
            for n in range(40):
                at = NOW - timedelta(days=n * 9, hours=n)
                call_id = connection.scalar(text(
                    "INSERT INTO textback_missed_calls (call_key, location_id, contact_id, call_status, called_at, "
                    "duplicate_webhooks, status, created_at, updated_at) VALUES (:k, :l, :c, 'no-answer', :at, 0, "
                    "'sent', :at, :at) RETURNING id"), {"k": f"bf:{n}", "l": HERE, "c": f"c{n % 30}", "at": at})
                connection.execute(text(
                    "INSERT INTO crm_leads (missed_call_id, location_id, contact_id, called_at, texted_at, "
                    "created_at, updated_at) VALUES (:id, :l, :c, :at, :at, :at, :at)"),
                    {"id": call_id, "l": HERE, "c": f"c{n % 30}", "at": at})
                for minutes in (-3, 11 + n, 60 * 24 * 7 + n):
                    connection.execute(text(
                        "INSERT INTO textback_conversation_messages (location_id, contact_id, direction, author, "
                        "body, occurred_at, created_at) VALUES (:l, :c, 'outbound', :a, 'x', :at, now())"),
                        {"l": HERE, "c": f"c{n % 30}", "a": "person" if n % 4 else "textback",
                         "at": at + timedelta(minutes=minutes)})
        engine.dispose()
        upgrade(url, "0017_lead_first_human_reply")
        db.configure(url)
        with db.session() as session:
            assert sum(lead.first_human_reply_at is not None for lead in session.scalars(select(CrmLead))) >= 25
        assert_stored_equals_live()
    finally:
        db.configure(database_url)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
