"""The control API under /_sandbox/: drive and inspect the sandbox from tests, the UI and benchmarks.

JSON in, JSON out, no authentication (the sandbox is a local tool). Token values never appear in
any answer.
"""

from __future__ import annotations

import copy
import re
from dataclasses import asdict
from datetime import timedelta

from flask import Blueprint, jsonify, request

from integration.sandbox import crm
from integration.sandbox.crm import CrmError
from integration.sandbox.faults import FaultError, FaultRule
from integration.sandbox.guard import sandbox_state
from integration.sandbox.ids import iso, set_clock_offset
from integration.sandbox.records import make_contact
from integration.sandbox.settings import SandboxConfigError

__all__ = ["ControlError", "bp"]

bp = Blueprint("sandbox_control", __name__, url_prefix="/_sandbox")


class ControlError(ValueError):
    """Bad control request; answered 400 {"error": message}."""


@bp.errorhandler(ControlError)
@bp.errorhandler(CrmError)
@bp.errorhandler(FaultError)
@bp.errorhandler(SandboxConfigError)
def _bad_request(exc: Exception):
    return jsonify({"error": str(exc)}), 400


def _body() -> dict:
    body = request.get_json(silent=True)
    if body is None and not request.data:
        return {}
    if not isinstance(body, dict):
        raise ControlError("the body must be a JSON object")
    return body


def _public_config(config) -> dict:
    data = asdict(config)
    data.pop("client_secret")
    data["app_id"] = config.app_id
    return data


@bp.post("/reset")
def reset():
    sandbox_state().reset()
    set_clock_offset(timedelta(0))
    return jsonify({"ok": True})


@bp.post("/clock")
def set_clock():
    """Run the simulated HighLevel at another time: {"offsetSeconds": n} from real time (0: real time)."""
    offset = _body().get("offsetSeconds")
    if isinstance(offset, bool) or not isinstance(offset, int | float) or abs(offset) > 400 * 86400:
        raise ControlError("offsetSeconds must be a number of seconds within 400 days")
    set_clock_offset(timedelta(seconds=offset))
    return jsonify({"offsetSeconds": offset, "now": iso()})


@bp.get("/config")
def get_config():
    return jsonify(_public_config(sandbox_state().config))


@bp.post("/config")
def set_config():
    return jsonify(_public_config(sandbox_state().update_config(_body())))


@bp.post("/locations")
def generate_locations():
    """Give the seed agency `count` generated sub-accounts (benchmarks with many locations); their ids."""
    from integration.sandbox.seed import MAX_GENERATED_LOCATIONS, add_generated_locations

    count = _body().get("count")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_GENERATED_LOCATIONS:
        raise ControlError(f"count must be a whole number from 0 to {MAX_GENERATED_LOCATIONS}")
    state = sandbox_state()
    with state.lock:
        ids = add_generated_locations(state.world, count)
    return jsonify({"locationIds": ids}), 201


@bp.get("/latency")
def latency():
    """The latency model in force, how many delays it has drawn, and the delays requests met (latency_stats)."""
    return jsonify(sandbox_state().latency_report())


@bp.delete("/latency")
def clear_latency_stats():
    """Start the counts over (between a benchmark's phases) without resetting the world or the model."""
    sandbox_state().latency_stats.clear()
    return jsonify({"ok": True})


@bp.get("/faults")
def list_faults():
    return jsonify({"faults": sandbox_state().faults.list()})


@bp.post("/faults")
def add_fault():
    state = sandbox_state()
    rule = FaultRule.from_dict(_body(), default_delay=state.config.default_fault_delay)
    state.faults.add(rule)
    return jsonify({"fault": rule.to_dict()}), 201


@bp.delete("/faults")
def clear_faults():
    sandbox_state().faults.clear()
    return jsonify({"ok": True})


@bp.post("/calls")
def place_call():
    body = _body()
    result = crm.place_call(sandbox_state(), location_id=body.get("locationId"), from_number=body.get("from"),
                            outcome=body.get("outcome", "no-answer"), duration=body.get("duration", 0),
                            recording_base=request.host_url)
    return jsonify(result), 201


@bp.post("/replies")
def reply():
    body = _body()
    result = crm.receive_reply(sandbox_state(), location_id=body.get("locationId"), from_number=body.get("from"),
                               body=body.get("body"))
    return jsonify(result), 201


@bp.post("/person-messages")
def person_message():
    """A user of the sub-account texts a contact from HighLevel (a person stepping into the conversation)."""
    body = _body()
    result = crm.person_writes(sandbox_state(), contact_id=body.get("contactId"), user_id=body.get("userId"),
                               body=body.get("body"))
    return jsonify(result), 201


@bp.post("/contacts")
def create_contact():
    """Add a contact directly (as a CRM user would), e.g. a staff member's number or an opted-out one."""
    body = _body()
    state = sandbox_state()
    phone = crm.normalize_phone(body.get("phone"), field="phone") if body.get("phone") else None
    with state.lock:
        location = state.world.locations.get(body.get("locationId"))
        if location is None:
            raise ControlError(f"unknown locationId {body.get('locationId')!r}")
        if phone and crm.find_contact_by_phone(state.world, location["id"], phone):
            raise ControlError(f"a contact with phone {phone} already exists in this sub-account")
        contact = make_contact(location_id=location["id"], phone=phone, first_name=body.get("firstName", ""),
                               last_name=body.get("lastName", ""), email=body.get("email"),
                               tags=body.get("tags") or [], source="sandbox control",
                               sms_dnd=bool(body.get("smsDnd")), timezone=location["timezone"])
        state.world.contacts[contact["id"]] = contact
        answer = copy.deepcopy(contact)
    return jsonify({"contact": answer}), 201


@bp.get("/thread")
def thread():
    """A contact and its conversation, oldest message first (what the UI shows)."""
    contact_id = request.args.get("contactId", "")
    state = sandbox_state()
    with state.lock:
        contact = state.world.contacts.get(contact_id)
        if contact is None:
            raise ControlError(f"unknown contactId {contact_id!r}")
        conversation = state.world.conversation_for(contact["locationId"], contact_id)
        messages = copy.deepcopy(state.world.messages.get(conversation["id"], [])) if conversation else []
        return jsonify({"contact": copy.deepcopy(contact),
                        "conversationId": conversation["id"] if conversation else None, "messages": messages})


@bp.post("/webhooks")
def send_webhook():
    body = _body()
    payload = body.get("payload")
    if not isinstance(payload, dict) or not payload.get("type"):
        raise ControlError("payload must be a JSON object with a type")
    delivery = sandbox_state().dispatcher.deliver(payload, wait=bool(body.get("wait", True)))
    if delivery is None:
        return jsonify({"delivered": False, "reason": "event type switched off by webhook_events"}), 200
    return jsonify(delivery.to_dict()), 201


@bp.get("/webhooks/deliveries")
def deliveries():
    found = sandbox_state().dispatcher.deliveries(webhook_id=request.args.get("webhookId"),
                                                  event_type=request.args.get("type"))
    return jsonify({"deliveries": found})


@bp.post("/install")
def install():
    body = _body()
    location_ids = body.get("locationIds") or []
    if not isinstance(location_ids, list):
        raise ControlError("locationIds must be a list")
    webhook_ids = crm.install(sandbox_state(), company_id=body.get("companyId"), location_ids=location_ids,
                              bulk=bool(body.get("bulk")), user_id=body.get("userId"))
    return jsonify({"webhookIds": webhook_ids}), 201


@bp.post("/uninstall")
def uninstall():
    body = _body()
    webhook_ids = crm.uninstall_app(sandbox_state(), location_id=body.get("locationId"),
                                    company_id=body.get("companyId"))
    return jsonify({"webhookIds": webhook_ids})


@bp.post("/tokens/expire")
def expire_tokens():
    resource_id = _body().get("resourceId")
    if not isinstance(resource_id, str) or not resource_id:
        raise ControlError("resourceId is required")
    return jsonify({"expired": sandbox_state().tokens.expire_resource(resource_id)})


@bp.get("/requests")
def requests_log():
    entries = sandbox_state().requests()
    if request.args.get("path"):
        try:
            pattern = re.compile(request.args["path"])
        except re.error as exc:
            raise ControlError(f"path is not a valid regular expression: {exc}") from None
        entries = [e for e in entries if pattern.search(e["path"])]
    if request.args.get("method"):
        entries = [e for e in entries if e["method"] == request.args["method"].upper()]
    if request.args.get("resource"):
        entries = [e for e in entries if e.get("resource") == request.args["resource"]]
    return jsonify({"requests": entries})


@bp.get("/messages")
def sent_messages():
    location_id, contact_id = request.args.get("locationId"), request.args.get("contactId")
    state = sandbox_state()
    with state.lock:
        found = [dict(m) for m in state.world.sent
                 if (not location_id or m["locationId"] == location_id)
                 and (not contact_id or m["contactId"] == contact_id)]
    return jsonify({"messages": found})


@bp.get("/installs")
def installs():
    state = sandbox_state()
    with state.lock:
        rows = [asdict(i) for i in state.installs.values()]
    return jsonify({"installs": rows})
