"""Opportunities API (Version 2021-07-28): pipelines, search (snake_case query), create, update, status."""

from __future__ import annotations

import copy

from flask import jsonify, request

from integration.sandbox.api import bp
from integration.sandbox.api.common import int_arg, json_body, owned_record
from integration.sandbox.crm import emit_events
from integration.sandbox.errors import ApiError, validation_error
from integration.sandbox.guard import LOCATION, require_location, required_arg, resource, sandbox_state
from integration.sandbox.ids import iso, new_id
from integration.sandbox.payloads import opportunity_event

READ = ("opportunities.readonly", "opportunities.write")
WRITE = ("opportunities.write",)
_STATUSES = ("open", "won", "lost", "abandoned")
_UPDATE_FIELDS = {"pipelineId", "name", "pipelineStageId", "status", "monetaryValue", "assignedTo", "customFields"}


def _render(world, opportunity: dict) -> dict:
    contact = world.contacts.get(opportunity["contactId"], {})
    rendered = copy.deepcopy(opportunity)
    rendered["contact"] = {"id": contact.get("id", opportunity["contactId"]), "name": contact.get("name", ""),
                           "companyName": contact.get("companyName", ""), "email": contact.get("email", ""),
                           "phone": contact.get("phone", ""), "tags": list(contact.get("tags", []))}
    return rendered


@bp.get("/opportunities/pipelines")
@resource(token_classes=(LOCATION,), scopes=READ)
def pipelines():
    location_id = required_arg("locationId")
    require_location(location_id)
    state = sandbox_state()
    with state.lock:
        found = [copy.deepcopy(p) for p in state.world.pipelines.values() if p["locationId"] == location_id]
    return jsonify({"pipelines": found})


@bp.get("/opportunities/search")
@resource(token_classes=(LOCATION,), scopes=READ)
def search():
    if "locationId" in request.args:
        # The search endpoint's query is snake_case; camelCase is refused like any unknown property.
        raise validation_error("property locationId should not exist")
    location_id = required_arg("location_id")
    require_location(location_id)
    limit = int_arg("limit", 20, minimum=1, maximum=100)
    page = int_arg("page", 1, minimum=1)
    status = request.args.get("status")
    if status and status not in (*_STATUSES, "all"):
        raise validation_error("status must be one of the following values: open, won, lost, abandoned, all")
    filters = {"contactId": request.args.get("contact_id"), "pipelineId": request.args.get("pipeline_id"),
               "pipelineStageId": request.args.get("pipeline_stage_id"),
               "assignedTo": request.args.get("assigned_to"), "id": request.args.get("id")}
    query = (request.args.get("q") or "").lower()
    state = sandbox_state()
    with state.lock:
        found = [o for o in state.world.opportunities.values() if o["locationId"] == location_id]
        for key, value in filters.items():
            if value:
                found = [o for o in found if o.get(key) == value]
        if status and status != "all":
            found = [o for o in found if o["status"] == status]
        if query:
            found = [o for o in found if query in o["name"].lower()]
        found.sort(key=lambda o: o["createdAt"], reverse=request.args.get("order") != "added_asc")
        window = found[(page - 1) * limit: page * limit]
        items = [_render(state.world, o) for o in window]
    more = page * limit < len(found)
    meta = {"total": len(found), "currentPage": page, "nextPage": page + 1 if more else None,
            "prevPage": page - 1 if page > 1 else None, "startAfterId": window[-1]["id"] if window else None,
            "startAfter": None, "nextPageUrl": None}
    return jsonify({"opportunities": items, "meta": {k: v for k, v in meta.items() if v is not None},
                    "aggregations": {}})


def _check_stage(world, pipeline_id: str, stage_id: str | None, location_id: str) -> str:
    pipeline = world.pipelines.get(pipeline_id)
    if pipeline is None or pipeline["locationId"] != location_id:
        raise ApiError(400, "Pipeline not found")
    if stage_id is None:
        return pipeline["stages"][0]["id"]
    if stage_id not in {s["id"] for s in pipeline["stages"]}:
        raise ApiError(400, "Pipeline stage not found in the pipeline")
    return stage_id


def _validate_fields(body: dict, *, creating: bool) -> None:
    problems = []
    required = ("pipelineId", "locationId", "name", "status", "contactId") if creating else ()
    for name in required:
        if not body.get(name):
            problems.append(f"{name} should not be empty")
    for name in ("pipelineId", "locationId", "name", "pipelineStageId", "contactId", "assignedTo"):
        if body.get(name) is not None and not isinstance(body[name], str):
            problems.append(f"{name} must be a string")
    if body.get("status") is not None and body["status"] not in _STATUSES:
        problems.append("status must be one of the following values: open, won, lost, abandoned")
    value = body.get("monetaryValue")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        problems.append("monetaryValue must be a number conforming to the specified constraints")
    if problems:
        raise validation_error(*problems)


@bp.post("/opportunities/")
@resource(token_classes=(LOCATION,), scopes=WRITE)
def create():
    body = json_body(allowed=_UPDATE_FIELDS | {"locationId", "contactId"})
    _validate_fields(body, creating=True)
    location_id = body["locationId"]
    require_location(location_id)
    state = sandbox_state()
    with state.lock:
        world = state.world
        contact = world.contacts.get(body["contactId"])
        if contact is None or contact["locationId"] != location_id:
            raise ApiError(400, "Contact not found")
        stage_id = _check_stage(world, body["pipelineId"], body.get("pipelineStageId"), location_id)
        settings = world.locations[location_id]["settings"]
        duplicate = any(o["contactId"] == contact["id"] and o["pipelineId"] == body["pipelineId"]
                        and o["status"] == "open" for o in world.opportunities.values())
        if duplicate and not settings["allowDuplicateOpportunity"]:
            raise ApiError(400, "Can not create duplicate opportunity for the contact.")
        now = iso()
        opportunity = {
            "id": new_id(), "name": body["name"], "monetaryValue": body.get("monetaryValue", 0),
            "pipelineId": body["pipelineId"], "pipelineStageId": stage_id, "assignedTo": body.get("assignedTo") or "",
            "status": body["status"], "source": "", "lastStatusChangeAt": now, "lastStageChangeAt": now,
            "lastActionDate": now, "createdAt": now, "updatedAt": now, "contactId": contact["id"],
            "locationId": location_id, "notes": [], "tasks": [], "calendarEvents": [], "customFields": [],
            "followers": [],
        }
        world.opportunities[opportunity["id"]] = opportunity
        answer = {"opportunity": _render(world, opportunity)}
        event = opportunity_event("OpportunityCreate", opportunity)
    emit_events(state, [event])
    return jsonify(answer), 201


@bp.get("/opportunities/<opportunity_id>")
@resource(token_classes=(LOCATION,), scopes=READ)
def get_opportunity(opportunity_id: str):
    opportunity = owned_record("opportunities", opportunity_id, not_found="Opportunity not found")
    state = sandbox_state()
    with state.lock:
        return jsonify({"opportunity": _render(state.world, opportunity)})


def _apply(state, opportunity: dict, changes: dict) -> list[dict]:
    """Apply validated changes under the lock; return the webhooks HighLevel would send."""
    events = []
    now = iso()
    if "pipelineId" in changes or "pipelineStageId" in changes:
        pipeline_id = changes.get("pipelineId", opportunity["pipelineId"])
        stage = changes.get("pipelineStageId")
        if stage is None and pipeline_id == opportunity["pipelineId"]:
            stage = opportunity["pipelineStageId"]
        stage = _check_stage(state.world, pipeline_id, stage, opportunity["locationId"])
        if stage != opportunity["pipelineStageId"]:
            opportunity.update(pipelineId=pipeline_id, pipelineStageId=stage, lastStageChangeAt=now)
            events.append("OpportunityStageUpdate")
    if "status" in changes and changes["status"] != opportunity["status"]:
        opportunity.update(status=changes["status"], lastStatusChangeAt=now)
        events.append("OpportunityStatusUpdate")
    if "monetaryValue" in changes and changes["monetaryValue"] != opportunity["monetaryValue"]:
        opportunity["monetaryValue"] = changes["monetaryValue"]
        events.append("OpportunityMonetaryValueUpdate")
    if "assignedTo" in changes and changes["assignedTo"] != opportunity["assignedTo"]:
        opportunity["assignedTo"] = changes["assignedTo"]
        events.append("OpportunityAssignedToUpdate")
    if "name" in changes:
        opportunity["name"] = changes["name"]
    opportunity.update(updatedAt=now, lastActionDate=now)
    events.append("OpportunityUpdate")
    return [opportunity_event(kind, opportunity) for kind in events]


@bp.put("/opportunities/<opportunity_id>")
@resource(token_classes=(LOCATION,), scopes=WRITE)
def update(opportunity_id: str):
    opportunity = owned_record("opportunities", opportunity_id, not_found="Opportunity not found")
    body = json_body(allowed=_UPDATE_FIELDS)
    _validate_fields(body, creating=False)
    state = sandbox_state()
    with state.lock:
        events = _apply(state, opportunity, body)
        answer = {"opportunity": _render(state.world, opportunity)}
    emit_events(state, events)
    return jsonify(answer)


@bp.put("/opportunities/<opportunity_id>/status")
@resource(token_classes=(LOCATION,), scopes=WRITE)
def update_status(opportunity_id: str):
    opportunity = owned_record("opportunities", opportunity_id, not_found="Opportunity not found")
    body = json_body(allowed={"status", "lostReasonId"})
    if body.get("status") not in _STATUSES:
        raise validation_error("status must be one of the following values: open, won, lost, abandoned")
    state = sandbox_state()
    with state.lock:
        events = _apply(state, opportunity, {"status": body["status"]})
    emit_events(state, events)
    return jsonify({"succeded": True})
