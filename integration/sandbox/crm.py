"""What happens inside the simulated HighLevel: calls, replies, texts, installs.

Shared by the API views, the control API and the UI so that all three behave the same. Each
operation mutates the World under `state.lock` and delivers its webhooks after releasing it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import phonenumbers

from integration.sandbox.errors import LOCATION_FORBIDDEN, ApiError, validation_error
from integration.sandbox.ids import iso, new_id
from integration.sandbox.payloads import (
    CALL_OUTCOMES,
    appointment_event,
    contact_event,
    inbound_call,
    inbound_sms,
    install_location,
    outbound_sms,
    uninstall,
)
from integration.sandbox.records import make_contact, make_conversation, make_message, sms_dnd_active
from integration.sandbox.state import SandboxState
from integration.sandbox.world import World

__all__ = [
    "STOP_KEYWORDS",
    "CrmError",
    "book_appointment",
    "emit_events",
    "find_contact_by_phone",
    "install",
    "normalize_phone",
    "person_writes",
    "place_call",
    "receive_reply",
    "send_message",
    "uninstall_app",
]

# Carrier opt-out words HighLevel honours automatically by switching on SMS DND.
STOP_KEYWORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit"})


class CrmError(ValueError):
    """Bad input to a sandbox operation (control API or UI); the message is safe to show."""


def normalize_phone(raw: str, *, field: str = "phone") -> str:
    """E.164 form of a phone number (US by default), or CrmError naming the field."""
    if not isinstance(raw, str) or not raw.strip():
        raise CrmError(f"{field} is required")
    try:
        number = phonenumbers.parse(raw, "US")
    except phonenumbers.NumberParseException:
        raise CrmError(f"{field} is not a phone number: {raw!r}") from None
    if not phonenumbers.is_possible_number(number):
        raise CrmError(f"{field} is not a possible phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _same_phone(a: str, b: str) -> bool:
    if not a or not b:
        return False
    try:
        return normalize_phone(a) == normalize_phone(b)
    except CrmError:
        return a == b


def find_contact_by_phone(world: World, location_id: str, phone: str) -> dict | None:
    """The oldest contact of the sub-account with this phone (duplicates are not allowed by default).

    Stored phones are E.164 (every write path normalises them), so one normalisation of the query
    and string comparisons keep this cheap with many contacts.
    """
    try:
        wanted = normalize_phone(phone)
    except CrmError:
        return None
    for contact in world.contacts.values():
        if contact["locationId"] == location_id and contact.get("phone") == wanted:
            return contact
    return None


def location_numbers(world: World, location_id: str) -> set[str]:
    """Numbers a sub-account can text from: its business number and its users' LC Phone numbers."""
    numbers = {world.locations[location_id]["phone"]}
    for user in world.location_users(location_id):
        if user.get("lcPhone", {}).get(location_id):
            numbers.add(user["lcPhone"][location_id])
    return numbers


def _ensure_conversation(world: World, location_id: str, contact_id: str) -> dict:
    conversation = world.conversation_for(location_id, contact_id)
    if conversation is None:
        conversation = make_conversation(location_id=location_id, contact_id=contact_id)
        world.add_conversation(conversation)
    return conversation


def _append(world: World, conversation: dict, message: dict) -> None:
    world.messages[conversation["id"]].append(message)
    conversation.update(
        lastMessageBody=message.get("body", ""),
        lastMessageType=message["messageType"],
        lastMessageDirection=message["direction"],
        lastMessageDate=message["dateAdded"],
        dateUpdated=message["dateAdded"],
    )
    if message["direction"] == "inbound":
        conversation["unreadCount"] += 1


def emit_events(state: SandboxState, payloads: list[dict]) -> list[str | None]:
    """Deliver webhooks (call after releasing state.lock); returns their webhookIds (None: switched off)."""
    ids: list[str | None] = []
    for payload in payloads:
        delivery = state.dispatcher.deliver(payload) if state.dispatcher else None
        ids.append(delivery.webhook_id if delivery else None)
    return ids


def _find_or_create_caller(state: SandboxState, location_id: str, phone: str, source: str,
                           events: list[dict]) -> tuple[dict, bool]:
    world = state.world
    contact = find_contact_by_phone(world, location_id, phone)
    if contact is not None:
        return contact, False
    contact = make_contact(location_id=location_id, phone=phone, source=source,
                           timezone=world.locations[location_id]["timezone"])
    world.contacts[contact["id"]] = contact
    events.append(contact_event("ContactCreate", contact))
    return contact, True


def _check_location(state: SandboxState, location_id: str) -> None:
    if not isinstance(location_id, str) or location_id not in state.world.locations:
        raise CrmError(f"unknown locationId {location_id!r}")


def place_call(state: SandboxState, *, location_id: str, from_number: str, outcome: str, duration: int = 0,
               recording_base: str | None = None) -> dict:
    """A caller rings the sub-account's business number; HighLevel records it and sends InboundMessage."""
    phone = normalize_phone(from_number, field="from")
    if outcome not in CALL_OUTCOMES:
        raise CrmError(f"outcome must be one of {', '.join(CALL_OUTCOMES)}")
    if isinstance(duration, bool) or not isinstance(duration, int) or duration < 0:
        raise CrmError("duration must be a whole number of seconds >= 0")
    if outcome == "answered" and duration == 0:
        duration = 60
    if outcome in {"no-answer", "busy"}:
        duration = 0
    events: list[dict] = []
    with state.lock:
        _check_location(state, location_id)
        world = state.world
        contact, created = _find_or_create_caller(state, location_id, phone, "inbound call", events)
        conversation = _ensure_conversation(world, location_id, contact["id"])
        _, call_status = CALL_OUTCOMES[outcome]
        answered_by = world.location_users(location_id)[0]["id"] if outcome == "answered" else None
        message = make_message(conversation=conversation, message_type="TYPE_CALL", direction="inbound",
                               user_id=answered_by, meta={"callDuration": str(duration), "callStatus": call_status})
        _append(world, conversation, message)
        recording = None
        if recording_base and outcome in {"answered", "voicemail"}:
            recording = f"{recording_base.rstrip('/')}/_sandbox/recordings/{message['id']}.mp3"
        events.append(inbound_call(message=message, outcome=outcome, duration=duration, recording_url=recording))
        result = {"contactId": contact["id"], "conversationId": conversation["id"], "messageId": message["id"],
                  "contactCreated": created}
    webhook_ids = emit_events(state, events)
    result["webhookId"] = webhook_ids[-1]
    return result


def receive_reply(state: SandboxState, *, location_id: str, from_number: str, body: str) -> dict:
    """The caller texts the business number; STOP words switch on SMS DND as HighLevel does."""
    phone = normalize_phone(from_number, field="from")
    if not isinstance(body, str) or not body.strip():
        raise CrmError("body is required")
    events: list[dict] = []
    with state.lock:
        _check_location(state, location_id)
        world = state.world
        contact, created = _find_or_create_caller(state, location_id, phone, "inbound sms", events)
        conversation = _ensure_conversation(world, location_id, contact["id"])
        message = make_message(conversation=conversation, message_type="TYPE_SMS", direction="inbound", body=body,
                               status="delivered")
        _append(world, conversation, message)
        events.append(inbound_sms(message=message))
        if body.strip().lower() in STOP_KEYWORDS:
            contact["dndSettings"]["SMS"] = {"status": "active", "message": f"Contact replied {body.strip()}",
                                             "code": "101"}
            contact["dateUpdated"] = iso()
            events.append(contact_event("ContactDndUpdate", contact))
        result = {"contactId": contact["id"], "conversationId": conversation["id"], "messageId": message["id"],
                  "contactCreated": created}
    webhook_ids = emit_events(state, events)
    result["webhookId"] = webhook_ids[events.index(next(e for e in events if e["type"] == "InboundMessage"))]
    return result


def person_writes(state: SandboxState, *, contact_id: str, user_id: str | None, body: str) -> dict:
    """A user of the sub-account texts the contact from HighLevel's conversation view: the message is in the
    thread and an OutboundMessage webhook with the user's id goes out (a person taking the conversation over)."""
    if not isinstance(body, str) or not body.strip():
        raise CrmError("body is required")
    events: list[dict] = []
    with state.lock:
        world = state.world
        contact = world.contacts.get(contact_id) if isinstance(contact_id, str) else None
        if contact is None:
            raise CrmError(f"unknown contact {contact_id!r}")
        users = world.location_users(contact["locationId"])
        if user_id is None:
            user_id = users[0]["id"] if users else None
        if user_id not in {u["id"] for u in users}:
            raise CrmError(f"user {user_id!r} is not a user of this sub-account")
        conversation = _ensure_conversation(world, contact["locationId"], contact_id)
        message = make_message(conversation=conversation, message_type="TYPE_SMS", direction="outbound", body=body,
                               status="delivered", source="app", user_id=user_id)
        _append(world, conversation, message)
        events.append(outbound_sms(message=message))
        result = {"contactId": contact_id, "conversationId": conversation["id"], "messageId": message["id"],
                  "userId": user_id}
    result["webhookId"] = emit_events(state, events)[0]
    return result


def send_message(state: SandboxState, *, location_id: str, body: dict) -> dict:
    """POST /conversations/messages for an SMS: record it in the thread, answer, send OutboundMessage."""
    if not isinstance(body, dict):
        raise validation_error("body must be a JSON object")
    problems = []
    message_type = body.get("type")
    if message_type not in {"SMS", "RCS", "Email", "WhatsApp", "IG", "FB", "Custom", "Live_Chat", "TIKTOK"}:
        problems.append("type must be one of the following values: SMS, RCS, Email, WhatsApp, IG, FB, Custom, "
                        "Live_Chat, TIKTOK")
    contact_id = body.get("contactId")
    if not isinstance(contact_id, str) or not contact_id:
        problems.append("contactId should not be empty")
    text = body.get("message")
    if text is not None and not isinstance(text, str):
        problems.append("message must be a string")
    for name in ("fromNumber", "toNumber"):
        if body.get(name) is not None and not isinstance(body.get(name), str):
            problems.append(f"{name} must be a string")
    if problems:
        raise validation_error(*problems)
    if message_type != "SMS":
        raise ApiError(400, f"The sandbox only delivers SMS messages, not {message_type}")
    if not text or not text.strip():
        raise ApiError(400, "Message body is required for SMS")
    events: list[dict] = []
    with state.lock:
        world = state.world
        contact = world.contacts.get(contact_id)
        if contact is None:
            raise ApiError(400, "Contact not found")
        if contact["locationId"] != location_id:
            raise ApiError(403, LOCATION_FORBIDDEN)
        if sms_dnd_active(contact):
            raise ApiError(400, "Cannot send message: the contact has DND enabled for SMS")
        to_number = body.get("toNumber") or contact.get("phone")
        if not to_number:
            raise ApiError(400, "Contact does not have a phone number")
        from_number = body.get("fromNumber") or world.locations[location_id]["phone"]
        if not any(_same_phone(from_number, n) for n in location_numbers(world, location_id)):
            raise ApiError(400, f"fromNumber {from_number} is not a phone number of this location")
        conversation = _ensure_conversation(world, location_id, contact_id)
        message = make_message(conversation=conversation, message_type="TYPE_SMS", direction="outbound",
                               body=text, status="delivered", source="api")
        _append(world, conversation, message)
        world.sent.append({"messageId": message["id"], "conversationId": conversation["id"],
                           "locationId": location_id, "contactId": contact_id, "body": text,
                           "fromNumber": from_number, "toNumber": to_number, "dateAdded": message["dateAdded"],
                           # When the send request reached "HighLevel" (before its latency), for benchmarks.
                           "requestArrivedAt": _request_arrival()})
        events.append(outbound_sms(message=message))
        answer = {"conversationId": conversation["id"], "messageId": message["id"],
                  "msg": "Message queued successfully.", "status": "pending"}
    emit_events(state, events)
    return answer


def install(state: SandboxState, *, company_id: str, location_ids: list[str], bulk: bool,
            user_id: str | None = None) -> list[str | None]:
    """Record installs and send one Location INSTALL per sub-account (bulk installs too, facts §2.5)."""
    events: list[dict] = []
    with state.lock:
        company = state.world.companies.get(company_id)
        if company is None:
            raise CrmError(f"unknown companyId {company_id!r}")
        if bulk:
            location_ids = [loc["id"] for loc in state.world.company_locations(company_id)]
            state.future_installs.add(company_id)
        for location_id in location_ids:
            location = state.world.locations.get(location_id)
            if location is None or location["companyId"] != company_id:
                raise CrmError(f"locationId {location_id!r} is not a sub-account of {company_id!r}")
        for location_id in location_ids:
            state.record_install(location_id=location_id, company_id=company_id, bulk=bulk)
            installer = user_id or state.world.location_users(location_id)[0]["id"]
            events.append(install_location(app_id=state.config.app_id, company=company, location_id=location_id,
                                           user_id=installer))
    return emit_events(state, events)


def uninstall_app(state: SandboxState, *, location_id: str | None = None, company_id: str | None = None) -> list:
    """Remove the app from a sub-account (or a whole agency): tokens die, UNINSTALL webhooks go out."""
    events: list[dict] = []
    with state.lock:
        if location_id:
            _check_location(state, location_id)
            state.installs.pop(location_id, None)
            state.tokens.revoke_resource(location_id)
            events.append(uninstall(app_id=state.config.app_id, location_id=location_id))
        elif company_id:
            if company_id not in state.world.companies:
                raise CrmError(f"unknown companyId {company_id!r}")
            for loc in state.world.company_locations(company_id):
                state.installs.pop(loc["id"], None)
                state.tokens.revoke_resource(loc["id"])
            state.future_installs.discard(company_id)
            state.tokens.revoke_resource(company_id)
            events.append(uninstall(app_id=state.config.app_id, company_id=company_id))
        else:
            raise CrmError("locationId or companyId is required")
    return emit_events(state, events)


def book_appointment(state: SandboxState, *, contact_id: str, start: datetime) -> dict:
    """A person books the job on the location's first calendar from HighLevel's UI: the appointment is
    stored and an AppointmentCreate webhook goes out, as when the contractor books it by hand."""
    if start.tzinfo is None:
        raise CrmError("the start time needs a time zone")
    with state.lock:
        world = state.world
        contact = world.contacts.get(contact_id)
        if contact is None:
            raise CrmError(f"unknown contact {contact_id!r}")
        calendars = [c for c in world.calendars.values() if c["locationId"] == contact["locationId"]]
        if not calendars:
            raise CrmError("this sub-account has no calendar")
        calendar = calendars[0]
        team = [m["userId"] for m in calendar.get("teamMembers", [])]
        now = iso()
        appointment = {
            "id": new_id(), "calendarId": calendar["id"], "locationId": contact["locationId"],
            "contactId": contact_id, "startTime": start.isoformat(),
            "endTime": (start + timedelta(minutes=calendar.get("slotDuration", 60))).isoformat(),
            "title": f"Service call with {contact['name'] or contact['phone']}", "meetingLocationType": "custom",
            "appointmentStatus": "confirmed", "assignedUserId": team[0] if team else "", "address": "",
            "isRecurring": False, "notes": "", "source": "booking_widget", "dateAdded": now, "dateUpdated": now,
        }
        world.appointments[appointment["id"]] = appointment
        event = appointment_event("AppointmentCreate", appointment)
    emit_events(state, [event])
    return dict(appointment)


def _request_arrival() -> float | None:
    """Epoch seconds the current API request arrived (integration.sandbox's hook), None outside a request."""
    from flask import g, has_request_context

    return getattr(g, "arrived_at", None) if has_request_context() else None
