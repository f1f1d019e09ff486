"""marketplace.json agrees with the code: routes exist, events are handled, scopes cover the client."""

import contextlib
import json
from pathlib import Path
from urllib.parse import urlsplit

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
    "AppointmentCreate": "calendars/events.readonly", "LocationUpdate": "locations.readonly",
    # The scope table lists no User* events; users.readonly is the scope that reads users (presumed, unverified).
    "UserCreate": "users.readonly", "UserUpdate": "users.readonly", "UserDelete": "users.readonly",
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


def test_redirect_uri_is_a_route(app):
    assert "GET" in _route_methods(app, _path(MANIFEST["redirectUri"]))


def test_webhook_url_is_served_by_the_receiver(app):
    """The receiver is mounted in front of Flask (integration.webhooks), so it has no Flask rule: ask it."""
    response = app.test_client().post(_path(MANIFEST["webhookUrl"]), data=b"{}")
    assert response.status_code == 401  # unsigned, so refused, by the receiver rather than a 404 or 405


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


# --- every scope the client's methods need is requested -----------------------------------------

class _Captured(Exception):
    pass


def _operations_called_by_client() -> dict[str, tuple[str, str]]:
    """Call every public GHLClient method with placeholder ids; capture (method, path) instead of sending."""
    import inspect
    from datetime import UTC, datetime

    from integration.ghl.client import GHLClient

    client = GHLClient(base_url="https://services.leadconnectorhq.com", client_id="c", client_secret="s")
    seen: dict[str, tuple[str, str]] = {}
    current = {"name": ""}

    def capture(method, path, **_kwargs):
        seen[current["name"]] = (method, path)
        raise _Captured

    client._call = capture
    now = datetime.now(UTC)
    samples = {"location_id": "L1", "company_id": "C1", "contact_id": "K1", "conversation_id": "V1",
               "opportunity_id": "O1", "calendar_id": "A1", "code": "x", "refresh_token": "r", "phone": "+15125550100",
               "fields": {"firstName": "A"}, "tags": ["t"], "body": "b", "active": True, "status": "won",
               "message": "m", "pipeline_id": "P1", "name": "n", "title": "t", "due_date": now, "start": now,
               "end": now, "start_time": now, "user_type": "Location", "app_id": "a" * 24}
    for name, method in inspect.getmembers(client, inspect.ismethod):
        if name.startswith("_"):
            continue
        params = inspect.signature(method).parameters.values()
        args = {p.name: samples[p.name] for p in params if p.default is inspect.Parameter.empty
                and p.kind is not inspect.Parameter.VAR_KEYWORD}
        current["name"] = name
        with contextlib.suppress(_Captured):
            method(**args)
    return seen


def test_every_scope_the_client_needs_is_requested():
    from integration.ghl.contract import SpecValidator

    validator = SpecValidator()
    operations = _operations_called_by_client()
    assert len(operations) >= 25, sorted(operations)
    requested = set(MANIFEST["scopes"])
    for name, (method, path) in operations.items():
        operation = validator.operation_for(method, path)
        document = validator._load(operation.spec).document
        security = document["paths"][operation.template][method.lower()].get("security") or []
        needed = {scope for requirement in security for scopes in requirement.values() for scope in scopes}
        assert not needed or needed & requested, f"{name} ({method} {operation.template}) needs one of {needed}"
