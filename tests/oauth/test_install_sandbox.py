"""The whole consent dance against the sandbox over real HTTP, and every way the callback can fail."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select, text

from integration.models import Company, Installation, Location, LocationSettings
from integration.sandbox.seed import SEED_COMPANY_ID, SEED_LOCATION_IDS
from integration.textback.settings import effective_settings
from oauth.models import AgencyInstall, LocationProvisioning
from oauth.views import get_install_flow

LOCATION_ID = SEED_LOCATION_IDS[0]


def _reason(response) -> str:
    text_ = response.get_data(as_text=True)
    return text_.split("Reference: ", 1)[1].split("(", 1)[1].split(")", 1)[0]


def _count(oauth, model) -> int:
    with oauth.database.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


def _token_requests(sandbox, grant_type=None):
    found = sandbox.requests_log(path="^/oauth/token$")
    return [r for r in found if grant_type is None or r.get("grant_type") == grant_type]


# --- Sub-account install ---


def test_sub_account_install_stores_a_working_location_token(dance, oauth, sandbox):
    response = dance.install(location_id=LOCATION_ID)

    assert response.status_code == 302
    assert response.headers["Location"] == f"/app?installed={LOCATION_ID}"
    with oauth.database.transaction() as session:
        row = oauth.store.find(session, LOCATION_ID)
        assert (row.user_type, row.status) == ("Location", "active")
        assert row.refresh_token_encrypted is not None
        location = session.get(Location, LOCATION_ID)
        assert location.status == "installed" and location.company_id == SEED_COMPANY_ID
        assert session.get(LocationSettings, LOCATION_ID) is not None
    assert oauth.client.get_location(LOCATION_ID)["id"] == LOCATION_ID


def test_install_started_from_the_marketplace_without_our_state_is_accepted(dance, oauth, sandbox, oauth_app):
    callback_url = sandbox.consent(LOCATION_ID, state=None)
    assert "state=" not in callback_url
    fresh_browser = oauth_app.test_client()
    response = dance.callback(callback_url, client=fresh_browser)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/app?installed={LOCATION_ID}"
    # The callback does not sign anyone in: only the SSO exchange creates an app session.
    with fresh_browser.session_transaction() as session:
        assert "sso" not in session
    assert oauth.client.get_location(LOCATION_ID)["id"] == LOCATION_ID


# --- Agency install ---


def test_agency_bulk_install_gives_every_sub_account_a_working_token(dance, oauth, sandbox):
    with oauth.database.transaction() as session:
        session.add(Company(id=SEED_COMPANY_ID, default_settings={"daily_cap": 50, "sender_name": "Agency"}))

    response = dance.install(company_id=SEED_COMPANY_ID)

    assert response.status_code == 302
    assert response.headers["Location"] == f"/app?installed={SEED_COMPANY_ID}"
    assert len(SEED_LOCATION_IDS) >= 3
    with oauth.database.transaction() as session:
        company_row = oauth.store.find(session, SEED_COMPANY_ID)
        assert (company_row.user_type, company_row.status, company_row.is_bulk_installation) == (
            "Company", "active", True)
        assert session.get(AgencyInstall, SEED_COMPANY_ID).status == "installed"
        for location_id in SEED_LOCATION_IDS:
            row = oauth.store.find(session, location_id)
            assert (row.user_type, row.status) == ("Location", "active")
            own = session.get(LocationSettings, location_id)
            settings = effective_settings(company_defaults=session.get(Location, location_id).company.default_settings,
                                          location_values=own.values)
            assert (settings.daily_cap, settings.sender_name) == (50, "Agency")
            assert session.get(LocationProvisioning, location_id).status == "provisioned"
            assert session.get(Location, location_id).name  # named from installedLocations
    for location_id in SEED_LOCATION_IDS:
        assert oauth.client.get_location(location_id)["id"] == location_id
    mints = sandbox.requests_log(path="^/oauth/locationToken$")
    assert len(mints) == len(SEED_LOCATION_IDS) and all(r["status"] in (200, 201) for r in mints)


def test_a_sub_account_whose_token_cannot_be_minted_is_recorded_and_retried(dance, oauth, sandbox):
    oauth.client.max_retries = 0  # one failed answer is one failed mint, whatever the client's retry policy
    sandbox.fault("500", "^/oauth/locationToken$", times=1)

    response = dance.install(company_id=SEED_COMPANY_ID)

    assert response.status_code == 302  # the agency is installed; one sub-account waits for a retry
    with oauth.database.transaction() as session:
        records = {r.location_id: r for r in session.scalars(select(LocationProvisioning))}
    failed = [r for r in records.values() if r.status == "failed"]
    assert len(failed) == 1
    assert "500" in failed[0].reason and failed[0].next_attempt_at is not None
    assert sum(r.status == "provisioned" for r in records.values()) == len(SEED_LOCATION_IDS) - 1

    # Not due yet: nothing happens. Once the backoff has passed, the retry mints it.
    assert oauth.provisioner.retry_due().provisioned == []
    with oauth.database.transaction() as session:
        session.get(LocationProvisioning, failed[0].location_id).next_attempt_at = failed[0].last_attempt_at
    assert oauth.provisioner.retry_due().provisioned == [failed[0].location_id]
    assert oauth.client.get_location(failed[0].location_id)["id"] == failed[0].location_id


# --- Failures ---


def test_a_code_used_twice_fails_cleanly_and_the_first_install_stays(dance, oauth, sandbox, oauth_app):
    callback_url = sandbox.consent(LOCATION_ID, state=None)
    assert dance.callback(callback_url).status_code == 302

    replay = dance.callback(callback_url, client=oauth_app.test_client())

    assert replay.status_code == 400
    assert _reason(replay) == "invalid_code"
    assert "HighLevel did not accept this authorization" in replay.get_data(as_text=True)
    assert oauth.client.get_location(LOCATION_ID)["id"] == LOCATION_ID


def test_a_made_up_code_is_refused(dance, oauth):
    response = dance.browser.get("/oauth/callback?code=0123456789abcdef0123456789abcdef01234567")
    assert response.status_code == 400
    assert _reason(response) == "invalid_code"
    assert _count(oauth, Installation) == 0


@pytest.mark.parametrize("mode", ["500", "html_error", "empty_body"])
def test_highlevel_failing_during_the_exchange_stores_nothing(dance, oauth, sandbox, mode):
    callback_url = dance.approve(location_id=LOCATION_ID)
    sandbox.fault(mode, "^/oauth/token$", times=1)

    response = dance.callback(callback_url)

    assert response.status_code == 502
    assert _reason(response) in {"provider_unavailable"}
    assert "HighLevel is not answering right now" in response.get_data(as_text=True)
    assert (_count(oauth, Installation), _count(oauth, Location), _count(oauth, Company)) == (0, 0, 0)


def test_highlevel_timing_out_on_the_token_endpoint_stores_nothing(dance, oauth, sandbox, oauth_app):
    get_install_flow().client.timeout = 0.5
    callback_url = dance.approve(location_id=LOCATION_ID)
    sandbox.fault("slow", "^/oauth/token$", times=1, delay=2.0)

    response = dance.callback(callback_url)

    assert response.status_code == 502
    assert _reason(response) == "provider_unavailable"
    assert _count(oauth, Installation) == 0


def test_the_answer_arriving_after_the_timeout_is_not_half_stored(dance, oauth, sandbox):
    get_install_flow().client.timeout = 0.5
    callback_url = dance.approve(location_id=LOCATION_ID)
    sandbox.fault("timeout_after_accept", "^/oauth/token$", times=1, delay=2.0)

    response = dance.callback(callback_url)

    assert _reason(response) == "provider_unavailable"
    assert _count(oauth, Installation) == 0
    # Starting again works (a new consent, a new code).
    assert dance.install(location_id=LOCATION_ID).status_code == 302


@pytest.fixture
def refusing_installations_table(oauth):
    """A database that refuses to store installations (a real trigger, not a mock)."""
    engine = oauth.database.engine
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgres:
            conn.execute(text("CREATE OR REPLACE FUNCTION refuse_installations() RETURNS trigger AS $$ "
                              "BEGIN RAISE EXCEPTION 'disk full (test)'; END $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER refuse_installations BEFORE INSERT ON installations "
                              "FOR EACH ROW EXECUTE FUNCTION refuse_installations()"))
        else:
            conn.execute(text("CREATE TRIGGER refuse_installations BEFORE INSERT ON installations "
                              "BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END"))
    yield
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER IF EXISTS refuse_installations" + (" ON installations" if postgres else "")))
        if postgres:
            conn.execute(text("DROP FUNCTION IF EXISTS refuse_installations()"))


def test_a_storage_failure_gets_a_friendly_page_and_nothing_half_stored(dance, oauth, refusing_installations_table):
    response = dance.install(location_id=LOCATION_ID)

    assert response.status_code == 500
    assert _reason(response) == "storage_error"
    assert "We could not save your installation" in response.get_data(as_text=True)
    assert (_count(oauth, Installation), _count(oauth, Location), _count(oauth, Company)) == (0, 0, 0)


def test_cancelling_on_the_consent_page(dance):
    callback_url = dance.approve(location_id=LOCATION_ID, action="cancel")
    assert parse_qs(urlsplit(callback_url).query)["error"] == ["access_denied"]
    response = dance.callback(callback_url)
    assert response.status_code == 200
    assert _reason(response) == "cancelled"
