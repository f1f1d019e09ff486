"""The CRM options form on the app page, against the sandbox: HighLevel's pipelines and users, per-field
errors, CSRF, HighLevel down, escaping, and writes only to the session's own location."""

from __future__ import annotations

import re

import pytest

from integration.extensions import db
from integration.models import LocationSettings
from integration.sandbox.seed import SEED_COMPANY_ID, SEED_LOCATION_IDS, SEED_USER_IDS
from integration.sso import encrypt_sso_payload
from integration.textback.settings import effective_settings
from tests.textback.conftest import ACME
from tests.textback.crm.conftest import MISSED_CALL_PIPELINE, STAGES

PEAK = SEED_LOCATION_IDS[1]
MIKE, SARA = SEED_USER_IDS[ACME]


@pytest.fixture
def browser(tb_app, acme, tb_settings):
    """A browser signed in to Acme Plumbing's page through HighLevel's SSO payload."""
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


def good_form(csrf: str, **changes) -> dict:
    form = {"csrf": csrf, "pipeline_id": MISSED_CALL_PIPELINE, "new_stage_id": STAGES["New Lead"],
            "replied_stage_id": STAGES["Replied"], "booked_stage_id": STAGES["Booked"], "assigned_user_id": SARA,
            "average_job_value": "450", "missed_call_tag": "missed call", "replied_tag": "texted back",
            "reply_window_hours": "48", "task_due_minutes": "30", "on_call_number": "(512) 555-0188"}
    form.update(changes)
    return form


def stored(location_id: str = ACME) -> dict | None:
    """The location's saved CRM section, None when nothing was saved."""
    with db.session() as session:
        row = session.get(LocationSettings, location_id)
        return None if row is None else (row.values or {}).get("crm")


def test_the_form_lists_highlevels_pipelines_and_users_and_saves_the_choices(browser):
    html, csrf = page_of(browser)
    for option in (f'<option value="{MISSED_CALL_PIPELINE}">Missed Call</option>',
                   f'<option value="{STAGES["Replied"]}">Replied</option>', '<optgroup label="Sales">',
                   f'<option value="{MIKE}">Mike Alvarez</option>', f'<option value="{SARA}">Sara Kim</option>'):
        assert option in html

    response = browser.post("/app/crm-settings", data=good_form(csrf))

    assert response.status_code == 303 and response.headers["Location"].endswith("/app?saved=crm")
    crm = effective_settings(location_values={"crm": stored()}).crm
    assert (crm.pipeline_id, crm.replied_stage_id, crm.assigned_user_id) == (
        MISSED_CALL_PIPELINE, STAGES["Replied"], SARA)
    assert (crm.average_job_value, crm.reply_window_hours, crm.task_due_minutes) == (450.0, 48, 30)
    assert (crm.missed_call_tag, crm.replied_tag, crm.on_call_number) == ("missed call", "texted back", "+15125550188")
    html, _ = page_of(browser)
    assert "Saved." not in html  # only right after saving
    html = browser.get("/app?saved=crm").get_data(as_text=True)
    assert "Saved." in html
    assert f'<option value="{SARA}" selected>Sara Kim</option>' in html
    assert 'value="texted back"' in html


def test_bad_input_is_shown_next_to_each_field_and_nothing_is_saved(browser):
    _, csrf = page_of(browser)
    sales_stage = next(s for s in re.findall(r'<option value="([^"]+)"[^>]*>Contacted</option>',
                                             page_of(browser)[0]))
    form = good_form(csrf, average_job_value="-5", reply_window_hours="0", task_due_minutes="soon",
                     missed_call_tag="a,b", on_call_number="12", replied_stage_id=sales_stage)

    response = browser.post("/app/crm-settings", data=form)

    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Nothing was saved" in html
    assert re.search(r'id="average_job_value-error"[^>]*>Must be greater than or equal to 0', html)
    assert re.search(r'id="reply_window_hours-error"[^>]*>Must be greater than or equal to 1', html)
    assert re.search(r'id="task_due_minutes-error"[^>]*>Not a valid integer', html)
    assert re.search(r'id="missed_call_tag-error"[^>]*>a tag cannot hold commas', html)
    assert re.search(r'id="on_call_number-error"[^>]*>&#39;12&#39; is not a phone number', html)
    assert 'value="soon"' in html  # what was typed is kept
    assert stored() is None

    # With the values fixed, the stage from another pipeline is still refused against HighLevel's lists.
    response = browser.post("/app/crm-settings", data=good_form(csrf, replied_stage_id=sales_stage,
                                                                assigned_user_id="SomeoneElse000000000"))
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert re.search(r'id="replied_stage_id-error"[^>]*>Pick a stage of the chosen pipeline', html)
    assert re.search(r'id="assigned_user_id-error"[^>]*>This user is not a user of the sub-account', html)
    assert stored() is None


def test_the_form_needs_the_sessions_csrf_token_and_an_sso_session(browser, tb_app):
    _, csrf = page_of(browser)
    assert browser.post("/app/crm-settings", data=good_form("forged")).status_code == 400
    assert browser.post("/app/crm-settings", data={k: v for k, v in good_form(csrf).items() if k != "csrf"}
                        ).status_code == 400
    stranger = tb_app.test_client()
    assert stranger.post("/app/crm-settings", data=good_form(csrf)).status_code == 401
    assert stored() is None


def test_only_the_sessions_location_is_written(browser):
    _, csrf = page_of(browser)
    form = good_form(csrf, locationId=PEAK, location_id=PEAK)
    assert browser.post("/app/crm-settings", data=form).status_code == 303
    assert stored(ACME)["assigned_user_id"] == SARA
    assert stored(PEAK) is None


def test_highlevel_down_still_shows_the_page_with_a_clear_message(browser, sandbox):
    sandbox.fault("500", "^/opportunities/pipelines$", method="GET", times=None)
    html, csrf = page_of(browser)
    assert "HighLevel did not answer, so the pipelines and users cannot be listed right now" in html
    assert 'name="average_job_value"' in html

    # Saving still works: the values are checked by the schema; the ids cannot be checked against HighLevel.
    response = browser.post("/app/crm-settings", data=good_form(csrf, pipeline_id="", new_stage_id="",
                                                                replied_stage_id="", booked_stage_id=""))
    assert response.status_code == 303
    assert stored()["average_job_value"] == 450


def test_names_from_highlevel_are_escaped(browser, sandbox):
    state = sandbox.server.state
    with state.lock:
        state.world.pipelines[MISSED_CALL_PIPELINE]["name"] = "<script>alert(1)</script>"
    html, _ = page_of(browser)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
