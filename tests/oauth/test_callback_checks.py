"""The callback's checks that come before HighLevel is asked anything: state, browser binding, code.

The app here points at no HighLevel at all, so a check that let a request through to the code
exchange would show up as `provider_unavailable` instead of the reason asserted.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from oauth.views import SESSION_KEY


def _start(client) -> str:
    response = client.get("/oauth/install")
    assert response.status_code == 302
    return parse_qs(urlsplit(response.headers["Location"]).query)["state"][0]


def _reason(response) -> str:
    text = response.get_data(as_text=True)
    return text.split("Reference: ", 1)[1].split("(", 1)[1].split(")", 1)[0]


def test_install_redirects_to_the_consent_page_with_scopes_and_a_state(client, settings):
    response = client.get("/oauth/install")
    assert response.status_code == 302
    url = urlsplit(response.headers["Location"])
    assert f"{url.scheme}://{url.netloc}" == settings.ghl_marketplace_base
    assert url.path == "/v2/oauth/chooselocation"
    query = parse_qs(url.query)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [settings.ghl_client_id]
    assert query["redirect_uri"] == [f"{settings.public_base_url}/oauth/callback"]
    assert "conversations/message.write" in query["scope"][0].split(" ")
    assert "oauth.write" in query["scope"][0].split(" ")
    with client.session_transaction() as session:
        assert session[SESSION_KEY] == query["state"][0]


def test_cancelled_consent_gets_a_friendly_page(client):
    state = _start(client)
    response = client.get(f"/oauth/callback?error=access_denied&state={state}")
    assert response.status_code == 200
    assert "Installation cancelled" in response.get_data(as_text=True)
    assert _reason(response) == "cancelled"


def test_a_reused_state_is_rejected(client):
    state = _start(client)
    first = client.get(f"/oauth/callback?state={state}")  # no code: fails, but the state is spent
    assert _reason(first) == "missing_code"
    with client.session_transaction() as session:
        session[SESSION_KEY] = state  # a replay from the same browser
    replay = client.get(f"/oauth/callback?code=abc&state={state}")
    assert replay.status_code == 400
    assert _reason(replay) == "invalid_state"


def test_a_state_from_another_browser_is_rejected_and_burned(app, client):
    state = _start(client)
    other_browser = app.test_client()
    response = other_browser.get(f"/oauth/callback?code=abc&state={state}")
    assert response.status_code == 400
    assert _reason(response) == "invalid_browser"
    # The state is spent: not even its own browser can use it now.
    replay = client.get(f"/oauth/callback?code=abc&state={state}")
    assert _reason(replay) == "invalid_state"


def test_a_forged_state_is_rejected(client):
    with client.session_transaction() as session:
        session[SESSION_KEY] = "forged-state-never-issued"
    response = client.get("/oauth/callback?code=abc&state=forged-state-never-issued")
    assert response.status_code == 400
    assert _reason(response) == "invalid_state"


@pytest.mark.parametrize("query", ["", "code=", "code=" + "a" * 600, "code=ab%00cd"])
def test_a_missing_or_unusable_code_is_rejected(client, query):
    state = _start(client)
    response = client.get(f"/oauth/callback?state={state}&{query}")
    assert response.status_code == 400
    assert _reason(response) == "missing_code"


def test_failure_pages_escape_what_they_show_and_are_not_cached(client):
    response = client.get("/oauth/callback?error=<script>alert(1)</script>")
    text = response.get_data(as_text=True)
    assert "<script>" not in text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
