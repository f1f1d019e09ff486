"""The average job value in the sub-account's settings form: the same setting (crm.average_job_value) that the
Lead Leak report and the CRM options card edit, with the report's validation and messages."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from integration.extensions import db
from integration.models import LocationSettings
from tests.textback.app_page.conftest import form_of, page
from tests.textback.conftest import ACME


def own_values() -> dict:
    with db.session() as s:
        row = s.get(LocationSettings, ACME)
        return dict(row.values or {}) if row else {}


def test_the_settings_form_has_the_job_value_with_its_label_and_help(contractor):
    html, _ = page(contractor)
    form = html[html.index('id="settings-form"'):html.index("</form>", html.index('id="settings-form"'))]
    assert '<label for="average_job_value">Average job value <span class="muted">($)</span></label>' in form
    assert re.search(r'<input id="average_job_value" name="average_job_value" value="0" inputmode="decimal"'
                     r'[^>]*aria-describedby="average_job_value-help"', form)
    assert "The Lead Leak report multiplies missed calls by it" in form
    # The CRM options card on the same page edits the same value under its own id: every id is unique.
    ids = Counter(re.findall(r'\sid="([^"]+)"', html))
    assert [i for i, n in ids.items() if n > 1] == []
    assert '<label for="crm_average_job_value">' in html
    assert 'id="crm_average_job_value" name="average_job_value"' in html


def test_a_job_value_saved_in_the_settings_is_the_reports_and_keeps_the_crm_options(contractor):
    html, csrf = page(contractor)
    crm_card = {"csrf": csrf, "pipeline_id": "", "new_stage_id": "", "replied_stage_id": "", "booked_stage_id": "",
                "assigned_user_id": "", "average_job_value": "300", "missed_call_tag": "missed call",
                "replied_tag": "texted back", "reply_window_hours": "48", "task_due_minutes": "30",
                "on_call_number": ""}
    assert contractor.post("/app/crm-settings", data=crm_card).status_code == 303
    html, _ = page(contractor)
    assert 'id="average_job_value" name="average_job_value" value="300"' in html  # the card's value, shown here
    form = dict(form_of(html), average_job_value="$1,250.50")
    assert contractor.post("/app/settings", data=form).status_code == 303
    crm = own_values()["crm"]
    assert crm["average_job_value"] == 1250.5
    assert (crm["missed_call_tag"], crm["reply_window_hours"]) == ("missed call", 48)  # the card's other options
    html, _ = page(contractor)
    assert 'id="average_job_value" name="average_job_value" value="1250.5"' in html
    assert 'id="crm_average_job_value" name="average_job_value" inputmode="decimal" value="1250.5"' in html
    report = contractor.get("/app/report?weeks=4").get_data(as_text=True)
    assert re.search(r'<span class="label">Average job value</span>\s*<span class="value">\$1,250', report)


def test_the_job_value_equal_to_the_agencys_follows_the_agency(contractor, agency):
    html, _ = page(contractor)
    assert contractor.post("/app/settings", data=dict(form_of(html), average_job_value="700")).status_code == 303
    assert own_values() == {"crm": {"average_job_value": 700}}
    # Set back to what it inherits (the built-in 0): nothing of its own is stored any more.
    assert contractor.post("/app/settings", data=dict(form_of(page(contractor)[0]), average_job_value="0")
                           ).status_code == 303
    assert own_values() == {}
    agency_html, _ = page(agency)
    agency_form = dict(form_of(agency_html[agency_html.index('id="defaults"'):]), average_job_value="450")
    assert agency.post("/app/agency/defaults", data=agency_form).status_code == 303
    html, _ = page(contractor)
    assert 'id="average_job_value" name="average_job_value" value="450"' in html
    assert re.search(r'id="average_job_value-help">[^<]*<span class="muted">· agency default</span>', html)


# The report page's own cases (tests/activity/test_report.py): the same parser, so the same messages.
BAD_VALUES = [("abc", "Enter the job value as a number, like 24 or 1.5."), ("12 000", "as a number"),
              ("-5", "Enter the job value from 0 to 10,000,000."), ("1e9", "from 0 to 10,000,000"),
              ("nan", "from 0 to 10,000,000"), ("inf", "from 0 to 10,000,000"), ("-0.01", "from 0 to 10,000,000")]


@pytest.mark.parametrize(("value", "message"), BAD_VALUES, ids=[v for v, _ in BAD_VALUES])
def test_a_bad_job_value_says_what_is_wrong_and_saves_nothing(contractor, value, message):
    html, _ = page(contractor)
    form = dict(form_of(html), average_job_value=value, daily_cap="77")
    response = contractor.post("/app/settings", data=form)
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "Nothing was saved" in html
    error = re.search(r'<span class="field-error" id="average_job_value-error">([^<]*)</span>', html)
    assert error and message in error.group(1), html[:300]
    assert re.search(r'id="average_job_value" name="average_job_value" value="[^"]*"[^>]*'
                     r'aria-describedby="average_job_value-help average_job_value-error" aria-invalid="true"', html)
    assert 'value="77"' in html and own_values() == {}
