"""The text-back settings form and the sign-in around it, over the test client against the sandbox:
crypto-js SSO payloads (tampered, foreign, expired), CSRF, every field's validation message, the layering
agency default < sub-account, tenancy, CSP and cookies, and the test text through the real send path."""

from __future__ import annotations

import base64
import re
import time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from integration.db import utcnow
from integration.extensions import db
from integration.models import Company, Location, LocationSettings
from integration.sandbox.seed import SEED_COMPANY_ID, SEED_LOCATION_IDS
from integration.settings_page.test_text import TestText
from integration.textback.models import MissedCall, SendIntent
from integration.textback.settings import effective_settings
from tests.cryptojs import cryptojs_encrypt
from tests.textback.app_page.conftest import MIKE, form_of, page, sign_in
from tests.textback.conftest import ACME

PEAK = SEED_LOCATION_IDS[1]


def own_values(location_id: str = ACME) -> dict:
    with db.session() as s:
        row = s.get(LocationSettings, location_id)
        return dict(row.values or {}) if row else {}


def effective(location_id: str = ACME):
    with db.session() as s:
        company = s.get(Company, SEED_COMPANY_ID)
        return effective_settings(company_defaults=company.default_settings, location_values=own_values(location_id))


# --- Signing in ---


def test_a_cryptojs_payload_signs_in_to_its_own_location_only(contractor):
    html, _ = page(contractor, f"/app?location={PEAK}&locationId={PEAK}")
    assert "<h1>Missed-call text back</h1>" in html and "Signed in as Mike Alvarez" in html
    assert PEAK not in html


def _tampered(payload: str) -> str:
    raw = bytearray(base64.b64decode(payload))
    raw[-20] ^= 0x01  # a bit of the ciphertext: the padding or the JSON breaks
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("make", [
    pytest.param(lambda secret: _tampered(cryptojs_encrypt({"userId": MIKE, "companyId": SEED_COMPANY_ID,
                                                            "activeLocation": ACME}, secret)), id="tampered"),
    pytest.param(lambda secret: cryptojs_encrypt({"userId": MIKE, "companyId": SEED_COMPANY_ID,
                                                  "activeLocation": ACME}, "another app's secret"), id="foreign"),
    pytest.param(lambda secret: cryptojs_encrypt({"role": "admin", "activeLocation": ACME}, secret), id="no-user"),
    pytest.param(lambda secret: cryptojs_encrypt("not json at all", secret), id="not-json"),
])
def test_bad_payloads_sign_nobody_in(tb_app, acme, tb_settings, make):
    client = tb_app.test_client()
    response = client.post("/app/sso", json={"encryptedData": make(tb_settings.ghl_sso_key)})
    assert response.status_code == 401
    assert tb_settings.ghl_sso_key not in response.get_data(as_text=True)
    html = client.get("/app").get_data(as_text=True)
    assert "Connecting to HighLevel" in html and "Signed in as" not in html


def test_an_expired_session_asks_highlevel_again_and_saves_nothing(contractor):
    _, csrf = page(contractor)
    with contractor.session_transaction() as browser_session:
        browser_session["sso"] = dict(browser_session["sso"], expires_at=time.time() - 1)
    assert "Connecting to HighLevel" in contractor.get("/app").get_data(as_text=True)
    response = contractor.post("/app/settings", data={"csrf": csrf, "daily_cap": "5"})
    assert response.status_code == 401 and "open TextBack again from HighLevel" in response.get_data(as_text=True)
    assert own_values() == {}


def test_switching_sub_account_in_highlevel_starts_a_new_session(agency, tb_settings):
    """HighLevel keeps our iframe's cookie across a switch; the page's re-check tells the new context apart."""
    same = cryptojs_encrypt({"userId": "AgencyAdmin0000000001", "companyId": SEED_COMPANY_ID}, tb_settings.ghl_sso_key)
    agency.post("/app/sso", json={"encryptedData": same})
    assert agency.post("/app/sso", json={"encryptedData": same}).get_json()["changed"] is False
    switched = cryptojs_encrypt({"userId": MIKE, "companyId": SEED_COMPANY_ID, "activeLocation": ACME},
                                tb_settings.ghl_sso_key)
    assert agency.post("/app/sso", json={"encryptedData": switched}).get_json()["changed"] is True
    html, _ = page(agency)
    assert "Text back missed calls" in html and "Agency defaults" not in html


def test_a_foreign_agency_payload_cannot_open_a_location(tb_app, acme, tb_settings):
    client = tb_app.test_client()
    sign_in(client, tb_settings.ghl_sso_key, companyId="AttackerCompany000001")
    response = client.get("/app")
    assert response.status_code == 404 and "Text back missed calls" not in response.get_data(as_text=True)


def test_the_page_outside_highlevel_explains_how_to_open_it(tb_app):
    html = tb_app.test_client().get("/app").get_data(as_text=True)
    assert "Click <strong>TextBack</strong> in the left-hand menu" in html
    assert "<script>" not in html  # no inline script: the CSP allows none


# --- CSP and cookies ---


def test_csp_allows_highlevel_and_the_agencys_white_label_domain(contractor):
    with db.transaction() as s:
        s.get(Company, SEED_COMPANY_ID).whitelabel_domain = "app.acme-agency.com"
    from integration.web_security import _domains_cache

    _domains_cache.clear()
    policy = contractor.get("/app").headers["Content-Security-Policy"]
    ancestors = re.search(r"frame-ancestors ([^;]+)", policy).group(1).split()
    assert {"https://app.gohighlevel.com", "https://app.leadconnectorhq.com", "https://app.acme-agency.com"} <= set(
        ancestors)
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_the_white_label_domain_comes_from_the_install_webhook(tb_app):
    from oauth.events import _remember_whitelabel_domain

    with db.transaction() as s:
        _remember_whitelabel_domain(s, "WhiteLabelCompany0001", {
            "companyName": "WL", "whitelabelDetails": {"domain": "https://App.Example-Agency.com/", "logoUrl": ""}})
        _remember_whitelabel_domain(s, "PlainCompany00000001", {"whitelabelDetails": {"domain": "not a domain;"}})
    with db.session() as s:
        assert s.get(Company, "WhiteLabelCompany0001").whitelabel_domain == "app.example-agency.com"
        assert s.get(Company, "PlainCompany00000001") is None


@pytest.mark.parametrize(("base", "expected"), [
    ("https://textback.example.com", "SameSite=None"),
    ("http://localhost:5000", "SameSite=Lax"),
])
def test_session_cookie_works_in_a_third_party_iframe(tb_settings, redis_client, base, expected):
    from integration import create_app

    app = create_app(tb_settings.override(public_base_url=base))
    payload = cryptojs_encrypt({"userId": MIKE, "companyId": SEED_COMPANY_ID}, tb_settings.ghl_sso_key)
    cookie = app.test_client().post("/app/sso", json={"encryptedData": payload}).headers["Set-Cookie"]
    assert expected in cookie and "HttpOnly" in cookie
    assert ("Secure" in cookie and "Partitioned" in cookie) == base.startswith("https")


# --- CSRF ---


@pytest.mark.parametrize("path", ["/app/settings", "/app/settings/test-text", "/app/crm-settings"])
@pytest.mark.parametrize("token", [None, "forged"])
def test_every_location_form_needs_the_sessions_csrf_token(contractor, path, token):
    html, _ = page(contractor)
    data = dict(form_of(html), template="business_hours", daily_cap="7")
    data.pop("csrf", None)
    if token:
        data["csrf"] = token
    response = contractor.post(path, data=data)
    assert response.status_code == 400 and "Nothing was saved" in response.get_data(as_text=True)
    assert own_values() == {}
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(TestText)) == 0


@pytest.mark.parametrize("path", ["/app/agency/defaults", "/app/agency/sub-accounts"])
def test_every_agency_form_needs_the_sessions_csrf_token(agency, path):
    response = agency.post(path, data={"csrf": "forged", "action": "off", "location_id": ACME, "daily_cap": "1"})
    assert response.status_code == 400
    with db.session() as s:
        assert s.get(Company, SEED_COMPANY_ID).default_settings in ({}, None)
        assert s.get(LocationSettings, ACME).enabled


def test_the_sso_exchange_takes_json_only(tb_app, tb_settings):
    payload = cryptojs_encrypt({"userId": MIKE, "companyId": SEED_COMPANY_ID}, tb_settings.ghl_sso_key)
    assert tb_app.test_client().post("/app/sso", data={"encryptedData": payload}).status_code == 415


# --- Saving and validation ---


def test_the_form_shows_every_setting_with_a_label(contractor):
    html, _ = page(contractor)
    body = html[html.index('id="settings-form"'):]
    ids = re.findall(r'<(?:input|textarea|select) id="([^"]+)"', body)
    assert len(ids) > 25
    for input_id in ids:
        wrapped = re.search(rf'<label><input type="checkbox" id="{input_id}"', body)
        assert f'for="{input_id}"' in body or wrapped, f"{input_id} has no label"
    for name in ("template_business_hours", "template_after_hours", "template_existing_customer", "delay_seconds",
                 "cooldown_hours", "daily_cap", "quiet_window", "state_rules", "hours_mon", "holidays",
                 "excluded_numbers", "missed_statuses", "short_call_seconds", "enabled"):
        assert f'name="{name}"' in html, name


def test_a_save_stores_only_what_differs_and_the_rest_follows_the_agency(contractor, agency):
    html, _ = page(contractor)
    form = dict(form_of(html), cooldown_hours="2",
                template_business_hours="Hi {first_name|there}, {business_name} here!")
    assert contractor.post("/app/settings", data=form).status_code == 303
    assert own_values() == {"cooldown_hours": 2,
                            "templates": {"business_hours": "Hi {first_name|there}, {business_name} here!"}}
    # The agency changes two defaults: the one Acme overrode stays Acme's, the other reaches Acme.
    agency_html, _ = page(agency)
    agency_form = dict(form_of(agency_html[agency_html.index('id="defaults"'):]), cooldown_hours="12",
                       daily_cap="40")
    assert agency.post("/app/agency/defaults", data=agency_form).status_code == 303
    settings = effective()
    assert (settings.cooldown_hours, settings.daily_cap) == (2, 40)
    assert 'id="daily_cap" name="daily_cap" value="40"' in page(contractor)[0]


BAD_FIELDS = [
    ("template_business_hours", "", "Write the message; it cannot be empty."),
    ("template_after_hours", "Hi {firstname}", "Unknown placeholder {firstname}"),
    ("template_existing_customer", "x" * 1001, "Keep the message to 1,000 characters"),
    ("sender_name", "M" * 31, "Keep the name to 30 characters"),
    ("business_name", "B" * 61, "Keep the business name to 60 characters"),
    ("booking_link", "book.example.com", "Enter a full web address starting with https://"),
    ("max_segments", "11", "Enter a number of segments from 1 to 10."),
    ("delay_seconds", "soon", "Enter a whole number of seconds, from 0 to 3600."),
    ("cooldown_hours", "a day", "Enter the hours as a number"),
    ("daily_cap", "0", "Enter a number of texts from 1 to 10000."),
    ("max_call_age_minutes", "-5", "Enter a whole number of minutes"),
    ("short_call_seconds", "500", "Enter a number of seconds from 0 to 120."),
    ("hours_mon", "9 to 5", "is not opening hours like 08:00-17:00"),
    ("hours_sat", "17:00-09:00", "is not opening hours like 08:00-17:00"),
    ("holidays", "25/12/2026", "is not a date like 2026-12-25"),
    ("timezone", "Mars/Olympus", "is not a time zone"),
    ("quiet_window", "07:00-22:00", "can only be narrower than the federal 08:00-21:00"),
    ("quiet_window", "evenings", "Enter the hours texts may go out"),
    ("state_rules", "Texas all day", "start each line with a 2-letter state"),
    ("state_rules", "TX: mon-sat", "write each part as days and hours"),
    ("excluded_numbers", "call me maybe", "is not a phone number"),
    ("business_numbers", "12", "is not a phone number"),
    ("allowed_countries", "USA", "is not a 2-letter country code"),
    ("existing_action", "email them", "Pick one of the listed options."),
    ("existing_tags", "t" * 101, "Each tag can be at most 100 characters"),
    ("existing_contact_types", "c" * 51, "Each contact type can be at most 50 characters"),
    ("existing_ignore_pipelines", "p" * 101, "Each pipeline name can be at most 100 characters"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD_FIELDS, ids=[f"{n}:{v[:12]}" for n, v, _ in BAD_FIELDS])
def test_every_field_says_what_is_wrong_and_loses_nothing(contractor, name, value, message):
    html, _ = page(contractor)
    form = form_of(html)
    form["daily_cap"] = "77"
    form[name] = value
    response = contractor.post("/app/settings", data=form)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    error = re.search(rf'<span class="field-error" id="{name}-error">([^<]*)</span>', html)
    assert error and message in error.group(1).replace("&#34;", '"').replace("&#39;", "'"), html[:200]
    assert re.search(rf'id="{name}"[^>]*aria-describedby="[^"]*{name}-error"[^>]*aria-invalid="true"', html) or \
        re.search(rf'name="{name}"[^>]*aria-describedby="[^"]*{name}-error"', html) or name == "missed_statuses"
    assert "Nothing was saved" in html
    if name != "daily_cap":
        assert 'value="77"' in html  # what else was typed is still there
    assert own_values() == {}


def test_no_missed_status_ticked_is_an_error(contractor):
    form = form_of(page(contractor)[0])
    form.pop("missed_statuses")
    html = contractor.post("/app/settings", data=form).get_data(as_text=True)
    assert "Pick at least one kind of call to text back" in html and own_values() == {}


def test_text_back_can_be_turned_off_and_on(contractor):
    form = dict(form_of(page(contractor)[0]), enabled="off")
    assert contractor.post("/app/settings", data=form).status_code == 303
    with db.session() as s:
        assert s.get(LocationSettings, ACME).enabled is False
    assert "text back is off" in page(contractor)[0]


def test_no_parameter_writes_another_locations_settings(contractor):
    form = dict(form_of(page(contractor)[0]), daily_cap="9", location_id=PEAK, locationId=PEAK, location=PEAK)
    assert contractor.post(f"/app/settings?location_id={PEAK}&locationId={PEAK}", data=form).status_code == 303
    assert own_values(ACME) == {"daily_cap": 9}
    assert own_values(PEAK) == {}


def test_an_agency_cannot_touch_another_agencys_sub_account(agency):
    with db.transaction() as s:
        s.add(Company(id="OtherAgency000000001", default_settings={}))
        s.add(Location(id="OtherLocation0000001", company_id="OtherAgency000000001", name="Rival Roofing",
                       installed_at=utcnow()))
        s.flush()
        s.add(LocationSettings(location_id="OtherLocation0000001", enabled=True, values={"daily_cap": 3}))
    html, csrf = page(agency)
    assert "Rival Roofing" not in html and f'value="{ACME}"' in html
    response = agency.post("/app/agency/sub-accounts", data={"csrf": csrf, "action": "off",
                                                            "location_id": ["OtherLocation0000001", ACME]})
    assert response.status_code == 303
    with db.session() as s:
        assert s.get(LocationSettings, "OtherLocation0000001").enabled is True
        assert s.get(LocationSettings, ACME).enabled is False


def test_the_agency_pushes_its_defaults_to_chosen_sub_accounts(contractor, agency):
    form = dict(form_of(page(contractor)[0]), daily_cap="9", cooldown_hours="3")
    assert contractor.post("/app/settings", data=form).status_code == 303
    _, csrf = page(agency)
    assert agency.post("/app/agency/sub-accounts", data={"csrf": csrf, "action": "push",
                                                        "location_id": ACME}).status_code == 303
    assert own_values() == {}
    assert "follows the agency defaults" in page(agency)[0]


def test_the_agency_page_shows_each_sub_accounts_state_and_30_day_funnel(agency):
    from integration.models import Installation

    with db.transaction() as s:
        s.add(MissedCall(call_key="k1", location_id=ACME, call_status="no-answer", status="sent",
                         created_at=utcnow()))
        s.add(MissedCall(call_key="k2", location_id=ACME, call_status="busy", status="skipped", created_at=utcnow()))
        installation = s.scalar(select(Installation).where(Installation.resource_id == ACME))
        installation.status = "needs_reconnect"
        location = s.get(Location, ACME)
        location.timezone = "America/Chicago"
        called = s.scalar(select(func.max(MissedCall.created_at)).where(MissedCall.location_id == ACME))
    html, _ = page(agency)
    assert "needs reconnecting" in html and "reinstall TextBack for this sub-account" in html
    assert re.search(r"2 <span>&rarr;</span> 1 <span>&rarr;</span> 0", html)
    # The last missed call in the sub-account's own time, as its contractor would say it.
    local = called.astimezone(ZoneInfo("America/Chicago"))
    assert local.strftime("%b %d, %H:%M ") + local.tzname() in html


# --- Test text ---


def test_a_test_text_reaches_the_users_own_phone_and_is_never_a_missed_call(contractor, sandbox):
    from workers.test_text import TEST_PREFIX, send_test_text

    _, csrf = page(contractor)
    response = contractor.post("/app/settings/test-text", data={"csrf": csrf, "template": "after_hours"})
    assert response.status_code == 303
    with db.session() as s:
        row = s.scalar(select(TestText))
    assert (row.location_id, row.user_id, row.status) == (ACME, MIKE, "queued")
    outcome = send_test_text(row.id)
    assert outcome.startswith("sent to +")
    (text,) = sandbox.sent_messages(locationId=ACME)
    assert text["body"].startswith(TEST_PREFIX) and "We're closed right now" in text["body"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(MissedCall)) == 0
        assert s.scalar(select(func.count()).select_from(SendIntent)) == 0
    assert contractor.get("/app/settings/test-text").get_json()["status"] == "sent"


def test_a_test_text_needs_a_known_message(contractor):
    _, csrf = page(contractor)
    assert contractor.post("/app/settings/test-text", data={"csrf": csrf, "template": "../../etc"}).status_code == 400


def test_test_texts_are_limited_per_hour(contractor):
    _, csrf = page(contractor)
    answers = [contractor.post("/app/settings/test-text", data={"csrf": csrf, "template": "business_hours"}).status_code
               for _ in range(6)]
    assert answers == [303] * 5 + [429]


@pytest.mark.parametrize("context", [{"role": "user"}, {"role": "account-user"}, {"role": None},
                                     {"type": "location"}, {"type": None}])
def test_only_an_agency_admin_changes_or_applies_the_agency_defaults(tb_app, acme, tb_settings, context):
    """Agency users who are no admins (or a payload that does not say agency) see the page read-only, and their
    forged POSTs (with a valid CSRF token) change nothing."""

    with db.transaction() as s:
        s.get(Company, SEED_COMPANY_ID).default_settings = {"daily_cap": 40}
        row = s.get(LocationSettings, ACME) or LocationSettings(location_id=ACME, enabled=True, values={})
        row.values, row.enabled = {"cooldown_hours": 2}, True
        s.merge(row)
    viewer = tb_app.test_client()
    sign_in(viewer, tb_settings.ghl_sso_key, **({"type": "agency", "activeLocation": None, "userName": "Val"}
                                                | context))
    html, csrf = page(viewer)
    assert "Only an agency admin can change the agency defaults" in html
    assert re.search(r'<button type="submit" name="action" value="push" disabled>', html)
    assert re.search(f'id="pick-{ACME}" aria-label="[^"]+" disabled>', html)
    assert '<fieldset disabled class="read-only"' in html and "Save agency defaults" in html
    form = dict(form_of(html[html.index('id="defaults"'):]), daily_cap="1", csrf=csrf)
    attempts = [("/app/agency/defaults", form)] + [
        ("/app/agency/sub-accounts", {"csrf": csrf, "action": action, "location_id": ACME})
        for action in ("push", "off", "on")]
    for path, data in attempts:
        response = viewer.post(path, data=data)
        assert response.status_code == 403, path
        assert "Nothing was changed. Only an agency admin" in response.get_data(as_text=True)
    with db.session() as s:
        assert s.get(Company, SEED_COMPANY_ID).default_settings == {"daily_cap": 40}
        assert s.get(LocationSettings, ACME).values == {"cooldown_hours": 2}
        assert s.get(LocationSettings, ACME).enabled is True


def test_an_agency_admin_demoted_in_highlevel_is_read_only_at_the_next_sign_in(agency, tb_settings):

    html, csrf = page(agency)
    assert "Only an agency admin" not in html and "<fieldset disabled" not in html
    # The iframe asks HighLevel again on every load: same user, same agency, now a plain user.
    sign_in(agency, tb_settings.ghl_sso_key, type="agency", activeLocation=None, userName="Ann Agency", role="user")
    assert agency.post("/app/agency/sub-accounts",
                       data={"csrf": csrf, "action": "off", "location_id": ACME}).status_code == 403
    assert "Only an agency admin" in page(agency)[0]


def _preview_json(html: str) -> dict:
    import json
    from html import unescape

    return json.loads(unescape(re.search(r'<script type="application/json" id="preview-data">(.*?)</script>',
                                         html, re.S).group(1)))


def test_without_calls_the_preview_uses_a_sample_name_and_says_so(contractor, agency):
    html, _ = page(contractor)
    data = _preview_json(html)
    assert data["values"]["first_name"] == "Jordan" and data["sample"] is True
    assert "Preview with a sample caller's name, Jordan (your callers' own names once calls come in):" in html
    assert "for your latest caller" not in html
    agency_html, _ = page(agency)  # the agency's defaults have no callers at all
    assert _preview_json(agency_html)["values"]["first_name"] == "Jordan"
    assert "with a sample caller's name, Jordan" in agency_html


def test_with_a_call_the_preview_uses_the_latest_callers_real_name(contractor):
    from integration.sandbox.seed import SEED_CONTACT_IDS

    with db.transaction() as s:
        s.add(MissedCall(call_key="preview:1", location_id=ACME, contact_id=SEED_CONTACT_IDS[ACME][1],
                         call_status="no-answer", status="sent", created_at=utcnow()))
    html, _ = page(contractor)
    data = _preview_json(html)
    assert data["sample"] is False and data["values"]["first_name"] not in (None, "Jordan")
    assert f"Preview for your latest caller, {data['values']['first_name']}:" in html
    assert "sample caller" not in html
