"""marketplace.json agrees with the code: routes exist, events are handled, scopes cover the client."""

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from workers.handlers import HANDLERS, IGNORED_EVENTS

MANIFEST = json.loads((Path(__file__).parent.parent / "marketplace.json").read_text())

# Every scope string HighLevel documents for the features we use (ghl-api-facts.md §10.2).
KNOWN_SCOPES = {
    "conversations.readonly", "conversations.write", "conversations/message.readonly", "conversations/message.write",
    "contacts.readonly", "contacts.write", "opportunities.readonly", "opportunities.write", "calendars.readonly",
    "calendars/events.readonly", "calendars/events.write", "locations.readonly", "locations/customValues.readonly",
    "users.readonly", "oauth.readonly", "oauth.write",
}
# Which scope each webhook event needs (ghl-api-facts.md §2.4); INSTALL/UNINSTALL need none.
EVENT_SCOPES = {
    "InboundMessage": "conversations/message.readonly", "OutboundMessage": "conversations/message.readonly",
    "ContactDndUpdate": "contacts.readonly", "ContactUpdate": "contacts.readonly", "ContactDelete": "contacts.readonly",
    "OpportunityStageUpdate": "opportunities.readonly", "OpportunityStatusUpdate": "opportunities.readonly",
    "AppointmentCreate": "calendars/events.readonly",
}


def _route_methods(app, path):
    adapter = app.url_map.bind("localhost")
    methods = set()
    for rule in app.url_map.iter_rules():
        if rule.rule == path:
            methods |= rule.methods
    assert adapter is not None
    return methods


def _path(url_template):
    return urlsplit(url_template.replace("{PUBLIC_BASE_URL}", "https://app.example.com")).path


def test_manifest_describes_a_sub_account_app_with_bulk_install():
    assert MANIFEST["targetUser"] == "Sub-account"
    assert MANIFEST["whoCanInstall"] == "Agency & Sub-account"
    assert MANIFEST["allowBulkInstallation"] is True
    assert MANIFEST["name"] and MANIFEST["description"]


@pytest.mark.parametrize(
    ("key", "method"),
    [("redirectUri", "GET"), ("webhookUrl", "POST")],
)
def test_manifest_urls_are_routes(app, key, method):
    assert method in _route_methods(app, _path(MANIFEST[key])), f"{MANIFEST[key]} has no {method} route"


def test_custom_page_and_sso_are_routes(app):
    assert "GET" in _route_methods(app, _path(MANIFEST["customPage"]["url"]))
    assert "POST" in _route_methods(app, _path(MANIFEST["sso"]["endpoint"]))


def test_every_subscribed_event_is_handled_or_deliberately_ignored():
    for event in MANIFEST["webhookEvents"]:
        assert event in HANDLERS or event in IGNORED_EVENTS, f"{event} is subscribed but has no handler"
    assert not set(HANDLERS) & set(IGNORED_EVENTS)


def test_scopes_are_exact_highlevel_strings_without_duplicates():
    scopes = MANIFEST["scopes"]
    assert len(scopes) == len(set(scopes))
    assert set(scopes) <= KNOWN_SCOPES, set(scopes) - KNOWN_SCOPES


def test_every_event_has_its_scope():
    for event in MANIFEST["webhookEvents"]:
        needed = EVENT_SCOPES.get(event)
        assert needed is None or needed in MANIFEST["scopes"], f"{event} needs {needed}"
