"""Contacts API (Version 2021-07-28): read, update (incl. DND), duplicate search, tags, notes, tasks."""

from __future__ import annotations

import copy

from flask import jsonify, request

from integration.sandbox.api import bp
from integration.sandbox.api.common import json_body, owned_record, parse_iso
from integration.sandbox.crm import CrmError, emit_events, find_contact_by_phone, normalize_phone
from integration.sandbox.errors import validation_error
from integration.sandbox.guard import LOCATION, require_location, required_arg, resource, sandbox_state
from integration.sandbox.ids import iso, new_id
from integration.sandbox.payloads import contact_event
from integration.sandbox.records import DND_CHANNELS

READ = ("contacts.readonly", "contacts.write")
WRITE = ("contacts.write",)

_STRING_FIELDS = ("firstName", "lastName", "name", "email", "phone", "address1", "city", "state", "postalCode",
                  "website", "timezone", "source", "country", "assignedTo", "companyName")
_UPDATE_FIELDS = set(_STRING_FIELDS) | {"dnd", "dndSettings", "inboundDndSettings", "tags", "customFields",
                                        "dateOfBirth"}
_DND_STATUSES = ("active", "inactive", "permanent")


def _contact(contact_id: str) -> dict:
    return owned_record("contacts", contact_id, not_found="Contact not found")


@bp.get("/contacts/<contact_id>")
@resource(token_classes=(LOCATION,), scopes=READ)
def get_contact(contact_id: str):
    contact = _contact(contact_id)
    with sandbox_state().lock:
        return jsonify({"contact": copy.deepcopy(contact)})


def _validate_update(body: dict) -> list[str]:
    problems = []
    for name in _STRING_FIELDS:
        if name in body and body[name] is not None and not isinstance(body[name], str):
            problems.append(f"{name} must be a string")
    if "dnd" in body and not isinstance(body["dnd"], bool):
        problems.append("dnd must be a boolean value")
    if "tags" in body and (not isinstance(body["tags"], list) or any(not isinstance(t, str) for t in body["tags"])):
        problems.append("each value in tags must be a string")
    settings = body.get("dndSettings")
    if settings is not None:
        if not isinstance(settings, dict):
            problems.append("dndSettings must be an object")
        else:
            for channel, value in settings.items():
                if channel not in DND_CHANNELS:
                    problems.append(f"dndSettings.property {channel} should not exist")
                elif not isinstance(value, dict) or value.get("status") not in _DND_STATUSES:
                    problems.append(f"dndSettings.{channel}.status must be one of the following values: "
                                    + ", ".join(_DND_STATUSES))
    return problems


@bp.put("/contacts/<contact_id>")
@resource(token_classes=(LOCATION,), scopes=WRITE)
def update_contact(contact_id: str):
    contact = _contact(contact_id)
    body = json_body(allowed=_UPDATE_FIELDS)
    problems = _validate_update(body)
    if problems:
        raise validation_error(*problems)
    if body.get("phone"):
        try:  # stored in E.164, as HighLevel does
            body["phone"] = normalize_phone(body["phone"])
        except CrmError as exc:
            raise validation_error(str(exc)) from None
    events = []
    state = sandbox_state()
    with state.lock:
        dnd_before = (contact["dnd"], copy.deepcopy(contact["dndSettings"]))
        tags_before = list(contact["tags"])
        for name in _STRING_FIELDS:
            if name in body and body[name] is not None:
                contact[name] = body[name]
        if "firstName" in body or "lastName" in body:
            contact["name"] = " ".join(p for p in (contact["firstName"], contact["lastName"]) if p)
        contact.update(firstNameLowerCase=contact["firstName"].lower(), lastNameLowerCase=contact["lastName"].lower(),
                       fullNameLowerCase=contact["name"].lower(), emailLowerCase=contact["email"].lower())
        if "dnd" in body:
            contact["dnd"] = body["dnd"]
        for channel, value in (body.get("dndSettings") or {}).items():
            contact["dndSettings"][channel] = {k: v for k, v in value.items() if k in {"status", "message", "code"}}
        if "tags" in body:
            contact["tags"] = list(dict.fromkeys(body["tags"]))
        if "customFields" in body and isinstance(body["customFields"], list):
            contact["customFields"] = [
                {"id": f.get("id") or f.get("key", ""), "value": f.get("field_value", f.get("value"))}
                for f in body["customFields"] if isinstance(f, dict)
            ]
        contact["dateUpdated"] = iso()
        events.append(contact_event("ContactUpdate", contact))
        if (contact["dnd"], contact["dndSettings"]) != dnd_before:
            events.append(contact_event("ContactDndUpdate", contact))
        if contact["tags"] != tags_before:
            events.append(contact_event("ContactTagUpdate", contact))
        answer = {"succeded": True, "contact": copy.deepcopy(contact)}
    emit_events(state, events)
    return jsonify(answer)


@bp.get("/contacts/search/duplicate")
@resource(token_classes=(LOCATION,), scopes=READ)
def search_duplicate():
    location_id = required_arg("locationId")
    require_location(location_id)
    number, email = request.args.get("number"), request.args.get("email")
    state = sandbox_state()
    found = None
    with state.lock:
        if number:
            try:
                found = find_contact_by_phone(state.world, location_id, normalize_phone(number, field="number"))
            except CrmError as exc:
                raise validation_error(str(exc)) from None
        if found is None and email:
            found = next((c for c in state.world.location_contacts(location_id)
                          if c["emailLowerCase"] and c["emailLowerCase"] == email.lower()), None)
        return jsonify({"contact": copy.deepcopy(found)})


def _tags_body() -> list[str]:
    body = json_body(allowed={"tags"})
    tags = body.get("tags")
    if not isinstance(tags, list) or not tags or any(not isinstance(t, str) or not t for t in tags):
        raise validation_error("tags must be a non-empty array of strings")
    return tags


@bp.post("/contacts/<contact_id>/tags")
@resource(token_classes=(LOCATION,), scopes=WRITE)
def add_tags(contact_id: str):
    contact = _contact(contact_id)
    tags = _tags_body()
    state = sandbox_state()
    with state.lock:
        before = list(contact["tags"])
        contact["tags"] = list(dict.fromkeys(before + tags))
        changed = contact["tags"] != before
        event = contact_event("ContactTagUpdate", contact) if changed else None
        answer = {"tags": list(contact["tags"])}
    emit_events(state, [event] if event else [])
    return jsonify(answer), 201


@bp.delete("/contacts/<contact_id>/tags")
@resource(token_classes=(LOCATION,), scopes=WRITE)
def remove_tags(contact_id: str):
    contact = _contact(contact_id)
    tags = set(_tags_body())
    state = sandbox_state()
    with state.lock:
        before = list(contact["tags"])
        contact["tags"] = [t for t in before if t not in tags]
        event = contact_event("ContactTagUpdate", contact) if contact["tags"] != before else None
        answer = {"tags": list(contact["tags"])}
    emit_events(state, [event] if event else [])
    return jsonify(answer)


@bp.post("/contacts/<contact_id>/notes")
@resource(token_classes=(LOCATION,), scopes=WRITE)
def add_note(contact_id: str):
    contact = _contact(contact_id)
    body = json_body(allowed={"userId", "body", "title", "color", "pinned"})
    if not isinstance(body.get("body"), str) or not body["body"].strip():
        raise validation_error("body should not be empty", "body must be a string")
    note = {"id": new_id(), "body": body["body"], "userId": body.get("userId") or "", "dateAdded": iso(),
            "contactId": contact["id"], "title": body.get("title") or "", "color": body.get("color") or "",
            "pinned": bool(body.get("pinned", False))}
    state = sandbox_state()
    with state.lock:
        state.world.notes[note["id"]] = dict(note, locationId=contact["locationId"])
    emit_events(state, [{"type": "NoteCreate", "locationId": contact["locationId"], "id": note["id"],
                         "body": note["body"], "contactId": contact["id"], "dateAdded": note["dateAdded"]}])
    return jsonify({"note": note}), 201


@bp.get("/contacts/<contact_id>/notes")
@resource(token_classes=(LOCATION,), scopes=READ)
def list_notes(contact_id: str):
    _contact(contact_id)
    state = sandbox_state()
    with state.lock:
        notes = [{k: v for k, v in n.items() if k != "locationId"}
                 for n in state.world.notes.values() if n["contactId"] == contact_id]
    return jsonify({"notes": notes})


@bp.post("/contacts/<contact_id>/tasks")
@resource(token_classes=(LOCATION,), scopes=WRITE)
def add_task(contact_id: str):
    contact = _contact(contact_id)
    body = json_body(allowed={"title", "body", "dueDate", "completed", "assignedTo"})
    problems = []
    if not isinstance(body.get("title"), str) or not body["title"].strip():
        problems.append("title should not be empty")
    if not isinstance(body.get("completed"), bool):
        problems.append("completed must be a boolean value")
    if problems:
        raise validation_error(*problems)
    parse_iso("dueDate", body.get("dueDate"))
    task = {"id": new_id(), "title": body["title"], "body": body.get("body") or "",
            "assignedTo": body.get("assignedTo") or "", "dueDate": body["dueDate"], "completed": body["completed"],
            "contactId": contact["id"]}
    state = sandbox_state()
    with state.lock:
        state.world.tasks[task["id"]] = dict(task, locationId=contact["locationId"], dateAdded=iso())
    emit_events(state, [{"type": "TaskCreate", "locationId": contact["locationId"], "id": task["id"],
                         "assignedTo": task["assignedTo"], "body": task["body"], "contactId": contact["id"],
                         "title": task["title"], "dateAdded": iso(), "dueDate": task["dueDate"]}])
    return jsonify({"task": task}), 201




@bp.get("/contacts/<contact_id>/tasks")
@resource(token_classes=(LOCATION,), scopes=READ)
def list_tasks(contact_id: str):
    _contact(contact_id)
    state = sandbox_state()
    with state.lock:
        tasks = [{k: v for k, v in t.items() if k not in {"locationId", "dateAdded"}}
                 for t in state.world.tasks.values() if t["contactId"] == contact_id]
    return jsonify({"tasks": tasks})


@bp.post("/contacts/upsert")
@resource(token_classes=(LOCATION,), scopes=WRITE)
def upsert_contact():
    """Find the location's contact by phone (HighLevel's duplicate rule) or create it; `{new, contact}`."""
    body = json_body(allowed=set(_STRING_FIELDS) | {"locationId", "tags"})
    problems = _validate_update(body)
    if not isinstance(body.get("locationId"), str) or not body["locationId"]:
        problems.append("locationId should not be empty")
    if problems:
        raise validation_error(*problems)
    location_id = body["locationId"]
    require_location(location_id)
    state = sandbox_state()
    events: list[dict] = []
    with state.lock:
        world = state.world
        try:
            phone = normalize_phone(body["phone"], field="phone") if body.get("phone") else None
        except CrmError as exc:
            raise validation_error(str(exc)) from None
        contact = find_contact_by_phone(world, location_id, phone) if phone else None
        new = contact is None
        if new:
            from integration.sandbox.records import make_contact

            contact = make_contact(location_id=location_id, phone=phone, first_name=body.get("firstName") or "",
                                   last_name=body.get("lastName") or "", email=body.get("email"),
                                   tags=list(body.get("tags") or []), source=body.get("source") or "api",
                                   timezone=world.locations[location_id]["timezone"])
            world.contacts[contact["id"]] = contact
            events.append(contact_event("ContactCreate", contact))
        answer = {"new": new, "contact": copy.deepcopy(contact), "traceId": new_id()}
    emit_events(state, events)
    return jsonify(answer), 200
