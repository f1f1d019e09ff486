"""Fixtures for the app page's settings: a browser session signed in by a crypto-js SSO payload."""

from __future__ import annotations

import re

import pytest

from integration.sandbox.seed import SEED_COMPANY_ID, SEED_USER_IDS
from tests.cryptojs import cryptojs_encrypt
from tests.textback.conftest import ACME

MIKE = SEED_USER_IDS[ACME][0]


def sign_in(client, secret: str, **context) -> None:
    payload = {"userId": MIKE, "companyId": SEED_COMPANY_ID, "role": "admin", "type": "location",
               "activeLocation": ACME, "userName": "Mike Alvarez", "email": "mike@example.com"}
    payload.update(context)
    payload = {k: v for k, v in payload.items() if v is not None}
    response = client.post("/app/sso", json={"encryptedData": cryptojs_encrypt(payload, secret)})
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.fixture
def contractor(tb_app, acme, tb_settings):
    """Mike, admin of Acme Plumbing, with TextBack open inside HighLevel."""
    client = tb_app.test_client()
    sign_in(client, tb_settings.ghl_sso_key)
    return client


@pytest.fixture
def agency(tb_app, acme, tb_settings):
    """The agency's admin, opened from the agency view (no active location)."""
    client = tb_app.test_client()
    sign_in(client, tb_settings.ghl_sso_key, type="agency", activeLocation=None, userName="Ann Agency")
    return client


def page(client, path: str = "/app") -> tuple[str, str]:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    html = response.get_data(as_text=True)
    return html, re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def form_of(html: str) -> dict:
    """The settings form's current values, as the browser would submit them untouched."""
    from html import unescape

    start = html.index('id="settings-form"')
    end = html.index("</form>", start)
    body = html[start:end]
    values: dict = {}
    for name, value in re.findall(r'<input id="[^"]*" name="([^"]+)" value="([^"]*)"', body):
        values[name] = unescape(value)
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', body):
        values.setdefault(name, unescape(value))
    for name, text in re.findall(r'<textarea id="[^"]*" name="([^"]+)"[^>]*>(.*?)</textarea>', body, re.S):
        values[name] = unescape(text)
    for name, body_ in re.findall(r'<select id="[^"]*" name="([^"]+)"[^>]*>(.*?)</select>', body, re.S):
        picked = re.search(r'<option value="([^"]*)" selected', body_) or re.search(r'<option value="([^"]*)"', body_)
        values[name] = picked.group(1)
    checks: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="checkbox" (?:id="[^"]*" )?name="([^"]+)" value="([^"]+)" ?checked',
                                  body):
        checks.setdefault(name, []).append(value)
    for name, picked in checks.items():
        values[name] = picked if len(picked) > 1 or name == "missed_statuses" else picked[0]
    return values
