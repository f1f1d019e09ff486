"""The app page in Chromium, embedded the way HighLevel embeds it: a host page on another origin loads
crypto-js (tests/vendor), encrypts the user context with the app's shared secret, frames our /app and
answers its REQUEST_USER_DATA postMessage. The contractor edits a template and watches the preview and
segment count, saves with the keyboard, sends a test text that arrives in the sandbox; the agency changes
a default and a sub-account that did not override it shows it. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from integration.embedded_redis import free_port
from integration.sandbox.seed import SEED_COMPANY_ID, SEED_USER_IDS
from integration.textback.template import render, segment_info
from tests.cryptojs import CRYPTO_JS
from tests.textback.conftest import ACME

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
MIKE = SEED_USER_IDS[ACME][0]

HOST_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>HighLevel (test host)</title>
<script src="/crypto-js.js"></script></head>
<body style="margin:0;font-family:sans-serif;background:#eef1f5">
<div style="padding:10px 16px;background:#155eef;color:#fff">HighLevel · {label}</div>
<iframe id="app" src="{app}" title="TextBack" style="width:100%;height:1500px;border:0;background:#fff"></iframe>
<script>
  var context = {context}, secret = {secret};
  var frame = document.getElementById("app");
  window.addEventListener("message", function (event) {{
    if (event.source !== frame.contentWindow || !event.data || event.data.message !== "REQUEST_USER_DATA") {{ return; }}
    var payload = CryptoJS.AES.encrypt(JSON.stringify(context), secret).toString();
    frame.contentWindow.postMessage({{ message: "REQUEST_USER_DATA_RESPONSE", payload: payload }}, "*");
  }});
</script></body></html>"""


@pytest.fixture
def highlevel_host(app_url, settings):
    """Plays HighLevel on its own origin: /location and /agency frame the app with that user's context."""
    contexts = {
        "/location": ("Acme Plumbing", {"userId": MIKE, "companyId": SEED_COMPANY_ID, "role": "admin",
                                        "type": "location", "activeLocation": ACME, "userName": "Mike Alvarez",
                                        "email": "mike@example.com"}),
        "/agency": ("Agency view", {"userId": "AgencyAdmin000000001", "companyId": SEED_COMPANY_ID,
                                    "role": "admin", "type": "agency", "userName": "Ann Agency"}),
    }

    @Request.application
    def host(request: Request) -> Response:
        if request.path == "/crypto-js.js":
            return Response(CRYPTO_JS.read_bytes(), mimetype="text/javascript")
        if request.path not in contexts:
            return Response("not found", status=404)
        label, context = contexts[request.path]
        return Response(HOST_PAGE.format(label=label, app=f"{app_url}/app", context=json.dumps(context),
                                         secret=json.dumps(settings.ghl_sso_key)), mimetype="text/html")

    port = free_port()
    server = make_server("127.0.0.1", port, host, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def install_everything(page, app_url):
    page.goto(f"{app_url}/oauth/install")
    page.get_by_label("Bulk install", exact=False).check()
    page.get_by_role("button", name="Install").click()
    expect(page.get_by_text("TextBack is installed")).to_be_visible()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def tab_to(page, frame, element_id: str, *, limit: int = 300) -> None:
    """Press Tab until the element has the focus: the keyboard alone reaches it."""
    for _ in range(limit):
        if frame.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id}")


def test_contractor_edits_a_template_saves_by_keyboard_and_gets_a_test_text(sandbox, app_url, worker, page,
                                                                           highlevel_host):
    install_everything(page, app_url)
    page.goto(f"{highlevel_host}/location")
    app = page.frame_locator("#app")
    expect(app.get_by_role("heading", name="Messages")).to_be_visible(timeout=15_000)
    frame = page.frame(url=lambda url: url.startswith(app_url))

    # Every control has a label a screen reader announces.
    unlabelled = frame.evaluate("""Array.from(document.querySelectorAll(
        '#settings-form input, #settings-form select, #settings-form textarea'))
        .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
        .map(e => e.name)""")
    assert unlabelled == []

    # The preview follows the typing: a sample caller's name (no calls yet, and it says so), the segment count,
    # UCS-2 for an emoji.
    template = app.locator("#template_business_hours")
    template.fill("Hi {first_name|there}, sorry we missed you!")
    expect(app.locator("#template_business_hours-preview")).to_have_text("Hi Jordan, sorry we missed you!")
    expect(app.locator("#template_business_hours-preview-label")).to_contain_text("with a sample caller's name, Jordan")
    expect(app.locator("#template_business_hours-meta")).to_contain_text("1 segment")
    expect(app.locator("#template_business_hours-meta")).to_contain_text("GSM-7")
    long_text = "Hi {first_name|there}! " + "We will call you back shortly. " * 7 + "\U0001F600"
    template.fill(long_text)
    expected = segment_info(render(long_text, {"first_name": "Jordan"}))  # the server's count, for what the page shows
    assert (expected.encoding, expected.segments) == ("UCS-2", 4)
    expect(app.locator("#template_business_hours-meta")).to_contain_text(f"{expected.units} characters")
    expect(app.locator("#template_business_hours-meta")).to_contain_text("4 segments · UCS-2")
    expect(app.locator("#template_business_hours-meta")).to_contain_text("it will be cut")
    template.fill("Hi {first_name|there}, this is ")
    # A placeholder chip, pressed with the keyboard, inserts at the cursor.
    tab_to(page, frame, "template_business_hours")
    page.keyboard.press("End")
    chip = app.locator('.chip[data-target="template_business_hours"][data-insert="{business_name}"]')
    chip.focus()
    page.keyboard.press("Space")
    expect(template).to_have_value("Hi {first_name|there}, this is {business_name}")
    app.locator("#business_name").fill("Acme Plumbing")
    expect(app.locator("#template_business_hours-preview")).to_have_text("Hi Jordan, this is Acme Plumbing")
    shot(page, "settings-preview")

    # A bad value: the message is tied to its field, and nothing is lost.
    tab_to(page, frame, "daily_cap")
    page.keyboard.press("Control+A")
    page.keyboard.type("lots")
    page.keyboard.press("Enter")
    expect(app.locator("#daily_cap-error")).to_contain_text("Enter a whole number of texts")
    assert "daily_cap-error" in app.locator("#daily_cap").get_attribute("aria-describedby")
    expect(template).to_have_value("Hi {first_name|there}, this is {business_name}")
    shot(page, "settings-error")

    # Fixed and saved with the keyboard alone.
    tab_to(page, frame, "daily_cap")
    page.keyboard.press("Control+A")
    page.keyboard.type("150")
    page.keyboard.press("Enter")
    expect(app.get_by_text("Saved. The next missed call uses these settings.")).to_be_visible()
    expect(app.locator("#daily_cap")).to_have_value("150")

    # The test text goes through HighLevel to Mike's own phone, marked as a test.
    app.locator("#test-template").select_option("business_hours")
    app.get_by_role("button", name="Send me a test text").click()
    expect(app.locator("#test-text-status")).to_contain_text("Check your phone", timeout=30_000)
    (sent,) = sandbox.sent_messages(locationId=ACME)
    assert sent["body"] == "[TextBack test] Hi Mike, this is Acme Plumbing"
    shot(page, "settings-test-text")


def test_agency_changes_a_default_and_a_sub_account_that_kept_it_follows(sandbox, app_url, page, highlevel_host):
    install_everything(page, app_url)
    page.goto(f"{highlevel_host}/agency")
    app = page.frame_locator("#app")
    expect(app.get_by_role("heading", name="Sub-accounts")).to_be_visible(timeout=15_000)
    expect(app.get_by_role("heading", name="Agency defaults")).to_be_visible()
    shot(page, "agency-page")
    app.locator("#cooldown_hours").fill("6")
    app.locator("#average_job_value").fill("450")
    app.get_by_role("button", name="Save agency defaults").click()
    expect(app.get_by_text("Agency defaults saved.")).to_be_visible()
    expect(app.locator("#cooldown_hours")).to_have_value("6")

    # Turning one sub-account off from the agency page.
    app.locator(f'input[name="location_id"][value="{ACME}"]').check()
    app.get_by_role("button", name="Turn text back off").click()
    expect(app.get_by_text("Text back turned off for the chosen sub-accounts.")).to_be_visible()

    # The user switches to the sub-account in HighLevel: the iframe keeps our cookie, the page notices.
    page.goto(f"{highlevel_host}/location")
    location = page.frame_locator("#app")
    expect(location.locator("#cooldown_hours")).to_have_value("6", timeout=15_000)
    expect(location.locator("#cooldown_hours-help")).to_contain_text("agency default")
    expect(location.get_by_text("text back is off")).to_be_visible()
    shot(page, "location-follows-agency")
