"""Builders for CRM records in HighLevel's wire shape (shared by the seed and the live operations)."""

from __future__ import annotations

from integration.sandbox.ids import iso, new_id

__all__ = [
    "DND_CHANNELS",
    "make_contact",
    "make_conversation",
    "make_message",
    "sms_dnd_active",
]

DND_CHANNELS = ("Call", "Email", "SMS", "WhatsApp", "GMB", "FB")

# Numeric message `type` codes (facts §3.3): 1 call and 10 voicemail are stated in the spec, 2 for SMS
# follows the order of the messageType enum.
_TYPE_CODES = {"TYPE_CALL": 1, "TYPE_SMS": 2, "TYPE_EMAIL": 3}


def make_contact(
    *,
    location_id: str,
    phone: str | None,
    first_name: str = "",
    last_name: str = "",
    email: str | None = None,
    tags: list[str] | None = None,
    source: str = "",
    contact_id: str | None = None,
    sms_dnd: bool = False,
    timezone: str | None = None,
    date_added: str | None = None,
) -> dict:
    """A contact as GET /contacts/{id} returns it."""
    name = " ".join(part for part in (first_name, last_name) if part)
    now = date_added or iso()
    contact = {
        "id": contact_id or new_id(),
        "locationId": location_id,
        "name": name,
        "firstName": first_name,
        "lastName": last_name,
        "firstNameLowerCase": first_name.lower(),
        "lastNameLowerCase": last_name.lower(),
        "fullNameLowerCase": name.lower(),
        "email": email or "",
        "emailLowerCase": (email or "").lower(),
        "phone": phone or "",
        "companyName": "",
        "type": "lead",
        "source": source,
        "tags": list(tags or []),
        "dnd": False,
        "dndSettings": {},
        "customFields": [],
        "dateAdded": now,
        "dateUpdated": now,
    }
    if timezone:
        contact["timezone"] = timezone
    if sms_dnd:
        contact["dndSettings"]["SMS"] = {"status": "active", "message": "Opted out by reply STOP", "code": "101"}
    return contact


def sms_dnd_active(contact: dict) -> bool:
    """True when HighLevel would refuse to text this contact (global DND or SMS DND)."""
    if contact.get("dnd"):
        return True
    sms = contact.get("dndSettings", {}).get("SMS") or {}
    return sms.get("status") in {"active", "permanent"}


def make_conversation(*, location_id: str, contact_id: str, conversation_id: str | None = None) -> dict:
    """Internal conversation record; the search view adds the contact's name, email and phone."""
    now = iso()
    return {
        "id": conversation_id or new_id(),
        "locationId": location_id,
        "contactId": contact_id,
        "type": "TYPE_PHONE",
        "unreadCount": 0,
        "lastMessageBody": "",
        "lastMessageType": "TYPE_SMS",
        "lastMessageDirection": "inbound",
        "lastMessageDate": now,
        "dateAdded": now,
        "dateUpdated": now,
    }


def make_message(
    *,
    conversation: dict,
    message_type: str,
    direction: str,
    body: str = "",
    status: str | None = None,
    source: str | None = None,
    user_id: str | None = None,
    meta: dict | None = None,
    attachments: list[str] | None = None,
    date_added: str | None = None,
    message_id: str | None = None,
) -> dict:
    """A message as GET /conversations/{id}/messages lists it."""
    message = {
        "id": message_id or new_id(),
        "type": _TYPE_CODES[message_type],
        "messageType": message_type,
        "locationId": conversation["locationId"],
        "contactId": conversation["contactId"],
        "conversationId": conversation["id"],
        "dateAdded": date_added or iso(),
        "body": body,
        "direction": direction,
        "contentType": "text/plain",
        "attachments": list(attachments or []),
    }
    if status:
        message["status"] = status
    if source:
        message["source"] = source
    if user_id:
        message["userId"] = user_id
    if meta:
        message["meta"] = meta
    return message
