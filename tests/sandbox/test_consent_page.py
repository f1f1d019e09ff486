"""The consent page (/v2/oauth/chooselocation) as an agency user sees and submits it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from integration.config import SANDBOX_CLIENT_ID
from integration.sandbox.seed import APP_SCOPES, SEED_COMPANY_ID, SEED_COMPANY_NAME, SEED_LOCATION_IDS

REDIRECT = "http://localhost:5000/oauth/callback"


def _params(**overrides):
    params = {"response_type": "code", "client_id": SANDBOX_CLIENT_ID, "redirect_uri": REDIRECT,
              "scope": APP_SCOPES, "state": "s-123"}
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def test_page_shows_the_agency_its_sub_accounts_and_the_scopes(sandbox):
    page = sandbox.http.get(f"{sandbox.url}/v2/oauth/chooselocation", params=_params(), timeout=10)

    assert page.status_code == 200
    for text in (SEED_COMPANY_NAME, "Acme Plumbing", "Peak Roofing", "Cool Air HVAC", "Bulk install",
                 "contacts.write", 'value="s-123"'):
        assert text in page.text


def test_legacy_path_serves_the_same_page(sandbox):
    page = sandbox.http.get(f"{sandbox.url}/oauth/chooselocation", params=_params(), timeout=10)

    assert page.status_code == 200 and "Acme Plumbing" in page.text


def test_unregistered_redirect_uri_is_refused_without_redirecting(sandbox):
    page = sandbox.http.get(f"{sandbox.url}/v2/oauth/chooselocation",
                            params=_params(redirect_uri="https://evil.example/cb"), timeout=10,
                            allow_redirects=False)

    assert page.status_code == 400
    assert "redirect_uri" in page.text
    assert "<form" not in page.text


def test_unknown_client_is_refused(sandbox):
    page = sandbox.http.get(f"{sandbox.url}/v2/oauth/chooselocation", params=_params(client_id="nope"), timeout=10)

    assert page.status_code == 400
    assert "client_id" in page.text


def test_page_escapes_what_it_echoes(sandbox):
    page = sandbox.http.get(f"{sandbox.url}/v2/oauth/chooselocation", params=_params(state='"><script>x</script>'),
                            timeout=10)

    assert "<script>x</script>" not in page.text


def test_picking_one_sub_account_redirects_with_code_and_state_and_sends_install(sandbox):
    location = SEED_LOCATION_IDS[2]

    redirect = sandbox.consent(location, state="s-123")

    assert redirect.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(redirect).query)
    assert query["state"] == ["s-123"] and len(query["code"][0]) == 40
    installs = sandbox.deliveries(type="INSTALL")
    assert len(installs) == 1
    payload = installs[0]["payload"]
    assert payload["installType"] == "Location"
    assert payload["locationId"] == location and payload["companyId"] == SEED_COMPANY_ID
    assert payload["appId"] == SANDBOX_CLIENT_ID.split("-")[0]
    assert payload["webhookId"] and payload["timestamp"]


def test_state_is_omitted_when_not_given(sandbox):
    redirect = sandbox.consent(SEED_LOCATION_IDS[0], state=None)

    assert "state" not in parse_qs(urlsplit(redirect).query)


def test_bulk_install_sends_a_location_install_per_sub_account(sandbox):
    redirect = sandbox.consent(bulk=True)

    code = parse_qs(urlsplit(redirect).query)["code"][0]
    tokens = sandbox.exchange(code).json()
    assert tokens["userType"] == "Company" and tokens["isBulkInstallation"] is True
    payloads = [d["payload"] for d in sandbox.deliveries(type="INSTALL")]
    assert sorted(p["locationId"] for p in payloads) == sorted(SEED_LOCATION_IDS)
    assert {p["companyId"] for p in payloads} == {SEED_COMPANY_ID}
    assert {p["installType"] for p in payloads} == {"Location"}


def test_cancel_redirects_with_access_denied(sandbox):
    redirect = sandbox.consent(SEED_LOCATION_IDS[0], cancel=True, state="s-9")

    query = parse_qs(urlsplit(redirect).query)
    assert query == {"error": ["access_denied"], "state": ["s-9"]}
    assert sandbox.deliveries(type="INSTALL") == []


def test_submitting_without_a_choice_shows_the_page_again(sandbox):
    form = dict(_params(), action="install")

    answer = sandbox.http.post(f"{sandbox.url}/v2/oauth/chooselocation", data=form, allow_redirects=False,
                               timeout=10)

    assert answer.status_code == 400
    assert "Pick a sub-account" in answer.text
