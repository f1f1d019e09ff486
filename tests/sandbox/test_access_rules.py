"""The checks every resource call goes through: Version header, token, token class, scope, location."""

from __future__ import annotations

import pytest

from integration.sandbox.seed import SEED_COMPANY_ID, SEED_CONTACT_IDS, SEED_LOCATION_IDS

ACME, PEAK = SEED_LOCATION_IDS[0], SEED_LOCATION_IDS[1]
DANA = SEED_CONTACT_IDS[ACME][0]
AUTH_CLASS = ("This authClass type is not allowed to access this scope. "
              "Please verify your IAM configuration if this is not the case.")


@pytest.fixture
def acme_token(sandbox) -> str:
    return sandbox.tokens(ACME)["access_token"]


def test_missing_version_header_is_401(sandbox, acme_token):
    answer = sandbox.api("GET", f"/contacts/{DANA}", acme_token, version=None)

    assert answer.status_code == 401
    assert answer.json() == {"statusCode": 401, "message": "version header was not found."}


def test_bogus_version_is_400(sandbox, acme_token):
    answer = sandbox.api("GET", f"/contacts/{DANA}", acme_token, version="bogus-version")

    assert answer.status_code == 400
    assert answer.json()["message"] == "Invalid API version segment 'bogus-version' at position 0"


@pytest.mark.parametrize("version", ["2021-07-28", "2023-02-21", "v3"])
def test_known_version_shapes_are_accepted(sandbox, acme_token, version):
    assert sandbox.api("GET", f"/contacts/{DANA}", acme_token, version=version).status_code == 200


@pytest.mark.parametrize("token", [None, "garbage", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"])
def test_missing_or_unknown_token_is_invalid_jwt(sandbox, token):
    answer = sandbox.api("GET", f"/contacts/{DANA}", token)

    assert answer.status_code == 401
    assert answer.json() == {"statusCode": 401, "message": "Invalid JWT"}


def test_expired_token_is_invalid_jwt_until_refreshed(sandbox):
    tokens = sandbox.tokens(ACME)
    assert sandbox.control("POST", "tokens/expire", json={"resourceId": ACME})["expired"] == 1

    expired = sandbox.api("GET", f"/contacts/{DANA}", tokens["access_token"])
    assert expired.status_code == 401 and expired.json()["message"] == "Invalid JWT"

    fresh = sandbox.refresh(tokens["refresh_token"]).json()
    assert sandbox.api("GET", f"/contacts/{DANA}", fresh["access_token"]).status_code == 200


def test_short_lived_tokens_expire_on_their_own(sandbox):
    sandbox.configure(access_token_ttl=0)
    tokens = sandbox.tokens(ACME)

    assert tokens["expires_in"] == 0
    assert sandbox.api("GET", f"/contacts/{DANA}", tokens["access_token"]).status_code == 401


def test_company_token_on_a_sub_account_endpoint_is_401_auth_class(sandbox):
    company = sandbox.tokens(bulk=True)["access_token"]

    answer = sandbox.api("GET", f"/contacts/{DANA}", company)

    assert answer.status_code == 401
    assert answer.json() == {"statusCode": 401, "message": AUTH_CLASS}


def test_location_token_on_an_agency_endpoint_is_401_auth_class(sandbox, acme_token):
    answer = sandbox.api("POST", "/oauth/locationToken", acme_token, data={"companyId": SEED_COMPANY_ID,
                                                                            "locationId": ACME})

    assert answer.status_code == 401
    assert answer.json()["message"] == AUTH_CLASS


def test_location_token_for_another_location_is_403(sandbox, acme_token):
    peak_contact = SEED_CONTACT_IDS[PEAK][0]

    for path, params in ((f"/contacts/{peak_contact}", None), (f"/locations/{PEAK}", None),
                         ("/opportunities/pipelines", {"locationId": PEAK}),
                         ("/conversations/search", {"locationId": PEAK})):
        answer = sandbox.api("GET", path, acme_token, params=params)
        assert answer.status_code == 403, path
        assert answer.json() == {"statusCode": 403, "message": "The token does not have access to this location."}


def test_company_token_reads_its_own_locations_but_no_others(sandbox):
    company = sandbox.tokens(bulk=True)["access_token"]

    assert sandbox.api("GET", f"/locations/{PEAK}", company).status_code == 200
    assert sandbox.api("GET", "/users/search", company, params={"companyId": SEED_COMPANY_ID}).status_code == 200
    assert sandbox.api("GET", "/users/search", company, params={"companyId": "SomeOtherAgency00000"}).status_code == 403


def test_scope_not_granted_is_401(sandbox):
    token = sandbox.tokens(ACME, scope="contacts.readonly")["access_token"]

    assert sandbox.api("GET", f"/contacts/{DANA}", token).status_code == 200
    answer = sandbox.api("POST", f"/contacts/{DANA}/tags", token, json={"tags": ["x"]})
    assert answer.status_code == 401
    assert answer.json() == {"statusCode": 401, "message": "The token is not authorized for this scope."}


def test_uninstall_revokes_tokens(sandbox):
    tokens = sandbox.tokens(ACME)

    sandbox.control("POST", "uninstall", json={"locationId": ACME})

    assert sandbox.api("GET", f"/contacts/{DANA}", tokens["access_token"]).status_code == 401
    assert sandbox.refresh(tokens["refresh_token"]).status_code == 401
    assert [d["payload"]["type"] for d in sandbox.deliveries(type="UNINSTALL")] == ["UNINSTALL"]


def test_validation_errors_are_422_with_a_message_list(sandbox, acme_token):
    answer = sandbox.api("GET", "/opportunities/pipelines", acme_token)

    assert answer.status_code == 422
    body = answer.json()
    assert body["statusCode"] == 422 and body["error"] == "Unprocessable Entity"
    assert isinstance(body["message"], list) and body["message"]


def test_unknown_route_is_a_json_404(sandbox, acme_token):
    answer = sandbox.api("GET", "/no/such/endpoint", acme_token)

    assert answer.status_code == 404
    assert answer.json()["message"] == "Cannot GET /no/such/endpoint"
