"""OAuth against the sandbox: consent, single-use codes, rotating single-use refresh tokens."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from integration.config import SANDBOX_CLIENT_ID
from integration.sandbox.seed import APP_SCOPES, SEED_COMPANY_ID, SEED_CONTACT_IDS, SEED_LOCATION_IDS

ACME = SEED_LOCATION_IDS[0]
DANA = SEED_CONTACT_IDS[ACME][0]


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_sub_account_install_gives_a_location_token(sandbox):
    tokens = sandbox.tokens(ACME)

    assert tokens["userType"] == "Location"
    assert tokens["locationId"] == ACME
    assert tokens["companyId"] == SEED_COMPANY_ID
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 86399
    assert tokens["isBulkInstallation"] is False
    assert tokens["userId"]
    assert set(tokens["scope"].split()) == set(APP_SCOPES.split())
    assert len(tokens["access_token"]) > 200 and tokens["access_token"] != tokens["refresh_token"]
    assert sandbox.api("GET", f"/contacts/{DANA}", tokens["access_token"]).status_code == 200


def test_an_authorization_code_works_once(sandbox):
    code = sandbox.authorize(ACME)
    assert sandbox.exchange(code).status_code == 200

    again = sandbox.exchange(code)

    assert again.status_code == 401
    assert again.json() == {"error": "UnAuthorized!", "error_description": "Authorization code not found"}


def test_unknown_code_is_reported_before_bad_credentials(sandbox):
    answer = sandbox.exchange("0" * 40, client_secret="wrong")

    assert answer.status_code == 401
    assert answer.json()["error_description"] == "Authorization code not found"


def test_bad_client_secret_is_refused_and_does_not_burn_the_code(sandbox):
    code = sandbox.authorize(ACME)

    refused = sandbox.exchange(code, client_secret="not-the-secret")

    assert refused.status_code == 401
    assert refused.json() == {"error": "UnAuthorized!", "error_description": "Invalid client credentials!"}
    assert sandbox.exchange(code).status_code == 200


def test_an_expired_code_is_refused(sandbox):
    sandbox.configure(code_ttl=0)
    code = sandbox.authorize(ACME)

    answer = sandbox.exchange(code)

    assert answer.status_code == 401
    assert answer.json()["error_description"] == "Authorization code expired"


def test_a_mismatched_redirect_uri_is_refused(sandbox):
    code = sandbox.authorize(ACME)

    answer = sandbox.exchange(code, redirect_uri="http://localhost:5000/elsewhere")

    assert answer.status_code == 401


def test_refresh_rotates_and_the_old_refresh_token_is_dead(sandbox):
    first = sandbox.tokens(ACME)

    rotated = sandbox.refresh(first["refresh_token"], user_type="Location")
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["userType"] == "Location" and second["locationId"] == ACME
    assert sandbox.api("GET", f"/contacts/{DANA}", second["access_token"]).status_code == 200

    reused = sandbox.refresh(first["refresh_token"], user_type="Location")
    assert reused.status_code == 401
    assert reused.json()["error"] == "UnAuthorized!"
    assert reused.json()["error_description"]
    # The new refresh token is still good, exactly once.
    assert sandbox.refresh(second["refresh_token"]).status_code == 200
    assert sandbox.refresh(second["refresh_token"]).status_code == 401


def test_refresh_with_bad_credentials_keeps_the_refresh_token(sandbox):
    tokens = sandbox.tokens(ACME)

    refused = sandbox.refresh(tokens["refresh_token"], client_secret="wrong")

    assert refused.status_code == 401
    assert refused.json()["error_description"] == "Invalid client credentials!"
    assert sandbox.refresh(tokens["refresh_token"]).status_code == 200


def test_refresh_with_the_wrong_user_type_is_a_bad_request_and_keeps_the_token(sandbox):
    tokens = sandbox.tokens(ACME)

    refused = sandbox.refresh(tokens["refresh_token"], user_type="Company")

    assert refused.status_code == 400
    assert sandbox.refresh(tokens["refresh_token"], user_type="Location").status_code == 200


def test_token_endpoint_validates_the_form(sandbox):
    answer = sandbox.http.post(f"{sandbox.url}/oauth/token", data={"grant_type": "refresh_token"}, timeout=10)

    assert answer.status_code == 422
    assert isinstance(answer.json()["message"], list)
    assert "client_id should not be empty" in answer.json()["message"]


def test_bulk_install_gives_a_company_token_that_mints_location_tokens(sandbox):
    company = sandbox.tokens(bulk=True)
    assert company["userType"] == "Company"
    assert company["isBulkInstallation"] is True
    assert "locationId" not in company
    assert set(company["approvedLocations"]) == set(SEED_LOCATION_IDS)

    minted = sandbox.api("POST", "/oauth/locationToken", company["access_token"],
                         data={"companyId": SEED_COMPANY_ID, "locationId": ACME})

    assert minted.status_code == 201
    body = minted.json()
    assert body["userType"] == "Location" and body["locationId"] == ACME
    assert {"oauth.readonly", "oauth.write"} <= set(body["scope"].split())
    assert sandbox.api("GET", f"/contacts/{DANA}", body["access_token"]).status_code == 200


def test_location_token_accepts_a_json_body(sandbox):
    company = sandbox.tokens(bulk=True)

    minted = sandbox.api("POST", "/oauth/locationToken", company["access_token"],
                         json={"companyId": SEED_COMPANY_ID, "locationId": SEED_LOCATION_IDS[2]})

    assert minted.status_code == 201
    assert minted.json()["locationId"] == SEED_LOCATION_IDS[2]


def test_location_token_refused_where_the_app_is_not_installed(sandbox):
    company = sandbox.tokens(bulk=True)
    sandbox.control("POST", "uninstall", json={"locationId": ACME})

    answer = sandbox.api("POST", "/oauth/locationToken", company["access_token"],
                         data={"companyId": SEED_COMPANY_ID, "locationId": ACME})

    assert answer.status_code == 400


def test_installed_locations_pages_and_filters(sandbox):
    company = sandbox.tokens(bulk=True)
    app_id = SANDBOX_CLIENT_ID.split("-")[0]

    def page(**params):
        answer = sandbox.api("GET", "/oauth/installedLocations", company["access_token"],
                             params={"companyId": SEED_COMPANY_ID, "appId": app_id, **params})
        assert answer.status_code == 200, answer.text
        return answer.json()

    everything = page(isInstalled="true")
    assert everything["count"] == 3
    assert {row["_id"] for row in everything["locations"]} == set(SEED_LOCATION_IDS)
    assert all(row["isInstalled"] and row["name"] and row["address"] for row in everything["locations"])
    assert everything["installToFutureLocations"] is True
    first, rest = page(isInstalled="true", limit="2"), page(isInstalled="true", skip="2", limit="2")
    assert len(first["locations"]) == 2 and len(rest["locations"]) == 1
    assert {r["_id"] for r in first["locations"] + rest["locations"]} == set(SEED_LOCATION_IDS)

    sandbox.control("POST", "uninstall", json={"locationId": ACME})
    assert ACME not in {row["_id"] for row in page(isInstalled="true")["locations"]}
    assert [row["_id"] for row in page(isInstalled="false")["locations"]] == [ACME]


def test_installed_locations_requires_company_and_app(sandbox):
    company = sandbox.tokens(bulk=True)

    answer = sandbox.api("GET", "/oauth/installedLocations", company["access_token"])

    assert answer.status_code == 422
    assert isinstance(answer.json()["message"], list)


def test_single_location_install_shows_only_that_location_installed(sandbox):
    sandbox.tokens(SEED_LOCATION_IDS[1])

    installs = sandbox.control("GET", "installs")["installs"]

    assert [i["location_id"] for i in installs] == [SEED_LOCATION_IDS[1]]
