"""The installation store: grants to rows, uninstall keeps history, and the is_location_active rule."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from integration.db import utcnow
from integration.models import Company, Installation, Location, LocationSettings, WebhookEvent
from integration.textback.settings import effective_settings
from oauth.installation import TokenGrant
from oauth.store import is_location_active

COMPANY_ID = "GNb7aIv4rQFVb9iwNl5K"
LOCATION_ID = "HjiMUOsCCHCjtxzEf8PR"


def _location_grant(location_id=LOCATION_ID, access="eyJ.location-access", refresh="eyJ.location-refresh"):
    return TokenGrant.from_response({
        "access_token": access, "refresh_token": refresh, "expires_in": 86399, "userType": "Location",
        "companyId": COMPANY_ID, "locationId": location_id, "userId": "u1",
    }, now=utcnow())


def _company_grant():
    return TokenGrant.from_response({
        "access_token": "eyJ.company-access", "refresh_token": "eyJ.company-refresh", "expires_in": 86399,
        "userType": "Company", "companyId": COMPANY_ID, "isBulkInstallation": True,
    }, now=utcnow())


def _inbox_uninstall(database, *, location_id=None, company_id=None, key="u1", received_at=None):
    with database.transaction() as session:
        session.add(WebhookEvent(dedupe_key=key, event_type="UNINSTALL", location_id=location_id,
                                 company_id=company_id, payload={"type": "UNINSTALL"}, status="pending",
                                 received_at=received_at or utcnow()))


def test_location_grant_creates_company_location_settings_and_encrypted_tokens(database, store, cipher):
    with database.transaction() as session:
        company = Company(id=COMPANY_ID, default_settings={"daily_cap": 50})
        session.add(company)
    with database.transaction() as session:
        store.save_location_grant(session, _location_grant(), minted_from_company=False, location_name="Acme")
    with database.transaction() as session:
        row = session.scalar(select(Installation).where(Installation.resource_id == LOCATION_ID))
        assert row.status == "active" and row.user_type == "Location"
        assert "eyJ" not in row.access_token_encrypted
        assert cipher.decrypt(row.access_token_encrypted) == "eyJ.location-access"
        assert cipher.decrypt(row.refresh_token_encrypted) == "eyJ.location-refresh"
        assert session.get(Location, LOCATION_ID).name == "Acme"
        own = session.get(LocationSettings, LOCATION_ID)
        assert own.values == {} and own.enabled  # no overrides of its own: the agency's defaults apply
        assert effective_settings(company_defaults=session.get(Company, COMPANY_ID).default_settings,
                                  location_values=own.values).daily_cap == 50
        assert is_location_active(session, LOCATION_ID)


def test_minted_location_tokens_keep_no_refresh_token(database, store):
    with database.transaction() as session:
        store.save_location_grant(session, _location_grant(), minted_from_company=True)
    with database.transaction() as session:
        row = store.find(session, LOCATION_ID)
        assert row.refresh_token_encrypted is None and row.access_token_encrypted


def test_uninstall_deletes_tokens_keeps_settings_and_a_reinstall_resumes(database, store):
    with database.transaction() as session:
        store.save_location_grant(session, _location_grant(), minted_from_company=False)
    with database.transaction() as session:
        session.get(LocationSettings, LOCATION_ID).values = {"daily_cap": 7}
    with database.transaction() as session:
        assert store.uninstall_location(session, LOCATION_ID) is True
    with database.transaction() as session:
        assert store.uninstall_location(session, LOCATION_ID) is False  # twice: no change
        row = store.find(session, LOCATION_ID)
        assert row.access_token_encrypted is None and row.refresh_token_encrypted is None
        assert row.status == "uninstalled"
        assert session.get(Location, LOCATION_ID).status == "uninstalled"
        assert not is_location_active(session, LOCATION_ID)
    with database.transaction() as session:
        store.save_location_grant(session, _location_grant(access="eyJ.second"), minted_from_company=False)
    with database.transaction() as session:
        assert session.get(LocationSettings, LOCATION_ID).values == {"daily_cap": 7}
        assert is_location_active(session, LOCATION_ID)


def test_company_uninstall_stops_every_location_of_the_agency(database, store):
    with database.transaction() as session:
        store.save_company_grant(session, _company_grant())
        for location_id in ("loc-a", "loc-b", "loc-c"):
            store.save_location_grant(session, _location_grant(location_id), minted_from_company=True)
    with database.transaction() as session:
        stopped = store.uninstall_company(session, COMPANY_ID)
    assert stopped == ["loc-a", "loc-b", "loc-c"]
    with database.transaction() as session:
        assert not any(is_location_active(session, lid) for lid in ("loc-a", "loc-b", "loc-c"))
        tokens = session.execute(select(Installation.access_token_encrypted, Installation.refresh_token_encrypted))
        assert all(a is None and r is None for a, r in tokens)
    with database.transaction() as session:
        assert store.uninstall_company(session, COMPANY_ID) == []


def test_an_unprocessed_uninstall_in_the_inbox_stops_the_location_at_once(database, store):
    with database.transaction() as session:
        store.save_location_grant(session, _location_grant(), minted_from_company=False)
        store.save_location_grant(session, _location_grant("other-loc"), minted_from_company=False)
    _inbox_uninstall(database, location_id=LOCATION_ID)
    with database.transaction() as session:
        assert not is_location_active(session, LOCATION_ID)
        assert is_location_active(session, "other-loc")


def test_an_agency_uninstall_in_the_inbox_stops_all_its_locations(database, store):
    with database.transaction() as session:
        store.save_location_grant(session, _location_grant(), minted_from_company=True)
    _inbox_uninstall(database, company_id=COMPANY_ID)
    with database.transaction() as session:
        assert not is_location_active(session, LOCATION_ID)


def test_an_uninstall_from_before_the_latest_install_does_not_block(database, store):
    _inbox_uninstall(database, location_id=LOCATION_ID, received_at=utcnow() - timedelta(minutes=5))
    with database.transaction() as session:
        store.save_location_grant(session, _location_grant(), minted_from_company=False)
    with database.transaction() as session:
        assert is_location_active(session, LOCATION_ID)


def test_unknown_and_needs_reconnect_locations_are_not_active(database, store):
    with database.transaction() as session:
        assert not is_location_active(session, "never-installed")
        store.save_location_grant(session, _location_grant(), minted_from_company=False)
    with database.transaction() as session:
        store.mark_needs_reconnect(session, store.find(session, LOCATION_ID), "refresh rejected")
    with database.transaction() as session:
        assert not is_location_active(session, LOCATION_ID)
        assert store.find(session, LOCATION_ID).status_reason == "refresh rejected"
