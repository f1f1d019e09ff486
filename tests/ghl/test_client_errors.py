"""The client's wire behaviour and error paths, against a scripted local HTTP server.

Headers, typed errors, retries and their backoff, the 401 refresh, and the answers HighLevel should
never give (HTML, empty, missing fields). Sandbox-backed, contract-validated tests are in
test_client_sandbox.py.
"""

from __future__ import annotations

import logging
import socket

import pytest

from integration.ghl import (
    GHLBadResponse,
    GHLClient,
    GHLConnectionError,
    GHLForbidden,
    GHLNotFound,
    GHLRateLimited,
    GHLServerError,
    GHLTimeout,
    GHLUnauthorized,
    GHLValidationError,
    OAuthError,
    StaticTokenProvider,
)
from tests.ghl.conftest import ACCESS_TOKEN, CLIENT_SECRET, FRESH_TOKEN, LOCATION
from tests.ghl.scripted_server import Reply, json_reply

CONTACT = {"contact": {"id": "c1", "locationId": LOCATION, "phone": "+15551230000"}}
SENT = {"conversationId": "conv1", "messageId": "msg1", "msg": "Message queued successfully."}


# ---------------------------------------------------------------- what every request carries


def test_resource_call_sends_version_of_its_service_bearer_and_timeout(ghl, scripted):
    scripted.queue(json_reply(CONTACT), json_reply(SENT), json_reply({"calendars": []}))

    ghl.get_contact(LOCATION, "c1")
    ghl.send_message(LOCATION, contact_id="c1", message="Sorry we missed you")
    ghl.list_calendars(LOCATION)

    contact, send, calendars = scripted.requests
    assert contact.headers["Version"] == "2021-07-28"
    assert send.headers["Version"] == "2021-04-15"
    assert calendars.headers["Version"] == "2021-04-15"
    assert {r.headers["Authorization"] for r in scripted.requests} == {f"Bearer {ACCESS_TOKEN}"}
    assert send.json() == {"type": "SMS", "contactId": "c1", "message": "Sorry we missed you"}


def test_token_endpoint_sends_form_credentials_without_version_or_bearer(ghl, scripted):
    scripted.queue(json_reply({"access_token": "a", "refresh_token": "r", "userType": "Location", "userId": "u"}))

    answer = ghl.exchange_code("code-123", redirect_uri="https://app.example/oauth/callback")

    (request,) = scripted.requests
    assert answer["refresh_token"] == "r"
    assert "Version" not in request.headers and "Authorization" not in request.headers
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.form() == {"client_id": ["5f0c1a2b3c4d5e6f7a8b9c0d-test"], "client_secret": [CLIENT_SECRET],
                              "grant_type": ["authorization_code"], "code": ["code-123"],
                              "redirect_uri": ["https://app.example/oauth/callback"]}


def test_every_call_has_a_timeout(scripted, sleeps, tokens):
    client = GHLClient(base_url=scripted.url, client_id="cid", client_secret="s", token_provider=tokens,
                       timeout=0.2, max_retries=0, sleep=sleeps.append)
    scripted.queue(Reply(action="stall", delay=2.0, body=CONTACT))

    with pytest.raises(GHLTimeout) as caught:
        client.get_contact(LOCATION, "c1")
    assert "0.2s" in str(caught.value)


# ---------------------------------------------------------------- typed errors carrying HighLevel's message


@pytest.mark.parametrize(("status", "body", "error_class", "message"), [
    (400, {"statusCode": 400, "message": "Bad Request"}, GHLValidationError, "Bad Request"),
    (403, {"statusCode": 403, "message": "The token does not have access to this location."}, GHLForbidden,
     "The token does not have access to this location."),
    (404, {"statusCode": 404, "message": "Contact not found"}, GHLNotFound, "Contact not found"),
    (422, {"statusCode": 422, "message": ["contactId must be a string", "type is required"],
           "error": "Unprocessable Entity"}, GHLValidationError, "contactId must be a string; type is required"),
])
def test_error_status_maps_to_typed_error_with_highlevels_message(ghl, scripted, status, body, error_class, message):
    scripted.queue(json_reply({**body, "traceId": "trace-1"}, status=status))

    with pytest.raises(error_class) as caught:
        ghl.get_contact(LOCATION, "c1")

    error = caught.value
    assert (error.status, error.message, error.trace_id) == (status, message, "trace-1")
    assert (error.method, error.path) == ("GET", "/contacts/c1")
    assert error.is_ambiguous is False
    assert len(scripted.requests) == 1  # a 4xx is final


def test_validation_error_keeps_each_message(ghl, scripted):
    scripted.queue(json_reply({"statusCode": 422, "message": ["a is wrong", "b is wrong"]}, status=422))
    with pytest.raises(GHLValidationError) as caught:
        ghl.update_opportunity_status(LOCATION, "opp1", "won")
    assert caught.value.errors == ["a is wrong", "b is wrong"]


def test_token_endpoint_error_shape_is_an_oauth_error(ghl, scripted):
    scripted.queue(json_reply({"error": "UnAuthorized!", "error_description": "Authorization code not found"},
                              status=401))

    with pytest.raises(OAuthError) as caught:
        ghl.refresh_access_token("refresh-token-SECRET-value", user_type="Location")

    error = caught.value
    assert (error.status, error.error, error.message) == (401, "UnAuthorized!", "Authorization code not found")
    assert "refresh-token-SECRET-value" not in str(error) + repr(error)
    assert len(scripted.requests) == 1  # never retried: the refresh token is single-use


# ---------------------------------------------------------------- answers that do not match the spec


@pytest.mark.parametrize(("reply", "named_problem"), [
    (Reply(200, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
           {"Content-Type": "text/html"}), "HTML page instead of JSON (502 Bad Gateway)"),
    (Reply(200, None), "empty body"),
    (Reply(200, "Message queued", {"Content-Type": "text/plain"}), "not JSON"),
    (Reply(200, ["conv1"]), "a JSON list instead of an object"),
    (json_reply({"conversationId": "conv1", "msg": "queued"}), "'messageId' is missing"),
    (json_reply({"conversationId": "conv1", "messageId": 7}), "'messageId' is a int, expected a string"),
])
def test_unusable_answer_is_one_clear_bad_response(ghl, scripted, reply, named_problem):
    scripted.queue(reply)

    with pytest.raises(GHLBadResponse) as caught:
        ghl.send_message(LOCATION, contact_id="c1", message="hi")

    assert named_problem in str(caught.value)
    assert caught.value.is_ambiguous is True  # the send may have happened; the ids are unknown
    assert len(scripted.requests) == 1


def test_html_error_page_on_server_error_is_a_server_error_naming_the_page(ghl, scripted):
    page = Reply(502, "<html><title>502 Bad Gateway</title></html>", {"Content-Type": "text/html"})
    scripted.queue(page, page, page, page)

    with pytest.raises(GHLServerError) as caught:
        ghl.get_location(LOCATION)

    assert "HTML page instead of JSON (502 Bad Gateway)" in str(caught.value)
    assert len(scripted.requests) == 4  # a read is retried max_retries times


def test_bad_read_answer_is_not_ambiguous(ghl, scripted):
    scripted.queue(json_reply({"location": None}))
    with pytest.raises(GHLBadResponse) as caught:
        ghl.get_location(LOCATION)
    assert "'location' is a NoneType, expected an object" in str(caught.value)
    assert caught.value.is_ambiguous is False


# ---------------------------------------------------------------- 429, backoff and retries


def test_429_waits_retry_after_then_succeeds(ghl, scripted, sleeps):
    scripted.queue(json_reply({"statusCode": 429, "message": "Too Many Requests"}, status=429, Retry_After="3"),
                   json_reply(SENT))

    assert ghl.send_message(LOCATION, contact_id="c1", message="hi")["messageId"] == "msg1"

    assert len(scripted.requests) == 2  # a 429 is retried even for a send: HighLevel processed nothing
    (delay,) = sleeps
    assert 3.0 <= delay <= 3.3


def test_429_without_retry_after_waits_the_burst_interval(ghl, scripted, sleeps):
    scripted.queue(json_reply({"message": "Too Many Requests"}, status=429, **{
        "X-RateLimit-Remaining": "0", "X-RateLimit-Interval-Milliseconds": "10000", "X-RateLimit-Max": "100"}),
        json_reply(CONTACT))

    ghl.get_contact(LOCATION, "c1")

    (delay,) = sleeps
    assert 10.0 <= delay <= 11.0


def test_429_that_persists_raises_rate_limited_with_retry_after(ghl, scripted, sleeps):
    limited = json_reply({"message": "Too Many Requests"}, status=429, Retry_After="2")
    scripted.queue(limited, limited, limited, limited)

    with pytest.raises(GHLRateLimited) as caught:
        ghl.get_contact(LOCATION, "c1")

    assert caught.value.retry_after == 2.0
    assert caught.value.is_ambiguous is False
    assert len(scripted.requests) == 4 and len(sleeps) == 3


def test_retry_after_longer_than_the_cap_goes_to_the_caller_at_once(ghl, scripted, sleeps):
    scripted.queue(json_reply({"message": "slow down"}, status=429, Retry_After="3600"))
    with pytest.raises(GHLRateLimited) as caught:
        ghl.get_contact(LOCATION, "c1")
    assert caught.value.retry_after == 3600.0
    assert sleeps == []


def test_server_errors_on_a_read_are_retried_with_exponential_full_jitter(ghl, scripted, sleeps):
    failure = json_reply({"statusCode": 500, "message": "Internal server error"}, status=500)
    scripted.queue(failure, failure, failure, json_reply({"pipelines": []}))

    assert ghl.get_pipelines(LOCATION) == []

    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps):
        assert 0.0 <= delay <= ghl.backoff_base * 2 ** attempt


@pytest.mark.parametrize("failure", [
    Reply(500, {"statusCode": 500, "message": "Internal server error"}),
    Reply(action="stall", delay=2.0, body=SENT),
    Reply(action="reset"),
], ids=["5xx", "timeout", "connection-reset"])
def test_a_send_that_failed_ambiguously_is_not_retried(ghl, scripted, sleeps, failure):
    scripted.queue(failure, json_reply(SENT))

    with pytest.raises((GHLServerError, GHLTimeout, GHLConnectionError)) as caught:
        ghl.send_message(LOCATION, contact_id="c1", message="hi")

    assert caught.value.is_ambiguous is True
    assert len(scripted.requests) == 1 and sleeps == []


@pytest.mark.parametrize("failure", [
    Reply(action="stall", delay=2.0, body=CONTACT),
    Reply(action="reset"),
], ids=["timeout", "connection-reset"])
def test_a_read_that_failed_ambiguously_is_retried(ghl, scripted, sleeps, failure):
    scripted.queue(failure, json_reply(CONTACT))
    assert ghl.get_contact(LOCATION, "c1")["id"] == "c1"
    assert len(scripted.requests) == 2 and len(sleeps) == 1


def test_connection_reset_is_named(ghl, scripted):
    scripted.queue(Reply(action="reset"))
    with pytest.raises(GHLConnectionError) as caught:
        ghl.add_note(LOCATION, "c1", "Missed call")
    assert "connection lost before an answer (ConnectionResetError)" in str(caught.value)


def test_a_send_that_never_connected_is_retried_and_is_not_ambiguous(tokens, sleeps):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = GHLClient(base_url=f"http://127.0.0.1:{port}", client_id="cid", client_secret="s",
                       token_provider=tokens, max_retries=2, sleep=sleeps.append)

    with pytest.raises(GHLConnectionError) as caught:
        client.send_message(LOCATION, contact_id="c1", message="hi")

    assert caught.value.is_ambiguous is False
    assert "could not connect" in str(caught.value)
    assert len(sleeps) == 2  # retried: the request never left


# ---------------------------------------------------------------- 401: one refresh, one retry


def test_401_refreshes_once_and_retries_with_the_new_token(ghl, scripted, tokens):
    scripted.queue(json_reply({"statusCode": 401, "message": "Invalid JWT"}, status=401), json_reply(CONTACT))

    assert ghl.get_contact(LOCATION, "c1")["id"] == "c1"

    first, second = scripted.requests
    assert first.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert second.headers["Authorization"] == f"Bearer {FRESH_TOKEN}"
    assert tokens.refresh_count == 1


def test_401_after_the_refresh_is_final(ghl, scripted, tokens):
    rejected = json_reply({"statusCode": 401, "message": "Invalid JWT"}, status=401)
    scripted.queue(rejected, rejected, json_reply(CONTACT))

    with pytest.raises(GHLUnauthorized) as caught:
        ghl.get_contact(LOCATION, "c1")

    assert caught.value.message == "Invalid JWT"
    assert tokens.refresh_count == 1 and len(scripted.requests) == 2


def test_401_without_a_way_to_refresh_is_unauthorized(scripted, sleeps):
    client = GHLClient(base_url=scripted.url, client_id="cid", client_secret="s",
                       token_provider=StaticTokenProvider({LOCATION: ACCESS_TOKEN}), sleep=sleeps.append)
    scripted.queue(json_reply({"statusCode": 401, "message": "Invalid JWT"}, status=401))
    with pytest.raises(GHLUnauthorized):
        client.get_contact(LOCATION, "c1")


# ---------------------------------------------------------------- secrets stay secret


def test_no_token_or_secret_in_errors_reprs_or_logs(ghl, scripted, tokens, caplog):
    caplog.set_level(logging.DEBUG)
    scripted.queue(json_reply({"statusCode": 401, "message": "Invalid JWT"}, status=401),
                   json_reply({"statusCode": 500, "message": "boom"}, status=500),
                   json_reply({"statusCode": 500, "message": "boom"}, status=500),
                   json_reply({"statusCode": 500, "message": "boom"}, status=500),
                   json_reply({"statusCode": 500, "message": "boom"}, status=500))

    with pytest.raises(GHLServerError) as caught:
        ghl.get_contact(LOCATION, "c1")

    visible = " ".join([str(caught.value), repr(caught.value), repr(ghl), repr(tokens), caplog.text])
    for secret in (ACCESS_TOKEN, FRESH_TOKEN, CLIENT_SECRET):
        assert secret not in visible
    assert "retry 1/3" in caplog.text  # the log does say what happened


# ---------------------------------------------------------------- parsing HighLevel's shapes


@pytest.mark.parametrize("body", [
    {"lastMessageId": "m2", "nextPage": False, "messages": [{"id": "m1"}, {"id": "m2"}]},
    {"messages": {"lastMessageId": "m2", "nextPage": False, "messages": [{"id": "m1"}, {"id": "m2"}]}},
], ids=["flat-spec", "nested-real"])
def test_list_messages_reads_flat_and_nested_shapes(ghl, scripted, body):
    scripted.queue(json_reply(body))
    messages = ghl.list_messages(LOCATION, "conv1", limit=2, types=["TYPE_SMS", "TYPE_CALL"])
    assert [m["id"] for m in messages] == ["m1", "m2"]
    assert scripted.requests[0].query == {"limit": ["2"], "type": ["TYPE_SMS,TYPE_CALL"]}


def test_free_slots_skips_non_date_keys_and_sends_epoch_ms(ghl, scripted):
    from datetime import UTC, datetime

    scripted.queue(json_reply({"2024-10-28": {"slots": ["2024-10-28T10:00:00-05:00"]}, "traceId": "t"}))
    slots = ghl.free_slots(LOCATION, "cal1", start=datetime(2024, 10, 28, tzinfo=UTC),
                           end=datetime(2024, 10, 29, tzinfo=UTC), timezone="America/Chicago")
    assert slots == {"2024-10-28": ["2024-10-28T10:00:00-05:00"]}
    assert scripted.requests[0].query["startDate"] == ["1730073600000"]


def test_naive_datetimes_are_refused_before_any_request(ghl, scripted):
    from datetime import datetime

    with pytest.raises(ValueError, match="timezone-aware"):
        ghl.create_task(LOCATION, "c1", title="Call back", due_date=datetime(2024, 10, 28, 9))
    assert scripted.requests == []


def test_installed_locations_reads_every_page(ghl, scripted):
    from tests.ghl.conftest import COMPANY

    page = lambda start, n: [{"_id": f"L{i}", "name": f"n{i}", "address": "a"} for i in range(start, start + n)]  # noqa: E731
    scripted.queue(json_reply({"locations": page(0, 2), "count": 5}),
                   json_reply({"locations": page(2, 2), "count": 5}),
                   json_reply({"locations": page(4, 1), "count": 5}))

    found = ghl.installed_locations(COMPANY, app_id="5f0c1a2b3c4d5e6f7a8b9c0d", page_size=2)

    assert [loc["_id"] for loc in found] == ["L0", "L1", "L2", "L3", "L4"]
    assert [r.query["skip"] for r in scripted.requests] == [["0"], ["2"], ["4"]]
    assert scripted.requests[0].query["isInstalled"] == ["true"]


def test_ids_cannot_change_the_path(ghl, scripted):
    scripted.queue(json_reply(CONTACT))
    ghl.get_contact(LOCATION, "../locations/x")
    assert scripted.requests[0].path == "/contacts/..%2Flocations%2Fx"
