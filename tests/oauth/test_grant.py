"""TokenGrant: HighLevel's token answers checked before anything is stored."""

from __future__ import annotations

from datetime import timedelta

import pytest

from integration.db import utcnow
from oauth.installation import COMPANY, LOCATION, MalformedTokenResponse, TokenGrant

LOCATION_ANSWER = {
    "access_token": "eyJ.access", "token_type": "Bearer", "expires_in": 86399, "refresh_token": "eyJ.refresh",
    "scope": "contacts.readonly", "userType": "Location", "companyId": "GNb7aIv4rQFVb9iwNl5K",
    "locationId": "HjiMUOsCCHCjtxzEf8PR", "isBulkInstallation": False, "userId": "57n5nmVqHA1ghBM8UKhU",
}
COMPANY_ANSWER = {
    "access_token": "eyJ.access", "token_type": "Bearer", "expires_in": 86399, "refresh_token": "eyJ.refresh",
    "userType": "Company", "companyId": "GNb7aIv4rQFVb9iwNl5K", "isBulkInstallation": True,
    "userId": "Rg6BRRiHh7dS9gJy3W8a", "installToFutureLocations": True,
}


def test_location_answer():
    now = utcnow()
    grant = TokenGrant.from_response(LOCATION_ANSWER, now=now)
    assert grant.user_type == LOCATION and grant.resource_id == "HjiMUOsCCHCjtxzEf8PR"
    assert grant.expires_at == now + timedelta(seconds=86399)
    assert "eyJ" not in repr(grant)


def test_company_answer():
    grant = TokenGrant.from_response(COMPANY_ANSWER, now=utcnow())
    assert grant.user_type == COMPANY and grant.resource_id == "GNb7aIv4rQFVb9iwNl5K"
    assert grant.is_bulk_installation and grant.install_to_future_locations and grant.location_id is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"access_token": None}, "access_token"),
        ({"access_token": ""}, "access_token"),
        ({"userType": "Agency"}, "userType"),
        ({"locationId": None}, "locationId"),
        ({"expires_in": -5}, "expires_in"),
        ({"expires_in": "soon"}, "expires_in"),
        ({"refresh_token": 12}, "refresh_token"),
        ({"companyId": {"$ne": 1}}, "companyId"),
    ],
)
def test_malformed_answers_name_the_field_never_the_value(change, expected):
    answer = {**LOCATION_ANSWER, **change}
    with pytest.raises(MalformedTokenResponse) as caught:
        TokenGrant.from_response(answer, now=utcnow())
    assert expected in str(caught.value)
    assert "eyJ" not in str(caught.value)


def test_expected_user_type_fills_a_missing_user_type_and_rejects_a_different_one():
    minted = {k: v for k, v in LOCATION_ANSWER.items() if k != "userType"}
    assert TokenGrant.from_response(minted, now=utcnow(), expected_user_type=LOCATION).user_type == LOCATION
    with pytest.raises(MalformedTokenResponse):
        TokenGrant.from_response(COMPANY_ANSWER, now=utcnow(), expected_user_type=LOCATION)


def test_a_huge_expires_in_is_capped():
    now = utcnow()
    grant = TokenGrant.from_response({**LOCATION_ANSWER, "expires_in": 10**9}, now=now)
    assert grant.expires_at - now <= timedelta(days=7)
