"""Webhook delivery: signed exact bytes, sent to the app's URL, retried only after a 429."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from integration.sandbox.keys import sandbox_public_keys
from integration.sandbox.seed import SEED_CONTACT_IDS, SEED_LOCATION_IDS

ACME = SEED_LOCATION_IDS[0]


class Receiver:
    """A tiny webhook endpoint answering a scripted list of statuses (then the last one forever)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[dict, bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks/ghl"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory(sandbox):
    made = []

    def make(statuses):
        receiver = Receiver(statuses)
        made.append(receiver)
        sandbox.configure(webhook_url=receiver.url)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


def _verify(instance_dir, headers: dict, body: bytes) -> None:
    ed_pem, rsa_pem = sandbox_public_keys(instance_dir)
    load_pem_public_key(ed_pem.encode()).verify(base64.b64decode(headers["x-ghl-signature"]), body)
    load_pem_public_key(rsa_pem.encode()).verify(base64.b64decode(headers["x-wh-signature"]), body,
                                                  padding.PKCS1v15(), hashes.SHA256())


def test_missed_call_webhook_is_signed_compact_json(sandbox, receiver_factory, instance_dir):
    receiver = receiver_factory([200])

    call = sandbox.place_call(ACME, "+15125550177", "no-answer")
    delivery = sandbox.wait_for_delivery(call["webhookId"])

    assert delivery["state"] == "delivered" and len(delivery["attempts"]) == 1
    headers, body = next((h, b) for h, b in receiver.received if json.loads(b)["type"] == "InboundMessage")
    _verify(instance_dir, headers, body)
    payload = json.loads(body)
    assert body == json.dumps(payload, separators=(",", ":")).encode()
    assert headers["content-type"] == "application/json"
    assert payload["webhookId"] == call["webhookId"] and payload["timestamp"].endswith("Z")
    assert payload["messageType"] == "CALL" and payload["direction"] == "inbound"
    assert payload["status"] == "no-answer" and payload["callStatus"] == "no-answer"
    assert payload["callDuration"] == 0
    assert payload["locationId"] == ACME
    assert payload["contactId"] == call["contactId"] and payload["messageId"] == call["messageId"]
    assert payload["conversationId"] == call["conversationId"]


def test_a_tampered_body_does_not_verify(sandbox, receiver_factory, instance_dir):
    receiver = receiver_factory([200])
    call = sandbox.place_call(ACME, "+15125550177", "busy")
    sandbox.wait_for_delivery(call["webhookId"])
    headers, body = next((h, b) for h, b in receiver.received if json.loads(b)["webhookId"] == call["webhookId"])

    with pytest.raises(InvalidSignature):
        _verify(instance_dir, headers, body.replace(b"busy", b"bust"))


@pytest.mark.parametrize(("outcome", "status", "duration"), [
    ("answered", "completed", 95),
    ("voicemail", "voicemail", 22),
    ("busy", "busy", 0),
])
def test_call_outcomes_follow_the_official_examples(sandbox, receiver_factory, outcome, status, duration):
    receiver_factory([200])

    call = sandbox.place_call(ACME, "+15125550178", outcome, duration=duration)

    payload = sandbox.wait_for_delivery(call["webhookId"])["payload"]
    assert (payload["status"], payload["callStatus"], payload["callDuration"]) == (status, status, duration)
    if outcome == "answered":
        assert payload["userId"]
        assert payload["attachments"]


def test_a_new_caller_becomes_a_contact_and_a_known_caller_does_not(sandbox, receiver_factory):
    receiver_factory([200])
    known = SEED_CONTACT_IDS[ACME][0]

    new_call = sandbox.place_call(ACME, "(512) 555-0179", "no-answer")
    again = sandbox.place_call(ACME, "+15125550179", "no-answer")
    dana = sandbox.place_call(ACME, "+15125550120", "no-answer")

    assert new_call["contactCreated"] is True and again["contactId"] == new_call["contactId"]
    assert dana["contactId"] == known and dana["contactCreated"] is False
    created = [d["payload"] for d in sandbox.deliveries(type="ContactCreate")]
    assert [p["id"] for p in created] == [new_call["contactId"]]
    assert created[0]["phone"] == "+15125550179"


def test_retried_after_429_until_accepted(sandbox, receiver_factory, instance_dir):
    receiver = receiver_factory([429, 429, 200])

    answer = sandbox.control("POST", "webhooks", json={"payload": {"type": "ContactUpdate", "locationId": ACME,
                                                                   "id": "x"}})
    delivery = sandbox.wait_for_delivery(answer["webhookId"])

    assert delivery["state"] == "delivered"
    assert [a["status"] for a in delivery["attempts"]] == [429, 429, 200]
    bodies = {body for _, body in receiver.received}
    assert len(bodies) == 1, "every retry sends the same signed bytes"
    for headers, body in receiver.received:
        _verify(instance_dir, headers, body)


def test_any_other_failure_is_final(sandbox, receiver_factory):
    receiver_factory([500, 200])

    answer = sandbox.control("POST", "webhooks", json={"payload": {"type": "ContactUpdate", "id": "x"}})

    assert answer["state"] == "failed"
    assert [a["status"] for a in answer["attempts"]] == [500]
    assert sandbox.wait_for_delivery(answer["webhookId"])["attempts"] == answer["attempts"]


def test_gives_up_after_the_configured_retries(sandbox, receiver_factory):
    receiver = receiver_factory([429])
    sandbox.configure(webhook_retry_delays=[0.01, 0.01, 0.01])

    answer = sandbox.control("POST", "webhooks", json={"payload": {"type": "ContactUpdate", "id": "x"}})
    delivery = sandbox.wait_for_delivery(answer["webhookId"])

    assert delivery["state"] == "gave_up"
    assert [a["status"] for a in delivery["attempts"]] == [429] * 4
    assert len(receiver.received) == 4


def test_unreachable_app_is_a_final_failure(sandbox):
    sandbox.configure(webhook_url="http://127.0.0.1:9/webhooks/ghl")

    answer = sandbox.control("POST", "webhooks", json={"payload": {"type": "ContactUpdate", "id": "x"}})

    assert answer["state"] == "failed"
    assert answer["attempts"][0]["status"] is None and answer["attempts"][0]["error"]


def test_sending_an_sms_sends_an_outbound_message_webhook(sandbox, receiver_factory):
    receiver_factory([200])
    token = sandbox.tokens(ACME)["access_token"]
    luis = SEED_CONTACT_IDS[ACME][1]

    sent = sandbox.api("POST", "/conversations/messages", token,
                       json={"type": "SMS", "contactId": luis, "message": "On our way"}).json()

    outbound = [d for d in sandbox.deliveries(type="OutboundMessage")]
    assert len(outbound) == 1
    delivered = sandbox.wait_for_delivery(outbound[0]["webhookId"])
    payload = delivered["payload"]
    assert payload["messageId"] == sent["messageId"] and payload["conversationId"] == sent["conversationId"]
    assert (payload["direction"], payload["source"], payload["messageType"]) == ("outbound", "api", "SMS")
    assert payload["body"] == "On our way" and payload["contactId"] == luis


def test_a_reply_is_an_inbound_sms_and_stop_switches_on_dnd(sandbox, receiver_factory):
    receiver_factory([200])

    reply = sandbox.reply(ACME, "+15125550121", "Yes please, tomorrow 9am")
    stop = sandbox.reply(ACME, "+15125550121", "STOP")

    payload = sandbox.wait_for_delivery(reply["webhookId"])["payload"]
    assert (payload["type"], payload["messageType"], payload["direction"]) == ("InboundMessage", "SMS", "inbound")
    assert payload["body"] == "Yes please, tomorrow 9am"
    assert stop["contactId"] == reply["contactId"] == SEED_CONTACT_IDS[ACME][1]
    dnd = [d["payload"] for d in sandbox.deliveries(type="ContactDndUpdate")]
    assert dnd and dnd[0]["dndSettings"]["SMS"]["status"] == "active"


def test_event_types_can_be_switched_off(sandbox, receiver_factory):
    receiver = receiver_factory([200])
    sandbox.configure(webhook_events=["InboundMessage"])

    call = sandbox.place_call(ACME, "+15125550180", "no-answer")
    sandbox.wait_for_delivery(call["webhookId"])

    assert [json.loads(b)["type"] for _, b in receiver.received] == ["InboundMessage"]
    assert sandbox.deliveries(type="ContactCreate") == []
