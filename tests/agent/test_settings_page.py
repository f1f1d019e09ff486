"""The booking agent's card on the app page, against the sandbox: HighLevel's calendars, on/off, per-field
errors, a calendar that is not the sub-account's, HighLevel down, CSRF, and writes only to the session's own
location."""

from __future__ import annotations

import re

import pytest

from integration.extensions import db
from integration.models import LocationSettings
from integration.sandbox.seed import SEED_CALENDAR_IDS, SEED_COMPANY_ID, SEED_LOCATION_IDS, SEED_USER_IDS
from integration.sso import encrypt_sso_payload
from integration.textback.settings import effective_settings
from tests.agent.conftest import CALENDAR
from tests.textback.conftest import ACME

PEAK = SEED_LOCATION_IDS[1]
MIKE = SEED_USER_IDS[ACME][0]


@pytest.fixture
def browser(tb_app, install, tb_settings):
    install(ACME)
    client = tb_app.test_client()
    payload = encrypt_sso_payload({"userId": MIKE, "companyId": SEED_COMPANY_ID, "role": "admin", "type": "location",
                                   "activeLocation": ACME, "userName": "Mike Alvarez"}, tb_settings.ghl_sso_key)
    assert client.post("/app/sso", json={"encryptedData": payload}).status_code == 200
    return client


def page_of(browser) -> tuple[str, str]:
    response = browser.get("/app")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    return html, re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def stored(location_id: str = ACME) -> dict | None:
    with db.session() as session:
        row = session.get(LocationSettings, location_id)
        return None if row is None else (row.values or {}).get("agent")


def test_the_card_lists_highlevels_calendars_and_saves_the_agent_on(browser):
    html, csrf = page_of(browser)
    assert 'id="agent-settings"' in html
    assert f'<option value="{CALENDAR}">Acme Plumbing Service Call</option>' in html
    assert SEED_CALENDAR_IDS[PEAK] not in html  # another sub-account's calendar is never listed
    response = browser.post("/app/agent-settings", data={"csrf": csrf, "enabled": ["off", "on"],
                                                         "calendar_id": CALENDAR, "grace_minutes": "0",
                                                         "max_messages_per_hour": "5"})
    assert response.status_code == 303
    assert stored() == {"enabled": True, "calendar_id": CALENDAR, "grace_minutes": 0.0, "max_messages_per_hour": 5}
    with db.session() as session:
        settings = effective_settings(location_values=session.get(LocationSettings, ACME).values)
    assert settings.agent.active and settings.agent.grace_minutes == 0
    html, _ = page_of(browser)
    assert f'<option value="{CALENDAR}" selected>' in html
    assert 'id="agent-enabled" name="enabled" value="on" checked' in html
    assert stored(PEAK) is None


@pytest.mark.parametrize(("form", "field", "message"), [
    ({"enabled": "on", "calendar_id": "", "grace_minutes": "2", "max_messages_per_hour": "6"}, "calendar_id",
     "choose the calendar the agent books on before turning it on"),
    ({"enabled": "on", "calendar_id": SEED_CALENDAR_IDS[PEAK], "grace_minutes": "2", "max_messages_per_hour": "6"},
     "calendar_id", "This calendar is not one of the sub-account's calendars in HighLevel."),
    ({"enabled": "off", "calendar_id": CALENDAR, "grace_minutes": "-1", "max_messages_per_hour": "6"},
     "grace_minutes", "Must be greater than or equal to 0 and less than or equal to 60."),
    ({"enabled": "off", "calendar_id": CALENDAR, "grace_minutes": "two", "max_messages_per_hour": "6"},
     "grace_minutes", "Not a valid number."),
    ({"enabled": "off", "calendar_id": CALENDAR, "grace_minutes": "2", "max_messages_per_hour": "100"},
     "max_messages_per_hour", "Must be greater than or equal to 1 and less than or equal to 30."),
])
def test_bad_input_gets_its_message_next_to_the_field_and_nothing_is_stored(browser, form, field, message):
    _, csrf = page_of(browser)
    response = browser.post("/app/agent-settings", data={"csrf": csrf, **form})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert f'<span class="field-error" id="agent-{field}-error" role="alert">{message}</span>'.replace(
        "'", "&#39;") in html
    assert f'value="{form["grace_minutes"]}"' in html  # what was typed is shown back
    assert stored() is None


def test_without_csrf_nothing_is_saved(browser):
    response = browser.post("/app/agent-settings", data={"enabled": "on", "calendar_id": CALENDAR,
                                                         "grace_minutes": "2", "max_messages_per_hour": "6"})
    assert response.status_code in (400, 403)
    assert stored() is None


def test_highlevel_down_keeps_the_saved_choice_and_refuses_a_new_unchecked_one(browser, sandbox):
    _, csrf = page_of(browser)
    browser.post("/app/agent-settings", data={"csrf": csrf, "enabled": "on", "calendar_id": CALENDAR,
                                              "grace_minutes": "2", "max_messages_per_hour": "6"})
    sandbox.fault("500", r"^/calendars/$", times=None)
    html, csrf = page_of(browser)
    assert "HighLevel did not answer, so the calendars cannot be listed right now." in html
    assert f'<option value="{CALENDAR}" selected>Current choice ({CALENDAR})</option>' in html
    kept = browser.post("/app/agent-settings", data={"csrf": csrf, "enabled": "on", "calendar_id": CALENDAR,
                                                     "grace_minutes": "5", "max_messages_per_hour": "6"})
    assert kept.status_code == 303 and stored()["grace_minutes"] == 5.0
    other = browser.post("/app/agent-settings", data={"csrf": csrf, "enabled": "on", "calendar_id": "SomeOther",
                                                      "grace_minutes": "5", "max_messages_per_hour": "6"})
    assert other.status_code == 400 and stored()["calendar_id"] == CALENDAR
