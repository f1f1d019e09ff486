"""Fault switches: what a flaky HighLevel does to the app, on demand."""

from __future__ import annotations

import pytest
import requests

from integration.sandbox.seed import SEED_CONTACT_IDS, SEED_LOCATION_IDS

ACME = SEED_LOCATION_IDS[0]
LUIS = SEED_CONTACT_IDS[ACME][1]
SMS = {"type": "SMS", "contactId": LUIS, "message": "Sorry we missed you!"}


@pytest.fixture
def token(sandbox) -> str:
    return sandbox.tokens(ACME)["access_token"]


def _send(sandbox, token, **kwargs):
    return sandbox.api("POST", "/conversations/messages", token, json=SMS, **kwargs)


def test_429_fault_fires_the_given_number_of_times_without_acting(sandbox, token):
    sandbox.fault("429", r"^/conversations/messages$", method="POST", times=2, delay=7)

    first, second, third = (_send(sandbox, token) for _ in range(3))

    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.json() == {"statusCode": 429, "message": "Too Many Requests"}
    assert first.headers["Retry-After"] == "7"
    assert len(sandbox.sent_messages(contactId=LUIS)) == 1


def test_500_fault_does_not_record_the_message(sandbox, token):
    sandbox.fault("500", r"^/conversations/messages$")

    answer = _send(sandbox, token)

    assert answer.status_code == 500
    assert answer.json()["statusCode"] == 500
    assert sandbox.sent_messages(contactId=LUIS) == []


def test_html_error_is_a_502_page(sandbox, token):
    sandbox.fault("html_error", r"^/contacts/")

    answer = sandbox.api("GET", f"/contacts/{LUIS}", token)

    assert answer.status_code == 502
    assert answer.headers["Content-Type"].startswith("text/html")


def test_empty_body_fault_acts_but_answers_nothing(sandbox, token):
    sandbox.fault("empty_body", r"^/conversations/messages$")

    answer = _send(sandbox, token)

    assert answer.status_code == 200 and answer.content == b""
    assert len(sandbox.sent_messages(contactId=LUIS)) == 1


def test_slow_fault_still_answers(sandbox, token):
    sandbox.fault("slow", r"^/contacts/", delay=0.2)

    answer = sandbox.api("GET", f"/contacts/{LUIS}", token)

    assert answer.status_code == 200
    assert [e["fault"] for e in sandbox.requests_log(path="^/contacts/")] == ["slow"]


def test_timeout_after_accept_records_the_message_but_the_client_times_out(sandbox, token):
    sandbox.fault("timeout_after_accept", r"^/conversations/messages$", delay=3)

    with pytest.raises(requests.Timeout):
        _send(sandbox, token, timeout=0.5)

    sent = sandbox.sent_messages(contactId=LUIS)
    assert [m["body"] for m in sent] == [SMS["message"]]
    thread = sandbox.thread(LUIS)["messages"]
    assert thread[-1]["id"] == sent[0]["messageId"] and thread[-1]["direction"] == "outbound"
    outbound = sandbox.deliveries(type="OutboundMessage")
    assert [d["payload"]["messageId"] for d in outbound] == [sent[0]["messageId"]]


def test_faults_match_method_and_path(sandbox, token):
    sandbox.fault("500", r"^/conversations/messages$", method="POST", times=None)

    assert sandbox.api("GET", f"/contacts/{LUIS}", token).status_code == 200
    assert _send(sandbox, token).status_code == 500
    assert _send(sandbox, token).status_code == 500
    sandbox.control("DELETE", "faults")
    assert _send(sandbox, token).status_code == 200


def test_faults_can_target_one_location(sandbox, token):
    other = sandbox.tokens(SEED_LOCATION_IDS[1])["access_token"]
    sandbox.fault("500", r"^/locations/", location_id=SEED_LOCATION_IDS[1], times=None)

    assert sandbox.api("GET", f"/locations/{ACME}", token).status_code == 200
    assert sandbox.api("GET", f"/locations/{SEED_LOCATION_IDS[1]}", other).status_code == 500


def test_faults_apply_to_the_token_endpoint(sandbox):
    tokens = sandbox.tokens(ACME)
    sandbox.fault("500", r"^/oauth/token$")

    assert sandbox.refresh(tokens["refresh_token"]).status_code == 500
    # The fault answered before acting: the refresh token was not consumed.
    assert sandbox.refresh(tokens["refresh_token"]).status_code == 200


def test_bad_fault_definitions_are_refused(sandbox):
    answer = sandbox.http.post(f"{sandbox.url}/_sandbox/faults", json={"mode": "explode"}, timeout=10)

    assert answer.status_code == 400
    assert "mode must be one of" in answer.json()["error"]


def test_request_log_never_holds_tokens(sandbox):
    tokens = sandbox.tokens(ACME)
    sandbox.refresh(tokens["refresh_token"])

    log = sandbox.http.get(f"{sandbox.url}/_sandbox/requests", timeout=10).text

    assert tokens["refresh_token"] not in log and tokens["access_token"] not in log
    entries = sandbox.requests_log(path="^/oauth/token$")
    assert [(e["grant_type"], e["status"]) for e in entries] == [("authorization_code", 200), ("refresh_token", 200)]
