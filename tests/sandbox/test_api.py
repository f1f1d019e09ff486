"""Resource endpoints behave like HighLevel's: shapes, status codes, and the CRM state they change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integration.sandbox.seed import (
    SEED_AGENCY_USER_ID,
    SEED_CALENDAR_IDS,
    SEED_COMPANY_ID,
    SEED_CONTACT_IDS,
    SEED_DND_CONTACT_ID,
    SEED_LOCATION_IDS,
    SEED_LOCATION_PHONES,
    SEED_MISSED_CALL_PIPELINE_IDS,
    SEED_USER_IDS,
    stage_id,
)

ACME = SEED_LOCATION_IDS[0]
DANA, LUIS = SEED_CONTACT_IDS[ACME][0], SEED_CONTACT_IDS[ACME][1]
PIPELINE = SEED_MISSED_CALL_PIPELINE_IDS[ACME]


@pytest.fixture
def token(sandbox) -> str:
    return sandbox.tokens(ACME)["access_token"]


def _sms(sandbox, token, contact_id, text="Sorry we missed your call!", **extra):
    return sandbox.api("POST", "/conversations/messages", token,
                       json={"type": "SMS", "contactId": contact_id, "message": text, **extra})


# -- conversations ---------------------------------------------------------------------------------


def test_sending_an_sms_records_it_in_the_contacts_thread(sandbox, token):
    answer = _sms(sandbox, token, LUIS)

    assert answer.status_code == 200
    body = answer.json()
    assert body["msg"] == "Message queued successfully."
    listed = sandbox.api("GET", f"/conversations/{body['conversationId']}/messages", token).json()
    newest = listed["messages"]["messages"][0]
    assert newest["id"] == body["messageId"]
    assert (newest["direction"], newest["messageType"], newest["source"]) == ("outbound", "TYPE_SMS", "api")
    assert newest["body"] == "Sorry we missed your call!"
    [sent] = sandbox.sent_messages(contactId=LUIS)
    assert sent["toNumber"] == "+15125550121" and sent["fromNumber"] == SEED_LOCATION_PHONES[ACME]


def test_sms_to_a_dnd_contact_is_refused_and_not_recorded(sandbox, token):
    answer = _sms(sandbox, token, SEED_DND_CONTACT_ID)

    assert answer.status_code == 400
    assert "DND" in answer.json()["message"]
    assert sandbox.sent_messages(contactId=SEED_DND_CONTACT_ID) == []


def test_sms_validation(sandbox, token):
    missing = sandbox.api("POST", "/conversations/messages", token, json={"message": "hi"})
    unknown = _sms(sandbox, token, "NoSuchContact0000000")
    foreign_from = _sms(sandbox, token, LUIS, fromNumber="+17205550100")

    assert missing.status_code == 422 and isinstance(missing.json()["message"], list)
    assert unknown.status_code == 400
    assert foreign_from.status_code == 400 and "fromNumber" in foreign_from.json()["message"]


def test_sms_from_a_users_lc_phone_number_is_allowed(sandbox, token):
    assert _sms(sandbox, token, LUIS, fromNumber=SEED_LOCATION_PHONES[ACME]).status_code == 200


def test_sms_to_another_locations_contact_is_403(sandbox, token):
    peak_contact = SEED_CONTACT_IDS[SEED_LOCATION_IDS[1]][0]

    assert _sms(sandbox, token, peak_contact).status_code == 403


def test_messages_page_newest_first_with_a_cursor(sandbox, token):
    for n in range(5):
        _sms(sandbox, token, LUIS, text=f"message {n}")
    conversation = sandbox.thread(LUIS)["conversationId"]

    first = sandbox.api("GET", f"/conversations/{conversation}/messages", token, params={"limit": 2}).json()
    second = sandbox.api("GET", f"/conversations/{conversation}/messages", token,
                         params={"limit": 2, "lastMessageId": first["messages"]["lastMessageId"]}).json()

    assert [m["body"] for m in first["messages"]["messages"]] == ["message 4", "message 3"]
    assert first["messages"]["nextPage"] is True
    assert [m["body"] for m in second["messages"]["messages"]] == ["message 2", "message 1"]


def test_messages_filter_by_type(sandbox, token):
    sandbox.place_call(ACME, "+15125550121", "no-answer")
    _sms(sandbox, token, LUIS)
    conversation = sandbox.thread(LUIS)["conversationId"]

    calls = sandbox.api("GET", f"/conversations/{conversation}/messages", token, params={"type": "TYPE_CALL"})

    assert [m["messageType"] for m in calls.json()["messages"]["messages"]] == ["TYPE_CALL"]
    assert calls.json()["messages"]["messages"][0]["meta"] == {"callDuration": "0", "callStatus": "no-answer"}


def test_conversation_search_by_contact(sandbox, token):
    _sms(sandbox, token, LUIS)

    found = sandbox.api("GET", "/conversations/search", token, params={"locationId": ACME, "contactId": LUIS}).json()

    assert found["total"] == 1
    [item] = found["conversations"]
    assert item["contactId"] == LUIS and item["phone"] == "+15125550121"
    assert item["lastMessageBody"] == "Sorry we missed your call!"
    assert isinstance(item["lastMessageDate"], int)


# -- contacts --------------------------------------------------------------------------------------


def test_duplicate_search_by_phone(sandbox, token):
    found = sandbox.api("GET", "/contacts/search/duplicate", token,
                        params={"locationId": ACME, "number": "+15125550121"})
    missing = sandbox.api("GET", "/contacts/search/duplicate", token,
                          params={"locationId": ACME, "number": "+15125550999"})

    assert found.json()["contact"]["id"] == LUIS
    assert missing.status_code == 200 and missing.json() == {"contact": None}


def test_update_contact_sets_sms_dnd_and_blocks_texts(sandbox, token):
    answer = sandbox.api("PUT", f"/contacts/{LUIS}", token,
                         json={"dndSettings": {"SMS": {"status": "active", "message": "replied STOP"}}})

    assert answer.status_code == 200
    assert answer.json()["succeded"] is True
    assert answer.json()["contact"]["dndSettings"]["SMS"]["status"] == "active"
    assert _sms(sandbox, token, LUIS).status_code == 400
    assert len(sandbox.deliveries(type="ContactDndUpdate")) == 1


def test_update_contact_refuses_unknown_properties(sandbox, token):
    answer = sandbox.api("PUT", f"/contacts/{LUIS}", token, json={"favouriteColour": "blue"})

    assert answer.status_code == 422
    assert answer.json()["message"] == ["property favouriteColour should not exist"]


def test_missing_contact_is_404(sandbox, token):
    answer = sandbox.api("GET", "/contacts/NoSuchContact0000000", token)

    assert answer.status_code == 404
    assert answer.json()["statusCode"] == 404


def test_tags_add_and_remove(sandbox, token):
    added = sandbox.api("POST", f"/contacts/{LUIS}/tags", token, json={"tags": ["missed-call", "lead"]})
    removed = sandbox.api("DELETE", f"/contacts/{LUIS}/tags", token, json={"tags": ["lead"]})

    assert added.status_code == 201 and added.json() == {"tags": ["missed-call", "lead"]}
    assert removed.status_code == 200 and removed.json() == {"tags": ["missed-call"]}


def test_notes_and_tasks(sandbox, token):
    note = sandbox.api("POST", f"/contacts/{LUIS}/notes", token, json={"body": "Caller asked about a leak"})
    due = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    task = sandbox.api("POST", f"/contacts/{LUIS}/tasks", token,
                       json={"title": "Call back", "dueDate": due, "completed": False})
    bad_task = sandbox.api("POST", f"/contacts/{LUIS}/tasks", token, json={"title": "x", "dueDate": "soon",
                                                                          "completed": False})

    assert note.status_code == 201 and note.json()["note"]["body"] == "Caller asked about a leak"
    assert task.status_code == 201 and task.json()["task"]["contactId"] == LUIS
    assert bad_task.status_code == 422


# -- opportunities ---------------------------------------------------------------------------------


def test_pipelines_have_the_missed_call_stages(sandbox, token):
    pipelines = sandbox.api("GET", "/opportunities/pipelines", token, params={"locationId": ACME}).json()["pipelines"]

    missed = next(p for p in pipelines if p["id"] == PIPELINE)
    assert [s["name"] for s in missed["stages"]] == ["New Lead", "Replied", "Booked", "Won"]
    assert {p["name"] for p in pipelines} == {"Missed Call", "Sales"}


def test_opportunity_lifecycle(sandbox, token):
    created = sandbox.api("POST", "/opportunities/", token, json={
        "pipelineId": PIPELINE, "locationId": ACME, "name": "Missed call - Luis", "status": "open",
        "contactId": LUIS, "monetaryValue": 350})
    assert created.status_code == 201
    opportunity = created.json()["opportunity"]
    assert opportunity["pipelineStageId"] == stage_id(PIPELINE, "New Lead")

    duplicate = sandbox.api("POST", "/opportunities/", token, json={
        "pipelineId": PIPELINE, "locationId": ACME, "name": "again", "status": "open", "contactId": LUIS})
    assert duplicate.status_code == 400

    moved = sandbox.api("PUT", f"/opportunities/{opportunity['id']}", token,
                        json={"pipelineStageId": stage_id(PIPELINE, "Booked")})
    assert moved.status_code == 200 and moved.json()["opportunity"]["pipelineStageId"] == stage_id(PIPELINE, "Booked")
    won = sandbox.api("PUT", f"/opportunities/{opportunity['id']}/status", token, json={"status": "won"})
    assert won.status_code == 200 and won.json() == {"succeded": True}

    found = sandbox.api("GET", "/opportunities/search", token,
                        params={"location_id": ACME, "contact_id": LUIS, "status": "won"}).json()
    assert [o["id"] for o in found["opportunities"]] == [opportunity["id"]]
    assert found["meta"]["total"] == 1
    assert found["opportunities"][0]["contact"]["phone"] == "+15125550121"
    kinds = [d["type"] for d in sandbox.deliveries() if d["type"].startswith("Opportunity")]
    assert {"OpportunityCreate", "OpportunityStageUpdate", "OpportunityStatusUpdate"} <= set(kinds)


def test_opportunity_search_wants_snake_case(sandbox, token):
    camel = sandbox.api("GET", "/opportunities/search", token, params={"locationId": ACME})

    assert camel.status_code == 422


def test_opportunity_with_a_stage_from_another_pipeline_is_refused(sandbox, token):
    answer = sandbox.api("POST", "/opportunities/", token, json={
        "pipelineId": PIPELINE, "locationId": ACME, "name": "x", "status": "open", "contactId": LUIS,
        "pipelineStageId": "00000000-0000-0000-0000-000000000000"})

    assert answer.status_code == 400


# -- calendars -------------------------------------------------------------------------------------


def _next_weekday_ms(days_ahead_min: int = 2) -> tuple[int, int]:
    day = datetime.now(UTC).date() + timedelta(days=days_ahead_min)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return int(start.timestamp() * 1000), int((start + timedelta(days=1)).timestamp() * 1000)


def test_free_slots_and_booking(sandbox, token):
    calendar = SEED_CALENDAR_IDS[ACME]
    start, end = _next_weekday_ms()

    slots = sandbox.api("GET", f"/calendars/{calendar}/free-slots", token,
                        params={"startDate": start, "endDate": end, "timezone": "America/Chicago"}).json()

    all_slots = [s for day in slots.values() for s in day["slots"]]
    assert all_slots and all(s.endswith(("-05:00", "-06:00")) for s in all_slots)
    first = all_slots[0]
    booked = sandbox.api("POST", "/calendars/events/appointments", token, json={
        "calendarId": calendar, "locationId": ACME, "contactId": LUIS, "startTime": first})
    assert booked.status_code == 200, booked.text
    assert booked.json()["calendarId"] == calendar and booked.json()["id"]
    again = sandbox.api("POST", "/calendars/events/appointments", token, json={
        "calendarId": calendar, "locationId": ACME, "contactId": LUIS, "startTime": first})
    assert again.status_code == 400
    after = sandbox.api("GET", f"/calendars/{calendar}/free-slots", token,
                        params={"startDate": start, "endDate": end, "timezone": "America/Chicago"}).json()
    assert first not in [s for day in after.values() for s in day["slots"]]


def test_free_slots_range_is_limited(sandbox, token):
    start, _ = _next_weekday_ms()

    answer = sandbox.api("GET", f"/calendars/{SEED_CALENDAR_IDS[ACME]}/free-slots", token,
                         params={"startDate": start, "endDate": start + 40 * 86_400_000})

    assert answer.status_code == 422


# -- locations and users ---------------------------------------------------------------------------


def test_location_has_timezone_and_phone(sandbox, token):
    location = sandbox.api("GET", f"/locations/{ACME}", token).json()["location"]

    assert location["timezone"] == "America/Chicago" and location["phone"] == SEED_LOCATION_PHONES[ACME]
    assert location["companyId"] == SEED_COMPANY_ID


def test_users_of_a_location(sandbox, token):
    users = sandbox.api("GET", "/users/", token, params={"locationId": ACME}).json()["users"]
    searched = sandbox.api("GET", "/users/search", token, params={"companyId": SEED_COMPANY_ID}).json()

    assert [u["id"] for u in users] == list(SEED_USER_IDS[ACME])
    assert all(u["phone"] for u in users)
    # A Location token searches its own sub-account, where agency users have access too.
    assert {u["id"] for u in searched["users"]} == {*SEED_USER_IDS[ACME], SEED_AGENCY_USER_ID}
    assert searched["count"] == 3
