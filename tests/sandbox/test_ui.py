"""The sandbox's web UI, driven over HTTP as a browser would (forms with a CSRF token)."""

from __future__ import annotations

import re

import pytest
import requests

from integration.sandbox.seed import SEED_CONTACT_IDS, SEED_LOCATION_IDS

ACME = SEED_LOCATION_IDS[0]


@pytest.fixture
def browser(sandbox):
    with requests.Session() as session:
        yield session


def _csrf(page: requests.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def _post(browser, sandbox, path: str, form: dict, *, page: str = "/") -> requests.Response:
    token = _csrf(browser.get(sandbox.url + page, timeout=10))
    return browser.post(sandbox.url + path, data={**form, "csrf": token}, timeout=10)


def test_dashboard_shows_the_agency_and_sub_accounts(sandbox, browser):
    page = browser.get(sandbox.url + "/", timeout=10)

    assert page.status_code == 200
    for text in ("BrightPath Marketing", "Acme Plumbing", "Peak Roofing", "Cool Air HVAC", "+15125550100",
                 "America/Phoenix", "Place call", "Arm fault"):
        assert text in page.text


def test_placing_a_missed_call_shows_it_in_the_thread_and_sends_the_webhook(sandbox, browser):
    answer = _post(browser, sandbox, "/ui/calls",
                   {"from": "+1 512 555 0181", "locationId": ACME, "outcome": "no-answer", "duration": "0"})

    assert answer.status_code == 200 and "/ui/contacts/" in answer.url
    assert "missed (no answer)" in answer.text and "+15125550181" in answer.text
    [call] = [d for d in sandbox.deliveries(type="InboundMessage")]
    assert call["payload"]["messageType"] == "CALL" and call["payload"]["status"] == "no-answer"


def test_replying_as_the_caller_adds_an_escaped_inbound_text(sandbox, browser):
    luis = SEED_CONTACT_IDS[ACME][1]

    answer = _post(browser, sandbox, "/ui/replies", {"contactId": luis, "body": "<script>alert(1)</script> hi"},
                   page=f"/ui/contacts/{luis}")

    assert answer.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt; hi" in answer.text
    assert "<script>alert(1)</script>" not in answer.text
    [webhook] = sandbox.deliveries(type="InboundMessage")
    assert webhook["payload"]["body"] == "<script>alert(1)</script> hi"


def test_texts_sent_by_the_app_appear_in_the_thread(sandbox, browser):
    token = sandbox.tokens(ACME)["access_token"]
    luis = SEED_CONTACT_IDS[ACME][1]
    sandbox.api("POST", "/conversations/messages", token,
                json={"type": "SMS", "contactId": luis, "message": "Hi, this is Mike at Acme Plumbing"})

    page = browser.get(f"{sandbox.url}/ui/contacts/{luis}", timeout=10)

    assert "Hi, this is Mike at Acme Plumbing" in page.text
    assert 'class="bubble outbound"' in page.text


def test_the_embedded_apps_session_cookie_does_not_replace_the_sandboxs(sandbox, browser):
    """Browsers (and requests) share cookies between ports of one host: the app the sandbox embeds sets its own
    `session` cookie on 127.0.0.1 too, and a sandbox form posted after that must still pass its CSRF check."""
    token = _csrf(browser.get(sandbox.url + "/", timeout=10))
    browser.cookies.set("session", "the-embedded-apps-session", domain="127.0.0.1", path="/")
    answer = browser.post(sandbox.url + "/ui/calls", data={
        "from": "+1 512 555 0182", "locationId": ACME, "outcome": "no-answer", "duration": "0", "csrf": token},
        timeout=10)
    assert answer.status_code == 200 and "/ui/contacts/" in answer.url


def test_location_page_lists_contacts(sandbox, browser):
    page = browser.get(f"{sandbox.url}/ui/locations/{ACME}", timeout=10)

    assert page.status_code == 200
    assert "Dana Whitfield" in page.text and "SMS DND" in page.text and "Mike Alvarez" in page.text


def test_bad_call_input_is_reported(sandbox, browser):
    answer = _post(browser, sandbox, "/ui/calls", {"from": "not a number", "locationId": ACME, "outcome": "busy"})

    assert answer.status_code == 200
    assert "not a phone number" in answer.text


def test_forms_without_the_csrf_token_are_refused(sandbox, browser):
    answer = browser.post(f"{sandbox.url}/ui/calls", data={"from": "+15125550182", "locationId": ACME,
                                                           "outcome": "busy"}, timeout=10)

    assert answer.status_code == 400
    assert sandbox.deliveries(type="InboundMessage") == []


def test_fault_panel_arms_and_clears_faults(sandbox, browser):
    _post(browser, sandbox, "/ui/faults", {"mode": "500", "path": "^/contacts/", "method": "GET", "times": "2"})
    assert [f["mode"] for f in sandbox.control("GET", "faults")["faults"]] == ["500"]

    _post(browser, sandbox, "/ui/faults/clear", {})

    assert sandbox.control("GET", "faults")["faults"] == []


def test_error_redirects_stay_on_the_sandbox(sandbox, browser):
    answer = _post(browser, sandbox, "/ui/calls", {"from": "x", "locationId": ACME, "outcome": "busy",
                                                   "next": "//evil.example/"})

    assert answer.url.startswith(sandbox.url)


def test_webhooks_page_shows_deliveries(sandbox, browser):
    sandbox.place_call(ACME, "+15125550183", "voicemail", duration=12)

    page = browser.get(f"{sandbox.url}/ui/webhooks", timeout=10)

    assert "InboundMessage" in page.text and "ContactCreate" in page.text


def test_booking_a_job_sends_appointment_create(sandbox, browser):
    luis = SEED_CONTACT_IDS[ACME][1]

    answer = _post(browser, sandbox, "/ui/appointments", {"contactId": luis, "start": "2026-12-01T10:00"},
                   page=f"/ui/contacts/{luis}")

    assert answer.status_code == 200 and "Service call with" in answer.text
    [webhook] = sandbox.deliveries(type="AppointmentCreate")
    appointment = webhook["payload"]["appointment"]
    assert appointment["contactId"] == luis and appointment["startTime"].startswith("2026-12-01T10:00:00-06:00")


@pytest.mark.parametrize(
    "form", [{"start": "tomorrow"}, {"start": ""}, {"start": "2026-12-01T10:00", "contactId": "x"}])
def test_bad_booking_input_is_reported(sandbox, browser, form):
    luis = SEED_CONTACT_IDS[ACME][1]

    answer = _post(browser, sandbox, "/ui/appointments", {"contactId": luis, **form}, page=f"/ui/contacts/{luis}")

    assert answer.status_code == 200
    assert "Pick a date and time" in answer.text or "unknown contact" in answer.text
    assert sandbox.deliveries(type="AppointmentCreate") == []


def test_installed_sub_account_page_embeds_the_app_once_with_a_plain_title(sandbox, browser):
    sandbox.configure(app_page_url="http://127.0.0.1:5000/app")
    sandbox.tokens(ACME)  # installs the app for Acme Plumbing

    page = browser.get(f"{sandbox.url}/ui/locations/{ACME}", timeout=10)

    assert page.text.count('id="app-page"') == 1
    assert "<title>Acme Plumbing \u2013 HighLevel Sandbox</title>" in page.text
