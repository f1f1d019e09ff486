"""What counts as a missed call, against every official webhook example and the documented quirks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from integration.textback.missed_call import (
    ALL_MISSED_STATUSES,
    MAX_SHORT_CALL_SECONDS,
    Missed,
    NotMissed,
    call_key,
    classify_call,
    never_missed,
    parse_timestamp,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "integration" / "ghl" / "webhook_examples"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def call(**fields) -> dict:
    payload = {
        "type": "InboundMessage", "locationId": "loc1", "contactId": "c1", "conversationId": "conv1",
        "dateAdded": "2024-05-08T12:00:56.193Z", "direction": "inbound", "messageType": "CALL",
        "messageId": "m1", "status": "no-answer",
    }
    payload.update(fields)
    return {k: v for k, v in payload.items() if v is not None}


# Every official example: only the voicemail call (InboundMessage.3) is a missed call.
EXPECTED = {
    "InboundMessage.1.json": "not a call",
    "InboundMessage.2.json": "answered for 120 s",
    "InboundMessage.3.json": "voicemail",
    "InboundMessage.4.json": "not a call",
    "OutboundMessage.1.json": "not a call",
    "OutboundMessage.2.json": "outbound call",
    "OutboundMessage.3.json": "not a call",
    "OutboundMessage.4.json": "not a call",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_official_examples(name):
    result = classify_call(example(name), short_call_seconds=10)
    expected = EXPECTED[name]
    if isinstance(result, Missed):
        assert result.description == expected
    else:
        assert expected in result.reason


def test_every_official_message_example_is_covered():
    names = {p.name for p in EXAMPLES.glob("*Message.*.json")}
    assert names == set(EXPECTED)


def test_voicemail_example_without_call_status_is_missed_with_its_identity():
    result = classify_call(example("InboundMessage.3.json"))
    assert isinstance(result, Missed)
    assert result.status == "voicemail"
    assert result.message_id == "QkNS0DNje0FjoLQdD5O3"
    assert result.call_key == "msg:0dalah57827q67DAuXUxbpy:QkNS0DNje0FjoLQdD5O3"
    assert result.duration is None
    assert result.called_at.isoformat() == "2024-05-08T12:00:56.193000+00:00"


def test_inbound_call_labelled_outbound_message_is_treated_as_inbound():
    # InboundMessage.2.json says "type": "OutboundMessage" for an inbound call; direction decides.
    payload = example("InboundMessage.2.json")
    payload.update(callDuration=4)
    result = classify_call(payload, short_call_seconds=10)
    assert isinstance(result, Missed)
    assert result.status == "answered-short"
    assert result.description == "answered for 4 s"


@pytest.mark.parametrize("status", ALL_MISSED_STATUSES)
def test_each_missed_status_counts_by_default(status):
    result = classify_call(call(status=status))
    assert isinstance(result, Missed)
    assert result.status == status


@pytest.mark.parametrize("field", ["status", "callStatus"])
def test_status_is_read_from_either_field(field):
    payload = call(status=None)
    payload[field] = "busy"
    assert classify_call(payload).status == "busy"


@pytest.mark.parametrize(("raw", "normal"), [("NO_ANSWER", "no-answer"), ("No Answer", "no-answer"),
                                             ("cancelled", "canceled"), ("Busy", "busy")])
def test_status_spellings_are_tolerated(raw, normal):
    assert classify_call(call(status=raw)).status == normal


def test_a_location_can_stop_counting_voicemail():
    counted = [s for s in ALL_MISSED_STATUSES if s != "voicemail"]
    result = classify_call(call(status="voicemail"), counted_statuses=counted)
    assert isinstance(result, NotMissed)
    assert result.reason == "voicemail calls are not counted as missed (location setting)"


def test_outbound_voicemail_call_status_never_counts():
    # Outbound reaching voicemail: status completed, callStatus voicemail (ghl-api-facts §2.7).
    result = classify_call(call(direction="outbound", status="completed", callStatus="voicemail"))
    assert isinstance(result, NotMissed)
    assert "outbound" in result.reason


def test_inbound_completed_with_voicemail_call_status_is_missed():
    assert classify_call(call(status="completed", callStatus="voicemail")).status == "voicemail"


@pytest.mark.parametrize(("duration", "threshold", "missed"), [
    (0, 10, True), (9, 10, True), (10, 10, False), ("4", 10, True), (4.7, 5, True), (4, 0, False), (None, 10, False),
])
def test_short_answered_calls(duration, threshold, missed):
    result = classify_call(call(status="completed", callStatus="completed", callDuration=duration),
                           short_call_seconds=threshold)
    assert isinstance(result, Missed) is missed


def test_call_in_progress_is_not_missed():
    result = classify_call(call(status="pending"))
    assert result == NotMissed("call still in progress (pending)")


def test_missing_direction_on_inbound_message_means_inbound():
    assert isinstance(classify_call(call(direction=None)), Missed)


def test_unknown_status_and_no_status():
    assert classify_call(call(status="weird")).reason == "call status 'weird' is not a missed call"
    assert classify_call(call(status=None)).reason == "call has no status"


def test_call_key_falls_back_to_conversation_and_instant():
    a = call(messageId=None, dateAdded="2024-05-08T12:00:56.193Z")
    b = call(messageId=None, dateAdded="2024-05-08T12:00:56.193+00:00")
    assert call_key(a) == call_key(b) == "conv:loc1:conv1:2024-05-08T12:00:56.193+00:00"


def test_unidentifiable_call_uses_the_fallback_or_says_why():
    bare = call(messageId=None, conversationId=None)
    assert classify_call(bare, fallback_key="42").call_key == "event:42"
    assert "cannot be identified" in classify_call(bare).reason


def test_numbers_are_read_when_present():
    result = classify_call(call(**{"from": "+13055550142", "to": "+15125550100"}))
    assert (result.caller_number, result.called_number) == ("+13055550142", "+15125550100")
    nested = classify_call(call(call={"from": "+13055550142", "to": "+15125550100"}))
    assert nested.caller_number == "+13055550142"


def test_parse_timestamp_forms():
    assert parse_timestamp(1715169656193).isoformat() == "2024-05-08T12:00:56.193000+00:00"
    assert parse_timestamp("garbage") is None
    assert parse_timestamp(None) is None
    assert parse_timestamp("2024-05-08T12:00:56").tzinfo is not None


def _settings_grid():
    """Every set of counted statuses of size 0, 1, 4 and 5, with thresholds from off to the maximum."""
    status_sets = [(), ALL_MISSED_STATUSES, *((s,) for s in ALL_MISSED_STATUSES),
                   *(tuple(x for x in ALL_MISSED_STATUSES if x != s) for s in ALL_MISSED_STATUSES)]
    return [(counted, threshold) for counted in status_sets for threshold in (0, 30, 119, MAX_SHORT_CALL_SECONDS)]


def _payload_grid():
    examples = [example(name) for name in EXPECTED]
    statuses = [*ALL_MISSED_STATUSES, "completed", "answered", "in-progress", "weird", None]
    built = [call(type=kind, direction=direction, status=status, callDuration=duration)
             for kind in ("InboundMessage", "OutboundMessage") for direction in ("inbound", "outbound", None)
             for status in statuses for duration in (None, 0, 30, 119, 120, 121, 600)]
    return [*examples, *built, call(messageId=None, conversationId=None, dateAdded=None)]


def test_a_call_never_missed_is_missed_under_no_settings_and_every_other_call_under_some():
    """The receiver stores `never_missed` calls as ignored without asking the location: it must agree with
    classify_call under every settings a location can have, or a missed call would go untexted."""
    grid = _settings_grid()
    for payload in _payload_grid():
        verdicts = [classify_call(payload, counted_statuses=counted, short_call_seconds=threshold,
                                  fallback_key="event:1") for counted, threshold in grid]
        can_be_missed = any(isinstance(v, Missed) for v in verdicts)
        assert (never_missed(payload) is None) == can_be_missed, payload


def test_never_missed_says_why_in_the_workers_words():
    assert never_missed(call(status="completed", callDuration=241)).reason == "answered for 241 s"
    assert never_missed(call(status="completed", callDuration=MAX_SHORT_CALL_SECONDS - 1)) is None
    assert never_missed(call(messageId=None, conversationId=None, dateAdded=None)) is None
