"""INSTALL and UNINSTALL handlers, called directly as the worker calls them, against the sandbox."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from integration.db import utcnow
from integration.models import Company, Installation, Location, LocationSettings, WebhookEvent
from integration.sandbox.seed import SEED_COMPANY_ID, SEED_LOCATION_IDS
from oauth.errors import InstallationInactive
from oauth.events import handle_install, handle_uninstall
from oauth.models import AgencyInstall, LocationProvisioning
from oauth.store import is_location_active
from workers.errors import EventIgnored

LOCATION_ID = SEED_LOCATION_IDS[0]


@pytest.fixture
def app_id(oauth_app, settings):
    return settings.ghl_app_id


@pytest.fixture
def agency(dance):
    assert dance.install(company_id=SEED_COMPANY_ID).status_code == 302


def _mints(sandbox) -> int:
    return len(sandbox.requests_log(path="^/oauth/locationToken$"))


def _calls_for(sandbox, resource_id) -> int:
    return len(sandbox.requests_log(resource=resource_id))


def _count(oauth, model) -> int:
    with oauth.database.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


# --- INSTALL ---


def test_install_for_an_unknown_company_does_nothing_and_calls_nobody(oauth, sandbox, app_id):
    payload = {"type": "INSTALL", "appId": app_id, "installType": "Location", "locationId": LOCATION_ID,
               "companyId": "UnknownCompany000001", "webhookId": "w1"}
    note = handle_install(payload, event_id=1)
    assert "waiting for the OAuth callback" in note
    company_note = handle_install({"type": "INSTALL", "appId": app_id, "installType": "Company",
                                   "companyId": "UnknownCompany000001"}, event_id=2)
    assert "waiting for the OAuth callback" in company_note
    assert (_count(oauth, Installation), _count(oauth, Location), _count(oauth, Company)) == (0, 0, 0)
    assert sandbox.requests_log(path="^/oauth/") == []


def test_install_for_a_future_location_of_a_held_agency_provisions_it_once(agency, oauth, sandbox, app_id):
    location_id = SEED_LOCATION_IDS[2]
    handle_uninstall({"type": "UNINSTALL", "appId": app_id, "locationId": location_id}, event_id=1)
    with oauth.database.transaction() as session:
        session.get(LocationSettings, location_id).values = {"daily_cap": 9}
    mints = _mints(sandbox)
    payload = {"type": "INSTALL", "appId": app_id, "installType": "Location", "locationId": location_id,
               "companyId": SEED_COMPANY_ID, "webhookId": "w2"}

    note = handle_install(payload, event_id=2)
    again = handle_install(payload, event_id=3)  # HighLevel or the inbox delivering it twice

    assert "provisioned" in note and "already" in again
    assert _mints(sandbox) == mints + 1
    with oauth.database.transaction() as session:
        assert is_location_active(session, location_id)
        assert session.get(LocationSettings, location_id).values == {"daily_cap": 9}
    assert oauth.client.get_location(location_id)["id"] == location_id


def test_install_for_a_held_company_provisions_only_what_is_missing(agency, oauth, sandbox, app_id):
    mints = _mints(sandbox)
    note = handle_install({"type": "INSTALL", "appId": app_id, "installType": "Company",
                           "companyId": SEED_COMPANY_ID}, event_id=1)
    assert f"0 provisioned, {len(SEED_LOCATION_IDS)} already" in note
    assert _mints(sandbox) == mints


def test_events_for_another_app_are_ignored(oauth, app_id):
    with pytest.raises(EventIgnored):
        handle_install({"type": "INSTALL", "appId": "0" * 24, "companyId": SEED_COMPANY_ID}, event_id=1)
    with pytest.raises(EventIgnored):
        handle_uninstall({"type": "UNINSTALL", "appId": "0" * 24, "locationId": LOCATION_ID}, event_id=2)
    with pytest.raises(EventIgnored):
        handle_uninstall({"type": "UNINSTALL", "appId": app_id}, event_id=3)


# --- UNINSTALL ---


def test_uninstall_twice_stops_the_location_and_keeps_its_settings(dance, oauth, sandbox, app_id):
    assert dance.install(location_id=LOCATION_ID).status_code == 302
    with oauth.database.transaction() as session:
        session.get(LocationSettings, LOCATION_ID).values = {"daily_cap": 7}
    payload = {"type": "UNINSTALL", "appId": app_id, "locationId": LOCATION_ID}

    first = handle_uninstall(payload, event_id=1)
    second = handle_uninstall(payload, event_id=2)

    assert first == f"location {LOCATION_ID} uninstalled"
    assert second == f"location {LOCATION_ID} was already uninstalled"
    calls = _calls_for(sandbox, LOCATION_ID)
    with pytest.raises(InstallationInactive):
        oauth.client.get_location(LOCATION_ID)
    assert _calls_for(sandbox, LOCATION_ID) == calls  # the refusal happened before any HTTP
    with oauth.database.transaction() as session:
        row = oauth.store.find(session, LOCATION_ID)
        assert (row.access_token_encrypted, row.refresh_token_encrypted, row.status) == (None, None, "uninstalled")
        assert session.get(LocationSettings, LOCATION_ID).values == {"daily_cap": 7}
        assert not is_location_active(session, LOCATION_ID)

    # A reinstall picks up where it left off.
    assert dance.install(location_id=LOCATION_ID).status_code == 302
    with oauth.database.transaction() as session:
        assert is_location_active(session, LOCATION_ID)
        assert session.get(LocationSettings, LOCATION_ID).values == {"daily_cap": 7}


def test_an_acknowledged_but_unprocessed_uninstall_already_stops_every_call(dance, oauth, sandbox, app_id):
    assert dance.install(location_id=LOCATION_ID).status_code == 302
    # What the receiver stores before answering 200; the worker has not run the handler yet.
    with oauth.database.transaction() as session:
        session.add(WebhookEvent(dedupe_key="uninstall-1", event_type="UNINSTALL", location_id=LOCATION_ID,
                                 payload={"type": "UNINSTALL", "appId": app_id, "locationId": LOCATION_ID},
                                 status="pending", received_at=utcnow()))
    calls = _calls_for(sandbox, LOCATION_ID)

    with pytest.raises(InstallationInactive):
        oauth.client.get_location(LOCATION_ID)
    with oauth.database.transaction() as session:
        assert not is_location_active(session, LOCATION_ID)
    assert _calls_for(sandbox, LOCATION_ID) == calls


def test_company_uninstall_stops_the_agency_and_every_sub_account(agency, oauth, sandbox, app_id):
    note = handle_uninstall({"type": "UNINSTALL", "appId": app_id, "companyId": SEED_COMPANY_ID}, event_id=1)
    assert note == f"company {SEED_COMPANY_ID} uninstalled; {len(SEED_LOCATION_IDS)} sub-account(s) stopped"
    again = handle_uninstall({"type": "UNINSTALL", "appId": app_id, "companyId": SEED_COMPANY_ID}, event_id=2)
    assert again.endswith("0 sub-account(s) stopped")

    calls = len(sandbox.requests_log())
    for resource_id in (SEED_COMPANY_ID, *SEED_LOCATION_IDS):
        with pytest.raises(InstallationInactive):
            oauth.tokens.access_token(resource_id)
    assert len(sandbox.requests_log()) == calls
    with oauth.database.transaction() as session:
        assert session.get(AgencyInstall, SEED_COMPANY_ID).status == "uninstalled"
        assert all(r.status == "uninstalled" for r in session.scalars(select(LocationProvisioning)))
        assert all(not is_location_active(session, lid) for lid in SEED_LOCATION_IDS)
        assert session.scalar(select(func.count()).select_from(LocationSettings)) == len(SEED_LOCATION_IDS)
    # Nothing is re-minted for an uninstalled agency by the retry job either.
    assert oauth.provisioner.retry_due().provisioned == []
