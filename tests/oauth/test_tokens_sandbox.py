"""Token refresh against the sandbox's single-use refresh tokens: lazy, forced by a 401, rejected,
HighLevel down, the answer lost, re-minting from the agency token, and the idle-refresh job."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from integration.db import utcnow
from integration.models import Installation
from integration.sandbox.seed import SEED_COMPANY_ID, SEED_LOCATION_IDS
from oauth.errors import NeedsReconnect, TokenRefreshUnavailable, TokenRejected
from oauth.jobs import refresh_idle_installations
from oauth.store import is_location_active

LOCATION_ID = SEED_LOCATION_IDS[0]


def _refreshes(sandbox) -> list[dict]:
    return [r for r in sandbox.requests_log(path="^/oauth/token$") if r.get("grant_type") == "refresh_token"]


def _mints(sandbox) -> list[dict]:
    return sandbox.requests_log(path="^/oauth/locationToken$")


def _stored(oauth, resource_id) -> tuple[str, str | None, Installation]:
    with oauth.database.transaction() as session:
        row = oauth.store.find(session, resource_id)
        return oauth.store.access_token_of(row), oauth.store.refresh_token_of(row), row


def _set(oauth, resource_id, **values) -> None:
    with oauth.database.transaction() as session:
        row = oauth.store.find(session, resource_id)
        for name, value in values.items():
            setattr(row, name, value)


@pytest.fixture
def installed(dance, oauth, watched_tokens):
    """A sub-account installed through the consent dance; its first tokens are watched for leaks."""
    assert dance.install(location_id=LOCATION_ID).status_code == 302
    access, refresh, _ = _stored(oauth, LOCATION_ID)
    watched_tokens.update({access, refresh})
    return access, refresh


@pytest.fixture
def agency(dance, oauth, watched_tokens):
    assert dance.install(company_id=SEED_COMPANY_ID).status_code == 302
    for resource_id in (SEED_COMPANY_ID, *SEED_LOCATION_IDS):
        access, refresh, _ = _stored(oauth, resource_id)
        watched_tokens.update(t for t in (access, refresh) if t)


def test_a_fresh_token_is_used_as_is(installed, oauth, sandbox):
    assert oauth.tokens.access_token(LOCATION_ID) == installed[0]
    assert oauth.tokens.access_token(LOCATION_ID) == installed[0]
    assert _refreshes(sandbox) == []


def test_a_token_about_to_expire_is_refreshed_once_and_stored_before_use(installed, oauth, sandbox, watched_tokens):
    old_access, old_refresh = installed
    _set(oauth, LOCATION_ID, expires_at=utcnow() + timedelta(minutes=2))

    token = oauth.tokens.access_token(LOCATION_ID)

    new_access, new_refresh, row = _stored(oauth, LOCATION_ID)
    watched_tokens.update({new_access, new_refresh})
    assert token == new_access != old_access
    assert new_refresh != old_refresh
    assert row.expires_at > utcnow() + timedelta(hours=23)
    assert len(_refreshes(sandbox)) == 1
    assert oauth.tokens.access_token(LOCATION_ID) == token  # now fresh: no second refresh
    assert len(_refreshes(sandbox)) == 1
    assert sandbox.refresh(old_refresh).status_code == 401  # single-use: the old one is dead
    assert oauth.client.get_location(LOCATION_ID)["id"] == LOCATION_ID


def test_a_401_forces_exactly_one_refresh(installed, oauth, sandbox, watched_tokens):
    sandbox.control("POST", "tokens/expire", json={"resourceId": LOCATION_ID})

    assert oauth.client.get_location(LOCATION_ID)["id"] == LOCATION_ID

    assert len(_refreshes(sandbox)) == 1
    watched_tokens.update(_stored(oauth, LOCATION_ID)[:2])


def test_a_token_rejected_right_after_its_refresh_is_not_refreshed_again(installed, oauth, sandbox, watched_tokens):
    sandbox.control("POST", "tokens/expire", json={"resourceId": LOCATION_ID})
    oauth.client.get_location(LOCATION_ID)
    watched_tokens.update(_stored(oauth, LOCATION_ID)[:2])
    sandbox.control("POST", "tokens/expire", json={"resourceId": LOCATION_ID})  # rejected again at once

    with pytest.raises(TokenRejected):
        oauth.client.get_location(LOCATION_ID)
    assert len(_refreshes(sandbox)) == 1  # not one refresh per API call


def test_a_refresh_highlevel_rejects_marks_needs_reconnect_and_is_not_retried(installed, oauth, sandbox,
                                                                                 watched_tokens):
    # Someone else spends our refresh token (a leaked copy, a second deployment...).
    stolen = sandbox.refresh(installed[1])
    assert stolen.status_code == 200
    watched_tokens.update({stolen.json()["access_token"], stolen.json()["refresh_token"]})
    _set(oauth, LOCATION_ID, expires_at=utcnow() - timedelta(minutes=1))

    with pytest.raises(NeedsReconnect) as caught:
        oauth.tokens.access_token(LOCATION_ID)

    assert "reinstall" in str(caught.value)
    _, _, row = _stored(oauth, LOCATION_ID)
    assert row.status == "needs_reconnect" and "rejected" in row.status_reason
    with oauth.database.transaction() as session:
        assert not is_location_active(session, LOCATION_ID)
    attempts = len(_refreshes(sandbox))
    with pytest.raises(NeedsReconnect):
        oauth.tokens.access_token(LOCATION_ID)
    with pytest.raises(NeedsReconnect):
        oauth.client.get_location(LOCATION_ID)
    assert len(_refreshes(sandbox)) == attempts  # no retry loop against the token endpoint
    assert installed[1] not in str(caught.value)


def test_highlevel_down_during_a_refresh_is_retryable_and_loses_nothing(installed, oauth, sandbox, watched_tokens):
    _set(oauth, LOCATION_ID, expires_at=utcnow() - timedelta(minutes=1))
    sandbox.fault("500", "^/oauth/token$", times=1)

    with pytest.raises(TokenRefreshUnavailable) as caught:
        oauth.tokens.access_token(LOCATION_ID)

    assert caught.value.retryable
    access, refresh, row = _stored(oauth, LOCATION_ID)
    assert (access, refresh, row.status) == (*installed, "active")
    token = oauth.tokens.access_token(LOCATION_ID)  # HighLevel is back
    watched_tokens.update(_stored(oauth, LOCATION_ID)[:2])
    assert token != installed[0]
    assert oauth.client.get_location(LOCATION_ID)["id"] == LOCATION_ID


def test_a_refresh_answer_lost_after_rotation_ends_in_needs_reconnect_within_two_attempts(installed, oauth, sandbox):
    oauth.client.timeout = 0.5
    _set(oauth, LOCATION_ID, expires_at=utcnow() - timedelta(minutes=1))
    sandbox.fault("timeout_after_accept", "^/oauth/token$", times=1, delay=1.5)

    with pytest.raises(TokenRefreshUnavailable):
        oauth.tokens.access_token(LOCATION_ID)
    with pytest.raises(NeedsReconnect):
        oauth.tokens.access_token(LOCATION_ID)

    assert len(_refreshes(sandbox)) == 2
    assert _stored(oauth, LOCATION_ID)[2].status == "needs_reconnect"


def test_an_expired_minted_location_token_is_re_minted_from_the_agency_token(agency, oauth, sandbox, watched_tokens):
    location_id = SEED_LOCATION_IDS[1]
    mints_before = len(_mints(sandbox))
    _set(oauth, location_id, expires_at=utcnow() - timedelta(minutes=1))

    token = oauth.tokens.access_token(location_id)

    watched_tokens.add(token)
    assert len(_mints(sandbox)) == mints_before + 1
    assert _refreshes(sandbox) == []  # minted tokens are renewed from the company token, not refreshed
    assert _stored(oauth, location_id)[1] is None
    assert oauth.client.get_location(location_id)["id"] == location_id


def test_a_revoked_agency_token_leaves_its_sub_accounts_needing_reconnect(agency, oauth, sandbox, watched_tokens):
    _, company_refresh, _ = _stored(oauth, SEED_COMPANY_ID)
    stolen = sandbox.refresh(company_refresh, user_type="Company")
    assert stolen.status_code == 200
    watched_tokens.update({stolen.json()["access_token"], stolen.json()["refresh_token"]})
    _set(oauth, SEED_COMPANY_ID, expires_at=utcnow() - timedelta(minutes=1))
    location_id = SEED_LOCATION_IDS[2]
    _set(oauth, location_id, expires_at=utcnow() - timedelta(minutes=1))

    with pytest.raises(NeedsReconnect):
        oauth.tokens.access_token(location_id)

    assert _stored(oauth, SEED_COMPANY_ID)[2].status == "needs_reconnect"
    row = _stored(oauth, location_id)[2]
    assert row.status == "needs_reconnect" and "agency" in row.status_reason


def test_the_idle_refresh_job_refreshes_long_unused_installations_only(installed, oauth, sandbox, watched_tokens):
    _set(oauth, LOCATION_ID, last_refreshed_at=utcnow() - timedelta(days=40))

    assert refresh_idle_installations() == {"refreshed": 1, "skipped": 0, "failed": 0}
    watched_tokens.update(_stored(oauth, LOCATION_ID)[:2])
    assert refresh_idle_installations() == {"refreshed": 0, "skipped": 0, "failed": 0}
    assert len(_refreshes(sandbox)) == 1
    assert oauth.client.get_location(LOCATION_ID)["id"] == LOCATION_ID


def test_a_token_that_no_longer_decrypts_marks_only_that_installation(agency, oauth):
    location_id = SEED_LOCATION_IDS[0]
    with oauth.database.transaction() as session:
        row = session.scalar(select(Installation).where(Installation.resource_id == location_id))
        row.access_token_encrypted = "gAAAAA-corrupted-ciphertext"
    with pytest.raises(NeedsReconnect):
        oauth.tokens.access_token(location_id)
    assert _stored(oauth, SEED_LOCATION_IDS[1])[2].status == "active"
    assert oauth.client.get_location(SEED_LOCATION_IDS[1])["id"] == SEED_LOCATION_IDS[1]


def test_a_worker_reuses_a_token_it_just_read_and_a_401_drops_it(installed, oauth, sandbox, monkeypatch):
    """reuse_seconds (the workers use 2 s): no database read for a token handed out moments ago."""
    monkeypatch.setattr(oauth.tokens, "reuse_seconds", 60.0)
    monkeypatch.setattr(oauth.tokens, "_recent", {})
    first = oauth.tokens.access_token(LOCATION_ID)
    reads = []
    original = oauth.tokens._read
    monkeypatch.setattr(oauth.tokens, "_read", lambda resource_id: reads.append(resource_id) or original(resource_id))
    assert oauth.tokens.access_token(LOCATION_ID) == first and reads == []
    # HighLevel says no to it: the reused token is forgotten and the refresh reads the row again.
    renewed = oauth.tokens.refresh_after_unauthorized(LOCATION_ID, first)
    assert renewed != first and reads
    assert oauth.tokens.access_token(LOCATION_ID) != first


def test_without_reuse_every_token_is_read_from_the_database(installed, oauth, monkeypatch):
    reads = []
    original = oauth.tokens._read
    monkeypatch.setattr(oauth.tokens, "_read", lambda resource_id: reads.append(resource_id) or original(resource_id))
    oauth.tokens.access_token(LOCATION_ID)
    oauth.tokens.access_token(LOCATION_ID)
    assert reads == [LOCATION_ID, LOCATION_ID]
