"""Conversations API (Version 2021-04-15): send an SMS, search conversations, list a thread."""

from __future__ import annotations

import copy

from flask import jsonify, request

from integration.sandbox import crm
from integration.sandbox.api import bp
from integration.sandbox.api.common import epoch_ms, int_arg, owned_record
from integration.sandbox.guard import LOCATION, current_grant, require_location, required_arg, resource, sandbox_state


@bp.post("/conversations/messages")
@resource(token_classes=(LOCATION,), scopes=("conversations/message.write",))
def send_message():
    # The 2026 spec marks `subType` and `status` required; every earlier spec and every real client
    # omit them (facts §3.1), so they are optional here.
    body = request.get_json(silent=True)
    answer = crm.send_message(sandbox_state(), location_id=current_grant().location_id, body=body)
    return jsonify(answer)


def _search_item(world, conversation: dict) -> dict:
    contact = world.contacts.get(conversation["contactId"], {})
    return {
        "id": conversation["id"],
        "contactId": conversation["contactId"],
        "locationId": conversation["locationId"],
        "lastMessageBody": conversation["lastMessageBody"],
        "lastMessageType": conversation["lastMessageType"],
        "type": conversation["type"],
        "unreadCount": conversation["unreadCount"],
        "fullName": contact.get("name", ""),
        "contactName": contact.get("name", ""),
        "email": contact.get("email", ""),
        "phone": contact.get("phone", ""),
        # Not in the spec's item schema, but real answers carry them (facts §3.2), as epoch ms.
        "lastMessageDirection": conversation["lastMessageDirection"],
        "lastMessageDate": epoch_ms(conversation["lastMessageDate"]),
        "dateAdded": epoch_ms(conversation["dateAdded"]),
        "dateUpdated": epoch_ms(conversation["dateUpdated"]),
        "sort": [epoch_ms(conversation["lastMessageDate"])],
    }


@bp.get("/conversations/search")
@resource(token_classes=(LOCATION,), scopes=("conversations.readonly", "conversations.write"))
def search_conversations():
    location_id = required_arg("locationId")
    require_location(location_id)
    limit = int_arg("limit", 20, minimum=1, maximum=100)
    contact_id = request.args.get("contactId")
    direction = request.args.get("lastMessageDirection")
    last_type = request.args.get("lastMessageType")
    state = sandbox_state()
    with state.lock:
        found = [c for c in state.world.conversations.values() if c["locationId"] == location_id]
        if contact_id:
            found = [c for c in found if c["contactId"] == contact_id]
        if direction:
            found = [c for c in found if c["lastMessageDirection"] == direction]
        if last_type:
            found = [c for c in found if c["lastMessageType"] == last_type]
        found.sort(key=lambda c: c["lastMessageDate"], reverse=request.args.get("sort", "desc") != "asc")
        items = [_search_item(state.world, c) for c in found[:limit]]
    return jsonify({"conversations": items, "total": len(found)})


@bp.get("/conversations/<conversation_id>/messages")
@resource(token_classes=(LOCATION,), scopes=("conversations/message.readonly",))
def list_messages(conversation_id: str):
    owned_record("conversations", conversation_id, not_found="Conversation not found")
    limit = int_arg("limit", 20, minimum=1, maximum=100)
    cursor = request.args.get("lastMessageId")
    types = {t for t in request.args.get("type", "").split(",") if t}
    state = sandbox_state()
    with state.lock:
        newest_first = list(reversed(state.world.messages.get(conversation_id, [])))
        if types:
            newest_first = [m for m in newest_first if m["messageType"] in types]
        if cursor:
            ids = [m["id"] for m in newest_first]
            newest_first = newest_first[ids.index(cursor) + 1:] if cursor in ids else []
        page = copy.deepcopy(newest_first[:limit])
        more = len(newest_first) > limit
    # Nested as real HighLevel answers ({"messages": {"messages": [...]}}), not flat as the spec
    # shows (facts §3.3); the contract test validates the inner object against the spec's schema.
    inner = {"lastMessageId": page[-1]["id"] if page else "", "nextPage": more, "messages": page}
    return jsonify({"messages": inner})
