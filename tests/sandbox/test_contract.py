"""The sandbox's answers validate against the official HighLevel specs.

Uses integration.ghl.contract.SpecValidator (the vendored specs plus the known deviations listed
there, each with its reason). Where the sandbox follows documented reality rather than the spec,
the deviation is in that table, not here:
  - GET /conversations/{id}/messages answers nested {"messages": {"messages": [...]}} (facts §3.3);
  - POST /oauth/locationToken answers 201 (measured), the spec says 200 (facts §1.3);
  - pipeline stages are objects, the spec types them as arrays (facts §5.1);
  - GET /contacts/search/duplicate answers {"contact": {...} | null}, the spec has no schema (facts §4.2);
  - the send-message answer's `status` and request's `subType`/`status` are optional (facts §3.1).
Answers with statuses an operation does not list (404 for a missing contact, 403, 429) must have
HighLevel's common error shape (facts §11).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integration.config import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from integration.ghl.contract import SpecValidator
from integration.sandbox.seed import (
    SEED_CALENDAR_IDS,
    SEED_COMPANY_ID,
    SEED_CONTACT_IDS,
    SEED_DND_CONTACT_ID,
    SEED_LOCATION_IDS,
    SEED_MISSED_CALL_PIPELINE_IDS,
    stage_id,
)

ACME = SEED_LOCATION_IDS[0]
DANA, LUIS = SEED_CONTACT_IDS[ACME][0], SEED_CONTACT_IDS[ACME][1]
PIPELINE = SEED_MISSED_CALL_PIPELINE_IDS[ACME]


@pytest.fixture(scope="module")
def validator() -> SpecValidator:
    spec = SpecValidator()
    spec.load_all()
    return spec


@pytest.fixture
def call(sandbox, validator):
    """Send a request to the sandbox and assert request and answer both match the spec."""

    def send(method: str, path: str, token: str | None, *, expect: int, request_on_spec: bool = True, **kwargs):
        answer = sandbox.api(method, path, token, **kwargs)
        assert answer.status_code == expect, f"{method} {path}: {answer.status_code} {answer.text[:300]}"
        if request_on_spec:
            validator.validate(answer.request, answer)
        else:  # a deliberately wrong request: only the answer must be on spec
            validator.validate_response(answer.request, answer)
        return answer

    return send


def _token_request(sandbox, validator, form: dict, *, expect: int):
    answer = sandbox.http.post(f"{sandbox.url}/oauth/token", data=form, timeout=30)
    assert answer.status_code == expect, answer.text
    validator.validate(answer.request, answer)
    return answer.json()


def test_oauth_token_answers(sandbox, validator):
    base = {"client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET}
    location = _token_request(sandbox, validator, {**base, "grant_type": "authorization_code",
                                                   "code": sandbox.authorize(ACME)}, expect=200)
    _token_request(sandbox, validator, {**base, "grant_type": "refresh_token", "user_type": "Location",
                                        "refresh_token": location["refresh_token"]}, expect=200)
    _token_request(sandbox, validator, {**base, "grant_type": "refresh_token",
                                        "refresh_token": location["refresh_token"]}, expect=401)
    _token_request(sandbox, validator, {**base, "grant_type": "authorization_code",
                                        "code": sandbox.authorize(bulk=True)}, expect=200)


def test_agency_endpoints(sandbox, call):
    company = sandbox.tokens(bulk=True)["access_token"]
    app_id = SANDBOX_CLIENT_ID.split("-")[0]

    call("POST", "/oauth/locationToken", company, data={"companyId": SEED_COMPANY_ID, "locationId": ACME},
         expect=201)
    call("GET", "/oauth/installedLocations", company, params={"companyId": SEED_COMPANY_ID, "appId": app_id,
                                                              "isInstalled": "true", "limit": "2"}, expect=200)
    call("GET", f"/locations/{ACME}", company, expect=200)
    call("GET", "/users/search", company, params={"companyId": SEED_COMPANY_ID, "locationId": ACME}, expect=200)
    call("GET", f"/contacts/{DANA}", company, expect=401)


def test_contact_endpoints(sandbox, call):
    token = sandbox.tokens(ACME)["access_token"]
    due = (datetime.now(UTC) + timedelta(days=1)).isoformat()

    call("GET", f"/contacts/{DANA}", token, expect=200)
    call("PUT", f"/contacts/{LUIS}", token, json={"dndSettings": {"SMS": {"status": "active"}}, "dnd": False},
         expect=200)
    call("GET", "/contacts/search/duplicate", token, params={"locationId": ACME, "number": "+15125550120"},
         expect=200)
    call("GET", "/contacts/search/duplicate", token, params={"locationId": ACME, "number": "+15125550999"},
         expect=200)
    call("POST", f"/contacts/{DANA}/tags", token, json={"tags": ["missed-call"]}, expect=201)
    call("DELETE", f"/contacts/{DANA}/tags", token, json={"tags": ["missed-call"]}, expect=200)
    call("POST", f"/contacts/{DANA}/notes", token, json={"body": "Missed call, texted back"}, expect=201)
    call("POST", f"/contacts/{DANA}/tasks", token, json={"title": "Call back", "dueDate": due, "completed": False},
         expect=201)
    call("GET", "/contacts/NoSuchContact0000000", token, expect=404)
    call("PUT", f"/contacts/{LUIS}", token, json={"nope": 1}, expect=422)
    call("GET", f"/contacts/{SEED_CONTACT_IDS[SEED_LOCATION_IDS[1]][0]}", token, expect=403)


def test_conversation_endpoints(sandbox, call):
    token = sandbox.tokens(ACME)["access_token"]
    sandbox.place_call(ACME, "+15125550120", "answered", duration=45)
    sandbox.place_call(ACME, "+15125550120", "no-answer")
    sandbox.reply(ACME, "+15125550120", "Can you come today?")

    sent = call("POST", "/conversations/messages", token,
                json={"type": "SMS", "contactId": DANA, "message": "Sorry we missed you"}, expect=200).json()
    call("POST", "/conversations/messages", token,
         json={"type": "SMS", "contactId": SEED_DND_CONTACT_ID, "message": "x"}, expect=400)
    call("GET", "/conversations/search", token, params={"locationId": ACME, "contactId": DANA}, expect=200)
    call("GET", "/conversations/search", token, params={"locationId": ACME, "limit": 5}, expect=200)
    call("GET", f"/conversations/{sent['conversationId']}/messages", token, expect=200)
    call("GET", f"/conversations/{sent['conversationId']}/messages", token,
         params={"type": "TYPE_CALL,TYPE_SMS", "limit": 2}, expect=200)


def test_opportunity_endpoints(sandbox, call):
    token = sandbox.tokens(ACME)["access_token"]

    call("GET", "/opportunities/pipelines", token, params={"locationId": ACME}, expect=200)
    created = call("POST", "/opportunities/", token, json={
        "pipelineId": PIPELINE, "locationId": ACME, "name": "Missed call - Dana", "status": "open",
        "contactId": DANA, "monetaryValue": 250}, expect=201).json()["opportunity"]
    call("PUT", f"/opportunities/{created['id']}", token, json={"pipelineStageId": stage_id(PIPELINE, "Replied")},
         expect=200)
    call("PUT", f"/opportunities/{created['id']}/status", token, json={"status": "won"}, expect=200)
    call("GET", "/opportunities/search", token, params={"location_id": ACME, "contact_id": DANA,
                                                        "pipeline_id": PIPELINE, "status": "all"}, expect=200)
    call("GET", "/opportunities/search", token, params={"locationId": ACME}, expect=422, request_on_spec=False)


def test_calendar_endpoints(sandbox, call):
    token = sandbox.tokens(ACME)["access_token"]
    calendar = SEED_CALENDAR_IDS[ACME]
    start = datetime.now(UTC) + timedelta(days=1)
    end = start + timedelta(days=7)

    call("GET", "/calendars/", token, params={"locationId": ACME}, expect=200)
    slots = call("GET", f"/calendars/{calendar}/free-slots", token,
                 params={"startDate": int(start.timestamp() * 1000), "endDate": int(end.timestamp() * 1000),
                         "timezone": "America/Chicago"}, expect=200).json()
    first = next(s for day in slots.values() for s in day["slots"])
    call("POST", "/calendars/events/appointments", token,
         json={"calendarId": calendar, "locationId": ACME, "contactId": DANA, "startTime": first,
               "title": "Leak repair"}, expect=200)


def test_location_and_user_endpoints(sandbox, call):
    token = sandbox.tokens(ACME)["access_token"]

    call("GET", f"/locations/{ACME}", token, expect=200)
    call("GET", "/users/", token, params={"locationId": ACME}, expect=200)
    call("GET", "/users/search", token, params={"companyId": SEED_COMPANY_ID}, expect=200)
    call("GET", f"/locations/{SEED_LOCATION_IDS[2]}", token, expect=403)


def test_error_answers_have_highlevels_shapes(sandbox, call):
    token = sandbox.tokens(ACME)["access_token"]
    sandbox.configure(rate_limit=1, rate_window=60)

    call("GET", f"/locations/{ACME}", "not-a-token", expect=401)
    call("GET", f"/locations/{ACME}", token, expect=200)
    call("GET", f"/locations/{ACME}", token, expect=429)
