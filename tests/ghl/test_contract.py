"""The contract validator catches what it must: requests and answers that break the official specs."""

from __future__ import annotations

import json

import pytest
import requests

from integration.ghl.contract import KNOWN_SPEC_DEVIATIONS, ContractViolation, SpecValidator
from tests.ghl.scripted_server import json_reply
from tests.plugins.contract import ContractRecorder

SANDBOX = "http://127.0.0.1:5001"
LOCATION_HEADERS = {"Version": "2021-04-15", "Authorization": "Bearer some-token"}


def prepared(method: str, path: str, **kwargs) -> requests.PreparedRequest:
    return requests.Request(method, SANDBOX + path, **kwargs).prepare()


def answer(status: int, body, content_type: str = "application/json") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response.headers["Content-Type"] = content_type
    return response


@pytest.fixture(scope="module")
def validator() -> SpecValidator:
    return SpecValidator()


# ---------------------------------------------------------------- requests


def test_a_conforming_send_message_passes(validator):
    request = prepared("POST", "/conversations/messages", headers=LOCATION_HEADERS,
                       json={"type": "SMS", "contactId": "c1", "message": "Sorry we missed you"})
    assert validator.request_problems(request) == []


def test_missing_version_header_is_caught(validator):
    request = prepared("POST", "/conversations/messages", headers={"Authorization": "Bearer t"},
                       json={"type": "SMS", "contactId": "c1", "message": "hi"})

    with pytest.raises(ContractViolation) as caught:
        validator.validate_request(request)

    assert caught.value.problems == ["request: Missing required header parameter: Version"]


def test_missing_required_body_field_is_caught(validator):
    # send_message without contactId, built by hand (the client cannot build it).
    request = prepared("POST", "/conversations/messages", headers=LOCATION_HEADERS,
                       json={"type": "SMS", "message": "hi"})

    with pytest.raises(ContractViolation) as caught:
        validator.validate_request(request)

    assert caught.value.problems == ["request body: 'contactId' is a required property"]


def test_the_version_of_another_service_is_caught(validator):
    request = prepared("GET", "/calendars/", params={"locationId": "L1"},
                       headers={"Version": "2021-07-28", "Authorization": "Bearer t"})
    (problem,) = validator.request_problems(request)
    assert problem == "request: header parameter Version: '2021-07-28' is not one of ['2021-04-15']"


def test_missing_bearer_is_caught_where_security_requires_it(validator):
    request = prepared("GET", "/contacts/c1", headers={"Version": "2021-07-28"})
    assert validator.request_problems(request) == [
        "request: no valid Authorization header (the operation requires a bearer token)"]


def test_missing_required_query_parameter_is_caught(validator):
    request = prepared("GET", "/opportunities/search", params={"locationId": "L1"},  # the API wants location_id
                       headers={"Version": "2021-07-28", "Authorization": "Bearer t"})
    assert validator.request_problems(request) == ["request: Missing required query parameter: location_id"]


def test_json_where_the_spec_wants_a_form_is_caught(validator):
    request = prepared("POST", "/oauth/token", json={"client_id": "a", "client_secret": "b",
                                                      "grant_type": "authorization_code", "code": "c"})
    (problem,) = validator.request_problems(request)
    assert "application/json" in problem and "x-www-form-urlencoded" in problem


def test_unknown_operation_is_caught(validator):
    with pytest.raises(ContractViolation, match="no such operation"):
        validator.operation_for("POST", SANDBOX + "/contacts/c1/bogus")
    assert validator.request_problems(prepared("GET", "/nowhere/x")) == ["no vendored spec covers /nowhere/x"]


def test_violations_never_quote_secrets(validator):
    secret = "client-secret-never-in-a-report"
    request = prepared("POST", "/oauth/token", data={"client_id": "a", "client_secret": secret, "grant_type": "bogus"})
    problems = validator.request_problems(request)
    assert problems and secret not in " ".join(problems)


# ---------------------------------------------------------------- answers


def test_answer_missing_a_required_field_is_caught(validator):
    request = prepared("POST", "/conversations/messages", headers=LOCATION_HEADERS,
                       json={"type": "SMS", "contactId": "c1", "message": "hi"})
    assert validator.response_problems(request, answer(200, {"conversationId": "x", "msg": "queued"})) == [
        "answer 200: 'messageId' is a required property"]


def test_html_and_empty_answers_are_caught(validator):
    request = prepared("GET", "/locations/L1", headers={"Version": "2021-07-28", "Authorization": "Bearer t"})
    (html,) = validator.response_problems(request, answer(200, b"<html></html>", "text/html"))
    (empty,) = validator.response_problems(request, answer(200, b""))
    assert "text/html" in html
    assert "Missing response data" in empty


def test_undocumented_status_is_caught_but_common_errors_need_highlevels_shape(validator):
    request = prepared("GET", "/contacts/c1", headers={"Version": "2021-07-28", "Authorization": "Bearer t"})
    assert validator.response_problems(request, answer(418, {})) == [
        "status 418 is not documented for this operation (documented: 200, 400, 401, 422)"]
    assert validator.response_problems(request, answer(404, {"statusCode": 404, "message": "Not found"})) == []
    (shape,) = validator.response_problems(request, answer(404, {"statusCode": 404}))
    assert "'message' is a required property" in shape


# ---------------------------------------------------------------- the deviations table


def test_every_deviation_still_applies_and_says_why():
    SpecValidator().load_all()  # each patch asserts its quirk is still in the vendored spec
    for deviation in KNOWN_SPEC_DEVIATIONS:
        assert deviation.reason and "ghl-api-facts" in deviation.reason


def test_without_the_deviations_the_quirks_would_fail_real_traffic():
    strict = SpecValidator(deviations=())
    send = prepared("POST", "/conversations/messages", headers=LOCATION_HEADERS,
                    json={"type": "SMS", "contactId": "c1", "message": "hi"})
    assert "request body: 'subType' is a required property" in strict.request_problems(send)
    nested = prepared("GET", "/conversations/conv1/messages", headers=LOCATION_HEADERS)
    body = {"messages": {"lastMessageId": "m1", "nextPage": False, "messages": []}}
    assert strict.response_problems(nested, answer(200, body))
    assert SpecValidator().response_problems(nested, answer(200, body)) == []


# ---------------------------------------------------------------- the recorder hooks a session


def test_recorder_catches_a_hand_built_request_sent_through_a_hooked_session(validator, scripted):
    recorder = ContractRecorder(validator)
    session = recorder.session()
    scripted.queue(json_reply({"conversationId": "x", "messageId": "m", "msg": "queued"}),
                   json_reply({"conversationId": "x", "messageId": "m", "msg": "queued"}))

    session.post(scripted.url + "/conversations/messages", json={"type": "SMS", "message": "no contact id"},
                 headers={"Authorization": "Bearer t"}, timeout=5)
    session.post(scripted.url + "/conversations/messages", json={"type": "SMS", "contactId": "c1"},
                 headers=LOCATION_HEADERS, timeout=5)

    (bad,) = recorder.violations
    assert bad.problems == ["request: Missing required header parameter: Version",
                            "request body: 'contactId' is a required property"]
    with pytest.raises(pytest.fail.Exception, match="1 exchange"):
        recorder.assert_clean()
