"""POST /webhooks/ghl: each bad input gets its final answer, each good one is stored once before the 200."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid

import pytest
from sqlalchemy import func, select

from integration.extensions import db
from integration.models import WebhookEvent
from workers.queues import LATER_EVENTS_KEY, NEW_EVENTS_KEY

URL = "/webhooks/ghl"


def missed_call(location_id: str, *, webhook_id: str | None = None, app_id: str | None = None, **fields) -> dict:
    payload = {
        "type": "InboundMessage", "locationId": location_id, "contactId": "contact0000000000001",
        "conversationId": "conv00000000000000001", "messageId": f"msg{uuid.uuid4().hex[:17]}",
        "direction": "inbound", "messageType": "CALL", "status": "voicemail",
        "dateAdded": "2026-11-27T10:00:00.000Z", "timestamp": "2026-11-27T10:00:01.000Z",
        "webhookId": webhook_id or str(uuid.uuid4()),
    }
    if app_id is not None:
        payload["appId"] = app_id
    payload.update(fields)
    return payload


def rows() -> list[WebhookEvent]:
    with db.transaction() as session:
        return list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


def row_count() -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(WebhookEvent))


def post(client, body: bytes, headers: dict):
    return client.post(URL, data=body, headers=headers)


def announced_event_ids(redis_client, *, count: int) -> list[int]:
    """What the receiver announced to the admitter (workers.admitter turns these into jobs).

    Announcements are sent by a thread of the web process after the answer: wait for `count` of them, and
    when none is expected, long enough for a wrong one to show up.
    """
    deadline = time.monotonic() + 5
    while redis_client.llen(NEW_EVENTS_KEY) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05 if count else 0.3)
    return [int(raw) for raw in redis_client.lrange(NEW_EVENTS_KEY, 0, -1)]


# --- Accepted --------------------------------------------------------------------------------------------


def test_valid_webhook_is_stored_pending_then_enqueued(client, signed_webhook, live_location, redis_client):
    location = live_location()
    body, headers = signed_webhook(missed_call(location, webhook_id="wh-accepted-1"))
    response = post(client, body, headers)
    assert response.status_code == 200
    assert response.json["status"] == "stored"
    [row] = rows()
    assert (row.dedupe_key, row.event_type, row.location_id, row.status) == (
        "wh-accepted-1", "InboundMessage", location, "pending")
    assert row.payload["messageId"].startswith("msg")
    assert announced_event_ids(redis_client, count=1) == [row.id]


def test_our_text_echo_is_announced_to_wait_behind_calls_but_a_mislabelled_call_is_not(
        client, signed_webhook, live_location, redis_client):
    location = live_location()
    echo = missed_call(location, type="OutboundMessage", direction="outbound", messageType="SMS", body="Hi there")
    # HighLevel's own example labels an inbound call OutboundMessage: a call is urgent whatever its type says.
    quirk = missed_call(location, type="OutboundMessage")
    for payload in (echo, quirk):
        assert post(client, *signed_webhook(payload)).status_code == 200
    by_key = {row.dedupe_key: row.id for row in rows()}
    assert announced_event_ids(redis_client, count=1) == [by_key[quirk["webhookId"]]]
    assert [int(raw) for raw in redis_client.lrange(LATER_EVENTS_KEY, 0, -1)] == [by_key[echo["webhookId"]]]


def test_a_call_no_settings_could_count_as_missed_is_stored_ignored_and_costs_no_job(
        client, signed_webhook, live_location, redis_client, caplog):
    """Most call webhooks are answered calls: decided here, from the payload alone, they never become jobs."""
    location = live_location()
    long_answer = missed_call(location, status="completed", callDuration=241)
    outbound = missed_call(location, direction="outbound")
    # Settings decide these: a location may count answers under 120 s as missed, and may count voicemail.
    short_answer = missed_call(location, status="completed", callDuration=119)
    voicemail = missed_call(location)
    # No messageId, conversation or date: the worker identifies it by its event id, so it is not decided here.
    anonymous = missed_call(location, messageId=None, conversationId=None, dateAdded=None)
    with caplog.at_level(logging.INFO, logger="integration.webhooks"):
        for payload in (long_answer, outbound, short_answer, voicemail, anonymous):
            assert post(client, *signed_webhook(payload)).status_code == 200
    # Everyday traffic: no log line each (the row keeps the reason).
    assert not [r for r in caplog.records if "stored as ignored" in r.getMessage()]
    by_key = {row.dedupe_key: row for row in rows()}
    assert [(by_key[p["webhookId"]].status, by_key[p["webhookId"]].status_reason) for p in (long_answer, outbound)] == [
        ("ignored", "not a missed call: answered for 241 s"),
        ("ignored", "not a missed call: outbound call; only inbound calls count")]
    waiting = [by_key[p["webhookId"]].id for p in (short_answer, voicemail, anonymous)]
    assert {by_key[p["webhookId"]].status for p in (short_answer, voicemail, anonymous)} == {"pending"}
    assert announced_event_ids(redis_client, count=3) == waiting


def test_an_event_type_nothing_acts_on_is_stored_ignored_and_costs_no_job(client, signed_webhook, live_location,
                                                                          redis_client):
    """A note or a tag at HighLevel (the sandbox sends every type; HighLevel what the app subscribes to)."""
    location = live_location()
    note = {"type": "NoteCreate", "locationId": location, "id": "note-1", "contactId": "c-1", "body": "hi"}
    dnd = {"type": "ContactDndUpdate", "locationId": location, "id": "c-1", "dnd": True}
    for payload in (note, dnd):
        assert post(client, *signed_webhook(payload)).status_code == 200
    by_type = {row.event_type: row for row in rows()}
    assert (by_type["NoteCreate"].status, by_type["NoteCreate"].status_reason) == (
        "ignored", "NoteCreate events are recorded, not acted on")
    assert by_type["ContactDndUpdate"].status == "pending"
    assert announced_event_ids(redis_client, count=1) == [by_type["ContactDndUpdate"].id]


def test_rsa_only_webhook_accepted_when_enabled(client, signed_webhook, live_location):
    body, headers = signed_webhook(missed_call(live_location()), schemes=("rsa",))
    assert post(client, body, headers).status_code == 200
    assert row_count() == 1


def test_rsa_only_webhook_rejected_when_disabled(app, settings, signed_webhook, live_location):
    from integration import create_app

    strict = create_app(settings.override(ghl_accept_rsa_signatures=False))
    body, headers = signed_webhook(missed_call(live_location()), schemes=("rsa",))
    assert strict.test_client().post(URL, data=body, headers=headers).status_code == 401
    assert row_count() == 0


def test_same_webhook_five_times_one_row_five_200s(client, signed_webhook, live_location, redis_client):
    body, headers = signed_webhook(missed_call(live_location(), webhook_id="wh-repeat"))
    answers = [post(client, body, headers) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert [a.json["status"] for a in answers] == ["stored"] + ["duplicate"] * 4
    assert len({a.json["id"] for a in answers}) == 1
    assert row_count() == 1
    assert len(announced_event_ids(redis_client, count=1)) == 1


def test_same_call_with_two_webhook_ids_is_two_rows(client, signed_webhook, live_location):
    """Dedupe here is per delivery; one text per call is the send intent's job (TEXTBACK)."""
    location = live_location()
    first = missed_call(location, webhook_id="wh-call-a")
    second = dict(first, webhookId="wh-call-b")
    for payload in (first, second):
        assert post(client, *signed_webhook(payload)).status_code == 200
    assert [r.dedupe_key for r in rows()] == ["wh-call-a", "wh-call-b"]


def test_body_without_webhook_id_is_deduped_by_content_hash(client, signed_webhook, live_location):
    payload = missed_call(live_location())
    del payload["webhookId"]
    body, headers = signed_webhook(payload)
    assert [post(client, body, headers).status_code for _ in range(2)] == [200, 200]
    [row] = rows()
    assert row.dedupe_key.startswith("sha256:") and len(row.dedupe_key) == len("sha256:") + 64


def test_our_app_id_is_accepted(client, settings, signed_webhook, live_location):
    payload = missed_call(live_location(), app_id=settings.ghl_app_id.upper())
    assert post(client, *signed_webhook(payload)).status_code == 200
    assert rows()[0].status == "pending"


def test_install_for_unknown_location_is_not_ignored(client, settings, signed_webhook):
    payload = {"type": "INSTALL", "appId": settings.ghl_app_id, "installType": "Location",
               "locationId": "brandNewLocation0001", "companyId": "companyNew000000001",
               "webhookId": str(uuid.uuid4())}
    assert post(client, *signed_webhook(payload)).status_code == 200
    [row] = rows()
    assert (row.status, row.location_id, row.company_id) == ("pending", "brandNewLocation0001", "companyNew000000001")


def test_uninstall_for_uninstalled_location_is_not_ignored(client, settings, signed_webhook, live_location):
    location = live_location(status="uninstalled")
    payload = {"type": "UNINSTALL", "appId": settings.ghl_app_id, "locationId": location}
    assert post(client, *signed_webhook(payload)).status_code == 200
    assert rows()[0].status == "pending"


# --- Stored but ignored ----------------------------------------------------------------------------------


def test_event_for_an_uninstalled_location_is_stored_ignored(client, signed_webhook, live_location, redis_client):
    """A location we know was uninstalled stays decided at the receiver: no install is on its way."""
    body, headers = signed_webhook(missed_call(live_location(status="uninstalled")))
    response = post(client, body, headers)
    assert response.status_code == 200
    [row] = rows()
    assert (row.status, row.status_reason) == ("ignored", "location not installed (status uninstalled)")
    assert announced_event_ids(redis_client, count=0) == []


@pytest.mark.parametrize("app_id", [None, "ours"], ids=["no appId (as message webhooks come)", "our appId"])
def test_event_for_a_location_never_seen_is_kept_pending_for_the_worker_to_decide(
        client, settings, signed_webhook, redis_client, app_id):
    """Issue 13, defect 1: this was stored as `ignored (unknown location)`, and a missed call that HighLevel
    delivered before its location's INSTALL had been processed was never texted. Now the worker decides once the
    install has settled (tests/workers/test_install_wait.py)."""
    payload = missed_call("neverSeenLocation001", app_id=settings.ghl_app_id if app_id else None)
    response = post(client, *signed_webhook(payload))
    assert response.status_code == 200
    [row] = rows()
    assert (row.status, row.status_reason) == ("pending", "unknown location: waiting for its install")
    assert announced_event_ids(redis_client, count=1) == [row.id]


def test_event_for_another_app_is_stored_ignored(client, signed_webhook, live_location, redis_client):
    payload = missed_call(live_location(), app_id="0123456789abcdef01234567")
    assert post(client, *signed_webhook(payload)).status_code == 200
    [row] = rows()
    assert (row.status, row.status_reason) == ("ignored", "foreign app")
    assert announced_event_ids(redis_client, count=0) == []


def test_install_for_another_app_is_ignored_too(client, signed_webhook):
    payload = {"type": "INSTALL", "appId": "ffffffffffffffffffffffff", "locationId": "someLocation00000001"}
    assert post(client, *signed_webhook(payload)).status_code == 200
    assert (rows()[0].status, rows()[0].status_reason) == ("ignored", "foreign app")


def test_event_without_type_is_stored_ignored(client, signed_webhook):
    assert post(client, *signed_webhook({"webhookId": "no-type"})).status_code == 200
    assert (rows()[0].event_type, rows()[0].status, rows()[0].status_reason) == (
        "(none)", "ignored", "payload has no event type")


def test_event_with_malformed_location_id_is_stored_ignored(client, signed_webhook):
    assert post(client, *signed_webhook(missed_call("x" * 200))).status_code == 200
    assert (rows()[0].status, rows()[0].status_reason) == ("ignored", "malformed locationId")


# --- Rejected: signature ---------------------------------------------------------------------------------


def assert_rejected(response, status: int) -> None:
    assert response.status_code == status
    assert row_count() == 0


def test_unsigned_webhook_rejected(client, signed_webhook, live_location):
    assert_rejected(post(client, *signed_webhook(missed_call(live_location()), schemes=())), 401)


@pytest.mark.parametrize("header", ["x-ghl-signature", "x-wh-signature"])
def test_na_signature_rejected(client, signed_webhook, live_location, header):
    body, headers = signed_webhook(missed_call(live_location()), schemes=(), headers={header: "N/A"})
    assert_rejected(post(client, body, headers), 401)


def test_forged_signature_rejected(client, signed_webhook, live_location):
    body, headers = signed_webhook(missed_call(live_location()), headers={"x-ghl-signature": "A" * 86 + "=="})
    assert_rejected(post(client, body, headers), 401)


def test_altered_body_rejected(client, signed_webhook, live_location):
    original = signed_webhook(missed_call(live_location(), status="completed"))[0]
    altered = original.replace(b'"completed"', b'"completes"')
    assert len(altered) == len(original) and altered != original
    body, headers = signed_webhook(body=altered, sign_body=original)
    assert_rejected(post(client, body, headers), 401)


def test_truncated_body_rejected(client, signed_webhook, live_location):
    original = signed_webhook(missed_call(live_location()))[0]
    body, headers = signed_webhook(body=original[:-10], sign_body=original)
    assert_rejected(post(client, body, headers), 401)


def test_wrong_key_rejected(client, signed_webhook, live_location, throwaway_keys):
    ed_key, rsa_key = throwaway_keys
    payload = missed_call(live_location())
    assert_rejected(post(client, *signed_webhook(payload, ed25519_key=ed_key)), 401)
    assert_rejected(post(client, *signed_webhook(payload, schemes=("rsa",), rsa_key=rsa_key)), 401)


def test_rejection_is_logged_at_info_without_the_body(client, signed_webhook, live_location, caplog):
    body, headers = signed_webhook(missed_call(live_location(), body="secret-looking text"), schemes=())
    with caplog.at_level(logging.INFO, logger="integration.webhooks"):
        response = post(client, body, headers)
    assert response.status_code == 401
    assert b"secret-looking" not in response.data
    [record] = [r for r in caplog.records if r.name == "integration.webhooks"]
    assert record.levelno == logging.INFO and "unsigned" in record.getMessage()
    assert "secret-looking" not in record.getMessage()


# --- Rejected: body --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "message"), [
    (b'{"type":"InboundMessage",', "body is not valid JSON"),
    (b"", "body is empty"),
    (b"\xff\xfe{}", "body is not UTF-8"),
    (b'["a","list"]', "body must be a JSON object"),
    (b'{"type":"InboundMessage","n":NaN}', "NaN is not a JSON value"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_signed_but_malformed_json_is_400_with_a_clear_message(client, signed_webhook, caplog, body, message):
    signed_body, headers = signed_webhook(body=body)
    with caplog.at_level(logging.WARNING, logger="integration.webhooks"):
        response = post(client, signed_body, headers)
    assert response.status_code == 400
    assert message in response.json["error"]
    assert row_count() == 0
    assert any(message in r.getMessage() for r in caplog.records if r.name == "integration.webhooks")


def test_a_body_is_stored_as_the_json_it_parses_to(client, signed_webhook, live_location):
    """The body goes to the database as sent (not serialised again): what is stored must equal what it parses
    to, whatever its spacing, escapes, non-ASCII text, numbers, nesting or repeated keys."""
    payload = missed_call(live_location())
    body = (json.dumps(payload, indent=2)[:-1] + ', "body": "Zo\\u00eb \u260e \\"hi\\"\\n", "n": [1, 2.50, -0.0, 1e3, '
            '12345678901234567890], "deep": {"a": {"b": [null, true, false, {}]}}, "n": 7}').encode()
    assert post(client, *signed_webhook(body=body)).status_code == 200
    stored = rows()[0].payload
    assert stored == json.loads(body)
    assert (stored["body"], stored["n"]) == ("Zo\u00eb \u260e \"hi\"\n", 7)


def test_nul_characters_are_stored_replaced(client, signed_webhook, live_location):
    body = signed_webhook(missed_call(live_location(), body="a\u0000b"))[0]
    assert b"\\u0000" in body
    assert post(client, *signed_webhook(body=body)).status_code == 200
    assert rows()[0].payload["body"] == "a\ufffdb"


@pytest.mark.parametrize("escaped, stored", [
    ("a\\ud800b", "a\ufffdb"),            # a lone high surrogate
    ("a\\udc00b", "a\ufffdb"),            # a lone low surrogate
    ("\\ud83d\\ude00 ok", "\U0001f600 ok"),  # a proper pair is an emoji and stays one
])
def test_lone_surrogate_escapes_are_stored_replaced(client, signed_webhook, live_location, escaped, stored):
    """JSON allows "\ud800" on its own, Python decodes it, PostgreSQL's jsonb refuses it: without this the
    webhook would be answered 429 on every retry and finally lost."""
    body = signed_webhook(missed_call(live_location(), body="PLACEHOLDER"))[0].replace(b"PLACEHOLDER",
                                                                                      escaped.encode())
    response = post(client, *signed_webhook(body=body))
    assert response.status_code == 200, response.json
    assert rows()[0].payload["body"] == stored


def test_oversized_body_is_413_without_a_row(client, settings, signed_webhook, live_location):
    padding = "x" * (settings.webhook_max_bytes + 1)
    assert_rejected(post(client, *signed_webhook(missed_call(live_location(), body=padding))), 413)


def test_chunked_body_over_the_limit_is_413_without_a_row(client, settings, signed_webhook, live_location):
    """A chunked body declares no length: the limit is enforced while reading (the server terminates the stream)."""
    padding = "x" * (settings.webhook_max_bytes + 1)
    body, headers = signed_webhook(missed_call(live_location(), body=padding))
    response = client.post(URL, input_stream=io.BytesIO(body), headers=headers,
                           environ_overrides={"wsgi.input_terminated": True})
    assert_rejected(response, 413)


def test_body_shorter_than_its_content_length_is_refused_without_a_row(client, signed_webhook, live_location):
    """The client went away mid-body: nothing is stored from the part that arrived.

    Depending on the server the stream ends early (the signature then fails: 401) or reports the disconnect (400).
    """
    body, headers = signed_webhook(missed_call(live_location()))
    response = client.post(URL, input_stream=io.BytesIO(body[:50]),
                           headers={**headers, "Content-Length": str(len(body))})
    assert response.status_code in (400, 401)
    assert row_count() == 0


def test_get_is_not_allowed(client):
    response = client.get(URL)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"


def test_other_paths_are_flasks(client):
    """The receiver sits in front of Flask and lets every other request through."""
    assert client.get("/healthz").status_code == 200
    assert client.post("/webhooks/ghl/").status_code == 404
