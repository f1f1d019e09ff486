"""Webhook bodies, true to the official examples (integration/ghl/webhook_examples, facts §2).

`timestamp` and `webhookId` are stamped by the dispatcher. Fields the examples do not carry are not
invented: an inbound CALL has no phone numbers in it (the app reads the contact for that).
"""

from __future__ import annotations

__all__ = [
    "CALL_OUTCOMES",
    "appointment_event",
    "contact_event",
    "inbound_call",
    "inbound_sms",
    "install_company",
    "install_location",
    "opportunity_event",
    "outbound_sms",
    "uninstall",
]

# outcome -> (webhook status, callStatus). Answered calls follow the official example (completed /
# completed); voicemail follows the documented rule (status and callStatus voicemail); no-answer and
# busy use the call-status enum of the REST API (facts §2.7, open question 4).
CALL_OUTCOMES: dict[str, tuple[str, str]] = {
    "answered": ("completed", "completed"),
    "no-answer": ("no-answer", "no-answer"),
    "busy": ("busy", "busy"),
    "voicemail": ("voicemail", "voicemail"),
}

SANDBOX_PROVIDER_ID = "SbxSmsProvider000001"


def inbound_call(*, message: dict, outcome: str, duration: int, recording_url: str | None) -> dict:
    status, call_status = CALL_OUTCOMES[outcome]
    payload = {
        "type": "InboundMessage",
        "locationId": message["locationId"],
        "attachments": [recording_url] if recording_url else [],
        "contactId": message["contactId"],
        "conversationId": message["conversationId"],
        "dateAdded": message["dateAdded"],
        "direction": "inbound",
        "messageType": "CALL",
    }
    if message.get("userId"):
        payload["userId"] = message["userId"]
    payload.update(messageId=message["id"], status=status, callDuration=duration, callStatus=call_status)
    return payload


def inbound_sms(*, message: dict) -> dict:
    return {
        "type": "InboundMessage",
        "locationId": message["locationId"],
        "attachments": list(message.get("attachments", [])),
        "body": message["body"],
        "contactId": message["contactId"],
        "contentType": "text/plain",
        "conversationId": message["conversationId"],
        "dateAdded": message["dateAdded"],
        "direction": "inbound",
        "messageType": "SMS",
        "messageId": message["id"],
        "status": "delivered",
        "conversationProviderId": SANDBOX_PROVIDER_ID,
    }


def outbound_sms(*, message: dict) -> dict:
    payload = {
        "type": "OutboundMessage",
        "locationId": message["locationId"],
        "attachments": list(message.get("attachments", [])),
        "body": message["body"],
        "contactId": message["contactId"],
        "contentType": "text/plain",
        "conversationId": message["conversationId"],
        "dateAdded": message["dateAdded"],
        "direction": "outbound",
        "messageType": "SMS",
        "source": message.get("source", "api"),
        "status": "delivered",
        "messageId": message["id"],
    }
    if message.get("userId"):
        payload["userId"] = message["userId"]
    payload["conversationProviderId"] = SANDBOX_PROVIDER_ID
    return payload


def install_location(*, app_id: str, company: dict, location_id: str, user_id: str | None) -> dict:
    payload = {
        "type": "INSTALL",
        "appId": app_id,
        "versionId": app_id,
        "installType": "Location",
        "locationId": location_id,
        "companyId": company["id"],
    }
    if user_id:
        payload["userId"] = user_id
    payload.update(companyName=company["name"], isWhitelabelCompany=False,
                   whitelabelDetails={"logoUrl": "", "domain": ""}, trial={})
    return payload


def install_company(*, app_id: str, company: dict, user_id: str | None) -> dict:
    payload = {
        "type": "INSTALL",
        "appId": app_id,
        "versionId": app_id,
        "installType": "Company",
        "companyId": company["id"],
    }
    if user_id:
        payload["userId"] = user_id
    payload.update(companyName=company["name"], isWhitelabelCompany=False,
                   whitelabelDetails={"logoUrl": "", "domain": ""}, trial={})
    return payload


def uninstall(*, app_id: str, location_id: str | None = None, company_id: str | None = None) -> dict:
    payload = {"type": "UNINSTALL", "appId": app_id}
    if location_id:
        payload["locationId"] = location_id
    if company_id:
        payload["companyId"] = company_id
    return payload


_CONTACT_EVENT_FIELDS = ("address1", "city", "state", "companyName", "country", "source", "dateAdded",
                         "dateOfBirth", "dnd", "email", "name", "firstName", "lastName", "phone", "postalCode",
                         "tags", "website", "assignedTo", "customFields")


def contact_event(event_type: str, contact: dict) -> dict:
    payload = {"type": event_type, "locationId": contact["locationId"], "id": contact["id"]}
    for name in _CONTACT_EVENT_FIELDS:
        if name in contact and contact[name] not in (None, ""):
            payload[name] = contact[name]
    payload["attachments"] = []
    if event_type == "ContactDndUpdate":
        payload["dndSettings"] = contact.get("dndSettings", {})
    return payload


def opportunity_event(event_type: str, opportunity: dict) -> dict:
    payload = {"type": event_type, "locationId": opportunity["locationId"], "id": opportunity["id"]}
    for name in ("assignedTo", "contactId", "monetaryValue", "name", "pipelineId", "pipelineStageId", "source",
                 "status"):
        if opportunity.get(name) not in (None, ""):
            payload[name] = opportunity[name]
    payload["dateAdded"] = opportunity["createdAt"]
    return payload


def appointment_event(event_type: str, appointment: dict) -> dict:
    keys = ("id", "address", "title", "calendarId", "contactId", "appointmentStatus", "assignedUserId", "notes",
            "source", "startTime", "endTime", "dateAdded", "dateUpdated")
    return {
        "type": event_type,
        "locationId": appointment["locationId"],
        "appointment": {k: appointment[k] for k in keys if appointment.get(k) not in (None, "")},
    }
